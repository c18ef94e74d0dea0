/* Packing of engine operands from the caller's tensors (pipeline/pack.h). */
#include "pipeline/pack.h"

#include <string.h>

#include "kernels/gemm.h"

void fasi_pack_head(const fasi_engine *e, const fasi_kernels *k, const fasi_heads *h, int64_t b,
                    int64_t n, bool transpose, float *f32, void *own, fasi_operand *op)
{
    /* the packed matrix M: transpose ? [cols x rows] : [rows x cols]; t runs over M's rows */
    const int64_t t_count = transpose ? h->cols : h->rows, width = transpose ? h->rows : h->cols;
    op->f32 = f32;
    op->own = own;
    op->k = (size_t)t_count;
    op->n = (size_t)width;
    if (e->panel == 0) {
        /* one plain matrix, the head as stored (no transposition here: the engine reads M
         * through op->trans) */
        fasi_heads_load_f32(k, h, b, n, 0, h->rows, 0, h->cols, f32, h->cols);
        op->ld = (size_t)h->cols;
        op->trans = transpose;
    } else {
        op->ld = 0;
        op->trans = false;
        for (int64_t j0 = 0; j0 < width; j0 += FASI_PANEL) {
            const int64_t w = width - j0 < FASI_PANEL ? width - j0 : FASI_PANEL;
            float *panel = f32 + j0 / FASI_PANEL * t_count * FASI_PANEL;
            if (transpose) /* M[t][j] = head[j][t]: the head's rows j0.. as columns */
                fasi_heads_load_f32_t(k, h, b, n, j0, w, 0, t_count, panel, FASI_PANEL);
            else
                fasi_heads_load_f32(k, h, b, n, 0, t_count, j0, w, panel, FASI_PANEL);
            if (w < FASI_PANEL)
                for (int64_t t = 0; t < t_count; t++)
                    memset(panel + t * FASI_PANEL + w, 0, (size_t)(FASI_PANEL - w) * sizeof *panel);
        }
    }
    fasi_operand_prepare(e, k, op);
}
