/* NEON (aarch64 Advanced SIMD) row kernels of the softmax / dropout passes.
 *
 * Same formulas and operation order as rowops_portable.c, so every kernel except row_max is
 * bit-identical to the portable one; row_max is equal in value. Multiplies and adds are kept
 * separate (vmulq_f32, vaddq_f32; never vmlaq) except where the formula itself fuses them (the
 * multiply-adds of exp, vfmaq_f32 / vfmsq_f32, as fmaf in portable C), and the file is compiled
 * with -ffp-contract=off like the whole library (GCC would otherwise contract a vmulq_f32
 * feeding a vaddq_f32 into one FMLA on aarch64). Selects are bitwise (vbslq), exactly as
 * fasi_select, so a NaN lane passes through the clamps of exp unchanged. Sums follow the canonical
 * 32-way order of kernels/exp_poly.h: eight 4-lane accumulators hold partial sums 0-3, 4-7, ...,
 * 28-31, and every addition keeps the portable operand order (partial first), which decides the
 * payload of a NaN sum. Tails go through a stack block (lanes past the row are +0 in a sum) or
 * scalar code computing the same expression; nothing outside the row is read or written. */
#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "kernels/exp_poly.h"
#include "kernels/rowops.h"

#define ACCS (FASI_SUM_LANES / 4) /* 4-lane accumulators of the canonical partial sums */

/* Lanes i < m set, for 0 <= m <= 4. */
static inline uint32x4_t tail_mask(size_t m)
{
    static const uint32_t iota[4] = {0, 1, 2, 3};
    return vcltq_u32(vld1q_u32(iota), vdupq_n_u32((uint32_t)m));
}

/* fasi_exp on 4 lanes, step for step. */
static inline float32x4_t exp4(float32x4_t x)
{
    /* Ordered compares: a NaN lane is neither `zero` nor above the clamp, so it passes both
     * selects unchanged, as in fasi_exp. */
    uint32x4_t zero = vcltq_f32(x, vdupq_n_f32(FASI_EXP_LOW));
    float32x4_t xc = vbslq_f32(zero, vdupq_n_f32(FASI_EXP_LOW), x);
    xc = vbslq_f32(vcgtq_f32(xc, vdupq_n_f32(FASI_EXP_HIGH)), vdupq_n_f32(FASI_EXP_HIGH), xc);
    /* vfmaq_f32(a, b, c) = a + b * c and vfmsq_f32(a, b, c) = a - b * c, each one rounding */
    float32x4_t t = vfmaq_f32(vdupq_n_f32(FASI_EXP_ROUND), xc, vdupq_n_f32(FASI_EXP_LOG2E));
    float32x4_t kf = vsubq_f32(t, vdupq_n_f32(FASI_EXP_ROUND));
    float32x4_t r = vfmsq_f32(xc, kf, vdupq_n_f32(FASI_EXP_LN2_HI));
    r = vfmsq_f32(r, kf, vdupq_n_f32(FASI_EXP_LN2_LO));
    float32x4_t q = vdupq_n_f32(FASI_EXP_C4);
    q = vfmaq_f32(vdupq_n_f32(FASI_EXP_C3), q, r);
    q = vfmaq_f32(vdupq_n_f32(FASI_EXP_C2), q, r);
    q = vfmaq_f32(vdupq_n_f32(FASI_EXP_C1), q, r);
    q = vfmaq_f32(vdupq_n_f32(FASI_EXP_C0), q, r);
    float32x4_t y = vaddq_f32(vdupq_n_f32(1.0f), vfmaq_f32(r, vmulq_f32(r, r), q));
    uint32x4_t sbits = vshlq_n_u32(vaddq_u32(vreinterpretq_u32_f32(t), vdupq_n_u32(127)), 23);
    float32x4_t e = vmulq_f32(y, vreinterpretq_f32_u32(sbits));
    return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(e), zero));
}

/* Canonical reduction of the partial sums, a[k] holding partials 4k .. 4k+3: for w = 16, 8, 4
 * whole registers, then w = 2 and 1 inside the last one. */
static inline float reduce_lanes(float32x4_t a[ACCS])
{
    for (int k = 0; k < 4; k++) a[k] = vaddq_f32(a[k], a[k + 4]);
    for (int k = 0; k < 2; k++) a[k] = vaddq_f32(a[k], a[k + 2]);
    a[0] = vaddq_f32(a[0], a[1]);
    float32x2_t v = vadd_f32(vget_low_f32(a[0]), vget_high_f32(a[0]));
    return vget_lane_f32(v, 0) + vget_lane_f32(v, 1);
}

static float first_nan(const float *x, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        if (isnan(x[j])) return x[j];
    }
    return NAN;
}

static float row_max(const float *x, size_t n)
{
    const float32x4_t ninf = vdupq_n_f32(-INFINITY);
    float32x4_t m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
    uint32x4_t ordered = vdupq_n_u32(~0u); /* lanes stay all-ones while no NaN was seen */
    size_t j = 0;
    for (; j + 16 <= n; j += 16) {
        float32x4_t v0 = vld1q_f32(x + j), v1 = vld1q_f32(x + j + 4);
        float32x4_t v2 = vld1q_f32(x + j + 8), v3 = vld1q_f32(x + j + 12);
        m0 = vmaxq_f32(m0, v0);
        m1 = vmaxq_f32(m1, v1);
        m2 = vmaxq_f32(m2, v2);
        m3 = vmaxq_f32(m3, v3);
        ordered = vandq_u32(ordered, vandq_u32(vceqq_f32(v0, v0), vceqq_f32(v1, v1)));
        ordered = vandq_u32(ordered, vandq_u32(vceqq_f32(v2, v2), vceqq_f32(v3, v3)));
    }
    for (; j < n; j += 4) {
        float32x4_t v;
        if (n - j >= 4) {
            v = vld1q_f32(x + j);
        } else {
            float b[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
            memcpy(b, x + j, (n - j) * sizeof *x);
            v = vld1q_f32(b);
        }
        m0 = vmaxq_f32(m0, v);
        ordered = vandq_u32(ordered, vceqq_f32(v, v));
    }
    if (vminvq_u32(ordered) == 0) return first_nan(x, n);
    return vmaxvq_f32(vmaxq_f32(vmaxq_f32(m0, m1), vmaxq_f32(m2, m3)));
}

/* exp(x[j..] - shift) for the 4 (or n - j, if fewer) elements at j, stored back; lanes past the
 * row are +0 in the returned vector. */
static inline float32x4_t exp_full(float *x, float32x4_t shift)
{
    float32x4_t e = exp4(vsubq_f32(vld1q_f32(x), shift));
    vst1q_f32(x, e);
    return e;
}

static inline float32x4_t exp_chunk(float *x, size_t j, size_t n, float32x4_t shift)
{
    if (n - j >= 4) return exp_full(x + j, shift);
    size_t m = n - j;
    float b[4] = {0};
    memcpy(b, x + j, m * sizeof *x);
    float32x4_t e = exp4(vsubq_f32(vld1q_f32(b), shift));
    e = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(e), tail_mask(m)));
    vst1q_f32(b, e);
    memcpy(x + j, b, m * sizeof *x);
    return e;
}

static float exp_shift_sum(float *x, size_t n, float shift)
{
    const float32x4_t sh = vdupq_n_f32(shift);
    float32x4_t a[ACCS];
    for (int k = 0; k < ACCS; k++) a[k] = vdupq_n_f32(0.0f);
    size_t j = 0;
    for (; j + FASI_SUM_LANES <= n; j += FASI_SUM_LANES)
        for (int k = 0; k < ACCS; k++) a[k] = vaddq_f32(a[k], exp_full(x + j + 4 * k, sh));
    for (int k = 0; k < ACCS && j + 4 * k < n; k++)
        a[k] = vaddq_f32(a[k], exp_chunk(x, j + 4 * k, n, sh));
    return reduce_lanes(a);
}

static void scale(float *x, size_t n, float s)
{
    const float32x4_t vs = vdupq_n_f32(s);
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        vst1q_f32(x + j, vmulq_f32(vld1q_f32(x + j), vs));
        vst1q_f32(x + j + 4, vmulq_f32(vld1q_f32(x + j + 4), vs));
    }
    for (; j + 4 <= n; j += 4) vst1q_f32(x + j, vmulq_f32(vld1q_f32(x + j), vs));
    for (; j < n; j++) x[j] *= s;
}

static void add(float *x, const float *y, size_t n)
{
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        vst1q_f32(x + j, vaddq_f32(vld1q_f32(x + j), vld1q_f32(y + j)));
        vst1q_f32(x + j + 4, vaddq_f32(vld1q_f32(x + j + 4), vld1q_f32(y + j + 4)));
    }
    for (; j + 4 <= n; j += 4) vst1q_f32(x + j, vaddq_f32(vld1q_f32(x + j), vld1q_f32(y + j)));
    for (; j < n; j++) x[j] += y[j];
}

/* a[j..] * b[j..] for the 4 (or fewer) elements at j; lanes past the row are +0. */
static inline float32x4_t mul_full(const float *a, const float *b)
{
    return vmulq_f32(vld1q_f32(a), vld1q_f32(b));
}

static inline float32x4_t mul_chunk(const float *a, const float *b, size_t j, size_t n)
{
    if (n - j >= 4) return mul_full(a + j, b + j);
    float ab[4] = {0}, bb[4] = {0};
    memcpy(ab, a + j, (n - j) * sizeof *a);
    memcpy(bb, b + j, (n - j) * sizeof *b);
    return mul_full(ab, bb);
}

static float dot(const float *a, const float *b, size_t n)
{
    float32x4_t acc[ACCS];
    for (int k = 0; k < ACCS; k++) acc[k] = vdupq_n_f32(0.0f);
    size_t j = 0;
    for (; j + FASI_SUM_LANES <= n; j += FASI_SUM_LANES)
        for (int k = 0; k < ACCS; k++)
            acc[k] = vaddq_f32(acc[k], mul_full(a + j + 4 * k, b + j + 4 * k));
    for (int k = 0; k < ACCS && j + 4 * k < n; k++)
        acc[k] = vaddq_f32(acc[k], mul_chunk(a, b, j + 4 * k, n));
    return reduce_lanes(acc);
}

/* s in the lanes whose keep byte is nonzero, +0 in the others. */
static inline float32x4_t keep_factor(uint32x4_t keep, float32x4_t vs)
{
    uint32x4_t drop = vceqq_u32(keep, vdupq_n_u32(0));
    return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(vs), drop));
}

static void dropout_apply(float *x, const uint8_t *keep, size_t n, float s)
{
    const float32x4_t vs = vdupq_n_f32(s);
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        uint16x8_t k16 = vmovl_u8(vld1_u8(keep + j));
        float32x4_t f0 = keep_factor(vmovl_u16(vget_low_u16(k16)), vs);
        float32x4_t f1 = keep_factor(vmovl_high_u16(k16), vs);
        vst1q_f32(x + j, vmulq_f32(vld1q_f32(x + j), f0));
        vst1q_f32(x + j + 4, vmulq_f32(vld1q_f32(x + j + 4), f1));
    }
    for (; j < n; j++) x[j] = x[j] * (keep[j] ? s : 0.0f);
}

static void softmax_bwd(float *dp, const float *p, size_t n, float c, float s)
{
    const float32x4_t vc = vdupq_n_f32(c), vs = vdupq_n_f32(s);
    size_t j = 0;
    for (; j + 4 <= n; j += 4) {
        float32x4_t sp = vmulq_f32(vs, vld1q_f32(p + j));
        vst1q_f32(dp + j, vmulq_f32(sp, vsubq_f32(vld1q_f32(dp + j), vc)));
    }
    for (; j < n; j++) dp[j] = (s * p[j]) * (dp[j] - c);
}

void fasi_register_rowops_neon(fasi_kernels *k)
{
    k->row_max = row_max;
    k->exp_shift_sum = exp_shift_sum;
    k->scale = scale;
    k->add = add;
    k->dot = dot;
    k->dropout_apply = dropout_apply;
    k->softmax_bwd = softmax_bwd;
}
