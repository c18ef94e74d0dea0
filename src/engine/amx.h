/* The AMX engine's entries with the kernels given (engine/amx.c): the engine itself runs them on
 * the tiles; the tests and the benchmark also run them on the portable model (kernels/amx.h)
 * and with other splits. */
#ifndef FASI_ENGINE_AMX_H
#define FASI_ENGINE_AMX_H

#include "engine/engine.h"
#include "kernels/amx.h"

/* The engine's split (docs/precision.md, "The AMX engine"): the passes (A part, B part) with
 * ia + ib < split, over the parts in use: 1 is hi.hi alone; 2 adds hi.lo and lo.hi (the products
 * of fp16 values exact up to the dropped lo.lo, <= 2^-18 relative); 3 adds lo.lo, hi.lo2 and
 * lo2.hi (every product of fp16 values exact; fp32 operands to about 2^-24). */
#define FASI_AMX_SPLIT 2

size_t fasi_amx_own_bytes(size_t k, size_t n);
size_t fasi_amx_work_bytes(size_t m, size_t n, size_t k);
void fasi_amx_prepare_with(const fasi_amx_ops *ops, fasi_operand *b);
/* The product of engine.h with the given kernels and split (1 to 3). */
void fasi_amx_gemm_with(const fasi_amx_ops *ops, int split, const fasi_kernels *kern, void *work,
                        size_t m, size_t n, size_t k, float alpha, const float *a, size_t rsa,
                        size_t csa, const fasi_operand *b, size_t t0, size_t j0, float *c,
                        size_t ldc, bool accumulate, const fasi_addend *add);
/* The B parts in use after prepare (1 to 3). */
int fasi_amx_operand_parts(const fasi_operand *b);

#endif
