/* The AVX-512 gemm (common/isa.h): tiles of up to 6 rows by four panels (64 columns), 24 zmm
 * accumulators; per step of t, four loads of B and one broadcast of A per row. (Of 12 x 32,
 * 8 x 48 and 6 x 64 tiles, 6 x 64 measured fastest on the forward's shapes: fewest loads per
 * multiply-add, and with Dv = 64 one tile spans the whole P . V product.) Each accumulator lane
 * is the portable chain (fmaf in increasing t, from +0), so results are bit-identical to
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

enum { MR = 6, NP = 4 };

/* What a tile does with its sums: c = alpha * acc, c = fma(alpha, acc, c), or
 * c = fma(alpha, acc, fp16 addend). */
enum { OVERWRITE, ACCUMULATE, ADDEND };

typedef struct epilogue {
    int mode;
    const fasi_addend *add;
    size_t i0, j0;      /* the tile's origin in the gemm's block, for the addend */
    __mmask16 mask[NP]; /* the columns of each panel inside the block */
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
                      size_t rsa, size_t csa, const float *b, size_t panel_stride, float *c,
                      size_t ldc, const epilogue *e)
{
    __m512 acc[MR][NP];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int p = 0; p < np; p++) acc[i][p] = _mm512_setzero_ps();
    for (size_t t = 0; t < k; t++) {
        __m512 v[NP];
#pragma GCC unroll 4
        for (int p = 0; p < np; p++) v[p] = _mm512_loadu_ps(b + p * panel_stride + t * FASI_PANEL);
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            const __m512 ai = _mm512_set1_ps(a[(size_t)i * rsa + t * csa]);
#pragma GCC unroll 4
            for (int p = 0; p < np; p++) acc[i][p] = _mm512_fmadd_ps(ai, v[p], acc[i][p]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        float *ci = c + (size_t)i * ldc;
#pragma GCC unroll 4
        for (int p = 0; p < np; p++) {
            const __mmask16 m = e->mask[p];
            __m512 r;
            if (e->mode == ADDEND)
                r = _mm512_fmadd_ps(alpha, acc[i][p],
                                    addend16(e, (size_t)i, (size_t)p * FASI_PANEL, m));
            else if (e->mode == ACCUMULATE)
                r = _mm512_fmadd_ps(alpha, acc[i][p], _mm512_maskz_loadu_ps(m, ci + p * 16));
            else
                r = _mm512_mul_ps(alpha, acc[i][p]);
            _mm512_mask_storeu_ps(ci + p * 16, m, r);
        }
    }
}

/* One instance per (rows, panels): the row count and panel count as constants. */
#define FASI_TILE(MRC, NPC)                                                                        \
    static void tile_##MRC##_##NPC(size_t k, __m512 alpha, const float *a, size_t rsa, size_t csa, \
                                   const float *b, size_t panel_stride, float *c, size_t ldc,      \
                                   const epilogue *e)                                              \
    {                                                                                              \
        tile(MRC, NPC, k, alpha, a, rsa, csa, b, panel_stride, c, ldc, e);                         \
    }
#define FASI_TILES(MRC) FASI_TILE(MRC, 1) FASI_TILE(MRC, 2) FASI_TILE(MRC, 3) FASI_TILE(MRC, 4)
FASI_TILES(1)
FASI_TILES(2)
FASI_TILES(3)
FASI_TILES(4)
FASI_TILES(5)
FASI_TILES(6)

typedef void (*tile_fn)(size_t, __m512, const float *, size_t, size_t, const float *, size_t,
                        float *, size_t, const epilogue *);

#define FASI_ROW(MRC)                                                                              \
    {                                                                                              \
        tile_##MRC##_1, tile_##MRC##_2, tile_##MRC##_3, tile_##MRC##_4                             \
    }
static const tile_fn tiles[MR + 1][NP] = {
    {NULL, NULL, NULL, NULL},
    FASI_ROW(1),
    FASI_ROW(2),
    FASI_ROW(3),
    FASI_ROW(4),
    FASI_ROW(5),
    FASI_ROW(6),
};

static __mmask16 lanes(size_t w)
{
    return w >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << w) - 1);
}

static void product(size_t m, size_t n, size_t k, float alpha, const float *a, size_t rsa,
                    size_t csa, const float *bp, size_t panel_stride, float *c, size_t ldc,
                    epilogue *e)
{
    const __m512 va = _mm512_set1_ps(alpha);
    for (size_t j = 0; j < n; j += NP * FASI_PANEL) {
        const size_t w = n - j < NP * FASI_PANEL ? n - j : NP * FASI_PANEL;
        const int np = (int)((w + FASI_PANEL - 1) / FASI_PANEL);
        for (int p = 0; p < NP; p++)
            e->mask[p] = (size_t)p * FASI_PANEL < w ? lanes(w - (size_t)p * FASI_PANEL) : 0;
        const float *b = bp + j / FASI_PANEL * panel_stride;
        for (size_t i = 0; i < m; i += MR) {
            const size_t h = m - i < MR ? m - i : MR;
            e->i0 = i;
            e->j0 = j;
            tiles[h][np - 1](k, va, a + i * rsa, rsa, csa, b, panel_stride, c + i * ldc + j, ldc,
                             e);
        }
    }
}

static void gemm(size_t m, size_t n, size_t k, float alpha, const float *a, size_t rsa, size_t csa,
                 const float *bp, size_t panel_stride, float *c, size_t ldc, bool accumulate)
{
    epilogue e = {accumulate ? ACCUMULATE : OVERWRITE, NULL, 0, 0, {0}};
    product(m, n, k, alpha, a, rsa, csa, bp, panel_stride, c, ldc, &e);
}

static void gemm_add(size_t m, size_t n, size_t k, float alpha, const float *a, size_t rsa,
                     size_t csa, const float *bp, size_t panel_stride, float *c, size_t ldc,
                     const fasi_addend *add)
{
    epilogue e = {ADDEND, add, 0, 0, {0}};
    product(m, n, k, alpha, a, rsa, csa, bp, panel_stride, c, ldc, &e);
}

void fasi_register_gemm_avx512(fasi_kernels *k)
{
    k->gemm = gemm;
    k->gemm_add = gemm_add;
}
