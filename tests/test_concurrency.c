/* Concurrency: the operator called from several user threads at once (each also running its own
 * OpenMP team) gives the bytes of the same call made serially; the process-wide dropout
 * generator hands every concurrent draw its own offset; fas_last_error() is per thread.
 *
 * Worker threads never call cmocka assertions (cmocka is not thread-safe): they record the
 * first discrepancy in their own slot and the main thread asserts after joining. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <string.h>

#include "attn_case.h"

enum { WORKERS = 6, MIXED_REPS = 40 };

/* ---- mixed calls on different problems ------------------------------------------------- */

typedef struct job_spec {
    int64_t b, n, sq, sk, d, dv;
    bool qt, kt, ta, tb, dx_t;
    int mask_form;
    double scale, keep_prob;
    fas_dtype dtype;
    fas_format in_fmt[4]; /* q, k, v, mask */
    fas_format out_fmt, probs_fmt, dmask_fmt, grad_fmt;
    int grad_rank; /* 2 or 4 */
    fas_impl impl;
    uint64_t seed, offset;
} job_spec;

#define ND FAS_FORMAT_ND
#define NZ FAS_FORMAT_FRACTAL_NZ

/* Different shapes, flags, layouts, dtypes and implementations (one job per line group). */
/* clang-format off */
static const job_spec JOBS[] = {
    /* all ND, no flags, fp16 */
    {.b = 2, .n = 3, .sq = 70, .sk = 45, .d = 32, .dv = 24, .mask_form = MASK_B1SS, .scale = 0.125,
     .keep_prob = 0.8, .dtype = FAS_DTYPE_FLOAT16, .in_fmt = {ND, ND, ND, ND}, .out_fmt = ND,
     .probs_fmt = ND, .dmask_fmt = ND, .grad_fmt = ND, .grad_rank = 2, .impl = FAS_IMPL_AUTO,
     .seed = 11, .offset = 0},
    /* all NZ; query/key transposed, Pd^T . V, dx_transpose */
    {.b = 1, .n = 2, .sq = 33, .sk = 33, .d = 17, .dv = 17, .qt = true, .kt = true, .ta = true,
     .dx_t = true, .mask_form = MASK_11SS, .scale = 0.3, .keep_prob = 0.6,
     .dtype = FAS_DTYPE_FLOAT16, .in_fmt = {NZ, NZ, NZ, NZ}, .out_fmt = NZ, .probs_fmt = NZ,
     .dmask_fmt = NZ, .grad_fmt = NZ, .grad_rank = 4, .impl = FAS_IMPL_AUTO, .seed = 12,
     .offset = 1000},
    /* mixed layouts, value transposed, no dropout */
    {.b = 3, .n = 1, .sq = 129, .sk = 40, .d = 16, .dv = 8, .tb = true, .mask_form = MASK_B11S,
     .scale = 0.25, .keep_prob = 1.0, .dtype = FAS_DTYPE_FLOAT16, .in_fmt = {NZ, ND, ND, ND},
     .out_fmt = NZ, .probs_fmt = ND, .dmask_fmt = NZ, .grad_fmt = ND, .grad_rank = 2,
     .impl = FAS_IMPL_AUTO, .seed = 13, .offset = 7},
    /* Sk > 512: the plain call streams over two key tiles */
    {.b = 1, .n = 2, .sq = 20, .sk = 530, .d = 8, .dv = 12, .kt = true, .mask_form = MASK_1NSS,
     .scale = 0.5, .keep_prob = 0.9, .dtype = FAS_DTYPE_FLOAT16, .in_fmt = {ND, NZ, ND, NZ},
     .out_fmt = NZ, .probs_fmt = ND, .dmask_fmt = ND, .grad_fmt = NZ, .grad_rank = 4,
     .impl = FAS_IMPL_AUTO, .seed = 14, .offset = 123456789},
    /* fp32 tensors, forced portable kernels */
    {.b = 2, .n = 2, .sq = 16, .sk = 16, .d = 64, .dv = 64, .dx_t = true, .mask_form = MASK_BNSS,
     .scale = 0.125, .keep_prob = 0.5, .dtype = FAS_DTYPE_FLOAT, .in_fmt = {NZ, NZ, NZ, NZ},
     .out_fmt = NZ, .probs_fmt = NZ, .dmask_fmt = NZ, .grad_fmt = NZ, .grad_rank = 2,
     .impl = FAS_IMPL_PORTABLE, .seed = 15, .offset = 3},
    /* bf16 tensors, the fp64 reference */
    {.b = 1, .n = 2, .sq = 9, .sk = 11, .d = 5, .dv = 7, .qt = true, .tb = true,
     .mask_form = MASK_111S, .scale = 0.4, .keep_prob = 0.7, .dtype = FAS_DTYPE_BF16,
     .in_fmt = {ND, NZ, ND, ND}, .out_fmt = ND, .probs_fmt = NZ, .dmask_fmt = ND, .grad_fmt = NZ,
     .grad_rank = 4, .impl = FAS_IMPL_REFERENCE, .seed = 16, .offset = 99},
};
/* clang-format on */
#define NJOBS ((int)(sizeof JOBS / sizeof JOBS[0]))

typedef struct job_out {
    fas_tensor out, probs, dmask; /* _fwd_ex with the job's explicit seed */
    fas_tensor plain;             /* fused_attention_score, keep_prob 1 (streaming) */
    fas_tensor dq, dk, dv;        /* _grad_ex from the _fwd_ex outputs */
} job_out;

typedef struct job {
    job_spec s;
    attn_case c;
    fas_tensor dout; /* [B*Sq, N*Dv], or its transpose with dx_t */
    job_out expect;  /* computed serially before any worker starts */
} job;

static fas_tensor grad_tensor(const job *j, int64_t rows, int64_t cols)
{
    const attn_case *c = &j->c;
    if (j->s.grad_rank == 2)
        return fast_tensor_2d(j->s.dtype, j->s.grad_fmt, c->b * rows, c->n * cols);
    return fast_tensor_4d(j->s.dtype, j->s.grad_fmt, c->b, c->n, rows, cols);
}

static void job_out_alloc(const job *j, job_out *o)
{
    const attn_case *c = &j->c;
    const job_spec *s = &j->s;
    o->out = fast_tensor_2d(s->dtype, s->out_fmt, c->b * c->sq, c->n * c->dv);
    o->probs = fast_tensor_4d(s->dtype, s->probs_fmt, c->b, c->n, c->sq, c->sk);
    o->dmask = fast_tensor_4d(FAS_DTYPE_UINT8, s->dmask_fmt, c->b, c->n, c->sq, c->sk);
    o->plain = fast_tensor_2d(s->dtype, s->out_fmt, c->b * c->sq, c->n * c->dv);
    o->dq = grad_tensor(j, c->sq, c->d);
    o->dk = grad_tensor(j, c->sk, c->d);
    o->dv = grad_tensor(j, c->sk, c->dv);
}

static void job_out_free(job_out *o)
{
    fas_tensor *all[7] = {&o->out, &o->probs, &o->dmask, &o->plain, &o->dq, &o->dk, &o->dv};
    for (int i = 0; i < 7; i++) fast_tensor_free(all[i]);
}

/* Stale bytes from an earlier call must not pass for the result of a call that wrote nothing. */
static void poison(fas_tensor *t) { memset(t->data, 0xA7, fas_tensor_bytes(t)); }

static void job_init(job *j, const job_spec *s, fast_rng *r)
{
    memset(j, 0, sizeof *j);
    j->s = *s;
    attn_case *c = &j->c;
    c->b = s->b;
    c->n = s->n;
    c->sq = s->sq;
    c->sk = s->sk;
    c->d = s->d;
    c->dv = s->dv;
    c->qt = s->qt;
    c->kt = s->kt;
    c->ta = s->ta;
    c->tb = s->tb;
    c->mask_form = s->mask_form;
    c->scale = s->scale;
    c->keep_prob = s->keep_prob;
    attn_case_alloc(c, r, s->dtype, s->in_fmt, -2.0, 2.0, -3.0, 0.5);
    j->dout = s->dx_t ? fast_tensor_2d(s->dtype, s->grad_fmt, c->n * c->dv, c->b * c->sq)
                      : fast_tensor_2d(s->dtype, s->grad_fmt, c->b * c->sq, c->n * c->dv);
    fast_fill_uniform(&j->dout, r, -1.0, 1.0);
    job_out_alloc(j, &j->expect);
}

static void job_free(job *j)
{
    job_out_free(&j->expect);
    fast_tensor_free(&j->dout);
    attn_case_free(&j->c);
}

/* The three calls of one round on job j into o; returns the first failing status (FAS_OK if
 * all succeeded) and names the failing call in *what. */
static fas_status job_run(const job *j, job_out *o, int threads, const char **what)
{
    const attn_case *c = &j->c;
    fas_options opt;
    fas_options_init(&opt);
    opt.num_threads = threads;
    opt.impl = j->s.impl;
    opt.has_seed = true;
    opt.seed = j->s.seed;
    opt.offset = j->s.offset;
    fas_tensor *outs[7] = {&o->out, &o->probs, &o->dmask, &o->plain, &o->dq, &o->dk, &o->dv};
    for (int i = 0; i < 7; i++) poison(outs[i]);

    *what = "fused_attention_score_fwd_ex";
    fas_status st = fused_attention_score_fwd_ex(&c->q, &c->k, &c->v, attn_mask_ptr(c), c->scale,
                                                 c->keep_prob, c->qt, c->kt, c->ta, c->tb, false,
                                                 false, &o->out, &o->probs, &o->dmask, &opt);
    if (st != FAS_OK) return st;
    *what = "fused_attention_score (keep_prob 1)";
    st = fused_attention_score(&c->q, &c->k, &c->v, attn_mask_ptr(c), c->scale, 1.0, c->qt, c->kt,
                               c->ta, c->tb, false, false, &o->plain);
    if (st != FAS_OK) return st;
    *what = "fused_attention_score_grad_ex";
    return fused_attention_score_grad_ex(&j->dout, &o->probs, &c->q, &c->k, &c->v, &o->dmask,
                                         c->scale, c->keep_prob, c->qt, c->kt, c->tb, j->s.dx_t,
                                         &o->dq, &o->dk, &o->dv, &opt);
}

/* Name of the first output of got that differs from want, or NULL. */
static const char *job_out_diff(const job_out *got, const job_out *want)
{
    static const char *names[7] = {
        "attention_score", "softmax_output", "drop_mask", "attention_score (plain call)",
        "query_dx",        "key_dw",         "value_dw"};
    const fas_tensor *g[7] = {&got->out, &got->probs, &got->dmask, &got->plain,
                              &got->dq,  &got->dk,    &got->dv};
    const fas_tensor *w[7] = {&want->out, &want->probs, &want->dmask, &want->plain,
                              &want->dq,  &want->dk,    &want->dv};
    for (int i = 0; i < 7; i++)
        if (memcmp(g[i]->data, w[i]->data, fas_tensor_bytes(w[i])) != 0) return names[i];
    return NULL;
}

typedef struct mixed_worker {
    int id;
    job *jobs;
    pthread_barrier_t *start;
    job_out outs[NJOBS]; /* this thread's own outputs, one set per job */
    int calls;
    char failure[512]; /* first discrepancy; "" if none */
} mixed_worker;

static void *mixed_main(void *arg)
{
    mixed_worker *w = arg;
    pthread_barrier_wait(w->start);
    for (int rep = 0; rep < MIXED_REPS && !w->failure[0]; rep++) {
        /* at any moment the workers are on different jobs, and each job is run by several */
        int ji = (w->id + rep) % NJOBS;
        int threads = 1 + (w->id + rep) % 2;
        const char *what = "";
        fas_status st = job_run(&w->jobs[ji], &w->outs[ji], threads, &what);
        w->calls++;
        if (st != FAS_OK) {
            snprintf(w->failure, sizeof w->failure, "worker %d rep %d job %d: %s failed: %s: %s",
                     w->id, rep, ji, what, fas_status_string(st), fas_last_error());
            break;
        }
        const char *diff = job_out_diff(&w->outs[ji], &w->jobs[ji].expect);
        if (diff)
            snprintf(w->failure, sizeof w->failure,
                     "worker %d rep %d job %d (num_threads %d): %s differs from the serial result",
                     w->id, rep, ji, threads, diff);
    }
    return NULL;
}

static void test_concurrent_calls_match_serial(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("concurrent_calls_match_serial", 424242));
    static job jobs[NJOBS];
    for (int i = 0; i < NJOBS; i++) job_init(&jobs[i], &JOBS[i], &r);

    /* expected results, one call at a time; also checks they are reproducible serially */
    for (int i = 0; i < NJOBS; i++) {
        const char *what = "";
        fas_status st = job_run(&jobs[i], &jobs[i].expect, 1, &what);
        if (st != FAS_OK)
            fail_msg("serial job %d: %s: %s: %s", i, what, fas_status_string(st), fas_last_error());
        job_out again;
        job_out_alloc(&jobs[i], &again);
        assert_int_equal(job_run(&jobs[i], &again, 2, &what), FAS_OK);
        const char *diff = job_out_diff(&again, &jobs[i].expect);
        if (diff) fail_msg("serial job %d: %s differs between 1 and 2 threads", i, diff);
        job_out_free(&again);
    }

    static mixed_worker workers[WORKERS];
    pthread_t tid[WORKERS];
    pthread_barrier_t start;
    assert_int_equal(pthread_barrier_init(&start, NULL, WORKERS), 0);
    for (int t = 0; t < WORKERS; t++) {
        mixed_worker *w = &workers[t];
        memset(w, 0, sizeof *w);
        w->id = t;
        w->jobs = jobs;
        w->start = &start;
        for (int i = 0; i < NJOBS; i++) job_out_alloc(&jobs[i], &w->outs[i]);
        assert_int_equal(pthread_create(&tid[t], NULL, mixed_main, w), 0);
    }
    int failures = 0, calls = 0;
    for (int t = 0; t < WORKERS; t++) {
        assert_int_equal(pthread_join(tid[t], NULL), 0);
        if (workers[t].failure[0]) {
            printf("  %s\n", workers[t].failure);
            failures++;
        }
        calls += workers[t].calls;
        for (int i = 0; i < NJOBS; i++) job_out_free(&workers[t].outs[i]);
    }
    pthread_barrier_destroy(&start);
    for (int i = 0; i < NJOBS; i++) job_free(&jobs[i]);
    assert_int_equal(failures, 0);
    assert_int_equal(calls, WORKERS * MIXED_REPS);
}

/* ---- the process-wide generator under contention ---------------------------------------- */

/* B = N = 1, Sq = 16, Sk = 4: each draw advances the offset by ceil(4 / 4) = 1 and its drop
 * mask holds 64 Philox-derived bits, so masks of different offsets are distinct (checked). */
enum { GEN_SQ = 16, GEN_SK = 4, GEN_D = 8, GEN_CALLS = 40, GEN_TOTAL = WORKERS * GEN_CALLS };
#define GEN_SEED 0x5EEDF00Dull
#define GEN_MASK_BYTES (GEN_SQ * GEN_SK)

typedef struct gen_inputs {
    fas_tensor q, k, v;
} gen_inputs;

typedef struct gen_worker {
    const gen_inputs *in;
    pthread_barrier_t *start;
    uint8_t masks[GEN_CALLS][GEN_MASK_BYTES];
    char failure[256];
} gen_worker;

static fas_status gen_call(const gen_inputs *in, fas_tensor *out, fas_tensor *dmask,
                           const fas_options *opt)
{
    return fused_attention_score_fwd_ex(&in->q, &in->k, &in->v, NULL, 0.5, 0.5, false, false, false,
                                        false, false, false, out, NULL, dmask, opt);
}

static void *gen_main(void *arg)
{
    gen_worker *w = arg;
    fas_tensor out = fast_tensor_2d(FAS_DTYPE_FLOAT16, ND, GEN_SQ, GEN_D);
    fas_tensor dmask = fast_tensor_4d(FAS_DTYPE_UINT8, ND, 1, 1, GEN_SQ, GEN_SK);
    pthread_barrier_wait(w->start);
    for (int i = 0; i < GEN_CALLS; i++) {
        /* alternate the plain _fwd and _fwd_ex without a seed: both draw */
        fas_status st;
        if (i % 2) {
            st = fused_attention_score_fwd(&w->in->q, &w->in->k, &w->in->v, NULL, 0.5, 0.5, false,
                                           false, false, false, false, false, &out, NULL, &dmask);
        } else {
            fas_options opt;
            fas_options_init(&opt);
            opt.num_threads = 1 + i % 4 / 2;
            st = gen_call(w->in, &out, &dmask, &opt);
        }
        if (st != FAS_OK) {
            snprintf(w->failure, sizeof w->failure, "call %d: %s: %s", i, fas_status_string(st),
                     fas_last_error());
            break;
        }
        memcpy(w->masks[i], dmask.data, GEN_MASK_BYTES);
    }
    fast_tensor_free(&out);
    fast_tensor_free(&dmask);
    return NULL;
}

static void test_generator_offsets_distinct(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, 5);
    gen_inputs in;
    in.q = fast_tensor_4d(FAS_DTYPE_FLOAT16, ND, 1, 1, GEN_SQ, GEN_D);
    in.k = fast_tensor_4d(FAS_DTYPE_FLOAT16, ND, 1, 1, GEN_SK, GEN_D);
    in.v = fast_tensor_4d(FAS_DTYPE_FLOAT16, ND, 1, 1, GEN_SK, GEN_D);
    fast_fill_uniform(&in.q, &r, -1, 1);
    fast_fill_uniform(&in.k, &r, -1, 1);
    fast_fill_uniform(&in.v, &r, -1, 1);

    /* the mask every offset must produce: explicit seed, offsets 0 .. GEN_TOTAL */
    static uint8_t expect[GEN_TOTAL + 1][GEN_MASK_BYTES];
    fas_tensor out = fast_tensor_2d(FAS_DTYPE_FLOAT16, ND, GEN_SQ, GEN_D);
    fas_tensor dmask = fast_tensor_4d(FAS_DTYPE_UINT8, ND, 1, 1, GEN_SQ, GEN_SK);
    for (int o = 0; o <= GEN_TOTAL; o++) {
        fas_options opt;
        fas_options_init(&opt);
        opt.num_threads = 1;
        opt.has_seed = true;
        opt.seed = GEN_SEED;
        opt.offset = (uint64_t)o;
        assert_int_equal(gen_call(&in, &out, &dmask, &opt), FAS_OK);
        memcpy(expect[o], dmask.data, GEN_MASK_BYTES);
    }
    for (int a = 0; a <= GEN_TOTAL; a++)
        for (int b = a + 1; b <= GEN_TOTAL; b++)
            if (memcmp(expect[a], expect[b], GEN_MASK_BYTES) == 0)
                fail_msg("offsets %d and %d give the same mask: the test cannot tell them apart", a,
                         b);

    fas_manual_seed(GEN_SEED);
    static gen_worker workers[WORKERS];
    pthread_t tid[WORKERS];
    pthread_barrier_t start;
    assert_int_equal(pthread_barrier_init(&start, NULL, WORKERS), 0);
    for (int t = 0; t < WORKERS; t++) {
        memset(&workers[t], 0, sizeof workers[t]);
        workers[t].in = &in;
        workers[t].start = &start;
        assert_int_equal(pthread_create(&tid[t], NULL, gen_main, &workers[t]), 0);
    }
    for (int t = 0; t < WORKERS; t++) assert_int_equal(pthread_join(tid[t], NULL), 0);
    pthread_barrier_destroy(&start);

    int used[GEN_TOTAL];
    memset(used, 0, sizeof used);
    for (int t = 0; t < WORKERS; t++) {
        if (workers[t].failure[0]) fail_msg("worker %d: %s", t, workers[t].failure);
        int prev = -1;
        for (int i = 0; i < GEN_CALLS; i++) {
            int found = -1;
            for (int o = 0; o < GEN_TOTAL && found < 0; o++)
                if (memcmp(workers[t].masks[i], expect[o], GEN_MASK_BYTES) == 0) found = o;
            if (found < 0)
                fail_msg("worker %d call %d: drop mask matches no offset in [0, %d)", t, i,
                         GEN_TOTAL);
            used[found]++;
            /* one thread's draws are ordered: its offsets increase */
            if (found <= prev) fail_msg("worker %d call %d: offset %d after %d", t, i, found, prev);
            prev = found;
        }
    }
    for (int o = 0; o < GEN_TOTAL; o++)
        if (used[o] != 1)
            fail_msg("offset %d was used by %d calls (expected exactly 1)", o, used[o]);

    /* the generator now stands at GEN_TOTAL */
    assert_int_equal(fused_attention_score_fwd(&in.q, &in.k, &in.v, NULL, 0.5, 0.5, false, false,
                                               false, false, false, false, &out, NULL, &dmask),
                     FAS_OK);
    assert_memory_equal(dmask.data, expect[GEN_TOTAL], GEN_MASK_BYTES);

    fast_tensor_free(&out);
    fast_tensor_free(&dmask);
    fast_tensor_free(&in.q);
    fast_tensor_free(&in.k);
    fast_tensor_free(&in.v);
}

/* ---- fas_last_error() is per thread ------------------------------------------------------ */

enum { ERR_THREADS = 4, ERR_ROUNDS = 60 };

/* Tiny valid problem: each thread has its own outputs; inputs are shared. */
typedef struct err_inputs {
    fas_tensor q, k, v, k_bad; /* k_bad: D = 5 where q has D = 4 */
} err_inputs;

/* Thread kind 0 fails on keep_prob, 1 on key_layer's shape, 2 on a NULL query_layer; kind 3
 * only ever succeeds. */
static fas_status err_call(const err_inputs *in, int kind, bool fail, fas_tensor *out)
{
    double keep = 1.0;
    const fas_tensor *q = &in->q, *k = &in->k;
    if (fail) {
        if (kind == 0) keep = 0.0;
        if (kind == 1) k = &in->k_bad;
        if (kind == 2) q = NULL;
    }
    return fused_attention_score(q, k, &in->v, NULL, 1.0, keep, false, false, false, false, false,
                                 false, out);
}

typedef struct err_worker {
    int kind;
    const err_inputs *in;
    const char *expect_msg; /* message of this kind's failing call, recorded serially */
    pthread_barrier_t *phase;
    char failure[768];
} err_worker;

static void *err_main(void *arg)
{
    err_worker *w = arg;
    fas_tensor out = fast_tensor_2d(FAS_DTYPE_FLOAT16, ND, 3, 4);
    for (int round = 0; round < ERR_ROUNDS; round++) {
        /* failing threads fail in alternate rounds, each kind on its own parity */
        bool fail = w->kind < 3 && (round + w->kind) % 2 == 0;
        fas_status st = err_call(w->in, w->kind, fail, &out);
        const char *want = fail ? w->expect_msg : "";
        char seen[512];
        snprintf(seen, sizeof seen, "%s", fas_last_error());
        if (!w->failure[0] && ((st != FAS_OK) != fail || strcmp(seen, want) != 0))
            snprintf(w->failure, sizeof w->failure,
                     "kind %d round %d: own call returned %s with message \"%s\", expected \"%s\"",
                     w->kind, round, fas_status_string(st), seen, want);
        /* every thread has made its call of this round */
        pthread_barrier_wait(w->phase);
        const char *now = fas_last_error();
        if (!w->failure[0] && strcmp(now, want) != 0)
            snprintf(w->failure, sizeof w->failure,
                     "kind %d round %d: message changed to \"%s\" after the other threads' calls "
                     "(expected \"%s\")",
                     w->kind, round, now, want);
        /* every thread has checked before anyone calls again */
        pthread_barrier_wait(w->phase);
    }
    fast_tensor_free(&out);
    return NULL;
}

static void test_last_error_per_thread(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, 9);
    err_inputs in;
    in.q = fast_tensor_4d(FAS_DTYPE_FLOAT16, ND, 1, 1, 3, 4);
    in.k = fast_tensor_4d(FAS_DTYPE_FLOAT16, ND, 1, 1, 6, 4);
    in.v = fast_tensor_4d(FAS_DTYPE_FLOAT16, ND, 1, 1, 6, 4);
    in.k_bad = fast_tensor_4d(FAS_DTYPE_FLOAT16, ND, 1, 1, 6, 5);
    fast_fill_uniform(&in.q, &r, -1, 1);
    fast_fill_uniform(&in.k, &r, -1, 1);
    fast_fill_uniform(&in.v, &r, -1, 1);
    fast_fill_uniform(&in.k_bad, &r, -1, 1);

    /* each kind's failure message, made serially; they must be distinct and non-empty */
    static const fas_status codes[3] = {FAS_ERR_VALUE, FAS_ERR_SHAPE, FAS_ERR_NULL_POINTER};
    static char msgs[3][512];
    fas_tensor out = fast_tensor_2d(FAS_DTYPE_FLOAT16, ND, 3, 4);
    for (int kind = 0; kind < 3; kind++) {
        assert_int_equal(err_call(&in, kind, true, &out), codes[kind]);
        snprintf(msgs[kind], sizeof msgs[kind], "%s", fas_last_error());
        printf("  kind %d: %s\n", kind, msgs[kind]);
        assert_true(msgs[kind][0] != '\0');
    }
    assert_string_not_equal(msgs[0], msgs[1]);
    assert_string_not_equal(msgs[1], msgs[2]);
    assert_string_not_equal(msgs[0], msgs[2]);
    assert_int_equal(err_call(&in, 3, false, &out), FAS_OK);
    assert_string_equal(fas_last_error(), "");

    /* main thread's own message survives the workers' calls */
    assert_int_equal(err_call(&in, 1, true, &out), FAS_ERR_SHAPE);
    fast_tensor_free(&out);

    static err_worker workers[ERR_THREADS];
    pthread_t tid[ERR_THREADS];
    pthread_barrier_t phase;
    assert_int_equal(pthread_barrier_init(&phase, NULL, ERR_THREADS), 0);
    for (int t = 0; t < ERR_THREADS; t++) {
        memset(&workers[t], 0, sizeof workers[t]);
        workers[t].kind = t;
        workers[t].in = &in;
        workers[t].expect_msg = t < 3 ? msgs[t] : "";
        workers[t].phase = &phase;
        assert_int_equal(pthread_create(&tid[t], NULL, err_main, &workers[t]), 0);
    }
    int failures = 0;
    for (int t = 0; t < ERR_THREADS; t++) {
        assert_int_equal(pthread_join(tid[t], NULL), 0);
        if (workers[t].failure[0]) {
            printf("  %s\n", workers[t].failure);
            failures++;
        }
    }
    pthread_barrier_destroy(&phase);
    assert_int_equal(failures, 0);
    assert_string_equal(fas_last_error(), msgs[1]);

    fast_tensor_free(&in.q);
    fast_tensor_free(&in.k);
    fast_tensor_free(&in.v);
    fast_tensor_free(&in.k_bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_calls_match_serial),
        cmocka_unit_test(test_generator_offsets_distinct),
        cmocka_unit_test(test_last_error_per_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
