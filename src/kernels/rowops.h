/* The row kernels of the kernel table (common/isa.h): max, exp-shift-sum, scale, add, dot,
 * dropout apply, softmax backward. One file per SIMD level fills its entries; every level is
 * bit-identical to the portable one (see exp_poly.h for the shared formulas and sum order). */
#ifndef FASI_ROWOPS_H
#define FASI_ROWOPS_H

#include "common/isa.h"

void fasi_register_rowops_portable(fasi_kernels *k);
/* AVX2 and AVX-512: defined only where the x86-64 SIMD files are compiled (FAS_HAVE_X86_SIMD);
 * NEON: only on aarch64 (FAS_HAVE_NEON). */
void fasi_register_rowops_avx2(fasi_kernels *k);
void fasi_register_rowops_avx512(fasi_kernels *k);
void fasi_register_rowops_neon(fasi_kernels *k);

#endif
