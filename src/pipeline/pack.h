/* Right operands of the matrix engine packed straight from the caller's tensors (engine/engine.h):
 * a head's matrix, or its transpose, converted to fp32 by the block loaders with no intermediate
 * copy, in the layout the engine reads (panels of FASI_PANEL columns, or one plain matrix), then
 * the engine's own format when it has one. */
#ifndef FASI_PACK_H
#define FASI_PACK_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/engine.h"
#include "problem/problem.h"

/* op = the [rows x cols] matrix of head (b, n) (transpose false) or its transpose (transpose
 * true: k = the head's cols, n = its rows), packed for e into f32 (fasi_operand_floats(e, k, n)
 * floats) and own (e->own_bytes(k, n) bytes, or NULL). A plain-matrix engine gets the head as
 * stored, row-major, and reads the transpose through op->trans. */
void fasi_pack_head(const fasi_engine *e, const fasi_kernels *k, const fasi_heads *h, int64_t b,
                    int64_t n, bool transpose, float *f32, void *own, fasi_operand *op);

#endif
