/* A validated operator call, as the API layer hands it to an implementation (the fp64
 * reference or the blocked pipeline). Every size is positive and every tensor is valid; the
 * implementations never re-check arguments. */
#ifndef FASI_PROBLEM_H
#define FASI_PROBLEM_H

#include <stdbool.h>
#include <stdint.h>

#include "common/isa.h"
#include "layout/layout.h"

/* A per-head matrix [rows x cols] for head (b, n), stored either as a 4-D tensor
 * [B, N, rows, cols] (matrix index b*N + n), or merged into the 2-D matrix [B*rows, N*cols]
 * (row b*rows + r, column n*cols + c). When trans, the stored tensor holds the transpose:
 * 4-D [B, N, cols, rows], or merged 2-D [N*cols, B*rows]. */
typedef struct fasi_heads {
    fasi_mat mat;
    bool merged;
    bool trans;
    int64_t heads; /* N */
    int64_t rows;  /* per-head logical rows */
    int64_t cols;  /* per-head logical cols */
} fasi_heads;

/* dst[i*ldd + j] = head(b, n)[r0+i][c0+j] as fp32. */
void fasi_heads_load_f32(const fasi_kernels *k, const fasi_heads *h, int64_t b, int64_t n,
                         int64_t r0, int64_t nr, int64_t c0, int64_t nc, float *dst, int64_t ldd);
/* The transposed rectangle: dst[i*ldd + j] = head(b, n)[r0+j][c0+i] as fp32, i < nc, j < nr. */
void fasi_heads_load_f32_t(const fasi_kernels *k, const fasi_heads *h, int64_t b, int64_t n,
                           int64_t r0, int64_t nr, int64_t c0, int64_t nc, float *dst, int64_t ldd);
/* head(b, n)[r0+i][c0+j] = src[i*lds + j] rounded to the dtype; h->trans must be false. */
void fasi_heads_store_f32(const fasi_kernels *k, const fasi_heads *h, int64_t b, int64_t n,
                          int64_t r0, int64_t nr, int64_t c0, int64_t nc, const float *src,
                          int64_t lds);
/* Element access for the reference. */
double fasi_heads_get(const fasi_heads *h, int64_t b, int64_t n, int64_t r, int64_t c);
void fasi_heads_set(const fasi_heads *h, int64_t b, int64_t n, int64_t r, int64_t c, double v);

typedef enum fasi_dropout_mode {
    FASI_DROPOUT_NONE = 0,     /* keep_prob == 1 and no mask given: every element kept */
    FASI_DROPOUT_GENERATE = 1, /* keep bytes from Philox(seed, offset) */
    FASI_DROPOUT_INPUT = 2     /* keep bytes read from dmask (nonzero byte = keep) */
} fasi_dropout_mode;

/* Additive mask [mask_b, mask_n, mask_rows, Sk] with mask_b in {1, B}, mask_n in {1, N},
 * mask_rows in {1, Sq}: head (b, n) row i uses matrix (mask_b > 1 ? b : 0) * mask_n +
 * (mask_n > 1 ? n : 0), row (mask_rows > 1 ? i : 0). */
typedef struct fasi_mask {
    bool present;
    fasi_mat mat;
    int64_t mask_b, mask_n, mask_rows;
} fasi_mask;

static inline int64_t fasi_mask_matrix(const fasi_mask *m, int64_t b, int64_t n)
{
    return (m->mask_b > 1 ? b : 0) * m->mask_n + (m->mask_n > 1 ? n : 0);
}

struct fasi_engine; /* engine/engine.h, a floor above: the pipeline's products */

/* What every implementation needs of a call, forward or backward, filled once by the API
 * layer: the sizes, the scalars, the thread count, the kernel table and the matrix engine. */
typedef struct fasi_core {
    int64_t b, n, sq, sk, d, dv; /* batch, heads, query/key lengths, head dims of Q/K and V */
    double scale;
    double keep_prob;
    int threads; /* >= 1 */
    const fasi_kernels *kern;
    const struct fasi_engine
        *engine; /* the products' engine (the pipeline; unused by the reference) */
    bool npu;    /* NPU precision mode (docs/precision.md): the API has checked its domain */
} fasi_core;

typedef struct fasi_fwd_problem {
    fasi_core core;
    fasi_heads q; /* [sq x d] per head */
    fasi_heads k; /* [sk x d] per head */
    fasi_heads v; /* [sk x dv] per head */
    fasi_mask mask;
    bool transpose_a; /* context = Pd^T . V (sq == sk) */
    fasi_heads out;   /* merged [B*sq, N*dv] */
    bool has_probs;
    fasi_mat probs; /* [B*N] x [sq x sk] */
    bool has_dmask;
    fasi_mat dmask; /* UINT8 [B*N] x [sq x sk]: written (GENERATE/NONE) or read (INPUT) */
    fasi_dropout_mode dropout;
    uint64_t seed, offset, threshold; /* GENERATE only; see rng/philox.h */
    /* where this call's heads sit in the whole tensor whose dropout bits it draws (sharded
     * calls): batch b of the call is batch batch_offset + b, head n is head_offset + n, of
     * global_heads heads (>= head_offset + N) */
    int64_t batch_offset, head_offset, global_heads;
} fasi_fwd_problem;

/* The Philox row of softmax row i of head (b, n) (rng/philox.h): its row in the whole tensor,
 * (global batch * global_heads + global head) * Sq + i. The API checks that it fits. */
static inline uint64_t fasi_dropout_row(const fasi_fwd_problem *p, int64_t b, int64_t n, int64_t i)
{
    uint64_t head = (uint64_t)(p->batch_offset + b) * (uint64_t)p->global_heads +
                    (uint64_t)(p->head_offset + n);
    return head * (uint64_t)p->core.sq + (uint64_t)i;
}

typedef struct fasi_bwd_problem {
    fasi_core core;
    fasi_heads dout; /* merged [B*sq, N*dv] (trans when dx_transpose) */
    fasi_mat probs;  /* [B*N] x [sq x sk] */
    fasi_heads q, k, v;
    bool has_dmask; /* false only when keep_prob == 1: G == 1 */
    fasi_mat dmask;
    fasi_heads dq;     /* [sq x d] per head, merged or 4-D */
    fasi_heads dk;     /* [sk x d] */
    fasi_heads dv_out; /* [sk x dv] */
} fasi_bwd_problem;

/* Implementations. Return FAS_OK or FAS_ERR_NO_MEMORY (with fasi_fail called). */
fas_status fasi_reference_forward(const fasi_fwd_problem *p);
fas_status fasi_reference_backward(const fasi_bwd_problem *p);
fas_status fasi_pipeline_forward(const fasi_fwd_problem *p);
fas_status fasi_pipeline_backward(const fasi_bwd_problem *p);

#endif
