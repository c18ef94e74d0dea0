/* Backward operator: _fwd then _grad through the pipeline vs the fp64 reference backward vs a
 * test-side oracle; GV-B1 structure; determinism. Accuracy contract: docs/semantics.md §2. */
#include <math.h>
#include <string.h>

#include "attn_case.h"

#define CASE_BUDGET 2000000.0

typedef struct grad_case {
    attn_case c;      /* forward inputs; c.tb doubles as value_transpose */
    bool dx_t;        /* dx_transpose */
    int rank;         /* 2 or 4 */
    fas_tensor dout;  /* [B*Sq, N*Dv] or its transpose */
    fas_tensor probs; /* from _fwd */
    fas_tensor dmask; /* from _fwd */
} grad_case;

typedef struct grads {
    fas_tensor dq, dk, dv;
} grads;

static void grads_alloc(grads *g, const attn_case *c, int rank, fas_dtype dt, fas_format f)
{
    if (rank == 2) {
        g->dq = fast_tensor_2d(dt, f, c->b * c->sq, c->n * c->d);
        g->dk = fast_tensor_2d(dt, f, c->b * c->sk, c->n * c->d);
        g->dv = fast_tensor_2d(dt, f, c->b * c->sk, c->n * c->dv);
    } else {
        g->dq = fast_tensor_4d(dt, f, c->b, c->n, c->sq, c->d);
        g->dk = fast_tensor_4d(dt, f, c->b, c->n, c->sk, c->d);
        g->dv = fast_tensor_4d(dt, f, c->b, c->n, c->sk, c->dv);
    }
}

static void grads_free(grads *g)
{
    fast_tensor_free(&g->dq);
    fast_tensor_free(&g->dk);
    fast_tensor_free(&g->dv);
}

static fas_status run_grad(const grad_case *g, fas_impl impl, int threads, grads *out)
{
    const attn_case *c = &g->c;
    fas_options o;
    fas_options_init(&o);
    o.impl = impl;
    o.num_threads = threads;
    return fused_attention_score_grad_ex(&g->dout, &g->probs, &c->q, &c->k, &c->v, &g->dmask,
                                         c->scale, c->keep_prob, c->qt, c->kt, c->tb, g->dx_t,
                                         &out->dq, &out->dk, &out->dv, &o);
}

/* Logical element (b, n, r, col) of a gradient as the test reads it back (ND copy). */
static int64_t grad_index(const attn_case *c, int rank, int64_t rows, int64_t cols, int64_t b,
                          int64_t n, int64_t r, int64_t col)
{
    if (rank == 2) return (b * rows + r) * (c->n * cols) + n * cols + col;
    return ((b * c->n + n) * rows + r) * cols + col;
}

/* Test-side oracle of docs/semantics.md §6 from logical values. */
static void oracle_backward(const grad_case *g, double *dq, double *dk, double *dv)
{
    const attn_case *c = &g->c;
    float *q = fast_to_f32(&c->q), *k = fast_to_f32(&c->k), *v = fast_to_f32(&c->v);
    float *p = fast_to_f32(&g->probs), *dout = fast_to_f32(&g->dout);
    uint8_t *keep = fast_to_u8(&g->dmask);
    int64_t sq = c->sq, sk = c->sk, d = c->d, e = c->dv, nr = c->n;
    double *da = malloc((size_t)(sq * sk) * sizeof *da);
    assert_non_null(da);
    for (int64_t b = 0; b < c->b; b++) {
        for (int64_t n = 0; n < nr; n++) {
            int64_t h = b * nr + n;
#define Q(i, t) (double)(c->qt ? q[(h * d + (t)) * sq + (i)] : q[(h * sq + (i)) * d + (t)])
#define K(j, t) (double)(c->kt ? k[(h * d + (t)) * sk + (j)] : k[(h * sk + (j)) * d + (t)])
#define V(j, t) (double)(c->tb ? v[(h * e + (t)) * sk + (j)] : v[(h * sk + (j)) * e + (t)])
#define DO(i, t)                                                                                   \
    (double)(g->dx_t ? dout[(n * e + (t)) * (c->b * sq) + b * sq + (i)]                            \
                     : dout[(b * sq + (i)) * (nr * e) + n * e + (t)])
#define P(i, j) (double)p[(h * sq + (i)) * sk + (j)]
#define G(i, j) (keep[(h * sq + (i)) * sk + (j)] / c->keep_prob)
            for (int64_t j = 0; j < sk; j++)
                for (int64_t t = 0; t < e; t++) {
                    double acc = 0;
                    for (int64_t i = 0; i < sq; i++) acc += P(i, j) * G(i, j) * DO(i, t);
                    dv[grad_index(c, g->rank, sk, e, b, n, j, t)] = acc;
                }
            for (int64_t i = 0; i < sq; i++) {
                double rowdot = 0;
                for (int64_t j = 0; j < sk; j++) {
                    double dp = 0;
                    for (int64_t t = 0; t < e; t++) dp += DO(i, t) * V(j, t);
                    da[i * sk + j] = dp * G(i, j);
                    rowdot += da[i * sk + j] * P(i, j);
                }
                for (int64_t j = 0; j < sk; j++)
                    da[i * sk + j] = c->scale * P(i, j) * (da[i * sk + j] - rowdot);
            }
            for (int64_t i = 0; i < sq; i++)
                for (int64_t t = 0; t < d; t++) {
                    double acc = 0;
                    for (int64_t j = 0; j < sk; j++) acc += da[i * sk + j] * K(j, t);
                    dq[grad_index(c, g->rank, sq, d, b, n, i, t)] = acc;
                }
            for (int64_t j = 0; j < sk; j++)
                for (int64_t t = 0; t < d; t++) {
                    double acc = 0;
                    for (int64_t i = 0; i < sq; i++) acc += da[i * sk + j] * Q(i, t);
                    dk[grad_index(c, g->rank, sk, d, b, n, j, t)] = acc;
                }
#undef Q
#undef K
#undef V
#undef DO
#undef P
#undef G
        }
    }
    free(da);
    free(q);
    free(k);
    free(v);
    free(p);
    free(dout);
    free(keep);
}

static fas_format random_format(fast_rng *r)
{
    return fast_rng_int(r, 0, 1) ? FAS_FORMAT_FRACTAL_NZ : FAS_FORMAT_ND;
}

/* Run _fwd (pipeline) to produce P and the mask, then fill dO. */
static void grad_case_setup(grad_case *g, fast_rng *r, double dout_lo, double dout_hi)
{
    attn_case *c = &g->c;
    fas_format fmt[4] = {random_format(r), random_format(r), random_format(r), random_format(r)};
    attn_case_alloc(c, r, FAS_DTYPE_FLOAT16, fmt, -2.0, 2.0, -3.0, 0.5);
    g->probs = fast_tensor_4d(FAS_DTYPE_FLOAT16, random_format(r), c->b, c->n, c->sq, c->sk);
    g->dmask = fast_tensor_4d(FAS_DTYPE_UINT8, random_format(r), c->b, c->n, c->sq, c->sk);
    fas_tensor out = fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, c->b * c->sq, c->n * c->dv);
    assert_int_equal(
        attn_run_forward(c, FAS_IMPL_AUTO, 0, fast_rng_u64(r), 0, &out, &g->probs, &g->dmask),
        FAS_OK);
    fast_tensor_free(&out);
    g->dout = g->dx_t
                  ? fast_tensor_2d(FAS_DTYPE_FLOAT16, random_format(r), c->n * c->dv, c->b * c->sq)
                  : fast_tensor_2d(FAS_DTYPE_FLOAT16, random_format(r), c->b * c->sq, c->n * c->dv);
    fast_fill_uniform(&g->dout, r, dout_lo, dout_hi);
}

static void grad_case_free(grad_case *g)
{
    fast_tensor_free(&g->dout);
    fast_tensor_free(&g->probs);
    fast_tensor_free(&g->dmask);
    attn_case_free(&g->c);
}

static void print_grad_case(const grad_case *g, int index)
{
    attn_case_print(&g->c, index);
    printf("    value_transpose=%d dx_transpose=%d rank=%d\n", g->c.tb, g->dx_t, g->rank);
}

static double *to_double(const float *x, int64_t n)
{
    double *d = malloc((size_t)n * sizeof *d);
    assert_non_null(d);
    for (int64_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* Pipeline (fp16, random format) vs reference (fp32 ND) within the contract; reference vs the
 * oracle within 1e-5 relative. */
static void check_case(grad_case *g, fast_rng *r, int index)
{
    attn_case *c = &g->c;
    grads pipe, ref;
    grads_alloc(&pipe, c, g->rank, FAS_DTYPE_FLOAT16, random_format(r));
    grads_alloc(&ref, c, g->rank, FAS_DTYPE_FLOAT, FAS_FORMAT_ND);
    fas_status st = run_grad(g, FAS_IMPL_AUTO, 0, &pipe);
    if (st != FAS_OK) {
        print_grad_case(g, index);
        printf("  %s: %s\n", fas_status_string(st), fas_last_error());
    }
    assert_int_equal(st, FAS_OK);
    assert_int_equal(run_grad(g, FAS_IMPL_REFERENCE, 1, &ref), FAS_OK);

    int64_t nq = c->b * c->n * c->sq * c->d, nk = c->b * c->n * c->sk * c->d,
            nv = c->b * c->n * c->sk * c->dv;
    double *oq = malloc((size_t)nq * sizeof *oq), *ok = malloc((size_t)nk * sizeof *ok),
           *ov = malloc((size_t)nv * sizeof *ov);
    assert_non_null(oq);
    assert_non_null(ok);
    assert_non_null(ov);
    oracle_backward(g, oq, ok, ov);
    fas_tensor *pt[3] = {&pipe.dq, &pipe.dk, &pipe.dv}, *rt[3] = {&ref.dq, &ref.dk, &ref.dv};
    double *orc[3] = {oq, ok, ov};
    int64_t counts[3] = {nq, nk, nv};
    const char *names[3] = {"dQ", "dK", "dV"};
    int64_t failures = 0;
    for (int i = 0; i < 3; i++) {
        float *got = fast_to_f32(pt[i]), *refv = fast_to_f32(rt[i]);
        double *refd = to_double(refv, counts[i]);
        char what[64];
        snprintf(what, sizeof what, "%s reference vs oracle", names[i]);
        failures += fast_check_close(what, refv, orc[i], counts[i], 1e-5, 1e-6).failures;
        snprintf(what, sizeof what, "%s pipeline vs reference", names[i]);
        fast_close_stats cs =
            fast_check_close(what, got, refd, counts[i], FAST_RTOL, FAST_ATOL_FRAC);
        failures += cs.failures;
        if (getenv("FAS_TEST_VERBOSE"))
            printf("  case %d %s: max abs %.3g, max rel %.3g, worst/tolerance %.3f\n", index,
                   names[i], cs.max_abs, cs.max_rel, cs.worst_excess + 1.0);
        free(got);
        free(refv);
        free(refd);
    }
    if (failures) print_grad_case(g, index);
    assert_int_equal(failures, 0);
    free(oq);
    free(ok);
    free(ov);
    grads_free(&pipe);
    grads_free(&ref);
}

static void test_random_cases(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("grad_random_cases", 4242));
    for (int i = 0; i < 70; i++) {
        grad_case g;
        memset(&g, 0, sizeof g);
        attn_case *c = &g.c;
        c->b = fast_rng_int(&r, 1, 3);
        c->n = fast_rng_int(&r, 1, 3);
        c->sq = fast_rng_int(&r, 1, 200);
        c->sk = fast_rng_int(&r, 1, 200);
        c->d = fast_rng_int(&r, 1, 100);
        c->dv = fast_rng_int(&r, 1, 100);
        for (;;) {
            double vol = (double)c->b * c->n * c->sq * c->sk * (double)(c->d + c->dv);
            if (vol <= CASE_BUDGET) break;
            int64_t *big = &c->sq, *cand[4] = {&c->sq, &c->sk, &c->d, &c->dv};
            for (int t = 1; t < 4; t++)
                if (*cand[t] > *big) big = cand[t];
            *big = (*big + 1) / 2;
        }
        int flags = (int)fast_rng_int(&r, 0, 15);
        c->qt = flags & 1;
        c->kt = flags & 2;
        c->tb = flags & 4;
        g.dx_t = flags & 8;
        g.rank = fast_rng_int(&r, 0, 1) ? 4 : 2;
        c->mask_form = (int)fast_rng_int(&r, 0, MASK_FORMS - 1);
        c->keep_prob = fast_rng_int(&r, 0, 1) ? 0.8 : 1.0;
        c->scale = 1.0 / sqrt((double)c->d);
        grad_case_setup(&g, &r, -1.0, 1.0);
        check_case(&g, &r, i);
        grad_case_free(&g);
    }
}

/* GV-B1 (scaled): GV-F1 inputs, constant dO = 1000 / (12288 * 1024). Keys j >= 6 carry zero
 * probability, so dV and dK rows j >= 6 are exactly zero; with constant dO every column of a dV
 * row is the same sum. */
static void test_gv_b1_scaled(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("gv_b1", 1));
    grad_case g;
    memset(&g, 0, sizeof g);
    attn_case *c = &g.c;
    c->b = 2;
    c->n = 4;
    c->sq = c->sk = 128;
    c->d = c->dv = 64;
    c->mask_form = MASK_B1SS;
    c->scale = 0.125;
    c->keep_prob = 1.0;
    g.rank = 2;
    fas_format nz[4] = {FAS_FORMAT_FRACTAL_NZ, FAS_FORMAT_FRACTAL_NZ, FAS_FORMAT_FRACTAL_NZ,
                        FAS_FORMAT_FRACTAL_NZ};
    attn_case_alloc(c, &r, FAS_DTYPE_FLOAT16, nz, -3.0, 3.0, 0.0, 0.0);
    int64_t s = c->sq, nm = c->b * s * s;
    float *mv = malloc((size_t)nm * sizeof *mv);
    assert_non_null(mv);
    for (int64_t i = 0; i < nm; i++) mv[i] = (i % s) < 6 ? 0.0f : -10000.0f;
    fast_from_f32(&c->mask, mv);
    free(mv);
    g.probs = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, c->b, c->n, s, s);
    g.dmask = fast_tensor_4d(FAS_DTYPE_UINT8, FAS_FORMAT_FRACTAL_NZ, c->b, c->n, s, s);
    fas_tensor out =
        fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, c->b * s, c->n * c->dv);
    assert_int_equal(attn_run_forward(c, FAS_IMPL_AUTO, 0, 1, 0, &out, &g.probs, &g.dmask), FAS_OK);
    fast_tensor_free(&out);
    g.dout = fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, c->b * s, c->n * c->dv);
    int64_t nd = c->b * s * c->n * c->dv;
    float *dv_vals = malloc((size_t)nd * sizeof *dv_vals);
    assert_non_null(dv_vals);
    for (int64_t i = 0; i < nd; i++) dv_vals[i] = 1000.0f / (12288.0f * 1024.0f);
    fast_from_f32(&g.dout, dv_vals);
    free(dv_vals);

    grads pipe;
    grads_alloc(&pipe, c, 2, FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ);
    assert_int_equal(run_grad(&g, FAS_IMPL_AUTO, 0, &pipe), FAS_OK);
    float *dk = fast_to_f32(&pipe.dk), *dvv = fast_to_f32(&pipe.dv);
    int64_t cols_k = c->n * c->d, cols_v = c->n * c->dv;
    for (int64_t row = 0; row < c->b * s; row++) {
        int64_t j = row % s;
        for (int64_t col = 0; col < cols_k; col++)
            if (j >= 6 && dk[row * cols_k + col] != 0.0f)
                fail_msg("dK[%lld,%lld] != 0", (long long)row, (long long)col);
        for (int64_t col = 0; col < cols_v; col++) {
            if (j >= 6 && dvv[row * cols_v + col] != 0.0f)
                fail_msg("dV[%lld,%lld] != 0", (long long)row, (long long)col);
            int64_t head_first = (col / c->dv) * c->dv;
            assert_true(dvv[row * cols_v + col] == dvv[row * cols_v + head_first]);
        }
    }
    free(dk);
    free(dvv);
    check_case(&g, &r, 0);
    grads_free(&pipe);
    grad_case_free(&g);
}

static void test_thread_determinism(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, 99);
    grad_case g;
    memset(&g, 0, sizeof g);
    attn_case *c = &g.c;
    c->b = 2;
    c->n = 3;
    c->sq = 45;
    c->sk = 70;
    c->d = 24;
    c->dv = 17;
    c->mask_form = MASK_BNSS;
    c->scale = 0.3;
    c->keep_prob = 0.8;
    g.rank = 4;
    grad_case_setup(&g, &r, -1.0, 1.0);
    grads base;
    grads_alloc(&base, c, 4, FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ);
    assert_int_equal(run_grad(&g, FAS_IMPL_AUTO, 1, &base), FAS_OK);
    for (int t = 2; t <= 3; t++) {
        grads o;
        grads_alloc(&o, c, 4, FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ);
        assert_int_equal(run_grad(&g, FAS_IMPL_AUTO, t, &o), FAS_OK);
        assert_memory_equal(o.dq.data, base.dq.data, fas_tensor_bytes(&o.dq));
        assert_memory_equal(o.dk.data, base.dk.data, fas_tensor_bytes(&o.dk));
        assert_memory_equal(o.dv.data, base.dv.data, fas_tensor_bytes(&o.dv));
        grads_free(&o);
    }
    grads_free(&base);
    grad_case_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gv_b1_scaled),
        cmocka_unit_test(test_random_cases),
        cmocka_unit_test(test_thread_determinism),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
