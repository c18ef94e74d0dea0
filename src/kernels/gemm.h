/* The forward's matrix products on packed panels (the gemm entry of common/isa.h).
 *
 * B operands are packed once per head into panels of FASI_PANEL consecutive columns: panel p
 * holds columns p*FASI_PANEL .. p*FASI_PANEL + FASI_PANEL - 1 of every row t, row after row,
 * so that a micro-kernel reads one contiguous vector of B per row of the product. Columns past
 * the matrix are zero. A (the left operand) is read in place, row-major. Each output element is
 * one sequential chain of fused multiply-adds over t, identical at every SIMD level. */
#ifndef FASI_GEMM_H
#define FASI_GEMM_H

#include <stddef.h>

#include "common/isa.h"

#define FASI_PANEL 16

/* Floats a packed matrix of `rows` rows (the k dimension) and `cols` columns needs, with the
 * panel stride rows * FASI_PANEL. */
static inline size_t fasi_packed_floats(size_t rows, size_t cols)
{
    return (cols + FASI_PANEL - 1) / FASI_PANEL * FASI_PANEL * rows;
}

/* Pack the rows x cols matrix M into panels (panel stride rows * FASI_PANEL, padding columns
 * zero), where M[t][j] = src[t*ld + j], or src[j*ld + t] when trans (M is the transpose of the
 * stored matrix: how K, stored [Sk x D], becomes the [D x Sk] right operand of Q . K^T). */
void fasi_pack_panels(const float *src, size_t ld, size_t rows, size_t cols, int trans, float *dst);

/* Index in add->data of element (i, j) of the block (common/isa.h). For NZ and j a multiple of
 * 16 (col0 always is), the 16 elements (i, j .. j+15) are the contiguous fractal row there; for
 * ND the row's elements are contiguous. */
static inline size_t fasi_addend_index(const fasi_addend *add, size_t i, size_t j)
{
    const size_t r = add->row0 + (add->broadcast ? 0 : i), c = add->col0 + j;
    if (!add->nz) return r * add->row_stride + c;
    return (c / 16 * add->m1 + r / 16) * 256 + (r % 16) * 16 + c % 16;
}

void fasi_register_gemm_portable(fasi_kernels *k);
/* Defined only where the x86-64 SIMD files are compiled (FAS_HAVE_X86_SIMD). */
void fasi_register_gemm_avx2(fasi_kernels *k);
void fasi_register_gemm_avx512(fasi_kernels *k);
/* Defined only where the NEON files are compiled (FAS_HAVE_NEON, aarch64). */
void fasi_register_gemm_neon(fasi_kernels *k);

#endif
