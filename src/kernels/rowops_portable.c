/* Portable row kernels of the softmax / dropout passes.
 *
 * These define the results of every level: the SIMD versions compute the same formulas in the
 * same order, so scale, add, dropout_apply, softmax_bwd, exp_shift_sum and dot are
 * bit-identical at every level, and row_max equal in value (the sign of a zero maximum may
 * differ). The reductions use the canonical 32-way summation order of kernels/exp_poly.h;
 * the loops are written so that compilers can vectorise them. */
#include <math.h>

#include "kernels/exp_poly.h"
#include "kernels/rowops.h"

static float row_max(const float *x, size_t n)
{
    float m = -INFINITY;
    for (size_t j = 0; j < n; j++) {
        if (isnan(x[j])) return x[j];
        if (x[j] > m) m = x[j];
    }
    return m;
}

/* Canonical tree reduction of the FASI_SUM_LANES partial sums. */
static float reduce_lanes(float *acc)
{
    for (size_t w = FASI_SUM_LANES / 2; w >= 1; w /= 2) {
        for (size_t i = 0; i < w; i++) acc[i] += acc[i + w];
    }
    return acc[0];
}

static float exp_shift_sum(float *x, size_t n, float shift)
{
    float acc[FASI_SUM_LANES] = {0};
    size_t j = 0;
    for (; j + FASI_SUM_LANES <= n; j += FASI_SUM_LANES) {
        for (size_t i = 0; i < FASI_SUM_LANES; i++) {
            float e = fasi_exp(x[j + i] - shift);
            x[j + i] = e;
            acc[i] += e;
        }
    }
    for (size_t i = 0; j + i < n; i++) {
        float e = fasi_exp(x[j + i] - shift);
        x[j + i] = e;
        acc[i] += e;
    }
    return reduce_lanes(acc);
}

static void scale(float *x, size_t n, float s)
{
    for (size_t j = 0; j < n; j++) x[j] *= s;
}

static void add(float *x, const float *y, size_t n)
{
    for (size_t j = 0; j < n; j++) x[j] += y[j];
}

static float dot(const float *a, const float *b, size_t n)
{
    float acc[FASI_SUM_LANES] = {0};
    size_t j = 0;
    for (; j + FASI_SUM_LANES <= n; j += FASI_SUM_LANES) {
        for (size_t i = 0; i < FASI_SUM_LANES; i++) acc[i] += a[j + i] * b[j + i];
    }
    for (size_t i = 0; j + i < n; i++) acc[i] += a[j + i] * b[j + i];
    return reduce_lanes(acc);
}

static void dropout_apply(float *x, const uint8_t *keep, size_t n, float s)
{
    for (size_t j = 0; j < n; j++) x[j] = x[j] * (keep[j] ? s : 0.0f);
}

static void softmax_bwd(float *dp, const float *p, size_t n, float c, float s)
{
    for (size_t j = 0; j < n; j++) dp[j] = (s * p[j]) * (dp[j] - c);
}

void fasi_register_rowops_portable(fasi_kernels *k)
{
    k->row_max = row_max;
    k->exp_shift_sum = exp_shift_sum;
    k->scale = scale;
    k->add = add;
    k->dot = dot;
    k->dropout_apply = dropout_apply;
    k->softmax_bwd = softmax_bwd;
}
