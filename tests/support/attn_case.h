/* Random attention problems for the operator tests: tensors in any layout, plus a test-side
 * fp64 oracle computed from the logical (ND) values, independent of the library's internal
 * addressing code. */
#ifndef ATTN_CASE_H
#define ATTN_CASE_H

#include <stdbool.h>

#include "fas_test.h"

enum { MASK_NONE, MASK_B1SS, MASK_BNSS, MASK_11SS, MASK_1NSS, MASK_B11S, MASK_111S, MASK_FORMS };

typedef struct attn_case {
    int64_t b, n, sq, sk, d, dv;
    bool qt, kt, ta, tb; /* query_transpose, key_transpose, bmm_score_transpose_a/b */
    int mask_form;
    double scale, keep_prob;
    fas_tensor q, k, v, mask; /* mask.data NULL when MASK_NONE */
} attn_case;

/* dims of a mask form for the case's sizes */
void attn_mask_dims(const attn_case *c, int form, int64_t dims[4]);

/* Allocate and fill q, k, v (uniform [lo, hi)) and the mask (uniform [mlo, mhi)) in the given
 * formats and dtype. */
void attn_case_alloc(attn_case *c, fast_rng *r, fas_dtype dtype, const fas_format fmt[4], double lo,
                     double hi, double mlo, double mhi);
void attn_case_free(attn_case *c);
const fas_tensor *attn_mask_ptr(const attn_case *c);

/* Test-side oracle in fp64 from the logical values: P [b,n,sq,sk] (may be NULL) and context
 * [b*sq, n*dv], with keep bytes (ND [b,n,sq,sk], NULL = all kept). */
void attn_oracle_forward(const attn_case *c, const uint8_t *keep, double *probs, double *ctx);

/* Forward through the public API with explicit seed and the given implementation. */
fas_status attn_run_forward(const attn_case *c, fas_impl impl, int threads, uint64_t seed,
                            uint64_t offset, fas_tensor *out, fas_tensor *probs, fas_tensor *dmask);

/* GV-F1 of docs/semantics.md §8 at shape [b, n, s, d]: q, k, v uniform [-3, 3], key padding of
 * -10000 beyond key 5 broadcast as [b, 1, s, s], scale 0.125, keep 1. Asserts P == 0 for keys
 * >= 6, rows summing to 1, an all-ones drop mask, and the context within the contract of the
 * fp64 reference. */
void attn_check_gv_f1(int64_t b, int64_t n, int64_t s, int64_t d);

/* Print a one-line description of the case (for failure diagnosis). */
void attn_case_print(const attn_case *c, int index);

#endif
