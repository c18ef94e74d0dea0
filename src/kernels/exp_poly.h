/* The single-precision exp shared by every ISA level, and the canonical summation order of the
 * reducing row kernels.
 *
 * The library only ever exponentiates a score minus its row maximum, so arguments are <= 0 (or
 * NaN). The formula is exact to 1 ulp on [FASI_EXP_LOW, FASI_EXP_HIGH] = [-87, 88], where every
 * result is a normal float, and is defined for every float:
 *   1. zero = x < -87: exp(x) < 1.7e-38 there, and the result is +0 (-inf included). Such a
 *      term is below 2^-126 times the row maximum's term 1, so it cannot change a softmax sum
 *      or any fp16 output. Otherwise xc = min(x, 88) (NaN passes through); x > 88 never occurs
 *      in the library and gives exp(88). Zero lanes compute with xc = -87, so that masked
 *      scores (-10000, -inf) never make an operation underflow: x86 cores take a slow microcode
 *      path for underflowing results (rows with 1 in 17 scores masked ran 3x slower, AVX2,
 *      measured, before masked lanes were kept in range).
 *   2. t = fma(xc, log2(e), 1.5*2^23): the low mantissa bits of t hold k = the nearest integer
 *      to xc / ln2 (of the exact product: one rounding), k in [-126, 127]; kf = t - 1.5*2^23
 *      exactly.
 *   3. r = fma(-kf, LN2_LO, fma(-kf, LN2_HI, xc)) (Cody-Waite): LN2_HI has 9 significant bits,
 *      so kf * LN2_HI and the first difference are exact (Sterbenz); |r| <= ~0.35.
 *   4. y = 1 + fma(r * r, q(r), r), q a degree-4 polynomial evaluated by fma (Horner), so
 *      y ~ exp(r) in [0.70, 1.42].
 *   5. result = y * 2^k, where 2^k = bits((bits(t) + 127) << 23): bits(t) is 0x4b400000 + k,
 *      and the shift drops everything but k + 127 into the exponent field. 2^k is a normal
 *      float, and so is the product (k = -126 only for xc < -86.98, where r > 0.33 and y > 1),
 *      so the scaling is exact and the result is y rounded once. A NaN lane stays NaN (y is).
 *
 * Every step is one IEEE operation as written: the multiply-adds are fused multiply-adds (fmaf in
 * portable C, the FMA instructions of AVX2, AVX-512 and NEON), every other product and sum is
 * rounded on its own (the library is compiled with -ffp-contract=off), so every level returns
 * bit-identical results for every input. Fusing saves seven of 24 operations: the streaming
 * forward on 24x16x512x64 ran 0.91-0.95x the time of the unfused version (AVX-512).
 *
 * Coefficients of q: our own Remez fit (60-digit decimal arithmetic) of
 * (exp(r) - 1 - r) / r^2 minimising the relative error of 1 + r + r^2 q(r) on
 * [-0.3468, 0.3468]; fit error 3.1e-9 relative, rounded to float. Measured over every float in
 * [-87, 88]: at most 1 ulp from the correctly rounded exp (tests/test_rowops.c checks <= 2).
 *
 * Canonical summation (exp_shift_sum and dot, identical at every level): element j of the row
 * is added, in increasing j, to partial sum j % FASI_SUM_LANES, each partial starting at +0;
 * then for w = 16, 8, 4, 2, 1 in turn, partial[i] += partial[i + w] for i < w; the result is
 * partial[0]. SIMD lanes that hold no element add +0, which leaves a partial unchanged (a
 * partial that starts at +0 is never -0). */
#ifndef FASI_EXP_POLY_H
#define FASI_EXP_POLY_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common/bits.h"

#define FASI_SUM_LANES 32

#define FASI_EXP_LOW (-87.0f)
#define FASI_EXP_HIGH 88.0f
#define FASI_EXP_LOG2E 0x1.715476p+0f
#define FASI_EXP_ROUND 0x1.8p+23f          /* 1.5 * 2^23: adding it rounds to an integer */
#define FASI_EXP_LN2_HI 0x1.63p-1f         /* 0.693359375 */
#define FASI_EXP_LN2_LO (-0x1.bd0106p-13f) /* ln 2 - LN2_HI, rounded to float */
#define FASI_EXP_C0 0x1.fffffcp-2f
#define FASI_EXP_C1 0x1.555492p-3f
#define FASI_EXP_C2 0x1.5558f2p-5f
#define FASI_EXP_C3 0x1.123a2p-7f
#define FASI_EXP_C4 0x1.6a23dp-10f

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
    int zero = x < FASI_EXP_LOW;
    float xc = fasi_select(zero, FASI_EXP_LOW, x);
    xc = fasi_select(xc > FASI_EXP_HIGH, FASI_EXP_HIGH, xc);
    float t = fmaf(xc, FASI_EXP_LOG2E, FASI_EXP_ROUND);
    float kf = t - FASI_EXP_ROUND;
    float r = fmaf(-kf, FASI_EXP_LN2_HI, xc);
    r = fmaf(-kf, FASI_EXP_LN2_LO, r);
    float q = FASI_EXP_C4;
    q = fmaf(q, r, FASI_EXP_C3);
    q = fmaf(q, r, FASI_EXP_C2);
    q = fmaf(q, r, FASI_EXP_C1);
    q = fmaf(q, r, FASI_EXP_C0);
    float y = 1.0f + fmaf(r * r, q, r);
    /* unsigned arithmetic: for a NaN lane the bits are meaningless (y is NaN there) */
    float s = fasi_bits_to_float((fasi_float_to_bits(t) + 127u) << 23);
    return fasi_select(zero, 0.0f, y * s);
}

#endif
