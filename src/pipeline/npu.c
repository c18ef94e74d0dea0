/* The NPU precision mode's row passes (pipeline/npu.h, docs/precision.md). */
#include "pipeline/npu.h"

#include <math.h>
#include <string.h>

#include "common/memory.h"
#include "common/status.h"
#include "layout/layout.h"

void fasi_npu_max_blocks(int64_t T, uint8_t *take)
{
    /* Follow each block through the halvings: at length len its position p moves to p - half
     * when it is in the upper half, and it is dropped when it is the odd last one. */
    for (int64_t t = 0; t < T; t++) {
        int64_t p = t, len = T;
        take[t] = 1;
        while (len > 1) {
            const int64_t half = len / 2;
            if (len % 2 != 0 && p == len - 1) {
                take[t] = 0;
                break;
            }
            if (p >= half) p -= half;
            len = half;
        }
    }
    if (T % 2 != 0) take[T - 1] = 1; /* the extra max of an odd T */
}

static float h(float x) { return fasi_f16_to_f32(fasi_f32_to_f16(x)); }

fas_status fasi_npu_plan_init(fasi_npu_plan *pl, int64_t s, double scale, double keep_prob)
{
    memset(pl, 0, sizeof *pl);
    const int64_t T = s / 16;
    uint8_t *take = fasi_alloc((size_t)T);
    pl->runs = fasi_alloc(sizeof *pl->runs * 2 * (size_t)(T / 2 + 1));
    if (!take || !pl->runs) {
        fasi_free(take);
        fasi_free(pl->runs);
        pl->runs = NULL;
        return fasi_fail(FAS_ERR_NO_MEMORY,
                         "the NPU row-max plan for S = %lld could not be allocated", (long long)s);
    }
    fasi_npu_max_blocks(T, take);
    for (int64_t t = 0; t < T; t++) {
        if (!take[t]) continue;
        if (pl->nruns > 0 && pl->runs[2 * pl->nruns - 2] + pl->runs[2 * pl->nruns - 1] == 16 * t) {
            pl->runs[2 * pl->nruns - 1] += 16; /* extends the previous run */
        } else {
            pl->runs[2 * pl->nruns] = 16 * t;
            pl->runs[2 * pl->nruns + 1] = 16;
            pl->nruns++;
        }
    }
    fasi_free(take);
    pl->s = s;
    pl->sc = fasi_f16_to_f32(fasi_f64_to_f16(scale));
    pl->g = fasi_f16_to_f32(fasi_f64_to_f16(1.0 / keep_prob));
    return FAS_OK;
}

void fasi_npu_plan_free(fasi_npu_plan *pl)
{
    fasi_free(pl->runs);
    pl->runs = NULL;
}

/* The row maximum over the blocks the NPU's reduction visits; NaN if any of them holds one. A
 * maximum is exact, so the order of the visits does not matter. */
static float row_max(const fasi_npu_plan *pl, const fasi_kernels *k, const float *row)
{
    float m = -INFINITY;
    for (int64_t r = 0; r < pl->nruns; r++) {
        float v = k->row_max(row + pl->runs[2 * r], (size_t)pl->runs[2 * r + 1]);
        if (isnan(v)) return v;
        if (v > m) m = v;
    }
    return m;
}

/* Z = the fp32 sum of e32 in the kernel's order: the 16-column blocks added pairwise
 * (L[t] += L[t + l/2]; an odd count first adds its last block into block 0), then the 16
 * lanes pairwise (+8, +4, +2, +1). Destroys e32. Every addition is lane-wise, so however the
 * compiler vectorises these loops the result is the same. */
static float block_sum(float *e32, int64_t blocks)
{
    while (blocks > 1) {
        if (blocks % 2 != 0) {
            blocks--;
            for (int l = 0; l < 16; l++) e32[l] += e32[blocks * 16 + l];
        }
        const int64_t half = blocks / 2 * 16;
        for (int64_t j = 0; j < half; j++) e32[j] += e32[j + half];
        blocks /= 2;
    }
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) e32[l] += e32[l + w];
    return e32[0];
}

void fasi_npu_softmax_row(const fasi_npu_plan *pl, const fasi_kernels *k, float *row,
                          const float *mask, float *e32)
{
    const size_t n = (size_t)pl->s;
    k->npu_logits(row, mask, n, pl->sc);
    k->npu_exp(row, e32, n, row_max(pl, k, row));
    float z;
    if (n == 128) {
        /* the kernel's path for S = 128 sums the fp16 exps on the cube: fp32 accumulation,
         * one rounding */
        z = 0.0f;
        for (size_t j = 0; j < n; j++) z += row[j];
        z = h(z);
    } else {
        z = block_sum(e32, pl->s / 16);
    }
    /* the NPU's reciprocal is a hardware estimate; the model takes the exact one, rounded */
    k->npu_scale(row, n, fasi_f16_to_f32(fasi_f64_to_f16(1.0 / (double)z)));
}

void fasi_npu_softmax_bwd_row(const fasi_npu_plan *pl, const fasi_kernels *k, float *dp, float *p,
                              const uint8_t *keep, float *t)
{
    const size_t n = (size_t)pl->s;
    k->round_f16(dp, n); /* dPd = h(dO . V^T), the cube's result */
    if (keep) k->npu_dropout(dp, keep, n, pl->g);
    float r = k->npu_rowsum(dp, p, t, n);
    k->npu_softmax_bwd(dp, p, n, r, pl->sc);
    if (keep) k->npu_dropout(p, keep, n, pl->g);
}
