/* The blocked fp32 forward pipeline (docs/design.md §3).
 *
 * A task is (b, n, block of query rows); with bmm_score_transpose_a a task is a whole head,
 * because context = Pd^T . V sums over all query rows. Threads take chunks of up to one head's
 * tasks (pipeline/parallel.h), and K and V of a head are packed for the matrix engine
 * (engine/engine.h) only when a thread's task belongs to another head than its previous one.
 * Every product goes through that engine; the pipeline never knows which one it is.
 *
 * Two variants share the tile helpers below:
 * - materialising (softmax_output requested, or transpose_a): the block's scores cover all Sk
 *   keys; exact row max and sum, P stored, then C = Pd . V;
 * - streaming (otherwise): keys are walked in tiles with an online softmax (running max m and
 *   sum l per row; C and l are rescaled by exp(m_old - m_new) when the max grows), so scratch
 *   is O(rows * (tile + Dv)) per thread, never O(Sq * Sk).
 * Dropout decisions come from Philox coordinates (row, key) in both, so the two variants give
 * bitwise identical drop masks. Block and tile sizes depend on nothing but the problem, and
 * tasks are independent, so results are bitwise identical for any thread count. */
#include <math.h>
#include <string.h>

#include "common/arena.h"
#include "common/memory.h"
#include "common/profile.h"
#include "problem/problem.h"
#include "common/status.h"
#include "engine/engine.h"
#include "kernels/exp_poly.h"
#include "pipeline/blocking.h"
#include "pipeline/npu.h"
#include "pipeline/pack.h"
#include "pipeline/parallel.h"

typedef struct fwd_scratch {
    float *q;           /* rows x d */
    float *s;           /* rows x tile: scores, then probabilities */
    uint8_t *keep;      /* rows x tile */
    float *kf, *vf;     /* fp32 parts of the K^T [d x sk] and V [sk x dv] operands */
    void *kown, *vown;  /* the engine's own copies, or NULL */
    fasi_operand kt, v; /* K^T and V of the head in `head`, packed for the engine */
    void *work;         /* the engine's per-thread scratch */
    float *c;           /* rows x dv (sk x dv with transpose_a) */
    float *mrow;        /* tile: one mask row (NPU precision) */
    float *m, *l;       /* rows: running max and sum (streaming) */
    float *e32;         /* sk: the fp32 exps of one row (NPU precision) */
    uint16_t *p16;      /* 16 x sk: a strip of fp16 softmax_output before it is stored */
    int64_t head;       /* head whose K, V are in kt, v; -1 none */
} fwd_scratch;

typedef struct fwd_ctx {
    const fasi_fwd_problem *p;
    fwd_scratch *scratch; /* one per thread */
    int64_t rows;         /* rows per block */
    int64_t blocks;       /* row blocks per head */
    int64_t tile;         /* keys per tile (sk when materialising) */
    bool streaming;
    const fasi_npu_plan *npu; /* NPU precision mode; NULL for fp32 */
} fwd_ctx;

/* K and V of head (b, n) packed for the engine straight from their tensors: K^T, the right
 * operand of Q . K^T, and V, the right operand of Pd . V (and of Pd^T . V with transpose_a). */
static void load_head_panels(const fasi_fwd_problem *p, fwd_scratch *w, int64_t b, int64_t n)
{
    const int64_t head = b * p->core.n + n;
    if (w->head == head) return;
    const fasi_engine *e = p->core.engine;
    const uint64_t t0 = fasi_prof_start();
    fasi_pack_head(e, p->core.kern, &p->k, b, n, true, w->kf, w->kown, &w->kt);
    fasi_pack_head(e, p->core.kern, &p->v, b, n, false, w->vf, w->vown, &w->v);
    fasi_prof_stop(FASI_PROF_PACK, t0);
    w->head = head;
}

/* S = Q . K^T over keys j0 .. j0+nt-1 into w->s (rows x nt, row stride nt), as the gemm entry
 * computes it: the fp32 sum of products (Q rows in w->q). */
static void qk_tile(const fasi_fwd_problem *p, fwd_scratch *w, int64_t nr, int64_t j0, int64_t nt,
                    float alpha, bool accumulate)
{
    const size_t d = (size_t)p->core.d;
    FASI_PROF(FASI_PROF_MATMUL,
              p->core.engine->gemm(p->core.kern, w->work, (size_t)nr, (size_t)nt, d, alpha, w->q, d,
                                   1, &w->kt, 0, (size_t)j0, w->s, (size_t)nt, accumulate, NULL));
}

/* w->c (rows x dv) = (accumulate ? w->c : 0) + Pd . V over keys j0 .. j0+nt-1 (Pd in w->s, row
 * stride nt). */
static void pv_tile(const fasi_fwd_problem *p, fwd_scratch *w, int64_t nr, int64_t j0, int64_t nt,
                    bool accumulate)
{
    const size_t dv = (size_t)p->core.dv;
    FASI_PROF(FASI_PROF_MATMUL, p->core.engine->gemm(p->core.kern, w->work, (size_t)nr, dv,
                                                     (size_t)nt, 1.0f, w->s, (size_t)nt, 1, &w->v,
                                                     (size_t)j0, 0, w->c, dv, accumulate, NULL));
}

/* w->s[r][t] = scale * Q[i0+r] . K[j0+t] + mask for r < nr, t < nt (row stride nt); w->q must
 * hold the block's query rows. The gemm adds the scaled product to the mask (fma(scale, sum,
 * mask)): an fp16 mask is read where it is stored, in the gemm's epilogue; a mask of another
 * dtype is unpacked into w->s first. Scale 0 still gives NaN where Q . K^T is NaN or infinite,
 * as IEEE 0 * x does. */
static void score_tile(const fasi_fwd_problem *p, fwd_scratch *w, int64_t b, int64_t n, int64_t i0,
                       int64_t nr, int64_t j0, int64_t nt)
{
    const float alpha = (float)p->core.scale;
    const fasi_mask *mk = &p->mask;
    if (!mk->present) {
        qk_tile(p, w, nr, j0, nt, alpha, false);
        return;
    }
    const int64_t mmat = fasi_mask_matrix(mk, b, n);
    if (mk->mat.dtype == FAS_DTYPE_FLOAT16) {
        const size_t d = (size_t)p->core.d;
        const fasi_addend add = {(const uint16_t *)mk->mat.data + mmat * mk->mat.mat_elems,
                                 mk->mat.nz,
                                 mk->mask_rows == 1,
                                 (size_t)mk->mat.cols,
                                 (size_t)mk->mat.m1,
                                 mk->mask_rows == 1 ? 0 : (size_t)i0,
                                 (size_t)j0};
        FASI_PROF(FASI_PROF_MATMUL,
                  p->core.engine->gemm(p->core.kern, w->work, (size_t)nr, (size_t)nt, d, alpha,
                                       w->q, d, 1, &w->kt, 0, (size_t)j0, w->s, (size_t)nt, false,
                                       &add));
        return;
    }
    const uint64_t t0 = fasi_prof_start();
    if (mk->mask_rows == 1) {
        fasi_mat_load_f32(p->core.kern, &mk->mat, mmat, false, 0, 1, j0, nt, w->s, nt);
        for (int64_t r = 1; r < nr; r++) memcpy(w->s + r * nt, w->s, (size_t)nt * sizeof *w->s);
    } else {
        fasi_mat_load_f32(p->core.kern, &mk->mat, mmat, false, i0, nr, j0, nt, w->s, nt);
    }
    fasi_prof_stop(FASI_PROF_PACK, t0);
    qk_tile(p, w, nr, j0, nt, alpha, true);
}

/* The keep bytes of rows i0..i0+nr-1, keys j0..j0+nt-1 into w->keep (generated or read), and
 * the drop mask's tile when it is an output. Returns whether they must be applied (false: no
 * dropout, every element kept). */
static bool keep_tile(const fasi_fwd_problem *p, fwd_scratch *w, int64_t head, int64_t i0,
                      int64_t nr, int64_t j0, int64_t nt)
{
    switch (p->dropout) {
    case FASI_DROPOUT_NONE:
        if (p->has_dmask) {
            memset(w->keep, 1, (size_t)(nr * nt));
            FASI_PROF(FASI_PROF_STORE,
                      fasi_mat_store_u8(&p->dmask, head, i0, nr, j0, nt, w->keep, nt));
        }
        return false;
    case FASI_DROPOUT_GENERATE: {
        const uint64_t t0 = fasi_prof_start();
        for (int64_t r = 0; r < nr; r++)
            p->core.kern->dropout_bits(
                p->seed, p->offset, fasi_dropout_row(p, head / p->core.n, head % p->core.n, i0 + r),
                (uint64_t)j0, (size_t)nt, p->threshold, w->keep + r * nt);
        fasi_prof_stop(FASI_PROF_SOFTMAX, t0);
        if (p->has_dmask)
            FASI_PROF(FASI_PROF_STORE,
                      fasi_mat_store_u8(&p->dmask, head, i0, nr, j0, nt, w->keep, nt));
        return true;
    }
    case FASI_DROPOUT_INPUT:
        FASI_PROF(FASI_PROF_PACK, fasi_mat_load_u8(&p->dmask, head, i0, nr, j0, nt, w->keep, nt));
        return true;
    }
    return false;
}

/* Apply dropout to the probabilities in w->s (rows x nt, keys j0..j0+nt) and write the drop
 * mask's tile when it is an output. */
static void dropout_tile(const fasi_fwd_problem *p, const fasi_npu_plan *npu, fwd_scratch *w,
                         int64_t head, int64_t i0, int64_t nr, int64_t j0, int64_t nt)
{
    const fasi_kernels *k = p->core.kern;
    if (!keep_tile(p, w, head, i0, nr, j0, nt)) return;
    const uint64_t t0 = fasi_prof_start();
    if (npu) {
        for (int64_t r = 0; r < nr; r++)
            k->npu_dropout(w->s + r * nt, w->keep + r * nt, (size_t)nt, npu->g);
    } else {
        const float inv_keep = (float)(1.0 / p->core.keep_prob);
        for (int64_t r = 0; r < nr; r++)
            k->dropout_apply(w->s + r * nt, w->keep + r * nt, (size_t)nt, inv_keep);
    }
    fasi_prof_stop(FASI_PROF_SOFTMAX, t0);
}

/* The NPU precision mode's softmax of rows i0..i0+nr-1 into w->s (pipeline/npu.h): the cube's
 * scores Q.K^T unscaled, then the row pass with the mask added after scaling. */
static void npu_softmax_block(const fasi_fwd_problem *p, const fasi_npu_plan *npu, fwd_scratch *w,
                              int64_t b, int64_t n, int64_t i0, int64_t nr)
{
    const fasi_kernels *k = p->core.kern;
    const int64_t sk = p->core.sk;
    qk_tile(p, w, nr, 0, sk, 1.0f, false);
    const int64_t mmat = p->mask.present ? fasi_mask_matrix(&p->mask, b, n) : 0;
    const uint64_t t0 = fasi_prof_start();
    for (int64_t r = 0; r < nr; r++) {
        if (p->mask.present && (r == 0 || p->mask.mask_rows != 1))
            fasi_mat_load_f32(k, &p->mask.mat, mmat, false, p->mask.mask_rows == 1 ? 0 : i0 + r, 1,
                              0, sk, w->mrow, sk);
        fasi_npu_softmax_row(npu, k, w->s + r * sk, p->mask.present ? w->mrow : NULL, w->e32);
    }
    fasi_prof_stop(FASI_PROF_SOFTMAX, t0);
}

/* Materialising: leaves Pd of rows i0..i0+nr-1 over all keys in w->s (row stride sk). With an
 * fp16 softmax_output, one pass per row normalises, rounds P into a staging block and applies
 * dropout (probs_dropout); the block is then stored as it is. */
static void probs_block(const fasi_fwd_problem *p, const fasi_npu_plan *npu, fwd_scratch *w,
                        int64_t b, int64_t n, int64_t i0, int64_t nr)
{
    const fasi_kernels *k = p->core.kern;
    const int64_t sk = p->core.sk, head = b * p->core.n + n;
    FASI_PROF(FASI_PROF_PACK,
              fasi_heads_load_f32(k, &p->q, b, n, i0, nr, 0, p->core.d, w->q, p->core.d));
    if (npu) {
        npu_softmax_block(p, npu, w, b, n, i0, nr);
        if (p->has_probs)
            FASI_PROF(FASI_PROF_STORE,
                      fasi_mat_store_f32(k, &p->probs, head, i0, nr, 0, sk, w->s, sk));
        dropout_tile(p, npu, w, head, i0, nr, 0, sk);
        return;
    }
    score_tile(p, w, b, n, i0, nr, 0, sk);
    uint64_t t0 = fasi_prof_start();
    for (int64_t r = 0; r < nr; r++) {
        float *row = w->s + r * sk;
        float mx = k->row_max(row, (size_t)sk);
        if (mx == -INFINITY) {
            /* every logit is -inf: the documented policy is a zero row, not 0/0 = NaN */
            memset(row, 0, (size_t)sk * sizeof *row);
            w->l[r] = 0.0f;
            continue;
        }
        w->l[r] = 1.0f / k->exp_shift_sum(row, (size_t)sk, mx);
    }
    const bool staged = p->has_probs && p->probs.dtype == FAS_DTYPE_FLOAT16;
    if (p->has_probs && !staged) {
        /* another dtype: P rounded by the block storer, then dropout */
        for (int64_t r = 0; r < nr; r++) k->scale(w->s + r * sk, (size_t)sk, w->l[r]);
        fasi_prof_stop(FASI_PROF_SOFTMAX, t0);
        FASI_PROF(FASI_PROF_STORE, fasi_mat_store_f32(k, &p->probs, head, i0, nr, 0, sk, w->s, sk));
        dropout_tile(p, NULL, w, head, i0, nr, 0, sk);
        return;
    }
    fasi_prof_stop(FASI_PROF_SOFTMAX, t0);
    /* strips of 16 rows (one fractal row of NZ tensors): keep bytes, P and Pd of a strip stay
     * in L1 from the generator to the stores */
    const float inv_keep = (float)(1.0 / p->core.keep_prob);
    for (int64_t s0 = 0; s0 < nr; s0 += 16) {
        const int64_t ns = nr - s0 < 16 ? nr - s0 : 16;
        const bool apply = keep_tile(p, w, head, i0 + s0, ns, 0, sk);
        t0 = fasi_prof_start();
        for (int64_t r = 0; r < ns; r++)
            k->probs_dropout(w->s + (s0 + r) * sk, apply ? w->keep + r * sk : NULL, (size_t)sk,
                             w->l[s0 + r], inv_keep, staged ? w->p16 + r * sk : NULL);
        fasi_prof_stop(FASI_PROF_SOFTMAX, t0);
        if (staged)
            FASI_PROF(FASI_PROF_STORE,
                      fasi_mat_store_u16(&p->probs, head, i0 + s0, ns, 0, sk, w->p16, sk));
    }
}

/* Streaming: context rows i0..i0+nr-1 into w->c with an online softmax over key tiles. */
static void streaming_block(const fwd_ctx *ctx, fwd_scratch *w, int64_t b, int64_t n, int64_t i0,
                            int64_t nr)
{
    const fasi_fwd_problem *p = ctx->p;
    const fasi_kernels *k = p->core.kern;
    const int64_t head = b * p->core.n + n, dv = p->core.dv;
    FASI_PROF(FASI_PROF_PACK,
              fasi_heads_load_f32(k, &p->q, b, n, i0, nr, 0, p->core.d, w->q, p->core.d));
    for (int64_t r = 0; r < nr; r++) {
        w->m[r] = -INFINITY;
        w->l[r] = 0.0f;
    }
    memset(w->c, 0, (size_t)(nr * dv) * sizeof *w->c);
    for (int64_t j0 = 0; j0 < p->core.sk; j0 += ctx->tile) {
        int64_t nt = p->core.sk - j0 < ctx->tile ? p->core.sk - j0 : ctx->tile;
        score_tile(p, w, b, n, i0, nr, j0, nt);
        const uint64_t t0 = fasi_prof_start();
        for (int64_t r = 0; r < nr; r++) {
            float *row = w->s + r * nt;
            float tmax = k->row_max(row, (size_t)nt);
            float mnew = tmax > w->m[r] ? tmax : w->m[r];
            if (isnan(tmax)) mnew = tmax;
            if (mnew == -INFINITY) {
                /* no finite logit yet in this row: these keys carry zero weight */
                memset(row, 0, (size_t)nt * sizeof *row);
                continue;
            }
            if (mnew != w->m[r]) {
                float alpha = w->m[r] == -INFINITY ? 0.0f : fasi_exp(w->m[r] - mnew);
                w->l[r] *= alpha;
                k->scale(w->c + r * dv, (size_t)dv, alpha);
                w->m[r] = mnew;
            }
            w->l[r] += k->exp_shift_sum(row, (size_t)nt, mnew);
        }
        fasi_prof_stop(FASI_PROF_SOFTMAX, t0);
        dropout_tile(p, NULL, w, head, i0, nr, j0, nt);
        pv_tile(p, w, nr, j0, nt, true);
    }
    const uint64_t t0 = fasi_prof_start();
    for (int64_t r = 0; r < nr; r++) {
        /* l == 0 only for a row whose every logit is -inf: its context stays zero */
        if (w->l[r] != 0.0f) k->scale(w->c + r * dv, (size_t)dv, 1.0f / w->l[r]);
    }
    fasi_prof_stop(FASI_PROF_SOFTMAX, t0);
}

static void forward_task(void *vctx, int thread, int64_t task)
{
    const fwd_ctx *ctx = vctx;
    const fasi_fwd_problem *p = ctx->p;
    fwd_scratch *w = &ctx->scratch[thread];

    if (p->transpose_a) {
        /* context[j, :] = sum_i Pd[i, j] * V[i, :], accumulated over row blocks in a fixed
         * order; needs Sq == Sk so that V has Sq rows */
        int64_t b = task / p->core.n, n = task % p->core.n;
        load_head_panels(p, w, b, n);
        for (int64_t blk = 0; blk < ctx->blocks; blk++) {
            int64_t i0 = blk * ctx->rows;
            int64_t nr = p->core.sq - i0 < ctx->rows ? p->core.sq - i0 : ctx->rows;
            probs_block(p, ctx->npu, w, b, n, i0, nr);
            FASI_PROF(FASI_PROF_MATMUL,
                      p->core.engine->gemm(p->core.kern, w->work, (size_t)p->core.sk,
                                           (size_t)p->core.dv, (size_t)nr, 1.0f, w->s, 1,
                                           (size_t)p->core.sk, &w->v, (size_t)i0, 0, w->c,
                                           (size_t)p->core.dv, blk != 0, NULL));
        }
        FASI_PROF(FASI_PROF_STORE, fasi_heads_store_f32(p->core.kern, &p->out, b, n, 0, p->core.sk,
                                                        0, p->core.dv, w->c, p->core.dv));
        return;
    }

    int64_t head = task / ctx->blocks, blk = task % ctx->blocks;
    int64_t b = head / p->core.n, n = head % p->core.n;
    int64_t i0 = blk * ctx->rows;
    int64_t nr = p->core.sq - i0 < ctx->rows ? p->core.sq - i0 : ctx->rows;
    load_head_panels(p, w, b, n);
    if (ctx->streaming) {
        streaming_block(ctx, w, b, n, i0, nr);
    } else {
        probs_block(p, ctx->npu, w, b, n, i0, nr);
        pv_tile(p, w, nr, 0, p->core.sk, false);
    }
    FASI_PROF(FASI_PROF_STORE, fasi_heads_store_f32(p->core.kern, &p->out, b, n, i0, nr, 0,
                                                    p->core.dv, w->c, p->core.dv));
}

/* The largest per-thread work the engine needs for this call's products. */
static size_t engine_work(const fwd_ctx *ctx)
{
    const fasi_fwd_problem *p = ctx->p;
    const fasi_engine *e = p->core.engine;
    const size_t rows = (size_t)ctx->rows, tile = (size_t)ctx->tile, sk = (size_t)p->core.sk,
                 d = (size_t)p->core.d, dv = (size_t)p->core.dv;
    size_t w = fasi_engine_work(e, rows, tile, d);  /* scores */
    size_t x = fasi_engine_work(e, rows, dv, tile); /* Pd . V */
    if (x > w) w = x;
    x = p->transpose_a ? fasi_engine_work(e, sk, dv, rows) : 0; /* Pd^T . V */
    return x > w ? x : w;
}

/* One thread's scratch, taken from arena a (common/arena.h; docs/design.md §8). */
static void carve_scratch(const fwd_ctx *ctx, fasi_arena *a, fwd_scratch *w)
{
    const fasi_fwd_problem *p = ctx->p;
    const fasi_engine *e = p->core.engine;
    const int64_t rows = ctx->rows, tile = ctx->tile, sk = p->core.sk;
    const size_t d = (size_t)p->core.d, dv = (size_t)p->core.dv;
    w->q = fasi_arena_take(a, rows * p->core.d, sizeof(float));
    w->s = fasi_arena_take(a, rows * tile, sizeof(float));
    w->keep = fasi_arena_take(a, rows * tile, 1);
    w->kf = fasi_arena_take(a, (int64_t)fasi_operand_floats(e, d, (size_t)sk), sizeof(float));
    w->vf = fasi_arena_take(a, (int64_t)fasi_operand_floats(e, (size_t)sk, dv), sizeof(float));
    w->kown = e->own_bytes ? fasi_arena_take(a, (int64_t)e->own_bytes(d, (size_t)sk), 1) : NULL;
    w->vown = e->own_bytes ? fasi_arena_take(a, (int64_t)e->own_bytes((size_t)sk, dv), 1) : NULL;
    w->work = fasi_arena_take(a, (int64_t)engine_work(ctx), 1);
    w->c = fasi_arena_take(a, (p->transpose_a ? sk : rows) * p->core.dv, sizeof(float));
    w->m = fasi_arena_take(a, rows, sizeof(float));
    w->l = fasi_arena_take(a, rows, sizeof(float));
    w->mrow = fasi_arena_take(a, tile, sizeof(float));
    w->e32 = fasi_arena_take(a, ctx->npu ? sk : 0, sizeof(float));
    w->p16 = fasi_arena_take(
        a, p->has_probs && p->probs.dtype == FAS_DTYPE_FLOAT16 && !ctx->npu ? 16 * sk : 0,
        sizeof(uint16_t));
    w->head = -1;
}

fas_status fasi_pipeline_forward(const fasi_fwd_problem *p)
{
    fwd_ctx ctx;
    ctx.p = p;
    /* the NPU's softmax needs whole rows (its row maximum and sum): always materialising */
    ctx.streaming = !p->has_probs && !p->transpose_a && !p->core.npu;
    const fasi_blocking blk = fasi_forward_blocking(p->core.sq, p->core.sk, ctx.streaming);
    ctx.rows = blk.rows;
    ctx.blocks = (p->core.sq + ctx.rows - 1) / ctx.rows;
    ctx.tile = blk.tile;
    int64_t ntasks = p->transpose_a ? p->core.b * p->core.n : p->core.b * p->core.n * ctx.blocks;
    int threads = p->core.threads;
    if (threads > ntasks) threads = (int)ntasks;
    /* chunks of up to one head: a thread mostly keeps the K, V panels it unpacked */
    int64_t grain = fasi_parallel_grain(ntasks, threads, p->transpose_a ? 1 : ctx.blocks);
    fasi_npu_plan plan;
    ctx.npu = NULL;
    if (p->core.npu) {
        fas_status st = fasi_npu_plan_init(&plan, p->core.sk, p->core.scale, p->core.keep_prob);
        if (st != FAS_OK) return st;
        ctx.npu = &plan;
    }

    fasi_arena measure = fasi_arena_at(NULL);
    fwd_scratch layout;
    carve_scratch(&ctx, &measure, &layout);
    unsigned char *mem = measure.overflow ? NULL : fasi_arena_alloc(measure.used, threads);
    fwd_scratch *scratch = fasi_alloc(sizeof(fwd_scratch) * (size_t)threads);
    if (!mem || !scratch) {
        fasi_free(mem);
        fasi_free(scratch);
        if (ctx.npu) fasi_npu_plan_free(&plan);
        return fasi_fail(FAS_ERR_NO_MEMORY,
                         "scratch of %d thread(s) for Sk = %lld could not be allocated", threads,
                         (long long)p->core.sk);
    }
    for (int t = 0; t < threads; t++) {
        fasi_arena a = fasi_arena_at(mem + measure.used * (size_t)t);
        carve_scratch(&ctx, &a, &scratch[t]);
    }
    ctx.scratch = scratch;
    fasi_engine_begin(p->core.engine);
    fasi_parallel_for(threads, ntasks, grain, forward_task, &ctx);
    fasi_engine_end(p->core.engine);

    fasi_mat_zero_padding(&p->out.mat);
    if (p->has_probs) fasi_mat_zero_padding(&p->probs);
    if (p->has_dmask && p->dropout != FASI_DROPOUT_INPUT) fasi_mat_zero_padding(&p->dmask);
    fasi_free(mem);
    fasi_free(scratch);
    if (ctx.npu) fasi_npu_plan_free(&plan);
    return FAS_OK;
}
