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
#include "layout/layout.h"

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

static void probs_dropout(float *x, const uint8_t *keep, size_t n, float inv, float s,
                          uint16_t *p16)
{
    for (size_t j = 0; j < n; j++) {
        float p = x[j] * inv;
        if (p16) p16[j] = fasi_f32_to_f16(p);
        x[j] = keep ? p * (keep[j] ? s : 0.0f) : p;
    }
}

static void softmax_bwd(float *dp, const float *p, size_t n, float c, float s)
{
    for (size_t j = 0; j < n; j++) dp[j] = (s * p[j]) * (dp[j] - c);
}

/* ---- NPU precision mode: each operation rounded to fp16 (h) as written in common/isa.h ---- */

static inline float h(float x) { return fasi_f16_to_f32(fasi_f32_to_f16(x)); }

static void round_f16(float *x, size_t n)
{
    for (size_t j = 0; j < n; j++) x[j] = h(x[j]);
}

static void npu_logits(float *x, const float *mask, size_t n, float sc)
{
    for (size_t j = 0; j < n; j++) x[j] = h(h(h(x[j]) * sc) + (mask ? mask[j] : 0.0f));
}

static void npu_exp(float *x, float *e32, size_t n, float m)
{
    for (size_t j = 0; j < n; j++) {
        e32[j] = fasi_exp(h(x[j] - m));
        x[j] = h(e32[j]);
    }
}

static void npu_scale(float *x, size_t n, float s)
{
    for (size_t j = 0; j < n; j++) x[j] = h(x[j] * s);
}

static void npu_dropout(float *x, const uint8_t *keep, size_t n, float g)
{
    for (size_t j = 0; j < n; j++) x[j] = h(x[j] * (keep[j] ? g : 0.0f));
}

static float npu_rowsum(const float *dp, const float *p, float *t, size_t n)
{
    for (size_t j = 0; j < n; j++) t[j] = h(dp[j] * p[j]);
    for (size_t blocks = n / 16; blocks > 1; blocks /= 2) {
        if (blocks % 2) {
            blocks--;
            for (size_t l = 0; l < 16; l++) t[l] = h(t[l] + t[blocks * 16 + l]);
        }
        const size_t half = blocks / 2 * 16;
        for (size_t j = 0; j < half; j++) t[j] = h(t[j] + t[j + half]);
    }
    for (size_t w = 8; w >= 1; w /= 2)
        for (size_t l = 0; l < w; l++) t[l] = h(t[l] + t[l + w]);
    return t[0];
}

static void npu_softmax_bwd(float *dp, const float *p, size_t n, float r, float sc)
{
    for (size_t j = 0; j < n; j++) dp[j] = h(h(dp[j] - r) * h(p[j] * sc));
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
    k->probs_dropout = probs_dropout;
    k->round_f16 = round_f16;
    k->npu_logits = npu_logits;
    k->npu_exp = npu_exp;
    k->npu_scale = npu_scale;
    k->npu_dropout = npu_dropout;
    k->npu_rowsum = npu_rowsum;
    k->npu_softmax_bwd = npu_softmax_bwd;
}
