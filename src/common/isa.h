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

/* An fp16 matrix read by gemm_add: element (i, j) of the product's block is the half at
 *   ND: data[(row0 + (broadcast ? 0 : i)) * row_stride + col0 + j]
 *   NZ: data[((col0 + j) / 16 * m1 + r / 16) * 256 + (r % 16) * 16 + (col0 + j) % 16],
 *       r = row0 + (broadcast ? 0 : i), col0 a multiple of 16 (FRACTAL_NZ, m1 fractal rows)
 * Only elements of the block are read, except that NZ reads may cover whole 16-element fractal
 * rows (the storage's padding columns included), which are never used. */
typedef struct fasi_addend {
    const uint16_t *data;
    bool nz;
    bool broadcast; /* every row of the block reads matrix row row0 (a key-padding mask) */
    size_t row_stride, m1, row0, col0;
} fasi_addend;

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
    /* The forward's last row pass over e = x: p = e * inv; p16[j] = fp16(p) rounded to nearest
     * even (when p16 is not NULL: a row of softmax_output); x[j] = keep ? p * (keep[j] ? s : 0)
     * : p (Pd, for the second matmul). Exactly scale, then an fp16 store, then dropout_apply. */
    void (*probs_dropout)(float *x, const uint8_t *keep, size_t n, float inv, float s,
                          uint16_t *p16);
    /* dp[j] = s * p[j] * (dp[j] - c): the softmax backward row pass, s = scale */
    void (*softmax_bwd)(float *dp, const float *p, size_t n, float c, float s);

    /* The pipeline's matrix products: for i < m, j < n, with A(i, t) = a[i*rsa + t*csa] (rsa =
     * lda, csa = 1 for a row-major A; rsa = 1, csa = lda for the transpose of a row-major matrix)
     *   acc = +0; for t = 0 .. k-1: acc = fma(A(i, t), B[t][j], acc)   (one rounding each)
     *   c[i*ldc + j] = accumulate ? fma(alpha, acc, c[i*ldc + j]) : alpha * acc
     * with B packed in panels of FASI_PANEL columns (kernels/gemm.h): B[t][j] is
     * bp[(j / FASI_PANEL) * panel_stride + t * FASI_PANEL + j % FASI_PANEL]. Every level runs
     * exactly these operations in this order, so the result is bit-identical everywhere (and
     * on every machine). Nothing outside the m x n rectangle of c is written. */
    void (*gemm)(size_t m, size_t n, size_t k, float alpha, const float *a, size_t rsa, size_t csa,
                 const float *bp, size_t panel_stride, float *c, size_t ldc, bool accumulate);
    /* The same product with an fp16 matrix added instead of c's old values (the attention
     * mask, read where it is stored): c[i*ldc + j] = fma(alpha, acc, add(i, j)). */
    void (*gemm_add)(size_t m, size_t n, size_t k, float alpha, const float *a, size_t rsa,
                     size_t csa, const float *bp, size_t panel_stride, float *c, size_t ldc,
                     const struct fasi_addend *add);

    /* NPU precision mode (docs/precision.md). h(x) rounds an fp32 value to fp16 (to nearest
     * even, overflow to +-inf, IEEE subnormals) and back; every entry applies h after each
     * operation exactly as written, and every level is bit-identical to the portable one. */
    void (*round_f16)(float *x, size_t n); /* x = h(x) */
    /* x = h(h(h(x) * sc) + m), m = mask[j] or +0 when mask is NULL: the scores of the cube
     * rounded, scaled, masked */
    void (*npu_logits)(float *x, const float *mask, size_t n, float sc);
    /* e32[j] = exp(h(x[j] - m)) (fasi_exp), x[j] = h(e32[j]) */
    void (*npu_exp)(float *x, float *e32, size_t n, float m);
    void (*npu_scale)(float *x, size_t n, float s); /* x = h(x * s) */
    /* x[j] = h(x[j] * (keep[j] ? g : 0)): Pd = h(G * P) with G = M * g, g an fp16 value */
    void (*npu_dropout)(float *x, const uint8_t *keep, size_t n, float g);
    /* t[j] = h(dp[j] * p[j]); returns the fp16 row sum of t: 16-column blocks added pairwise
     * (an odd count first adds its last block into block 0), then the 16 lanes pairwise
     * (l + 8, + 4, + 2, + 1), each addition rounded with h. n is a multiple of 16. */
    float (*npu_rowsum)(const float *dp, const float *p, float *t, size_t n);
    /* dp[j] = h(h(dp[j] - r) * h(p[j] * sc)): the fused SoftmaxGrad of the NPU backward */
    void (*npu_softmax_bwd)(float *dp, const float *p, size_t n, float r, float sc);

    /* Dropout keep bytes for columns j0 .. j0+n-1 of flattened softmax row `row`; see
     * rng/philox.h for the exact mapping (identical results at every level). */
    void (*dropout_bits)(uint64_t seed, uint64_t offset, uint64_t row, uint64_t j0, size_t n,
                         uint64_t threshold, uint8_t *keep);
} fasi_kernels;

#endif
