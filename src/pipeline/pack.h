/* Operands of the kernel table's gemm packed straight from the caller's tensors (kernels/gemm.h):
 * a head's matrix, or its transpose, cut into panels of FASI_PANEL columns, converted to fp32 by
 * the block loaders with no intermediate copy. */
#ifndef FASI_PACK_H
#define FASI_PACK_H

#include <stdbool.h>
#include <stdint.h>

#include "problem/problem.h"

/* dst = the packed [rows x cols] matrix of head (b, n) (transpose false: panels of its columns,
 * t = its rows) or of its transpose (transpose true: panels of its rows, t = its columns), with
 * the panel stride t-count * FASI_PANEL and zero padding columns. */
void fasi_pack_head(const fasi_kernels *k, const fasi_heads *h, int64_t b, int64_t n,
                    bool transpose, float *dst);

#endif
