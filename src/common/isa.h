/* SIMD levels and the type of the per-level kernel table (the ground floor: every floor above
 * receives a table and calls through it; only api/dispatch.c fills tables and picks a level).
 *
 * Every ISA-specific function lives in a file named *_avx2.c, *_avx512.c (x86-64, compiled with
 * per-file flags, see CMakeLists.txt) or *_neon.c (aarch64, where NEON is baseline and needs no
 * flag); nothing else in the library is compiled with SIMD flags, and each file is compiled only
 * for its architecture. Each such file exports one registration function (declared by its own
 * floor's header: layout/layout.h, rng/philox.h, kernels/rowops.h) that fills the entries it
 * implements. A level's table starts as a copy of its base level's table (api/dispatch.c: AVX2
 * and NEON on portable, AVX-512 on AVX2), so a missing specialisation falls back to a correct
 * one. */
#ifndef FASI_ISA_H
#define FASI_ISA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The values index the kernel tables. They are not a capability order: levels of different
 * architectures are not comparable, and which levels a CPU has is a set (api/dispatch.c). The
 * only ordering rule is that a level's base comes before it, so tables are built in this order.
 * A new level (SVE on aarch64, say) is appended. */
typedef enum fasi_isa {
    FASI_ISA_PORTABLE = 0, /* plain C, every target */
    FASI_ISA_AVX2 = 1,     /* x86-64: AVX2 + FMA + F16C; base PORTABLE */
    FASI_ISA_AVX512 = 2,   /* x86-64: AVX-512 F, BW, VL, DQ (+ F16C, FMA); base AVX2 */
    FASI_ISA_NEON = 3, /* aarch64: Advanced SIMD (baseline of the architecture); base PORTABLE */
    FASI_ISA_COUNT = 4
} fasi_isa;

typedef struct fasi_kernels {
    fasi_isa isa;
    const char *name; /* "portable", "avx2", "avx512", "neon" */

    /* Strided 2-D conversions, round to nearest even: `rows` rows of `cols` elements, row r of
     * the source at src + r*lds and of the destination at dst + r*ldd (pitches in elements;
     * an array of n elements is rows = 1, cols = n). Strided, so that a fractal slab converts
     * straight between NZ storage (pitch 16) and a block row-major panel in one call. Only the
     * rows x cols rectangles are accessed: nothing else of dst is written, even temporarily, and
     * nothing else of src is read. Pointers need only their element type's natural alignment.
     * Every level is bit-identical to the portable one for every input (NaN payloads included:
     * a NaN stays a quiet NaN with its sign). */
    void (*f16_to_f32)(const uint16_t *src, size_t lds, float *dst, size_t ldd, size_t rows,
                       size_t cols);
    void (*f32_to_f16)(const float *src, size_t lds, uint16_t *dst, size_t ldd, size_t rows,
                       size_t cols);
    void (*bf16_to_f32)(const uint16_t *src, size_t lds, float *dst, size_t ldd, size_t rows,
                        size_t cols);
    void (*f32_to_bf16)(const float *src, size_t lds, uint16_t *dst, size_t ldd, size_t rows,
                        size_t cols);

    /* Row kernels on fp32 rows of n elements (n may be 0). Every level computes the same
     * formulas in the same order (sums: 32 partial sums, element j into partial j % 32, then a
     * fixed tree; see exp_poly.h), so results are bit-identical across levels. */
    float (*row_max)(const float *x, size_t n); /* -inf if n == 0 or all -inf; NaN if any NaN */
    /* x[j] = exp(x[j] - shift) in place; returns the sum of the new x (fp32 accumulation).
     * Callers pass shift >= every x[j] (the row maximum). exp is fasi_exp of exp_poly.h: within
     * 1 ulp for arguments in [-87, 88], +0 below -87 (-inf included), NaN stays NaN. */
    float (*exp_shift_sum)(float *x, size_t n, float shift);
    void (*scale)(float *x, size_t n, float s);             /* x *= s */
    void (*add)(float *x, const float *y, size_t n);        /* x += y */
    float (*dot)(const float *a, const float *b, size_t n); /* sum a*b, fp32 accumulation */
    /* x[j] = x[j] * (keep[j] ? s : 0): a product, as in P (.) M / keep_prob, so a dropped NaN
     * stays NaN (0 * NaN), exactly as torch and the NPU compute it */
    void (*dropout_apply)(float *x, const uint8_t *keep, size_t n, float s);
    /* dp[j] = s * p[j] * (dp[j] - c): the softmax backward row pass, s = scale */
    void (*softmax_bwd)(float *dp, const float *p, size_t n, float c, float s);

    /* Dropout keep bytes for columns j0 .. j0+n-1 of flattened softmax row `row`; see
     * rng/philox.h for the exact mapping (identical results at every level). */
    void (*dropout_bits)(uint64_t seed, uint64_t offset, uint64_t row, uint64_t j0, size_t n,
                         uint64_t threshold, uint8_t *keep);
} fasi_kernels;

#endif
