/* The AMX engine's entries with the kernels given (engine/amx.c): the engine itself runs them on
 * the tiles; the tests and the benchmark also run them on the portable model (kernels/amx.h)
 * and with other splits. */
#ifndef FASI_ENGINE_AMX_H
#define FASI_ENGINE_AMX_H

#include "engine/engine.h"
#include "kernels/amx.h"

/* The splits (docs/precision.md §8): the passes (A part, B part) with ia + ib < split, over the
 * parts in use: 1 is hi.hi alone; 2 adds hi.lo and lo.hi (products of fp16 values exact up to the
 * dropped lo.lo, <= 2^-16 relative, typically far less; fp32 operands to about 3 * 2^-16); 3 adds
 * lo.lo, hi.lo2 and lo2.hi (every product of fp16 values exact; fp32 operands to about 2^-24). The
 * engine's split FASI_AMX_SPLIT_AUTO (0) is 3 when both operands hold fp16-exact values (no lo2 in
 * use: four passes, every product exact, as the NPU's cube forms them) and 2 otherwise (three
 * passes). */
#define FASI_AMX_SPLIT_AUTO 0
#define FASI_AMX_SPLIT FASI_AMX_SPLIT_AUTO

size_t fasi_amx_own_bytes(size_t k, size_t n);
size_t fasi_amx_work_bytes(size_t m, size_t n, size_t k);
void fasi_amx_prepare_with(const fasi_amx_ops *ops, fasi_operand *b);
/* The product of engine.h with the given kernels and split (1 to 3, or FASI_AMX_SPLIT_AUTO). */
void fasi_amx_gemm_with(const fasi_amx_ops *ops, int split, const fasi_kernels *kern, void *work,
                        size_t m, size_t n, size_t k, float alpha, const float *a, size_t rsa,
                        size_t csa, const fasi_operand *b, size_t t0, size_t j0, float *c,
                        size_t ldc, bool accumulate, const fasi_addend *add);
/* The B parts in use after prepare (1 to 3). */
int fasi_amx_operand_parts(const fasi_operand *b);

#endif
