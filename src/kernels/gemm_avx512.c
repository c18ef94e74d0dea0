/* The AVX-512 gemm (common/isa.h): tiles of up to 12 rows by two panels (32 columns), 24 zmm
 * accumulators, one broadcast of A per row and two loads of B per step of t. Each accumulator
 * lane is the portable chain (fmaf in increasing t, from +0), so results are bit-identical to
 * gemm_portable.c. Columns past n are computed from B's zero padding and never stored. */
#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>

#include "kernels/gemm.h"

#if defined(__GNUC__)
#define FASI_INLINE static inline __attribute__((always_inline))
#else
#define FASI_INLINE static inline
#endif

enum { MR = 12 };

/* What a tile does with its sums: c = alpha * acc, c = fma(alpha, acc, c), or
 * c = fma(alpha, acc, fp16 addend). */
enum { OVERWRITE, ACCUMULATE, ADDEND };

typedef struct epilogue {
    int mode;
    const fasi_addend *add;
    size_t i0, j0; /* the tile's origin in the gemm's block, for the addend */
} epilogue;

/* The addend for row i, columns j .. j+15 of the block (lanes of m only). */
static inline __m512 addend16(const epilogue *e, size_t i, size_t j, __mmask16 m)
{
    const uint16_t *p = e->add->data + fasi_addend_index(e->add, e->i0 + i, e->j0 + j);
    /* an NZ fractal row is whole in storage; an ND row may end inside the panel */
    __m256i h = e->add->nz ? _mm256_loadu_si256((const __m256i *)(const void *)p)
                           : _mm256_maskz_loadu_epi16(m, p);
    return _mm512_cvtph_ps(h);
}

FASI_INLINE void tile(const int mr, const int np, size_t k, __m512 alpha, const float *a,
                      size_t lda, const float *b0, const float *b1, float *c, size_t ldc,
                      __mmask16 m0, __mmask16 m1, const epilogue *e)
{
    __m512 acc0[MR], acc1[MR];
#pragma GCC unroll 12
    for (int i = 0; i < mr; i++) acc0[i] = acc1[i] = _mm512_setzero_ps();
    for (size_t t = 0; t < k; t++) {
        const __m512 v0 = _mm512_loadu_ps(b0 + t * FASI_PANEL);
        const __m512 v1 = np == 2 ? _mm512_loadu_ps(b1 + t * FASI_PANEL) : _mm512_setzero_ps();
#pragma GCC unroll 12
        for (int i = 0; i < mr; i++) {
            const __m512 ai = _mm512_set1_ps(a[(size_t)i * lda + t]);
            acc0[i] = _mm512_fmadd_ps(ai, v0, acc0[i]);
            if (np == 2) acc1[i] = _mm512_fmadd_ps(ai, v1, acc1[i]);
        }
    }
#pragma GCC unroll 12
    for (int i = 0; i < mr; i++) {
        float *ci = c + (size_t)i * ldc;
        __m512 r0, r1 = _mm512_setzero_ps();
        if (e->mode == ADDEND) {
            r0 = _mm512_fmadd_ps(alpha, acc0[i], addend16(e, (size_t)i, 0, m0));
            if (np == 2) r1 = _mm512_fmadd_ps(alpha, acc1[i], addend16(e, (size_t)i, 16, m1));
        } else if (e->mode == ACCUMULATE) {
            r0 = _mm512_fmadd_ps(alpha, acc0[i], _mm512_maskz_loadu_ps(m0, ci));
            if (np == 2) r1 = _mm512_fmadd_ps(alpha, acc1[i], _mm512_maskz_loadu_ps(m1, ci + 16));
        } else {
            r0 = _mm512_mul_ps(alpha, acc0[i]);
            if (np == 2) r1 = _mm512_mul_ps(alpha, acc1[i]);
        }
        _mm512_mask_storeu_ps(ci, m0, r0);
        if (np == 2) _mm512_mask_storeu_ps(ci + 16, m1, r1);
    }
}

/* One instance per (rows, panels): the row count and panel count as constants. */
#define FASI_TILE(MRC, NPC)                                                                        \
    static void tile_##MRC##_##NPC(size_t k, __m512 alpha, const float *a, size_t lda,             \
                                   const float *b0, const float *b1, float *c, size_t ldc,         \
                                   __mmask16 m0, __mmask16 m1, const epilogue *e)                  \
    {                                                                                              \
        tile(MRC, NPC, k, alpha, a, lda, b0, b1, c, ldc, m0, m1, e);                               \
    }
#define FASI_TILES(MRC) FASI_TILE(MRC, 1) FASI_TILE(MRC, 2)
FASI_TILES(1)
FASI_TILES(2)
FASI_TILES(3)
FASI_TILES(4)
FASI_TILES(5)
FASI_TILES(6)
FASI_TILES(7)
FASI_TILES(8)
FASI_TILES(9)
FASI_TILES(10)
FASI_TILES(11)
FASI_TILES(12)

typedef void (*tile_fn)(size_t, __m512, const float *, size_t, const float *, const float *,
                        float *, size_t, __mmask16, __mmask16, const epilogue *);

static const tile_fn tiles[MR + 1][2] = {
    {NULL, NULL},           {tile_1_1, tile_1_2}, {tile_2_1, tile_2_2},   {tile_3_1, tile_3_2},
    {tile_4_1, tile_4_2},   {tile_5_1, tile_5_2}, {tile_6_1, tile_6_2},   {tile_7_1, tile_7_2},
    {tile_8_1, tile_8_2},   {tile_9_1, tile_9_2}, {tile_10_1, tile_10_2}, {tile_11_1, tile_11_2},
    {tile_12_1, tile_12_2},
};

static __mmask16 lanes(size_t w)
{
    return w >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << w) - 1);
}

static void product(size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda,
                    const float *bp, size_t panel_stride, float *c, size_t ldc, epilogue *e)
{
    const __m512 va = _mm512_set1_ps(alpha);
    for (size_t j = 0; j < n; j += 2 * FASI_PANEL) {
        const size_t w = n - j < 2 * FASI_PANEL ? n - j : 2 * FASI_PANEL;
        const float *b0 = bp + j / FASI_PANEL * panel_stride;
        const int np = w > FASI_PANEL ? 2 : 1;
        const __mmask16 m0 = lanes(w), m1 = np == 2 ? lanes(w - FASI_PANEL) : 0;
        for (size_t i = 0; i < m; i += MR) {
            const size_t h = m - i < MR ? m - i : MR;
            e->i0 = i;
            e->j0 = j;
            tiles[h][np - 1](k, va, a + i * lda, lda, b0, b0 + panel_stride, c + i * ldc + j, ldc,
                             m0, m1, e);
        }
    }
}

static void gemm(size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda,
                 const float *bp, size_t panel_stride, float *c, size_t ldc, bool accumulate)
{
    epilogue e = {accumulate ? ACCUMULATE : OVERWRITE, NULL, 0, 0};
    product(m, n, k, alpha, a, lda, bp, panel_stride, c, ldc, &e);
}

static void gemm_add(size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda,
                     const float *bp, size_t panel_stride, float *c, size_t ldc,
                     const fasi_addend *add)
{
    epilogue e = {ADDEND, add, 0, 0};
    product(m, n, k, alpha, a, lda, bp, panel_stride, c, ldc, &e);
}

void fasi_register_gemm_avx512(fasi_kernels *k)
{
    k->gemm = gemm;
    k->gemm_add = gemm_add;
}
