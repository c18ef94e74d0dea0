/* The AVX2 gemm (common/isa.h): tiles of up to 6 rows by one panel (16 columns, two ymm
 * halves), 12 accumulators. Each accumulator lane is the portable chain (fmaf in increasing t,
 * from +0), so results are bit-identical to gemm_portable.c. Columns past n are computed from
 * B's zero padding and never stored. */
#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernels/gemm.h"

#if defined(__GNUC__)
#define FASI_INLINE static inline __attribute__((always_inline))
#else
#define FASI_INLINE static inline
#endif

enum { MR = 6 };

/* Lanes i < w of a half panel (0 <= w <= 8) as a maskload/maskstore mask. */
static inline __m256i half_mask(size_t w)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)w), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* What a tile does with its sums: c = alpha * acc, c = fma(alpha, acc, c), or
 * c = fma(alpha, acc, fp16 addend). */
enum { OVERWRITE, ACCUMULATE, ADDEND };

typedef struct epilogue {
    int mode;
    const fasi_addend *add;
    size_t i0, j0; /* the tile's origin in the gemm's block, for the addend */
    size_t w;      /* columns of the tile's panel inside the block (1..16) */
} epilogue;

/* The addend of row i, columns 0..15 of the tile's panel, as two 8-lane halves. */
static inline void addend16(const epilogue *e, size_t i, __m256 *lo, __m256 *hi)
{
    const uint16_t *p = e->add->data + fasi_addend_index(e->add, e->i0 + i, e->j0);
    uint16_t buf[16];
    if (!e->add->nz && e->w < 16) {
        /* an ND row may end inside the panel: copy what exists */
        memset(buf, 0, sizeof buf);
        memcpy(buf, p, e->w * sizeof *buf);
        p = buf;
    }
    *lo = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
    *hi = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p + 8)));
}

FASI_INLINE void tile(const int mr, const int full, size_t k, __m256 alpha, const float *a,
                      size_t rsa, size_t csa, const float *b, float *c, size_t ldc, __m256i m0,
                      __m256i m1, const epilogue *e)
{
    __m256 acc0[MR], acc1[MR];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) acc0[i] = acc1[i] = _mm256_setzero_ps();
    for (size_t t = 0; t < k; t++) {
        const __m256 v0 = _mm256_loadu_ps(b + t * FASI_PANEL);
        const __m256 v1 = _mm256_loadu_ps(b + t * FASI_PANEL + 8);
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            const __m256 ai = _mm256_broadcast_ss(a + (size_t)i * rsa + t * csa);
            acc0[i] = _mm256_fmadd_ps(ai, v0, acc0[i]);
            acc1[i] = _mm256_fmadd_ps(ai, v1, acc1[i]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        float *ci = c + (size_t)i * ldc;
        __m256 r0, r1;
        if (e->mode == ADDEND) {
            __m256 lo, hi;
            addend16(e, (size_t)i, &lo, &hi);
            r0 = _mm256_fmadd_ps(alpha, acc0[i], lo);
            r1 = _mm256_fmadd_ps(alpha, acc1[i], hi);
        } else if (e->mode == ACCUMULATE) {
            r0 = _mm256_fmadd_ps(alpha, acc0[i],
                                 full ? _mm256_loadu_ps(ci) : _mm256_maskload_ps(ci, m0));
            r1 = _mm256_fmadd_ps(alpha, acc1[i],
                                 full ? _mm256_loadu_ps(ci + 8) : _mm256_maskload_ps(ci + 8, m1));
        } else {
            r0 = _mm256_mul_ps(alpha, acc0[i]);
            r1 = _mm256_mul_ps(alpha, acc1[i]);
        }
        if (full) {
            _mm256_storeu_ps(ci, r0);
            _mm256_storeu_ps(ci + 8, r1);
        } else {
            _mm256_maskstore_ps(ci, m0, r0);
            _mm256_maskstore_ps(ci + 8, m1, r1);
        }
    }
}

#define FASI_TILE(MRC, FULL)                                                                       \
    static void tile_##MRC##_##FULL(size_t k, __m256 alpha, const float *a, size_t rsa,            \
                                    size_t csa, const float *b, float *c, size_t ldc, __m256i m0,  \
                                    __m256i m1, const epilogue *e)                                 \
    {                                                                                              \
        tile(MRC, FULL, k, alpha, a, rsa, csa, b, c, ldc, m0, m1, e);                              \
    }
#define FASI_TILES(MRC) FASI_TILE(MRC, 0) FASI_TILE(MRC, 1)
FASI_TILES(1)
FASI_TILES(2)
FASI_TILES(3)
FASI_TILES(4)
FASI_TILES(5)
FASI_TILES(6)

typedef void (*tile_fn)(size_t, __m256, const float *, size_t, size_t, const float *, float *,
                        size_t, __m256i, __m256i, const epilogue *);

static const tile_fn tiles[MR + 1][2] = {
    {NULL, NULL},         {tile_1_0, tile_1_1}, {tile_2_0, tile_2_1}, {tile_3_0, tile_3_1},
    {tile_4_0, tile_4_1}, {tile_5_0, tile_5_1}, {tile_6_0, tile_6_1},
};

static void product(size_t m, size_t n, size_t k, float alpha, const float *a, size_t rsa,
                    size_t csa, const float *bp, size_t panel_stride, float *c, size_t ldc,
                    epilogue *e)
{
    const __m256 va = _mm256_set1_ps(alpha);
    for (size_t j = 0; j < n; j += FASI_PANEL) {
        const size_t w = n - j < FASI_PANEL ? n - j : FASI_PANEL;
        const float *b = bp + j / FASI_PANEL * panel_stride;
        const int full = w == FASI_PANEL;
        const __m256i m0 = half_mask(w < 8 ? w : 8), m1 = half_mask(w > 8 ? w - 8 : 0);
        for (size_t i = 0; i < m; i += MR) {
            const size_t h = m - i < MR ? m - i : MR;
            e->i0 = i;
            e->j0 = j;
            e->w = w;
            tiles[h][full](k, va, a + i * rsa, rsa, csa, b, c + i * ldc + j, ldc, m0, m1, e);
        }
    }
}

static void gemm(size_t m, size_t n, size_t k, float alpha, const float *a, size_t rsa, size_t csa,
                 const float *bp, size_t panel_stride, float *c, size_t ldc, bool accumulate)
{
    epilogue e = {accumulate ? ACCUMULATE : OVERWRITE, NULL, 0, 0, 0};
    product(m, n, k, alpha, a, rsa, csa, bp, panel_stride, c, ldc, &e);
}

static void gemm_add(size_t m, size_t n, size_t k, float alpha, const float *a, size_t rsa,
                     size_t csa, const float *bp, size_t panel_stride, float *c, size_t ldc,
                     const fasi_addend *add)
{
    epilogue e = {ADDEND, add, 0, 0, 0};
    product(m, n, k, alpha, a, rsa, csa, bp, panel_stride, c, ldc, &e);
}

void fasi_register_gemm_avx2(fasi_kernels *k)
{
    k->gemm = gemm;
    k->gemm_add = gemm_add;
}
