/* The single-precision exp shared by every ISA level, and the canonical summation order of the
 * reducing row kernels.
 *
 * exp(x), for every float x:
 *   1. zero = x < FASI_EXP_ZERO, the float just above -150 ln 2: below it exp(x) < 2^-150, half
 *      the smallest subnormal, so the result is +0 (-inf included). Those lanes compute with
 *      xc = 0 and are set to +0 at the end, so that masked scores (-10000, -inf) never make an
 *      operation underflow: x86 cores take a slow microcode path for underflowing results, and
 *      rows with 1 in 17 scores masked ran 3x slower (AVX2, measured) before this step.
 *      Otherwise xc = min(x, FASI_EXP_MAX) (NaN passes through): exp(89) overflows, so every
 *      x > 89, +inf included, gives +inf through the ordinary path below.
 *   2. t = xc * log2(e) + 1.5*2^23 (two roundings): the low mantissa bits of t hold
 *      k = nearest integer to xc / ln2, k in [-150, 128]; kf = t - 1.5*2^23 exactly.
 *   3. r = (xc - kf * LN2_HI) - kf * LN2_LO (Cody-Waite): LN2_HI has 9 significant bits, so
 *      kf * LN2_HI is exact and so is the first subtraction (Sterbenz); |r| <= ~0.35.
 *   4. y = 1 + (r + r^2 * q(r)), q a degree-4 polynomial (Horner), so y ~ exp(r) in [0.70, 1.42].
 *   5. result = (y * 2^k1) * 2^k2 with k1 = floor(k/2), k2 = k - k1: both factors are normal
 *      floats, the first product is exact, so the result is rounded once, including when it is
 *      subnormal, zero or infinite.
 *
 * Every step is a separately rounded IEEE operation: no FMA anywhere (the library is compiled
 * with -ffp-contract=off, and the SIMD versions use separate mul and add), so the portable,
 * AVX2 and AVX-512 versions return bit-identical results for every input.
 *
 * Coefficients of q: our own Remez fit (60-digit decimal arithmetic) of
 * (exp(r) - 1 - r) / r^2 minimising the relative error of 1 + r + r^2 q(r) on
 * [-0.3468, 0.3468]; fit error 3.1e-9 relative, rounded to float. Measured over every float in
 * [-104, 89]: at most 1 ulp from the correctly rounded exp (tests/test_rowops.c checks <= 2).
 *
 * Canonical summation (exp_shift_sum and dot, identical at every level): element j of the row
 * is added, in increasing j, to partial sum j % FASI_SUM_LANES, each partial starting at +0;
 * then for w = 16, 8, 4, 2, 1 in turn, partial[i] += partial[i + w] for i < w; the result is
 * partial[0]. SIMD lanes that hold no element add +0, which leaves a partial unchanged (a
 * partial that starts at +0 is never -0). */
#ifndef FASI_EXP_POLY_H
#define FASI_EXP_POLY_H

#include <stdint.h>
#include <string.h>

#define FASI_SUM_LANES 32

#define FASI_EXP_ZERO (-0x1.9fe368p+6f) /* -103.972076: float(-150 ln 2), which is above it */
#define FASI_EXP_MAX 89.0f
#define FASI_EXP_LOG2E 0x1.715476p+0f
#define FASI_EXP_ROUND 0x1.8p+23f          /* 1.5 * 2^23: adding it rounds to an integer */
#define FASI_EXP_ROUND_BITS 0x4b400000u    /* its bit pattern */
#define FASI_EXP_LN2_HI 0x1.63p-1f         /* 0.693359375 */
#define FASI_EXP_LN2_LO (-0x1.bd0106p-13f) /* ln 2 - LN2_HI, rounded to float */
#define FASI_EXP_C0 0x1.fffffcp-2f
#define FASI_EXP_C1 0x1.555492p-3f
#define FASI_EXP_C2 0x1.5558f2p-5f
#define FASI_EXP_C3 0x1.123a2p-7f
#define FASI_EXP_C4 0x1.6a23dp-10f

static inline float fasi_bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t fasi_float_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* cond ? a : b as a bitwise select. A ?: on floats whose result feeds arithmetic is a branch
 * GCC will not if-convert under -ftrapping-math, which stops the loop from vectorising. */
static inline float fasi_select(int cond, float a, float b)
{
    uint32_t m = 0u - (uint32_t)(cond != 0);
    return fasi_bits_to_float((m & fasi_float_to_bits(a)) | (~m & fasi_float_to_bits(b)));
}

/* exp(x) by the formula above. Branch-free so that loops calling it auto-vectorise. */
static inline float fasi_exp(float x)
{
    int zero = x < FASI_EXP_ZERO;
    float xc = fasi_select(zero, 0.0f, x);
    xc = fasi_select(xc > FASI_EXP_MAX, FASI_EXP_MAX, xc);
    float t = xc * FASI_EXP_LOG2E + FASI_EXP_ROUND;
    float kf = t - FASI_EXP_ROUND;
    float r = xc - kf * FASI_EXP_LN2_HI;
    r = r - kf * FASI_EXP_LN2_LO;
    float q = FASI_EXP_C4;
    q = q * r + FASI_EXP_C3;
    q = q * r + FASI_EXP_C2;
    q = q * r + FASI_EXP_C1;
    q = q * r + FASI_EXP_C0;
    float y = 1.0f + (r + (r * r) * q);
    /* Unsigned arithmetic: for a NaN lane the bits are meaningless but must not overflow a
     * signed type; y is NaN there and so is the result. u = k + 256 is in [106, 384]. */
    uint32_t u = fasi_float_to_bits(t) - FASI_EXP_ROUND_BITS + 256u;
    uint32_t h = u >> 1;                               /* k1 + 128 */
    float s1 = fasi_bits_to_float((h - 1u) << 23);     /* 2^k1: biased exponent k1 + 127 */
    float s2 = fasi_bits_to_float((u - h - 1u) << 23); /* 2^k2: biased exponent k2 + 127 */
    return fasi_select(zero, 0.0f, (y * s1) * s2);
}

#endif
