/* The blocked fp32 forward pipeline (DESIGN.md §3).
 *
 * One task is (b, n, block of ROWS query rows); with bmm_score_transpose_a one task is a whole
 * head, because context = Pd^T . V sums over all query rows. Per task:
 *   unpack K, V of the head to fp32 panels (cached per thread while the head does not change),
 *   unpack the Q rows, S = scale * Q . K^T (sgemm), add mask rows, softmax rows, store P,
 *   dropout, C = Pd . V (sgemm), round C to the output dtype at its permuted place.
 * The block size does not depend on the thread count and tasks are independent, so results are
 * bitwise identical for any number of threads. */
#include <math.h>
#include <string.h>

#include "blas/blas.h"
#include "common/memory.h"
#include "common/problem.h"
#include "common/status.h"
#include "kernels/parallel.h"

enum { ROWS = 64 };

typedef struct fwd_scratch {
    float *q;       /* rows x d */
    float *s;       /* rows x sk: scores, then P, then Pd */
    uint8_t *keep;  /* rows x sk */
    float *kp;      /* sk x d */
    float *vp;      /* sk x dv */
    float *c;       /* rows x dv (sk x dv with transpose_a) */
    float *mrow;    /* sk: one mask row */
    int64_t head;   /* head whose K, V are in kp, vp; -1 none */
} fwd_scratch;

typedef struct fwd_ctx {
    const fasi_fwd_problem *p;
    fwd_scratch *scratch; /* one per thread */
    int64_t blocks;       /* row blocks per head */
    int64_t rows;         /* rows per block */
} fwd_ctx;

static void load_head_panels(const fasi_fwd_problem *p, fwd_scratch *w, int64_t b, int64_t n)
{
    int64_t head = b * p->n + n;
    if (w->head == head) return;
    fasi_heads_load_f32(p->kern, &p->k, b, n, 0, p->sk, 0, p->d, w->kp, p->d);
    fasi_heads_load_f32(p->kern, &p->v, b, n, 0, p->sk, 0, p->dv, w->vp, p->dv);
    w->head = head;
}

/* Rows i0 .. i0+nr-1 of head (b, n): leaves Pd in w->s (row stride sk); writes P and the
 * drop mask when requested. */
static void softmax_dropout_block(const fasi_fwd_problem *p, fwd_scratch *w, int64_t b,
                                  int64_t n, int64_t i0, int64_t nr)
{
    const fasi_kernels *k = p->kern;
    const int64_t sk = p->sk;
    const int64_t head = b * p->n + n;

    fasi_heads_load_f32(k, &p->q, b, n, i0, nr, 0, p->d, w->q, p->d);
    fasi_sgemm(false, true, nr, sk, p->d, (float)p->scale, w->q, p->d, w->kp, p->d, 0.0f, w->s,
               sk);

    int64_t mmat = p->mask.present ? fasi_mask_matrix(&p->mask, b, n) : 0;
    if (p->mask.present && p->mask.mask_rows == 1)
        fasi_mat_load_f32(k, &p->mask.mat, mmat, false, 0, 1, 0, sk, w->mrow, sk);
    for (int64_t r = 0; r < nr; r++) {
        float *row = w->s + r * sk;
        if (p->mask.present) {
            if (p->mask.mask_rows != 1)
                fasi_mat_load_f32(k, &p->mask.mat, mmat, false, i0 + r, 1, 0, sk, w->mrow, sk);
            k->add(row, w->mrow, (size_t)sk);
        }
        float mx = k->row_max(row, (size_t)sk);
        if (mx == -INFINITY) {
            /* every logit is -inf: the documented policy is a zero row, not 0/0 = NaN */
            memset(row, 0, (size_t)sk * sizeof *row);
            continue;
        }
        float sum = k->exp_shift_sum(row, (size_t)sk, mx);
        k->scale(row, (size_t)sk, 1.0f / sum);
    }
    if (p->has_probs) fasi_mat_store_f32(k, &p->probs, head, i0, nr, 0, sk, w->s, sk);

    switch (p->dropout) {
    case FASI_DROPOUT_NONE:
        if (p->has_dmask) {
            memset(w->keep, 1, (size_t)(nr * sk));
            fasi_mat_store_u8(&p->dmask, head, i0, nr, 0, sk, w->keep, sk);
        }
        return;
    case FASI_DROPOUT_GENERATE:
        for (int64_t r = 0; r < nr; r++)
            k->dropout_bits(p->seed, p->offset, (uint64_t)(head * p->sq + i0 + r), 0, (size_t)sk,
                            p->threshold, w->keep + r * sk);
        if (p->has_dmask) fasi_mat_store_u8(&p->dmask, head, i0, nr, 0, sk, w->keep, sk);
        break;
    case FASI_DROPOUT_INPUT:
        fasi_mat_load_u8(&p->dmask, head, i0, nr, 0, sk, w->keep, sk);
        break;
    }
    float inv_keep = (float)(1.0 / p->keep_prob);
    for (int64_t r = 0; r < nr; r++)
        k->dropout_apply(w->s + r * sk, w->keep + r * sk, (size_t)sk, inv_keep);
}

static void forward_task(void *vctx, int thread, int64_t task)
{
    fwd_ctx *ctx = vctx;
    const fasi_fwd_problem *p = ctx->p;
    fwd_scratch *w = &ctx->scratch[thread];

    if (p->transpose_a) {
        /* context[j, :] = sum_i Pd[i, j] * V[i, :], accumulated over row blocks in a fixed
         * order; needs Sq == Sk so that V has Sq rows */
        int64_t b = task / p->n, n = task % p->n;
        load_head_panels(p, w, b, n);
        for (int64_t blk = 0; blk < ctx->blocks; blk++) {
            int64_t i0 = blk * ctx->rows;
            int64_t nr = p->sq - i0 < ctx->rows ? p->sq - i0 : ctx->rows;
            softmax_dropout_block(p, w, b, n, i0, nr);
            fasi_sgemm(true, false, p->sk, p->dv, nr, 1.0f, w->s, p->sk, w->vp + i0 * p->dv,
                       p->dv, blk == 0 ? 0.0f : 1.0f, w->c, p->dv);
        }
        fasi_heads_store_f32(p->kern, &p->out, b, n, 0, p->sk, 0, p->dv, w->c, p->dv);
        return;
    }

    int64_t head = task / ctx->blocks, blk = task % ctx->blocks;
    int64_t b = head / p->n, n = head % p->n;
    int64_t i0 = blk * ctx->rows;
    int64_t nr = p->sq - i0 < ctx->rows ? p->sq - i0 : ctx->rows;
    load_head_panels(p, w, b, n);
    softmax_dropout_block(p, w, b, n, i0, nr);
    fasi_sgemm(false, false, nr, p->dv, p->sk, 1.0f, w->s, p->sk, w->vp, p->dv, 0.0f, w->c,
               p->dv);
    fasi_heads_store_f32(p->kern, &p->out, b, n, i0, nr, 0, p->dv, w->c, p->dv);
}

fas_status fasi_pipeline_forward(const fasi_fwd_problem *p)
{
    fasi_blas_prepare();
    fwd_ctx ctx;
    ctx.p = p;
    ctx.rows = p->sq < ROWS ? p->sq : ROWS;
    ctx.blocks = (p->sq + ctx.rows - 1) / ctx.rows;
    int64_t ntasks = p->transpose_a ? p->b * p->n : p->b * p->n * ctx.blocks;
    int threads = p->threads;
    if (threads > ntasks) threads = (int)ntasks;

    int64_t c_rows = p->transpose_a ? p->sk : ctx.rows;
    size_t sz_q = fasi_bytes3(ctx.rows, p->d, sizeof(float));
    size_t sz_s = fasi_bytes3(ctx.rows, p->sk, sizeof(float));
    size_t sz_keep = fasi_bytes3(ctx.rows, p->sk, 1);
    size_t sz_kp = fasi_bytes3(p->sk, p->d, sizeof(float));
    size_t sz_vp = fasi_bytes3(p->sk, p->dv, sizeof(float));
    size_t sz_c = fasi_bytes3(c_rows, p->dv, sizeof(float));
    size_t sz_m = fasi_bytes3(1, p->sk, sizeof(float));
    size_t per = sz_q + sz_s + sz_keep + sz_kp + sz_vp + sz_c + sz_m;
    bool overflow = !sz_q || !sz_s || !sz_keep || !sz_kp || !sz_vp || !sz_c || !sz_m ||
                    per < sz_s || (size_t)threads > SIZE_MAX / per;
    unsigned char *mem = overflow ? NULL : fasi_alloc(per * (size_t)threads);
    fwd_scratch *scratch = fasi_alloc(sizeof(fwd_scratch) * (size_t)threads);
    if (!mem || !scratch) {
        fasi_free(mem);
        fasi_free(scratch);
        return fasi_fail(FAS_ERR_NO_MEMORY,
                         "scratch of %d thread(s) for Sk = %lld could not be allocated", threads,
                         (long long)p->sk);
    }
    for (int t = 0; t < threads; t++) {
        unsigned char *m = mem + per * (size_t)t;
        fwd_scratch *w = &scratch[t];
        w->q = (float *)m;
        m += sz_q;
        w->s = (float *)m;
        m += sz_s;
        w->keep = m;
        m += sz_keep;
        w->kp = (float *)m;
        m += sz_kp;
        w->vp = (float *)m;
        m += sz_vp;
        w->c = (float *)m;
        m += sz_c;
        w->mrow = (float *)m;
        w->head = -1;
    }
    ctx.scratch = scratch;
    fasi_parallel_for(threads, ntasks, forward_task, &ctx);

    fasi_mat_zero_padding(&p->out.mat);
    if (p->has_probs) fasi_mat_zero_padding(&p->probs);
    if (p->has_dmask && p->dropout != FASI_DROPOUT_INPUT) fasi_mat_zero_padding(&p->dmask);
    fasi_free(mem);
    fasi_free(scratch);
    return FAS_OK;
}
