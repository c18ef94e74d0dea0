/* The row passes of the NPU precision mode (docs/precision.md): where the Ascend kernels of
 * AttentionScore / AttentionScoreGrad round to fp16, modelled on top of the blocked pipeline.
 * The matmuls are the pipeline's sgemm calls (fp16 products are exact in fp32, accumulation in
 * fp32, one rounding when the result is stored or rounded in a row pass, as in the NPU's cube);
 * the vector steps are the npu_* kernel-table entries, one fp16 rounding after each operation. */
#ifndef FASI_NPU_H
#define FASI_NPU_H

#include <stdbool.h>
#include <stdint.h>

#include "common/isa.h"
#include "fused_attention.h"

/* take[t] = 1 for each 16-column block t < T whose values reach the row maximum in the NPU's
 * reduction, 0 for the blocks it leaves out: the T blocks are halved lane-wise,
 * L'[t] = max(L[t], L[t + floor(l/2)]) for t < floor(l/2), the last block of an odd-length list
 * dropped, until one block is left; then, only when T is odd, block T-1 is folded in. */
void fasi_npu_max_blocks(int64_t T, uint8_t *take);

/* What every row of one call shares. */
typedef struct fasi_npu_plan {
    int64_t s;     /* row length S = Sk, a multiple of 16 */
    int64_t nruns; /* runs of consecutive blocks that reach the row maximum */
    int64_t *runs; /* nruns pairs (first element, element count) */
    float sc;      /* h(scale): the scale reaches the kernel as an fp16 scalar */
    float g;       /* h(1 / keep_prob), 1 / keep_prob computed in double */
} fasi_npu_plan;

/* FAS_OK or FAS_ERR_NO_MEMORY (with the error text set). */
fas_status fasi_npu_plan_init(fasi_npu_plan *pl, int64_t s, double scale, double keep_prob);
void fasi_npu_plan_free(fasi_npu_plan *pl);

/* Forward steps 3-7 on one row of raw scores (the fp32 sum of q.k products): row becomes P,
 * the fp16 softmax. mask is the row of the additive mask (NULL: zeros); e32 is S floats of
 * scratch. */
void fasi_npu_softmax_row(const fasi_npu_plan *pl, const fasi_kernels *k, float *row,
                          const float *mask, float *e32);

/* Backward steps 1-3 on one row: dp holds the fp32 sum of dO.V products and becomes dS; p
 * holds P and becomes Pd (when keep is non-NULL; P stays when there is no drop mask, G = 1).
 * t is S floats of scratch. */
void fasi_npu_softmax_bwd_row(const fasi_npu_plan *pl, const fasi_kernels *k, float *dp, float *p,
                              const uint8_t *keep, float *t);

#endif
