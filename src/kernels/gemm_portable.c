/* The portable gemm (common/isa.h) and the panel packing shared by every level.
 *
 * This defines the result of every level: one chain of fmaf per output element in increasing t,
 * then alpha applied (fused with the accumulation into c). fmaf is the C library's correctly
 * rounded fused multiply-add (a single instruction where the target has one), so the SIMD
 * levels, which use their FMA instructions in the same order, give the same bits. */
#include <math.h>
#include <string.h>

#include "kernels/gemm.h"
#include "layout/layout.h"

void fasi_pack_panels(const float *src, size_t ld, size_t rows, size_t cols, int trans, float *dst)
{
    const size_t panels = (cols + FASI_PANEL - 1) / FASI_PANEL;
    for (size_t p = 0; p < panels; p++) {
        const size_t j0 = p * FASI_PANEL;
        const size_t w = cols - j0 < FASI_PANEL ? cols - j0 : FASI_PANEL;
        float *out = dst + p * rows * FASI_PANEL;
        for (size_t t = 0; t < rows; t++, out += FASI_PANEL) {
            if (trans)
                for (size_t l = 0; l < w; l++) out[l] = src[(j0 + l) * ld + t];
            else
                memcpy(out, src + t * ld + j0, w * sizeof *out);
            for (size_t l = w; l < FASI_PANEL; l++) out[l] = 0.0f;
        }
    }
}

/* The chains of every element; add (when not NULL) replaces c's old values. */
static void product(size_t m, size_t n, size_t k, float alpha, const float *a, size_t rsa,
                    size_t csa, const float *bp, size_t panel_stride, float *c, size_t ldc,
                    bool accumulate, const fasi_addend *add)
{
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++) {
            const float *b = bp + j / FASI_PANEL * panel_stride + j % FASI_PANEL;
            float acc = 0.0f;
            for (size_t t = 0; t < k; t++) acc = fmaf(a[i * rsa + t * csa], b[t * FASI_PANEL], acc);
            float *out = c + i * ldc + j;
            if (add)
                *out = fmaf(alpha, acc, fasi_f16_to_f32(add->data[fasi_addend_index(add, i, j)]));
            else
                *out = accumulate ? fmaf(alpha, acc, *out) : alpha * acc;
        }
    }
}

static void gemm(size_t m, size_t n, size_t k, float alpha, const float *a, size_t rsa, size_t csa,
                 const float *bp, size_t panel_stride, float *c, size_t ldc, bool accumulate)
{
    product(m, n, k, alpha, a, rsa, csa, bp, panel_stride, c, ldc, accumulate, NULL);
}

static void gemm_add(size_t m, size_t n, size_t k, float alpha, const float *a, size_t rsa,
                     size_t csa, const float *bp, size_t panel_stride, float *c, size_t ldc,
                     const fasi_addend *add)
{
    product(m, n, k, alpha, a, rsa, csa, bp, panel_stride, c, ldc, false, add);
}

void fasi_register_gemm_portable(fasi_kernels *k)
{
    k->gemm = gemm;
    k->gemm_add = gemm_add;
}
