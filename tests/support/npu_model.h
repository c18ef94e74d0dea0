/* Test-side model of the NPU precision profile (docs/precision.md), written from that
 * specification alone: plain scalar loops over one head (b, n) at a time, on dense row-major
 * arrays of fp16 bit patterns. It shares no code with src/ (it includes no library header and
 * has its own fp16 rounding), so that the tests can hold the library's NPU mode against it.
 *
 * Notation as in the specification: h(x) rounds to fp16 (round to nearest even, overflow to
 * +-inf, IEEE subnormals); a "cube" multiplies fp16 values exactly and accumulates in fp32, here
 * in the plain order t = 0 .. K-1, then rounds with h; a block is a group of 16 columns.
 *
 * Where the specification leaves a choice, the model takes its most literal reading; each choice
 * is stated where it is implemented (npu_model.c) and collected here:
 *   - Row sums (forward fp32, backward fp16) when the block count stays or becomes odd at a later
 *     halving level: at EVERY level whose length l is odd, the last block is first added into
 *     block 0, then l-1 blocks are halved.
 *   - The 16 lanes of the forward fp32 row sum are added left to right (lane 0 + lane 1 + ...
 *     + lane 15); the specification names a lane tree only for the backward's fp16 sum.
 *   - R = h(1/Z): 1/Z is the correctly rounded fp32 quotient 1.0f / Z, then h (h takes an fp32
 *     value); likewise for the S = 128 path, where Z is already fp16.
 *   - sc = h(scale) and g = h(1 / keep_prob): the double is rounded once, directly, to fp16
 *     (the API passes doubles; rounding via fp32 first could differ only within 2^-25 relative
 *     of an fp16 rounding boundary, which the tests' scales and keep probabilities are not).
 *   - NaN in the row max: max(a, b) is NaN when either is NaN. This does not change any output:
 *     a NaN logit reaches the row sum through exp(NaN - m) = NaN, so its row is NaN either way.
 *   - A row whose logits are all -inf gives m = -inf and Y = -inf - (-inf) = NaN: the row of P
 *     and of the context is NaN, as the formulas say (the library's fp32 mode writes zeros there;
 *     docs/precision.md does not carry that policy over).
 *   - exp is the C library's expf. The library under test may use another exp that differs by
 *     up to 1 ulp in fp32 before the rounding to fp16; the tests bound the effect.
 */
#ifndef NPU_MODEL_H
#define NPU_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- fp16 */

/* h of a double (an fp32 value converts to double exactly, so this is also h of an fp32):
 * round to nearest even, |x| >= 65520 -> +-inf, subnormals kept, NaN -> quiet NaN with sign. */
uint16_t npu_h_bits(double x);
/* h of an fp32, the same rounding as npu_h_bits on a faster path. */
uint16_t npu_h_bits_f32(float x);
/* The exact value of an fp16 bit pattern. */
float npu_half_value(uint16_t h);
/* h(x) as a value: npu_half_value(npu_h_bits_f32(x)). */
float npu_h(float x);

/* ---- the three row reductions; x holds t_blocks * 16 values (fp16 values for the max and the
 * fp16 sum, fp32 values for the fp32 sum) */

/* Which of the T = t_blocks blocks take part in the forward's row max (step 4): used[t] is set
 * true or false for t < t_blocks. */
void npu_rowmax_participants(int64_t t_blocks, bool *used);
/* The same as a bit mask (bit t set: block t takes part), for t_blocks <= 64. */
uint64_t npu_rowmax_mask(int64_t t_blocks);
/* The kernel's row max: blockwise halving that drops an odd last block, then block T-1 folded
 * in when T is odd, then the 16 lanes. NaN if any value that takes part is NaN. */
float npu_row_max(const float *x, int64_t t_blocks);
/* The forward's fp32 row sum (step 6, S != 128). */
float npu_row_sum_f32(const float *x, int64_t t_blocks);
/* The backward's fp16 row sum (step 3): every addition rounded with h; the result is an fp16
 * value. */
float npu_row_sum_f16(const float *x, int64_t t_blocks);

/* ---- variants, for the tests that calibrate and challenge the comparison thresholds only.
 * NULL (or a zeroed struct) is the specification. */

enum npu_cube_order {
    NPU_CUBE_SEQUENTIAL = 0, /* the model: acc += a[t] * b[t] for t = 0 .. K-1 */
    NPU_CUBE_LANES16 = 1     /* 16 interleaved partial sums (t mod 16), added l+8, +4, +2, +1:
                              * another legitimate fp32 order, standing in for a SIMD kernel */
};

/* Deliberate modelling errors. Each is one departure from docs/precision.md. */
enum npu_mutation {
    NPU_MUT_TRUE_MAX = 1u << 0,        /* step 4: the max over every block */
    NPU_MUT_NO_H_SCORE = 1u << 1,      /* step 1: the score A kept in fp32 (no h) */
    NPU_MUT_FP32_SCALE = 1u << 2,      /* step 2: sc = (float)scale, not h(scale) */
    NPU_MUT_NO_H_Y = 1u << 3,          /* step 4: Y = X - m in fp32 (no h) */
    NPU_MUT_FP32_SOFTMAX = 1u << 4,    /* steps 5-7: P = h(E32 / Z), no h on E or on R */
    NPU_MUT_NO_S128_PATH = 1u << 5,    /* step 6: S = 128 takes the general fp32 sum */
    NPU_MUT_FP32_DROPOUT = 1u << 6,    /* step 8: Pd = h(P * M / keep_prob) in fp32 */
    NPU_MUT_FP32_BWD_ROWSUM = 1u << 7, /* backward step 3: r = h(fp32 sum of T), not fp16 */
    NPU_MUT_NO_H_DS_CHAIN = 1u << 8,   /* backward step 3: dS = h((dP - r) * P * sc) in fp32 */
    NPU_MUT_NO_H_DP = 1u << 9          /* backward step 2: dP = G * dPd with dPd kept in fp32 */
};

typedef struct npu_variant {
    int cube_order;     /* enum npu_cube_order */
    bool exp_jitter;    /* move expf's result one fp32 ulp up or down on a hash-chosen half of
                         * the elements: an exp with up to 1 ulp error */
    unsigned mutations; /* enum npu_mutation bits */
} npu_variant;

/* ---- one head */

typedef enum npu_model_status {
    NPU_MODEL_OK = 0,
    NPU_MODEL_DOMAIN = 1, /* S or D not a positive multiple of 16 (of 64 for S in the
                           * backward), or keep_prob outside (0, 1] */
    NPU_MODEL_NO_MEMORY = 2
} npu_model_status;

typedef struct npu_head {
    int64_t s, d;              /* Sq = Sk = S and Dv = D (the NPU domain) */
    const uint16_t *q, *k, *v; /* fp16 bit patterns, [S][D] row-major */
    const uint16_t *mask;      /* [S][S]: the mask as broadcast to this head; NULL = zeros */
    const uint8_t *keep;       /* [S][S] drop mask, 1 kept / 0 dropped; NULL = all kept */
    double scale, keep_prob;
} npu_head;

/* Forward steps 1-9: probs [S][S] is softmax_output (P before dropout), ctx [S][D] this head's
 * context (the caller places it at rows b*S + i, columns n*D + d). Either output may be NULL. */
npu_model_status npu_forward_head(const npu_head *head, uint16_t *probs, uint16_t *ctx,
                                  const npu_variant *variant);

/* Backward steps 1-4 from dout [S][D] (this head's block of grad_output) and probs [S][S] (the
 * forward's softmax_output); writes dq, dk, dv, each [S][D]. head->mask is not read. */
npu_model_status npu_backward_head(const npu_head *head, const uint16_t *dout,
                                   const uint16_t *probs, uint16_t *dq, uint16_t *dk, uint16_t *dv,
                                   const npu_variant *variant);

#ifdef __cplusplus
}
#endif

#endif
