/* What every engine shares: operand packing from fp32 blocks and the addend load (engine.h). */
#include "engine/engine.h"

#include "kernels/gemm.h"
#include "layout/layout.h"

size_t fasi_operand_floats(const fasi_engine *e, size_t k, size_t n)
{
    return e->panel ? fasi_packed_floats(k, n) : k * n; /* panel engines use FASI_PANEL */
}

void fasi_operand_from_f32(const fasi_engine *e, const fasi_kernels *kern, const float *src,
                           size_t ld, size_t k, size_t n, float *dst, void *own, fasi_operand *b)
{
    b->k = k;
    b->n = n;
    b->trans = false;
    b->own = own;
    if (e->panel == 0) {
        b->f32 = src;
        b->ld = ld;
    } else {
        fasi_pack_panels(src, ld, k, n, 0, dst);
        b->f32 = dst;
        b->ld = 0;
    }
    fasi_operand_prepare(e, kern, b);
}

void fasi_addend_load(const fasi_kernels *kern, const fasi_addend *add, size_t m, size_t n,
                      float *c, size_t ldc)
{
    if (!add->nz) {
        for (size_t i = 0; i < m; i++)
            kern->f16_to_f32(add->data + fasi_addend_index(add, i, 0), 0, c + i * ldc, 0, 1, n);
        return;
    }
    /* NZ: within one fractal, a row's 16 columns are contiguous (col0 is a multiple of 16) */
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j += 16)
            kern->f16_to_f32(add->data + fasi_addend_index(add, i, j), 0, c + i * ldc + j, 0, 1,
                             n - j < 16 ? n - j : 16);
}
