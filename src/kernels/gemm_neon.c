/* The NEON gemm (common/isa.h): tiles of up to 5 rows by one panel (16 columns, four 4-lane
 * vectors per row), 20 accumulators. Per step of t: four loads of B (two LDP), one load of A per
 * row, 20 FMLA. With the four B vectors and the five A values, 29 of the 32 vector registers are
 * live and the loop has no stack access. A 6-row tile needs 24 + 4 + 6 = 34 (GCC 12 loads the
 * six A values of a step ahead), and its loop kept two accumulators on the stack (a reload and a
 * store per step, checked in the disassembly); two panels by 3 rows would load twice as much B
 * per multiply-add. Two FMLA pipes of latency 4 (Neoverse N1, per Arm's optimization guide) need
 * at least 8 independent accumulators; 20 leave the loop bound by FMLA throughput, not by
 * loads. (Not timed: no aarch64 hardware was at hand, and QEMU's timing means nothing.)
 *
 * Each accumulator lane is the portable chain (gemm_portable.c): acc = +0, then for t in
 * increasing order acc = fma(A(i, t), B[t][j], acc) with vfmaq_f32 (FMLA: one rounding, the
 * same FPMulAdd as the scalar FMADD that fmaf compiles to on aarch64, so the same result under
 * any FPCR), then c = alpha * acc (vmulq_f32), fma(alpha, acc, c) or fma(alpha, acc, addend).
 * The file is compiled with -ffp-contract=off like the whole library, so only the vfmaq_f32
 * calls fuse. Columns past n are computed from B's zero padding and never stored; a partial
 * panel goes through a stack row, so nothing outside the m x n rectangle of c is read or
 * written.
 *
 * The fp16 addend of gemm_add is widened with FCVTL when FPCR leaves it exact (fp16_neon.c,
 * docs/design.md section 6), else with the portable scalar fasi_f16_to_f32; FPCR is read once
 * per call. */
#include <arm_neon.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernels/gemm.h"
#include "layout/layout.h"

#if defined(__GNUC__)
#define FASI_INLINE static inline __attribute__((always_inline))
#else
#define FASI_INLINE static inline
#endif

enum { MR = 5, NV = FASI_PANEL / 4 };

/* What a tile does with its sums: c = alpha * acc, c = fma(alpha, acc, c), or
 * c = fma(alpha, acc, fp16 addend). */
enum { OVERWRITE, ACCUMULATE, ADDEND };

typedef struct epilogue {
    int mode;
    const fasi_addend *add;
    bool fcvt;     /* FCVTL widens the addend exactly under the caller's FPCR */
    size_t i0, j0; /* the tile's origin in the gemm's block, for the addend */
    size_t w;      /* columns of the tile's panel inside the block (1..16) */
} epilogue;

/* The addend of row i, columns 0..15 of the tile's panel (lanes past w are +0). */
static inline void addend16(const epilogue *e, size_t i, float32x4_t out[NV])
{
    const uint16_t *p = e->add->data + fasi_addend_index(e->add, e->i0 + i, e->j0);
    uint16_t buf[FASI_PANEL];
    if (!e->add->nz && e->w < FASI_PANEL) {
        /* an ND row may end inside the panel: copy what exists (an NZ fractal row is whole) */
        memset(buf, 0, sizeof buf);
        memcpy(buf, p, e->w * sizeof *buf);
        p = buf;
    }
    if (e->fcvt) {
        const uint16x8_t h0 = vld1q_u16(p), h1 = vld1q_u16(p + 8);
        out[0] = vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h0)));
        out[1] = vcvt_high_f32_f16(vreinterpretq_f16_u16(h0));
        out[2] = vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h1)));
        out[3] = vcvt_high_f32_f16(vreinterpretq_f16_u16(h1));
    } else {
        float f[FASI_PANEL];
        for (int l = 0; l < FASI_PANEL; l++) f[l] = fasi_f16_to_f32(p[l]);
#pragma GCC unroll 4
        for (int q = 0; q < NV; q++) out[q] = vld1q_f32(f + 4 * q);
    }
}

FASI_INLINE void tile(const int mr, const int full, size_t k, float32x4_t alpha, const float *a,
                      size_t rsa, size_t csa, const float *b, float *c, size_t ldc,
                      const epilogue *e)
{
    float32x4_t acc[MR][NV];
#pragma GCC unroll 5
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int q = 0; q < NV; q++) acc[i][q] = vdupq_n_f32(0.0f);
    for (size_t t = 0; t < k; t++) {
        float32x4_t v[NV];
#pragma GCC unroll 4
        for (int q = 0; q < NV; q++) v[q] = vld1q_f32(b + t * FASI_PANEL + 4 * q);
#pragma GCC unroll 5
        for (int i = 0; i < mr; i++) {
            /* fma(A(i, t), B[t][j], acc). GCC emits FMLA by element (B the first factor) for
             * most rows; the product and its rounding are the same, only the payload of a NaN
             * result when both factors are NaN may be B's where portable keeps A's */
            const float32x4_t ai = vdupq_n_f32(a[(size_t)i * rsa + t * csa]);
#pragma GCC unroll 4
            for (int q = 0; q < NV; q++) acc[i][q] = vfmaq_f32(acc[i][q], ai, v[q]);
        }
    }
#pragma GCC unroll 5
    for (int i = 0; i < mr; i++) {
        float row[FASI_PANEL];
        float *ci = c + (size_t)i * ldc;
        float *dst = full ? ci : row;
        if (!full && e->mode == ACCUMULATE) {
            memset(row, 0, sizeof row);
            memcpy(row, ci, e->w * sizeof *row);
        }
        /* vfmaq_f32(x, alpha, acc) = fma(alpha, acc, x) */
        if (e->mode == ADDEND) {
            float32x4_t add[NV];
            addend16(e, (size_t)i, add);
#pragma GCC unroll 4
            for (int q = 0; q < NV; q++)
                vst1q_f32(dst + 4 * q, vfmaq_f32(add[q], alpha, acc[i][q]));
        } else if (e->mode == ACCUMULATE) {
#pragma GCC unroll 4
            for (int q = 0; q < NV; q++)
                vst1q_f32(dst + 4 * q, vfmaq_f32(vld1q_f32(dst + 4 * q), alpha, acc[i][q]));
        } else {
#pragma GCC unroll 4
            for (int q = 0; q < NV; q++) vst1q_f32(dst + 4 * q, vmulq_f32(alpha, acc[i][q]));
        }
        if (!full) memcpy(ci, row, e->w * sizeof *row);
    }
}

/* One instance per (rows, whole panel or not): both as constants. */
#define FASI_TILE(MRC, FULL)                                                                       \
    static void tile_##MRC##_##FULL(size_t k, float32x4_t alpha, const float *a, size_t rsa,       \
                                    size_t csa, const float *b, float *c, size_t ldc,              \
                                    const epilogue *e)                                             \
    {                                                                                              \
        tile(MRC, FULL, k, alpha, a, rsa, csa, b, c, ldc, e);                                      \
    }
#define FASI_TILES(MRC) FASI_TILE(MRC, 0) FASI_TILE(MRC, 1)
FASI_TILES(1)
FASI_TILES(2)
FASI_TILES(3)
FASI_TILES(4)
FASI_TILES(5)

typedef void (*tile_fn)(size_t, float32x4_t, const float *, size_t, size_t, const float *, float *,
                        size_t, const epilogue *);

static const tile_fn tiles[MR + 1][2] = {
    {NULL, NULL},         {tile_1_0, tile_1_1}, {tile_2_0, tile_2_1},
    {tile_3_0, tile_3_1}, {tile_4_0, tile_4_1}, {tile_5_0, tile_5_1},
};

static void product(size_t m, size_t n, size_t k, float alpha, const float *a, size_t rsa,
                    size_t csa, const float *bp, size_t panel_stride, float *c, size_t ldc,
                    epilogue *e)
{
    const float32x4_t va = vdupq_n_f32(alpha);
    for (size_t j = 0; j < n; j += FASI_PANEL) {
        const size_t w = n - j < FASI_PANEL ? n - j : FASI_PANEL;
        const float *b = bp + j / FASI_PANEL * panel_stride;
        const int full = w == FASI_PANEL;
        for (size_t i = 0; i < m; i += MR) {
            const size_t h = m - i < MR ? m - i : MR;
            e->i0 = i;
            e->j0 = j;
            e->w = w;
            tiles[h][full](k, va, a + i * rsa, rsa, csa, b, c + i * ldc + j, ldc, e);
        }
    }
}

static void gemm(size_t m, size_t n, size_t k, float alpha, const float *a, size_t rsa, size_t csa,
                 const float *bp, size_t panel_stride, float *c, size_t ldc, bool accumulate)
{
    epilogue e = {accumulate ? ACCUMULATE : OVERWRITE, NULL, false, 0, 0, 0};
    product(m, n, k, alpha, a, rsa, csa, bp, panel_stride, c, ldc, &e);
}

static void gemm_add(size_t m, size_t n, size_t k, float alpha, const float *a, size_t rsa,
                     size_t csa, const float *bp, size_t panel_stride, float *c, size_t ldc,
                     const fasi_addend *add)
{
    epilogue e = {ADDEND, add, fasi_neon_fp16_hardware_exact(), 0, 0, 0};
    product(m, n, k, alpha, a, rsa, csa, bp, panel_stride, c, ldc, &e);
}

void fasi_register_gemm_neon(fasi_kernels *k)
{
    k->gemm = gemm;
    k->gemm_add = gemm_add;
}
