/* The blocked fp32 backward pipeline (docs/semantics.md §6), one task per head (b, n), walking the
 * head's query rows in blocks of 128 (pipeline/blocking.h):
 *   dP = (dO . V^T) .* G                 (gemm, then the row pass), G = keep / keep_prob
 *   dA = scale * P .* (dP - rowsum(dP .* P))   (same row pass)
 *   Pd = P .* G                          (same row pass, in place, after P's last use)
 *   dV += Pd^T . dO,  dQ = dA . K,  dK += dA^T . Q   (gemm; dV and dK accumulate over blocks)
 * The products run on the call's matrix engine (engine/engine.h): V^T and K packed once per head,
 * the block's rows of dO and Q packed per block, Pd and dA read in place (transposed for dV and
 * dK). Within an engine every element has one fixed order of summation, so the gradients are the
 * same at every SIMD level and for any thread count.
 * A block's P, dP and keep bytes (rows x Sk each) stay in cache from the row pass to the last
 * product that reads them, and scratch is O(rows * Sk + S * D) per thread instead of O(Sq * Sk).
 * Blocks are visited in a fixed order and tasks are independent, so results are bitwise
 * identical for any thread count. */
#include "common/arena.h"
#include "common/memory.h"
#include "common/profile.h"
#include "common/status.h"
#include "engine/engine.h"
#include "problem/problem.h"
#include "pipeline/blocking.h"
#include "pipeline/npu.h"
#include "pipeline/pack.h"
#include "pipeline/parallel.h"

typedef struct bwd_scratch {
    float *p;            /* rows x sk: P, then Pd */
    float *t;            /* rows x sk: dP, then dA */
    uint8_t *keep;       /* rows x sk */
    float *q, *dout;     /* sq x d, sq x dv */
    float *dq, *dk, *dv; /* sq x d, sk x d, sk x dv */
    float *row;          /* sk: one row of products (NPU precision) */
    float *vtf, *kf;     /* fp32 parts of the V^T [dv x sk] and K [sk x d] operands */
    float *dof, *qf;     /* ... of the block's rows of dO [rows x dv] and Q [rows x d] */
    void *vtown, *kown, *doown, *qown; /* the engine's own copies, or NULL */
    void *work;                        /* the engine's per-thread scratch */
} bwd_scratch;

typedef struct bwd_ctx {
    const fasi_bwd_problem *p;
    bwd_scratch *scratch;
    int64_t rows;             /* rows per block */
    const fasi_npu_plan *npu; /* NPU precision mode; NULL for fp32 */
} bwd_ctx;

static void backward_task(void *vctx, int thread, int64_t task)
{
    bwd_ctx *ctx = vctx;
    const fasi_bwd_problem *p = ctx->p;
    const fasi_kernels *k = p->core.kern;
    bwd_scratch *w = &ctx->scratch[thread];
    const fasi_engine *e = p->core.engine;
    const int64_t b = task / p->core.n, n = task % p->core.n;
    const int64_t sq = p->core.sq, sk = p->core.sk, d = p->core.d, dv = p->core.dv;
    /* without a drop mask keep_prob is 1 (the API requires a mask otherwise): G == 1 */
    const float inv_keep = (float)(1.0 / p->core.keep_prob);
    const float s = (float)p->core.scale;

    uint64_t t0 = fasi_prof_start();
    fasi_heads_load_f32(k, &p->dout, b, n, 0, sq, 0, dv, w->dout, dv);
    fasi_heads_load_f32(k, &p->q, b, n, 0, sq, 0, d, w->q, d);
    fasi_operand vt, kop, dop, qop;
    fasi_pack_head(e, k, &p->v, b, n, true, w->vtf, w->vtown, &vt);
    fasi_pack_head(e, k, &p->k, b, n, false, w->kf, w->kown, &kop);
    fasi_prof_stop(FASI_PROF_PACK, t0);

    for (int64_t i0 = 0; i0 < sq; i0 += ctx->rows) {
        const int64_t nr = sq - i0 < ctx->rows ? sq - i0 : ctx->rows;
        const bool accumulate = i0 != 0; /* dV and dK accumulate over blocks */
        const float *dout = w->dout + i0 * dv;
        t0 = fasi_prof_start();
        fasi_mat_load_f32(k, &p->probs, task, false, i0, nr, 0, sk, w->p, sk);
        if (p->has_dmask) fasi_mat_load_u8(&p->dmask, task, i0, nr, 0, sk, w->keep, sk);
        fasi_prof_stop(FASI_PROF_PACK, t0);

        /* One pass per row while it is in cache: dP .* G, its dot with P, the softmax
         * backward (t becomes dA), then P .* G in place (p becomes Pd, which only dV needs). */
        FASI_PROF(FASI_PROF_MATMUL,
                  e->gemm(k, w->work, (size_t)nr, (size_t)sk, (size_t)dv, 1.0f, dout, (size_t)dv, 1,
                          &vt, 0, 0, w->t, (size_t)sk, false, NULL));
        t0 = fasi_prof_start();
        for (int64_t i = 0; ctx->npu && i < nr; i++)
            fasi_npu_softmax_bwd_row(ctx->npu, k, w->t + i * sk, w->p + i * sk,
                                     p->has_dmask ? w->keep + i * sk : NULL, w->row);
        for (int64_t i = 0; !ctx->npu && i < nr; i++) {
            float *row = w->t + i * sk, *prow = w->p + i * sk;
            const uint8_t *keep = w->keep + i * sk;
            if (p->has_dmask) k->dropout_apply(row, keep, (size_t)sk, inv_keep);
            float c = k->dot(row, prow, (size_t)sk);
            k->softmax_bwd(row, prow, (size_t)sk, c, s);
            if (p->has_dmask) k->dropout_apply(prow, keep, (size_t)sk, inv_keep);
        }
        fasi_prof_stop(FASI_PROF_SOFTMAX, t0);
        t0 = fasi_prof_start();
        fasi_operand_from_f32(e, k, dout, (size_t)dv, (size_t)nr, (size_t)dv, w->dof, w->doown,
                              &dop);
        fasi_operand_from_f32(e, k, w->q + i0 * d, (size_t)d, (size_t)nr, (size_t)d, w->qf, w->qown,
                              &qop);
        fasi_prof_stop(FASI_PROF_PACK, t0);
        t0 = fasi_prof_start();
        e->gemm(k, w->work, (size_t)sk, (size_t)dv, (size_t)nr, 1.0f, w->p, 1, (size_t)sk, &dop, 0,
                0, w->dv, (size_t)dv, accumulate, NULL);
        e->gemm(k, w->work, (size_t)nr, (size_t)d, (size_t)sk, 1.0f, w->t, (size_t)sk, 1, &kop, 0,
                0, w->dq + i0 * d, (size_t)d, false, NULL);
        e->gemm(k, w->work, (size_t)sk, (size_t)d, (size_t)nr, 1.0f, w->t, 1, (size_t)sk, &qop, 0,
                0, w->dk, (size_t)d, accumulate, NULL);
        fasi_prof_stop(FASI_PROF_MATMUL, t0);
    }

    t0 = fasi_prof_start();
    fasi_heads_store_f32(k, &p->dq, b, n, 0, sq, 0, d, w->dq, d);
    fasi_heads_store_f32(k, &p->dk, b, n, 0, sk, 0, d, w->dk, d);
    fasi_heads_store_f32(k, &p->dv_out, b, n, 0, sk, 0, dv, w->dv, dv);
    fasi_prof_stop(FASI_PROF_STORE, t0);
}

/* The engine's scratch of a k x n operand, or NULL when it reads the fp32 part. */
static void *own_part(const fasi_engine *e, fasi_arena *a, int64_t k, int64_t n)
{
    return e->own_bytes ? fasi_arena_take(a, (int64_t)e->own_bytes((size_t)k, (size_t)n), 1) : NULL;
}

/* The largest per-thread work the engine needs for one block's four products. */
static size_t engine_work(const fasi_engine *e, int64_t rows, int64_t sk, int64_t d, int64_t dv)
{
    const size_t shapes[4][3] = {{(size_t)rows, (size_t)sk, (size_t)dv}, /* dO . V^T */
                                 {(size_t)sk, (size_t)dv, (size_t)rows}, /* Pd^T . dO */
                                 {(size_t)rows, (size_t)d, (size_t)sk},  /* dA . K */
                                 {(size_t)sk, (size_t)d, (size_t)rows}}; /* dA^T . Q */
    size_t w = 0;
    for (int i = 0; i < 4; i++) {
        size_t x = fasi_engine_work(e, shapes[i][0], shapes[i][1], shapes[i][2]);
        if (x > w) w = x;
    }
    return w;
}

/* One thread's scratch, taken from arena a (common/arena.h; docs/design.md §8). */
static void carve_scratch(const fasi_bwd_problem *p, int64_t rows, fasi_arena *a, bwd_scratch *w)
{
    const fasi_engine *e = p->core.engine;
    const int64_t sq = p->core.sq, sk = p->core.sk, d = p->core.d, dv = p->core.dv;
    w->p = fasi_arena_take(a, rows * sk, sizeof(float));
    w->t = fasi_arena_take(a, rows * sk, sizeof(float));
    w->keep = fasi_arena_take(a, rows * sk, 1);
    w->q = fasi_arena_take(a, sq * d, sizeof(float));
    w->dout = fasi_arena_take(a, sq * dv, sizeof(float));
    w->dq = fasi_arena_take(a, sq * d, sizeof(float));
    w->dk = fasi_arena_take(a, sk * d, sizeof(float));
    w->dv = fasi_arena_take(a, sk * dv, sizeof(float));
    w->row = fasi_arena_take(a, p->core.npu ? sk : 0, sizeof(float));
    w->vtf =
        fasi_arena_take(a, (int64_t)fasi_operand_floats(e, (size_t)dv, (size_t)sk), sizeof(float));
    w->kf =
        fasi_arena_take(a, (int64_t)fasi_operand_floats(e, (size_t)sk, (size_t)d), sizeof(float));
    /* a plain-matrix engine reads the block's dO and Q rows in place */
    const int64_t blk = e->panel ? rows : 0;
    w->dof =
        fasi_arena_take(a, (int64_t)fasi_operand_floats(e, (size_t)blk, (size_t)dv), sizeof(float));
    w->qf =
        fasi_arena_take(a, (int64_t)fasi_operand_floats(e, (size_t)blk, (size_t)d), sizeof(float));
    w->vtown = own_part(e, a, dv, sk);
    w->kown = own_part(e, a, sk, d);
    w->doown = own_part(e, a, rows, dv);
    w->qown = own_part(e, a, rows, d);
    w->work = fasi_arena_take(a, (int64_t)engine_work(e, rows, sk, d, dv), 1);
}

fas_status fasi_pipeline_backward(const fasi_bwd_problem *p)
{
    int64_t ntasks = p->core.b * p->core.n;
    int threads = p->core.threads;
    if (threads > ntasks) threads = (int)ntasks;
    const int64_t rows = fasi_backward_rows(p->core.sq);
    fasi_npu_plan plan;
    if (p->core.npu) {
        fas_status st = fasi_npu_plan_init(&plan, p->core.sk, p->core.scale, p->core.keep_prob);
        if (st != FAS_OK) return st;
    }

    fasi_arena measure = fasi_arena_at(NULL);
    bwd_scratch layout;
    carve_scratch(p, rows, &measure, &layout);
    unsigned char *mem = measure.overflow ? NULL : fasi_arena_alloc(measure.used, threads);
    bwd_scratch *scratch = fasi_alloc(sizeof(bwd_scratch) * (size_t)threads);
    if (!mem || !scratch) {
        fasi_free(mem);
        fasi_free(scratch);
        if (p->core.npu) fasi_npu_plan_free(&plan);
        return fasi_fail(FAS_ERR_NO_MEMORY,
                         "backward scratch of %d thread(s) for Sq = %lld, Sk = %lld could not be "
                         "allocated",
                         threads, (long long)p->core.sq, (long long)p->core.sk);
    }
    for (int t = 0; t < threads; t++) {
        fasi_arena a = fasi_arena_at(mem + measure.used * (size_t)t);
        carve_scratch(p, rows, &a, &scratch[t]);
    }
    bwd_ctx ctx = {p, scratch, rows, p->core.npu ? &plan : NULL};
    fasi_engine_begin(p->core.engine);
    fasi_parallel_for(threads, ntasks, 1, backward_task, &ctx);
    fasi_engine_end(p->core.engine);

    fasi_mat_zero_padding(&p->dq.mat);
    fasi_mat_zero_padding(&p->dk.mat);
    fasi_mat_zero_padding(&p->dv_out.mat);
    fasi_free(mem);
    fasi_free(scratch);
    if (p->core.npu) fasi_npu_plan_free(&plan);
    return FAS_OK;
}
