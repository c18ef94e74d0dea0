/* Portable row kernels of the softmax / dropout passes. */
#include <math.h>

#include "kernels/isa.h"

static float row_max(const float *x, size_t n)
{
    float m = -INFINITY;
    for (size_t j = 0; j < n; j++) {
        if (isnan(x[j])) return x[j];
        if (x[j] > m) m = x[j];
    }
    return m;
}

static float exp_shift_sum(float *x, size_t n, float shift)
{
    float s = 0.0f;
    for (size_t j = 0; j < n; j++) {
        x[j] = expf(x[j] - shift);
        s += x[j];
    }
    return s;
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
    float s = 0.0f;
    for (size_t j = 0; j < n; j++) s += a[j] * b[j];
    return s;
}

static void dropout_apply(float *x, const uint8_t *keep, size_t n, float s)
{
    for (size_t j = 0; j < n; j++) x[j] = keep[j] ? x[j] * s : 0.0f;
}

static void softmax_bwd(float *dp, const float *p, size_t n, float c, float s)
{
    for (size_t j = 0; j < n; j++) dp[j] = s * p[j] * (dp[j] - c);
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
