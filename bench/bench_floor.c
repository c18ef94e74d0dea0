/* The GEMM floor of fas_bench: the bare products of the operator on the matrix engine the fused
 * call runs (src/engine/engine.h; docs/design.md §4), so that fused / floor is the fused call's
 * time over the time of its own engine's products of the same shapes - everything else the call
 * does (fp16 loads and packing, mask, softmax, dropout, stores) is the difference.
 *
 * The products and their call pattern are the pipeline's (src/pipeline/forward.c, backward.c;
 * the blocks and tiles of src/pipeline/blocking.h):
 *   fwd        per head, per block of min(Sq, 128) query rows, per key tile of min(Sk, 512):
 *              S = scale * Q_blk . K^T[tile] (rows x tile x D), then C += S . V[tile]
 *              (rows x Dv x tile)
 *   fwd_probs  per head, per block of the materialising rows (a multiple of 48 sized to 512 KiB
 *              of row state, 48..128): S = scale * Q_blk . K^T
 *              (rows x Sk x D), then C = S . V (rows x Dv x Sk)
 *   grad       per head, per block of min(Sq, 128) rows: dP = dO_blk . V^T (rows x Sk x Dv),
 *              dV += Pd^T . dO_blk (Sk x Dv x rows), dQ_blk = dA . K (rows x D x Sk),
 *              dK += dA^T . Q_blk (Sk x D x rows)
 * with A read in place (Q, dO rows; S, Pd, dA in the thread's scratch, transposed where the
 * pipeline reads them transposed) and B a packed operand (fasi_operand) of the engine. Tasks and
 * threads are the pipeline's: fasi_parallel_for over (head, block) tasks in chunks of up to one
 * head for the forward, one task per head for the backward, min(threads, tasks) threads.
 *
 * Cost model: the floor does only products. Every B operand (K^T, V, V^T, K per head; the dO
 * and Q rows of each backward block) is packed in the engine's format once, before any timed
 * run, so the floor contains no packing at all; the pipeline's packing and conversions count
 * in fused / floor. Packed operands of all heads sit in one buffer, so the floor reads them from
 * memory where the pipeline reads a head's freshly packed panels from cache: if anything, this
 * makes the floor slower, never faster. The mask is not added (the pipeline fuses it into the
 * first product's epilogue; it counts as fused work). */
#include <stdlib.h>
#include <string.h>

#include "api/dispatch.h"
#include "bench.h"
#include "engine/engine.h"
#include "pipeline/blocking.h"
#include "pipeline/parallel.h"

typedef struct floor_thread {
    float *s;   /* rows x tile: scores (forward); dP then dA (backward) */
    float *p;   /* rows x sk: Pd (backward) */
    float *c;   /* rows x dv: context rows (forward) */
    float *dq;  /* sq x d (backward) */
    float *dk;  /* sk x d (backward) */
    float *dv;  /* sk x dv (backward) */
    void *work; /* the engine's work_bytes */
} floor_thread;

struct bench_floor {
    const fasi_engine *e;
    const fasi_kernels *kern;
    bench_mode mode;
    int64_t heads, sq, sk, d, dv;
    float scale;
    int64_t rows, tile, blocks;
    int threads;
    int64_t ntasks, grain;
    const float *q, *dout; /* [heads, Sq, D], [heads, Sq, Dv]: the A operands read in place */
    fasi_operand *b1, *b2; /* per head: fwd K^T, V; grad V^T, K */
    fasi_operand *o1, *o2; /* grad, per head and block: dO rows, Q rows */
    unsigned char *packed; /* the fp32 parts of every operand (panel engines) */
    unsigned char *own;    /* the engines' own formats */
    floor_thread *t;
    unsigned char *scratch;
};

static size_t align64(size_t bytes) { return (bytes + 63) / 64 * 64; }

/* Storage of one operand: fp32 floats (panel engines) and own bytes, 64-byte multiples. */
typedef struct op_size {
    size_t f32, own;
} op_size;

static op_size operand_size(const fasi_engine *e, int64_t k, int64_t n)
{
    op_size z = {0, 0};
    if (e->panel) z.f32 = align64(fasi_operand_floats(e, (size_t)k, (size_t)n) * sizeof(float));
    if (e->own_bytes) z.own = align64(e->own_bytes((size_t)k, (size_t)n));
    return z;
}

/* b = the k x n operand B of engine e, where B[t][j] = src[t*ld + j], or src[j*ld + t] when
 * `transposed` (src holds B's transpose, as K holds K^T). A plain-matrix engine reads src in
 * place (transposed through trans); a panel engine packs it into *f32 (via tmp, k x n, for a
 * transposed source). Advances *f32 and *own past what it used. */
static void make_operand(const bench_floor *fl, const float *src, size_t ld, int64_t k, int64_t n,
                         bool transposed, float *tmp, unsigned char **f32, unsigned char **own,
                         fasi_operand *b)
{
    const fasi_engine *e = fl->e;
    op_size z = operand_size(e, k, n);
    void *own_at = z.own ? *own : NULL;
    if (e->panel == 0 && transposed) {
        b->f32 = src;
        b->ld = ld;
        b->trans = true;
        b->own = own_at;
        b->k = (size_t)k;
        b->n = (size_t)n;
        fasi_operand_prepare(e, fl->kern, b);
    } else if (e->panel == 0) {
        fasi_operand_from_f32(e, fl->kern, src, ld, (size_t)k, (size_t)n, NULL, own_at, b);
    } else {
        const float *m = src;
        size_t mld = ld;
        if (transposed) {
            for (int64_t t = 0; t < k; t++)
                for (int64_t j = 0; j < n; j++) tmp[t * n + j] = src[(size_t)j * ld + (size_t)t];
            m = tmp;
            mld = (size_t)n;
        }
        fasi_operand_from_f32(e, fl->kern, m, mld, (size_t)k, (size_t)n, (float *)(void *)*f32,
                              own_at, b);
    }
    *f32 += z.f32;
    *own += z.own;
}

/* ---- the products ---- */

static void gemm(const bench_floor *fl, floor_thread *w, size_t m, size_t n, size_t k, float alpha,
                 const float *a, size_t rsa, size_t csa, const fasi_operand *b, size_t t0,
                 size_t j0, float *c, size_t ldc, bool accumulate)
{
    fl->e->gemm(fl->kern, w->work, m, n, k, alpha, a, rsa, csa, b, t0, j0, c, ldc, accumulate,
                NULL);
}

static void forward_task(void *ctx, int thread, int64_t task)
{
    const bench_floor *fl = ctx;
    floor_thread *w = &fl->t[thread];
    const int64_t head = task / fl->blocks, i0 = task % fl->blocks * fl->rows;
    const int64_t nr = fl->sq - i0 < fl->rows ? fl->sq - i0 : fl->rows;
    const size_t d = (size_t)fl->d, dv = (size_t)fl->dv;
    const float *q = fl->q + ((size_t)head * (size_t)fl->sq + (size_t)i0) * d;
    for (int64_t j0 = 0; j0 < fl->sk; j0 += fl->tile) {
        const size_t nt = (size_t)(fl->sk - j0 < fl->tile ? fl->sk - j0 : fl->tile);
        gemm(fl, w, (size_t)nr, nt, d, fl->scale, q, d, 1, &fl->b1[head], 0, (size_t)j0, w->s, nt,
             false);
        gemm(fl, w, (size_t)nr, dv, nt, 1.0f, w->s, nt, 1, &fl->b2[head], (size_t)j0, 0, w->c, dv,
             j0 != 0);
    }
}

static void backward_task(void *ctx, int thread, int64_t head)
{
    const bench_floor *fl = ctx;
    floor_thread *w = &fl->t[thread];
    const size_t sq = (size_t)fl->sq, sk = (size_t)fl->sk, d = (size_t)fl->d, dv = (size_t)fl->dv;
    for (int64_t blk = 0; blk < fl->blocks; blk++) {
        const size_t i0 = (size_t)(blk * fl->rows);
        const size_t nr = sq - i0 < (size_t)fl->rows ? sq - i0 : (size_t)fl->rows;
        const bool accumulate = blk != 0;
        const float *dout = fl->dout + ((size_t)head * sq + i0) * dv;
        const fasi_operand *dop = &fl->o1[head * fl->blocks + blk];
        const fasi_operand *qp = &fl->o2[head * fl->blocks + blk];
        gemm(fl, w, nr, sk, dv, 1.0f, dout, dv, 1, &fl->b1[head], 0, 0, w->s, sk, false);
        gemm(fl, w, sk, dv, nr, 1.0f, w->p, 1, sk, dop, 0, 0, w->dv, dv, accumulate);
        gemm(fl, w, nr, d, sk, 1.0f, w->s, sk, 1, &fl->b2[head], 0, 0, w->dq + i0 * d, d, false);
        gemm(fl, w, sk, d, nr, 1.0f, w->s, 1, sk, qp, 0, 0, w->dk, d, accumulate);
    }
}

void bench_floor_run(bench_floor *fl)
{
    if (fl->mode == BENCH_GRAD)
        fasi_parallel_for(fl->threads, fl->ntasks, fl->grain, backward_task, fl);
    else
        fasi_parallel_for(fl->threads, fl->ntasks, fl->grain, forward_task, fl);
}

void bench_floor_view_of(const bench_floor *fl, int thread, bench_floor_view *v)
{
    const floor_thread *w = &fl->t[thread];
    v->rows = fl->rows;
    v->tile = fl->tile;
    v->blocks = fl->blocks;
    v->threads = fl->threads;
    v->s = w->s;
    v->p = w->p;
    v->c = w->c;
    v->dq = w->dq;
    v->dk = w->dk;
    v->dv = w->dv;
}

/* ---- lifetime ---- */

void bench_floor_destroy(bench_floor *fl)
{
    if (!fl) return;
    free(fl->b1);
    free(fl->b2);
    free(fl->o1);
    free(fl->o2);
    bench_free(fl->packed);
    bench_free(fl->own);
    free(fl->t);
    bench_free(fl->scratch);
    free(fl);
}

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

bench_floor *bench_floor_create(const bench_config *cfg, const bench_shape *s, bench_mode mode,
                                double scale, const fasi_engine *engine, const float *q,
                                const float *k, const float *v, const float *dout)
{
    bench_floor *fl = calloc(1, sizeof *fl);
    if (!fl) return NULL;
    fl->e = engine;
    fl->kern = fasi_kernels_for(fasi_cpu_best_isa());
    fl->mode = mode;
    fl->heads = s->b * s->n;
    fl->sq = s->sq;
    fl->sk = s->sk;
    fl->d = s->d;
    fl->dv = s->dv;
    fl->scale = (float)scale;
    fl->q = q;
    fl->dout = dout;
    const bool grad = mode == BENCH_GRAD;
    if (grad) {
        fl->rows = fasi_backward_rows(s->sq);
        fl->tile = s->sk;
    } else {
        const fasi_blocking blk = fasi_forward_blocking(s->sq, s->sk, mode == BENCH_FWD);
        fl->rows = blk.rows;
        fl->tile = blk.tile;
    }
    fl->blocks = (s->sq + fl->rows - 1) / fl->rows;
    fl->ntasks = grad ? fl->heads : fl->heads * fl->blocks;
    fl->threads = cfg->threads < fl->ntasks ? cfg->threads : (int)fl->ntasks;
    if (fl->threads < 1) fl->threads = 1;
    fl->grain = grad ? 1 : fasi_parallel_grain(fl->ntasks, fl->threads, fl->blocks);

    /* operand storage: per head two operands, plus per block two for the backward */
    const fasi_engine *e = engine;
    op_size h1 = grad ? operand_size(e, s->dv, s->sk) : operand_size(e, s->d, s->sk);
    op_size h2 = grad ? operand_size(e, s->sk, s->d) : operand_size(e, s->sk, s->dv);
    op_size blk = {0, 0};
    for (int64_t b = 0; grad && b < fl->blocks; b++) {
        int64_t nr = s->sq - b * fl->rows < fl->rows ? s->sq - b * fl->rows : fl->rows;
        op_size a = operand_size(e, nr, s->dv), c = operand_size(e, nr, s->d);
        blk.f32 += a.f32 + c.f32;
        blk.own += a.own + c.own;
    }
    const size_t heads = (size_t)fl->heads;
    size_t f32_bytes = heads * (h1.f32 + h2.f32 + blk.f32);
    size_t own_bytes = heads * (h1.own + h2.own + blk.own);
    fl->b1 = calloc(heads, sizeof *fl->b1);
    fl->b2 = calloc(heads, sizeof *fl->b2);
    if (grad) {
        fl->o1 = calloc(heads * (size_t)fl->blocks, sizeof *fl->o1);
        fl->o2 = calloc(heads * (size_t)fl->blocks, sizeof *fl->o2);
    }
    fl->packed = f32_bytes ? bench_alloc(f32_bytes, 1) : NULL;
    fl->own = own_bytes ? bench_alloc(own_bytes, 1) : NULL;
    float *tmp = bench_alloc((size_t)(s->sk * (s->d > s->dv ? s->d : s->dv)), sizeof(float));

    /* per-thread scratch, as the pipeline sizes it */
    const size_t sq = (size_t)s->sq, sk = (size_t)s->sk, d = (size_t)s->d, dv = (size_t)s->dv,
                 rows = (size_t)fl->rows, tile = (size_t)fl->tile;
    size_t work = 0;
    if (e->work_bytes) {
        if (grad) {
            work = max_size(e->work_bytes(rows, sk, dv), e->work_bytes(sk, dv, rows));
            work = max_size(work, e->work_bytes(rows, d, sk));
            work = max_size(work, e->work_bytes(sk, d, rows));
        } else {
            work = max_size(e->work_bytes(rows, tile, d), e->work_bytes(rows, dv, tile));
        }
    }
    const size_t z_s = align64(rows * (grad ? sk : tile) * sizeof(float));
    const size_t z_p = grad ? align64(rows * sk * sizeof(float)) : 0;
    const size_t z_c = grad ? 0 : align64(rows * dv * sizeof(float));
    const size_t z_dq = grad ? align64(sq * d * sizeof(float)) : 0;
    const size_t z_dk = grad ? align64(sk * d * sizeof(float)) : 0;
    const size_t z_dv = grad ? align64(sk * dv * sizeof(float)) : 0;
    const size_t z_work = align64(work);
    const size_t per_thread = z_s + z_p + z_c + z_dq + z_dk + z_dv + z_work;
    fl->t = calloc((size_t)fl->threads, sizeof *fl->t);
    fl->scratch = bench_alloc((size_t)fl->threads, per_thread);
    bool ok = fl->b1 && fl->b2 && (!grad || (fl->o1 && fl->o2)) && (!f32_bytes || fl->packed) &&
              (!own_bytes || fl->own) && tmp && fl->t && fl->scratch;
    if (!ok) {
        bench_free(tmp);
        bench_floor_destroy(fl);
        return NULL;
    }
    uint64_t state = 0x2545f4914f6cdd1dull;
    for (int t = 0; t < fl->threads; t++) {
        unsigned char *at = fl->scratch + (size_t)t * per_thread;
        floor_thread *w = &fl->t[t];
        w->s = (float *)(void *)at;
        at += z_s;
        w->p = z_p ? (float *)(void *)at : NULL;
        at += z_p;
        w->c = z_c ? (float *)(void *)at : NULL;
        at += z_c;
        w->dq = z_dq ? (float *)(void *)at : NULL;
        at += z_dq;
        w->dk = z_dk ? (float *)(void *)at : NULL;
        at += z_dk;
        w->dv = z_dv ? (float *)(void *)at : NULL;
        at += z_dv;
        w->work = z_work ? at : NULL;
        /* Pd, read by the dV product: finite, ordinary magnitude (no subnormals) */
        for (size_t i = 0; w->p && i < rows * sk; i++) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            w->p[i] = (float)((state * 0x2545f4914f6cdd1dull) >> 40) * 0x1p-24f;
        }
    }

    /* the operands, packed once (untimed) */
    unsigned char *f32_at = fl->packed, *own_at = fl->own;
    for (int64_t h = 0; h < fl->heads; h++) {
        const float *kh = k + (size_t)h * sk * d, *vh = v + (size_t)h * sk * dv;
        if (!grad) {
            make_operand(fl, kh, d, s->d, s->sk, true, tmp, &f32_at, &own_at, &fl->b1[h]);
            make_operand(fl, vh, dv, s->sk, s->dv, false, tmp, &f32_at, &own_at, &fl->b2[h]);
            continue;
        }
        make_operand(fl, vh, dv, s->dv, s->sk, true, tmp, &f32_at, &own_at, &fl->b1[h]);
        make_operand(fl, kh, d, s->sk, s->d, false, tmp, &f32_at, &own_at, &fl->b2[h]);
        for (int64_t b = 0; b < fl->blocks; b++) {
            const int64_t i0 = b * fl->rows, nr = s->sq - i0 < fl->rows ? s->sq - i0 : fl->rows;
            const size_t at = (size_t)(h * fl->blocks + b);
            make_operand(fl, dout + ((size_t)h * sq + (size_t)i0) * dv, dv, nr, s->dv, false, tmp,
                         &f32_at, &own_at, &fl->o1[at]);
            make_operand(fl, q + ((size_t)h * sq + (size_t)i0) * d, d, nr, s->d, false, tmp,
                         &f32_at, &own_at, &fl->o2[at]);
        }
    }
    bench_free(tmp);
    return fl;
}
