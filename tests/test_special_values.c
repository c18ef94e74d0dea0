/* NaN and +-inf in query, key, value, mask and grad_output propagate as the same math does in
 * torch (fp32 softmax, IEEE arithmetic), with one documented exception (docs/semantics.md §3): a
 * softmax row whose logits are all -inf gives a zero row of P (torch: 0/0 = NaN).
 *
 * Expectations come from a test-side fp64 implementation of docs/semantics.md §1/§6 written with
 * plain IEEE operations and that single policy: max over a row propagates NaN (as torch's does), so
 * a NaN or +inf logit makes its whole row NaN; the context is P.V with 0 * NaN = NaN. Every case
 * runs through FAS_IMPL_AUTO with softmax_output (materialising) and without it (streaming,
 * online softmax), the same for each forced SIMD level this CPU has, and FAS_IMPL_REFERENCE with
 * and without softmax_output, in ND and in FRACTAL_NZ; NaN and inf positions must agree exactly
 * with the expectation (hence between all runs), finite values within the docs/semantics.md §2
 * contract. Each test also states its expected NaN pattern directly, so the oracle cannot drift
 * unnoticed. keep_prob is 1 except in test_dropout_multiplies_nan. */
#include <math.h>
#include <string.h>

#include "fas_test.h"

/* ---- a case: logical fp32 arrays (values exact in fp16) --------------------------------- */

typedef struct sv_case {
    int64_t b, n, sq, sk, d, dv;
    double scale;
    float *q, *k, *v; /* [B,N,Sq,D], [B,N,Sk,D], [B,N,Sk,Dv] */
    float *mask;      /* [B,1,Sq,Sk]; NULL = no mask */
} sv_case;

static int64_t q_at(const sv_case *c, int64_t b, int64_t n, int64_t i, int64_t t)
{
    return ((b * c->n + n) * c->sq + i) * c->d + t;
}
static int64_t k_at(const sv_case *c, int64_t b, int64_t n, int64_t j, int64_t t)
{
    return ((b * c->n + n) * c->sk + j) * c->d + t;
}
static int64_t v_at(const sv_case *c, int64_t b, int64_t n, int64_t j, int64_t e)
{
    return ((b * c->n + n) * c->sk + j) * c->dv + e;
}
static int64_t m_at(const sv_case *c, int64_t b, int64_t i, int64_t j)
{
    return (b * c->sq + i) * c->sk + j;
}
static int64_t p_at(const sv_case *c, int64_t b, int64_t n, int64_t i, int64_t j)
{
    return ((b * c->n + n) * c->sq + i) * c->sk + j;
}
/* context / grad_output: row b*Sq+i, column n*Dv+e */
static int64_t c_at(const sv_case *c, int64_t b, int64_t n, int64_t i, int64_t e)
{
    return (b * c->sq + i) * (c->n * c->dv) + n * c->dv + e;
}

static int64_t n_q(const sv_case *c) { return c->b * c->n * c->sq * c->d; }
static int64_t n_k(const sv_case *c) { return c->b * c->n * c->sk * c->d; }
static int64_t n_v(const sv_case *c) { return c->b * c->n * c->sk * c->dv; }
static int64_t n_m(const sv_case *c) { return c->b * c->sq * c->sk; }
static int64_t n_p(const sv_case *c) { return c->b * c->n * c->sq * c->sk; }
static int64_t n_c(const sv_case *c) { return c->b * c->sq * c->n * c->dv; }

static float *falloc(int64_t n)
{
    float *x = calloc((size_t)n, sizeof *x);
    assert_non_null(x);
    return x;
}

/* Multiples of 1/8 in [-1, 1): exact in fp16, and with D <= 8 every logit scale * q.k + mask is
 * exact in fp32, so the fp32 pipeline and the fp64 expectation see the same logits even next
 * to a mask of -65504. */
static void fill_dyadic(float *x, int64_t n, fast_rng *r)
{
    for (int64_t i = 0; i < n; i++) x[i] = (float)(fast_rng_int(r, -8, 7)) / 8.0f;
}

static void sv_init(sv_case *c, int64_t b, int64_t n, int64_t sq, int64_t sk, int64_t d, int64_t dv,
                    bool with_mask, uint64_t seed)
{
    memset(c, 0, sizeof *c);
    c->b = b;
    c->n = n;
    c->sq = sq;
    c->sk = sk;
    c->d = d;
    c->dv = dv;
    c->scale = 0.5;
    fast_rng r;
    fast_rng_seed(&r, seed);
    c->q = falloc(n_q(c));
    c->k = falloc(n_k(c));
    c->v = falloc(n_v(c));
    fill_dyadic(c->q, n_q(c), &r);
    fill_dyadic(c->k, n_k(c), &r);
    fill_dyadic(c->v, n_v(c), &r);
    c->mask = with_mask ? falloc(n_m(c)) : NULL; /* zeros */
}

static void sv_free(sv_case *c)
{
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->mask);
}

/* ---- the expectation (fp64, plain IEEE, all -inf row -> zeros) ------------------------- */

static void softmax_row_ieee(double *x, int64_t n)
{
    double mx = -INFINITY;
    bool any_nan = false;
    for (int64_t j = 0; j < n; j++) {
        if (isnan(x[j]))
            any_nan = true;
        else if (x[j] > mx)
            mx = x[j];
    }
    if (any_nan) mx = NAN; /* torch's max propagates NaN */
    if (mx == -INFINITY) { /* the library's documented policy */
        for (int64_t j = 0; j < n; j++) x[j] = 0.0;
        return;
    }
    double sum = 0.0;
    for (int64_t j = 0; j < n; j++) {
        x[j] = exp(x[j] - mx);
        sum += x[j];
    }
    for (int64_t j = 0; j < n; j++) x[j] /= sum;
}

static void oracle_forward(const sv_case *c, double *p, double *ctx)
{
    for (int64_t b = 0; b < c->b; b++)
        for (int64_t n = 0; n < c->n; n++) {
            for (int64_t i = 0; i < c->sq; i++) {
                double *row = p + p_at(c, b, n, i, 0);
                for (int64_t j = 0; j < c->sk; j++) {
                    double a = 0.0;
                    for (int64_t t = 0; t < c->d; t++)
                        a += (double)c->q[q_at(c, b, n, i, t)] * c->k[k_at(c, b, n, j, t)];
                    row[j] = a * c->scale + (c->mask ? c->mask[m_at(c, b, i, j)] : 0.0);
                }
                softmax_row_ieee(row, c->sk);
            }
            for (int64_t i = 0; i < c->sq; i++)
                for (int64_t e = 0; e < c->dv; e++) {
                    double s = 0.0;
                    for (int64_t j = 0; j < c->sk; j++)
                        s += p[p_at(c, b, n, i, j)] * c->v[v_at(c, b, n, j, e)];
                    ctx[c_at(c, b, n, i, e)] = s;
                }
        }
}

/* dV = P^T dO, dP = dO V^T, dX = P (dP - rowsum(dP P)), dA = scale dX, dQ = dA K, dK = dA^T Q;
 * gradients [B,N,S,D]. p is the P the backward is given (read back from fp16). */
static void oracle_backward(const sv_case *c, const float *p, const float *dout, double *dq,
                            double *dk, double *dv)
{
    int64_t sq = c->sq, sk = c->sk;
    double *da = malloc((size_t)(sq * sk) * sizeof *da);
    assert_non_null(da);
    for (int64_t b = 0; b < c->b; b++)
        for (int64_t n = 0; n < c->n; n++) {
            int64_t h = b * c->n + n;
            for (int64_t j = 0; j < sk; j++)
                for (int64_t e = 0; e < c->dv; e++) {
                    double s = 0.0;
                    for (int64_t i = 0; i < sq; i++)
                        s += (double)p[p_at(c, b, n, i, j)] * dout[c_at(c, b, n, i, e)];
                    dv[(h * sk + j) * c->dv + e] = s;
                }
            for (int64_t i = 0; i < sq; i++) {
                double rowsum = 0.0;
                for (int64_t j = 0; j < sk; j++) {
                    double dp = 0.0;
                    for (int64_t e = 0; e < c->dv; e++)
                        dp += (double)dout[c_at(c, b, n, i, e)] * c->v[v_at(c, b, n, j, e)];
                    da[i * sk + j] = dp;
                    rowsum += dp * p[p_at(c, b, n, i, j)];
                }
                for (int64_t j = 0; j < sk; j++)
                    da[i * sk + j] =
                        c->scale * (p[p_at(c, b, n, i, j)] * (da[i * sk + j] - rowsum));
            }
            for (int64_t i = 0; i < sq; i++)
                for (int64_t t = 0; t < c->d; t++) {
                    double s = 0.0;
                    for (int64_t j = 0; j < sk; j++)
                        s += da[i * sk + j] * c->k[k_at(c, b, n, j, t)];
                    dq[(h * sq + i) * c->d + t] = s;
                }
            for (int64_t j = 0; j < sk; j++)
                for (int64_t t = 0; t < c->d; t++) {
                    double s = 0.0;
                    for (int64_t i = 0; i < sq; i++)
                        s += da[i * sk + j] * c->q[q_at(c, b, n, i, t)];
                    dk[(h * sk + j) * c->d + t] = s;
                }
        }
    free(da);
}

/* ---- comparison ----------------------------------------------------------------------- */

/* got vs expectation: NaN exactly where expected, +-inf equal, finite values within the
 * docs/semantics.md §2 contract, exact zeros where the expectation is exactly zero. Prints the
 * first few NaN/inf disagreements (they are what this file is about). Returns the failure count. */
static int64_t compare(const char *what, const char *run, const float *got, const double *want,
                       int64_t n)
{
    int64_t bad = 0, shown = 0;
    for (int64_t i = 0; i < n; i++) {
        bool special =
            isnan(want[i]) || isinf(want[i]) || isnan(got[i]) || isinf(got[i]) || want[i] == 0.0;
        bool ok = true;
        if (isnan(want[i]))
            ok = isnan(got[i]);
        else if (isnan(got[i]))
            ok = false;
        else if (isinf(want[i]) || isinf(got[i]) || want[i] == 0.0)
            ok = got[i] == want[i];
        if (special && !ok) {
            bad++;
            if (shown++ < 6)
                printf("  %s [%s]: element %lld is %g, expected %g\n", what, run, (long long)i,
                       (double)got[i], want[i]);
        }
    }
    char label[160];
    snprintf(label, sizeof label, "%s [%s]", what, run);
    fast_close_stats s = fast_check_close(label, got, want, n, FAST_RTOL, FAST_ATOL_FRAC);
    return bad + s.failures;
}

static int64_t count_nan(const float *x, int64_t n)
{
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) k += isnan(x[i]) != 0;
    return k;
}

/* ---- running the library -------------------------------------------------------------- */

static fas_tensor make_tensor(fas_format f, int ndim, const int64_t *dims, const float *values)
{
    fas_tensor t = fast_tensor_alloc(FAS_DTYPE_FLOAT16, f, ndim, dims);
    fast_from_f32(&t, values);
    return t;
}

typedef struct sv_inputs {
    fas_tensor q, k, v, mask;
} sv_inputs;

static void inputs_make(const sv_case *c, fas_format f, sv_inputs *in)
{
    int64_t dq[4] = {c->b, c->n, c->sq, c->d}, dk[4] = {c->b, c->n, c->sk, c->d},
            dv[4] = {c->b, c->n, c->sk, c->dv}, dm[4] = {c->b, 1, c->sq, c->sk};
    in->q = make_tensor(f, 4, dq, c->q);
    in->k = make_tensor(f, 4, dk, c->k);
    in->v = make_tensor(f, 4, dv, c->v);
    memset(&in->mask, 0, sizeof in->mask);
    if (c->mask) in->mask = make_tensor(f, 4, dm, c->mask);
}

static void inputs_free(sv_inputs *in)
{
    fast_tensor_free(&in->q);
    fast_tensor_free(&in->k);
    fast_tensor_free(&in->v);
    if (in->mask.data) fast_tensor_free(&in->mask);
}

static fas_status forward(const sv_case *c, const sv_inputs *in, fas_impl impl, fas_tensor *out,
                          fas_tensor *probs)
{
    fas_options o;
    fas_options_init(&o);
    o.impl = impl;
    o.num_threads = 1;
    return fused_attention_score_fwd_ex(&in->q, &in->k, &in->v, in->mask.data ? &in->mask : NULL,
                                        c->scale, 1.0, false, false, false, false, false, false,
                                        out, probs, NULL, &o);
}

typedef struct fwd_result {
    float *p, *ctx; /* logical fp32 copies of the AUTO materialising run's outputs */
} fwd_result;

static const char *fmt_name(fas_format f) { return f == FAS_FORMAT_ND ? "ND" : "NZ"; }

/* Every run in format f against the expectation; returns the AUTO materialising outputs. */
static fwd_result check_forward_in(const sv_case *c, const char *name, fas_format f)
{
    double *wp = malloc((size_t)n_p(c) * sizeof *wp), *wc = malloc((size_t)n_c(c) * sizeof *wc);
    assert_non_null(wp);
    assert_non_null(wc);
    oracle_forward(c, wp, wc);
    sv_inputs in;
    inputs_make(c, f, &in);
    fwd_result res = {NULL, NULL};
    int64_t bad = 0;
    /* AUTO and every forced SIMD level (skipped where the CPU lacks it), each materialising
     * (softmax_output requested) and streaming; then the fp64 reference with and without P */
    static const struct {
        fas_impl impl;
        bool probs;
        const char *name;
    } runs[12] = {{FAS_IMPL_AUTO, true, "auto, materialising"},
                  {FAS_IMPL_AUTO, false, "auto, streaming"},
                  {FAS_IMPL_PORTABLE, true, "portable, materialising"},
                  {FAS_IMPL_PORTABLE, false, "portable, streaming"},
                  {FAS_IMPL_AVX2, true, "avx2, materialising"},
                  {FAS_IMPL_AVX2, false, "avx2, streaming"},
                  {FAS_IMPL_AVX512, true, "avx512, materialising"},
                  {FAS_IMPL_AVX512, false, "avx512, streaming"},
                  {FAS_IMPL_NEON, true, "neon, materialising"},
                  {FAS_IMPL_NEON, false, "neon, streaming"},
                  {FAS_IMPL_REFERENCE, true, "reference, with P"},
                  {FAS_IMPL_REFERENCE, false, "reference, no P"}};
    for (int r = 0; r < 12; r++) {
        fas_tensor out = fast_tensor_2d(FAS_DTYPE_FLOAT16, f, c->b * c->sq, c->n * c->dv);
        fas_tensor probs = fast_tensor_4d(FAS_DTYPE_FLOAT16, f, c->b, c->n, c->sq, c->sk);
        fas_status st = forward(c, &in, runs[r].impl, &out, runs[r].probs ? &probs : NULL);
        if (st == FAS_ERR_UNSUPPORTED && r >= 2 && r < 10) {
            fast_tensor_free(&out);
            fast_tensor_free(&probs);
            continue;
        }
        if (st != FAS_OK) fail_msg("%s: %s: %s", name, fas_status_string(st), fas_last_error());
        char run[96];
        snprintf(run, sizeof run, "%s, %s", runs[r].name, fmt_name(f));
        char what[96];
        float *ctx = fast_to_f32(&out);
        snprintf(what, sizeof what, "%s context", name);
        bad += compare(what, run, ctx, wc, n_c(c));
        float *p = NULL;
        if (runs[r].probs) {
            p = fast_to_f32(&probs);
            snprintf(what, sizeof what, "%s softmax_output", name);
            bad += compare(what, run, p, wp, n_p(c));
        }
        if (r == 0) {
            res.p = p;
            res.ctx = ctx;
        } else {
            free(p);
            free(ctx);
        }
        fast_tensor_free(&out);
        fast_tensor_free(&probs);
    }
    inputs_free(&in);
    free(wp);
    free(wc);
    if (bad)
        fail_msg("%s (%s): %lld element(s) disagree with the IEEE expectation", name, fmt_name(f),
                 (long long)bad);
    return res;
}

static void result_free(fwd_result *r)
{
    free(r->p);
    free(r->ctx);
}

/* Expected-NaN predicates over logical indices, spelled out per test. */
typedef bool (*p_pred)(int64_t b, int64_t n, int64_t i, int64_t j);
typedef bool (*c_pred)(int64_t b, int64_t n, int64_t i, int64_t e);

static void assert_nan_pattern(const sv_case *c, const fwd_result *r, p_pred p_nan, c_pred c_nan)
{
    int64_t bad = 0;
    for (int64_t b = 0; b < c->b; b++)
        for (int64_t n = 0; n < c->n; n++)
            for (int64_t i = 0; i < c->sq; i++) {
                for (int64_t j = 0; j < c->sk; j++) {
                    bool got = isnan(r->p[p_at(c, b, n, i, j)]);
                    if (got != p_nan(b, n, i, j) && bad++ < 6)
                        printf("  P[%lld,%lld,%lld,%lld] is %g\n", (long long)b, (long long)n,
                               (long long)i, (long long)j, (double)r->p[p_at(c, b, n, i, j)]);
                }
                for (int64_t e = 0; e < c->dv; e++) {
                    bool got = isnan(r->ctx[c_at(c, b, n, i, e)]);
                    if (got != c_nan(b, n, i, e) && bad++ < 6)
                        printf("  context[b=%lld,n=%lld,i=%lld,e=%lld] is %g\n", (long long)b,
                               (long long)n, (long long)i, (long long)e,
                               (double)r->ctx[c_at(c, b, n, i, e)]);
                }
            }
    assert_int_equal(bad, 0);
}

static bool never(int64_t b, int64_t n, int64_t i, int64_t j)
{
    (void)b, (void)n, (void)i, (void)j;
    return false;
}

/* The case in ND and in NZ, then the stated NaN pattern on the ND result. */
static void run_forward_case(const sv_case *c, const char *name, p_pred p_nan, c_pred c_nan)
{
    fwd_result nz = check_forward_in(c, name, FAS_FORMAT_FRACTAL_NZ);
    result_free(&nz);
    fwd_result nd = check_forward_in(c, name, FAS_FORMAT_ND);
    assert_nan_pattern(c, &nd, p_nan, c_nan);
    result_free(&nd);
}

/* ---- forward cases (B = 1, N = 2, Sq = 5, Sk = 7, D = 4, Dv = 3 unless stated) ---------- */

static bool q_nan_p(int64_t b, int64_t n, int64_t i, int64_t j)
{
    (void)b, (void)j;
    return n == 1 && i == 2;
}

/* NaN in q[0,1,2,1]: row 2 of head 1 of P and of the context is NaN, nothing else. */
static void test_nan_in_query(void **state)
{
    (void)state;
    sv_case c;
    sv_init(&c, 1, 2, 5, 7, 4, 3, true, 1);
    c.q[q_at(&c, 0, 1, 2, 1)] = NAN;
    run_forward_case(&c, "NaN in query", q_nan_p, q_nan_p);
    sv_free(&c);
}

static bool head0(int64_t b, int64_t n, int64_t i, int64_t j)
{
    (void)b, (void)i, (void)j;
    return n == 0;
}

/* NaN in k[0,0,3,0]: every logit of head 0 in column 3 is NaN, so every row of head 0. */
static void test_nan_in_key(void **state)
{
    (void)state;
    sv_case c;
    sv_init(&c, 1, 2, 5, 7, 4, 3, true, 2);
    c.k[k_at(&c, 0, 0, 3, 0)] = NAN;
    run_forward_case(&c, "NaN in key", head0, head0);
    sv_free(&c);
}

static bool head1_col2(int64_t b, int64_t n, int64_t i, int64_t e)
{
    (void)b, (void)i;
    return n == 1 && e == 2;
}

/* NaN in v[0,1,4,2]: P untouched; context column 2 of head 1 NaN in every row. */
static void test_nan_in_value(void **state)
{
    (void)state;
    sv_case c;
    sv_init(&c, 1, 2, 5, 7, 4, 3, false, 3);
    c.v[v_at(&c, 0, 1, 4, 2)] = NAN;
    run_forward_case(&c, "NaN in value", never, head1_col2);
    sv_free(&c);
}

/* As above with key 4 masked by -inf in every row (rows 0-2) or some rows: P[.., 4] is exactly
 * 0, and 0 * NaN = NaN in the matmul, so torch's context column is NaN all the same. */
static void test_nan_in_value_of_masked_key(void **state)
{
    (void)state;
    for (int variant = 0; variant < 2; variant++) {
        sv_case c;
        sv_init(&c, 1, 2, 5, 7, 4, 3, true, 4);
        for (int64_t i = 0; i < c.sq; i++)
            if (variant == 0 || i < 3) c.mask[m_at(&c, 0, i, 4)] = -INFINITY;
        c.v[v_at(&c, 0, 1, 4, 2)] = NAN;
        fwd_result r = check_forward_in(&c, "NaN in value of a masked key", FAS_FORMAT_ND);
        for (int64_t n = 0; n < 2; n++)
            for (int64_t i = 0; i < c.sq; i++)
                if (variant == 0 || i < 3) assert_true(r.p[p_at(&c, 0, n, i, 4)] == 0.0f);
        assert_nan_pattern(&c, &r, never, head1_col2);
        result_free(&r);
        r = check_forward_in(&c, "NaN in value of a masked key", FAS_FORMAT_FRACTAL_NZ);
        result_free(&r);
        sv_free(&c);
    }
}

static bool h0_row1(int64_t b, int64_t n, int64_t i, int64_t j)
{
    (void)b, (void)j;
    return n == 0 && i == 1;
}

/* +inf in q[0,0,1,2] with k[., 2] of both signs: the row's logits are +inf and -inf, so
 * exp(inf - inf) makes it NaN. -inf in q[0,1,3,0] with k[., 0] all positive: every logit of that
 * row is -inf, so the library's zero-row policy applies (torch would give NaN). */
static void test_inf_in_query(void **state)
{
    (void)state;
    sv_case c;
    sv_init(&c, 1, 2, 5, 7, 4, 3, true, 5);
    c.q[q_at(&c, 0, 0, 1, 2)] = INFINITY;
    for (int64_t j = 0; j < c.sk; j++) c.k[k_at(&c, 0, 0, j, 2)] = (j % 2) ? -0.5f : 0.25f;
    c.q[q_at(&c, 0, 1, 3, 0)] = -INFINITY;
    for (int64_t j = 0; j < c.sk; j++) c.k[k_at(&c, 0, 1, j, 0)] = 0.5f;
    fwd_result r = check_forward_in(&c, "inf in query", FAS_FORMAT_ND);
    assert_nan_pattern(&c, &r, h0_row1, h0_row1);
    for (int64_t j = 0; j < c.sk; j++) assert_true(r.p[p_at(&c, 0, 1, 3, j)] == 0.0f);
    for (int64_t e = 0; e < c.dv; e++) assert_true(r.ctx[c_at(&c, 0, 1, 3, e)] == 0.0f);
    result_free(&r);
    r = check_forward_in(&c, "inf in query", FAS_FORMAT_FRACTAL_NZ);
    result_free(&r);
    sv_free(&c);
}

/* -inf on some keys of each row (never all): exactly zero there, rows still sum to 1. */
static void test_mask_neg_inf_some_keys(void **state)
{
    (void)state;
    sv_case c;
    sv_init(&c, 2, 2, 5, 7, 4, 3, true, 6);
    for (int64_t b = 0; b < c.b; b++)
        for (int64_t i = 0; i < c.sq; i++)
            for (int64_t j = 0; j < c.sk; j++)
                if ((i + j + b) % 3 == 0) c.mask[m_at(&c, b, i, j)] = -INFINITY;
    fwd_result r = check_forward_in(&c, "-inf on some keys", FAS_FORMAT_ND);
    assert_nan_pattern(&c, &r, never, never);
    for (int64_t b = 0; b < c.b; b++)
        for (int64_t n = 0; n < c.n; n++)
            for (int64_t i = 0; i < c.sq; i++) {
                double sum = 0;
                for (int64_t j = 0; j < c.sk; j++) {
                    float p = r.p[p_at(&c, b, n, i, j)];
                    if ((i + j + b) % 3 == 0)
                        assert_true(p == 0.0f);
                    else
                        assert_true(p > 0.0f);
                    sum += p;
                }
                assert_true(fabs(sum - 1.0) <= 2e-3);
            }
    result_free(&r);
    r = check_forward_in(&c, "-inf on some keys", FAS_FORMAT_FRACTAL_NZ);
    result_free(&r);
    sv_free(&c);
}

/* Row 3 all -inf: zero P row and zero context row, no NaN anywhere. Row 1 all -inf but key 5:
 * P is exactly one-hot there. */
static void test_mask_row_all_neg_inf(void **state)
{
    (void)state;
    sv_case c;
    sv_init(&c, 1, 2, 5, 7, 4, 3, true, 7);
    for (int64_t j = 0; j < c.sk; j++) {
        c.mask[m_at(&c, 0, 3, j)] = -INFINITY;
        if (j != 5) c.mask[m_at(&c, 0, 1, j)] = -INFINITY;
    }
    fwd_result r = check_forward_in(&c, "row of -inf", FAS_FORMAT_ND);
    assert_nan_pattern(&c, &r, never, never);
    for (int64_t n = 0; n < c.n; n++) {
        for (int64_t j = 0; j < c.sk; j++) {
            assert_true(r.p[p_at(&c, 0, n, 3, j)] == 0.0f);
            assert_true(r.p[p_at(&c, 0, n, 1, j)] == (j == 5 ? 1.0f : 0.0f));
        }
        for (int64_t e = 0; e < c.dv; e++) {
            assert_true(r.ctx[c_at(&c, 0, n, 3, e)] == 0.0f);
            assert_true(r.ctx[c_at(&c, 0, n, 1, e)] == c.v[v_at(&c, 0, n, 5, e)]);
        }
    }
    result_free(&r);
    r = check_forward_in(&c, "row of -inf", FAS_FORMAT_FRACTAL_NZ);
    result_free(&r);
    sv_free(&c);
}

/* Finite masks as large as fp16 allows: rows entirely at -65504 or -10000 are an ordinary
 * softmax (shift invariance); -65504 on some keys of a row zeroes them (exp underflows); a row
 * whose queries are zero under -65504 everywhere is uniform. No NaN. */
static void test_mask_large_finite(void **state)
{
    (void)state;
    sv_case c;
    sv_init(&c, 1, 2, 5, 7, 4, 3, true, 8);
    for (int64_t j = 0; j < c.sk; j++) {
        c.mask[m_at(&c, 0, 0, j)] = -65504.0f;
        c.mask[m_at(&c, 0, 1, j)] = -10000.0f;
        c.mask[m_at(&c, 0, 2, j)] = j < 4 ? -65504.0f : 0.0f;
        c.mask[m_at(&c, 0, 3, j)] = j == 0 ? -10000.0f : 0.0f;
        c.mask[m_at(&c, 0, 4, j)] = -65504.0f;
    }
    for (int64_t n = 0; n < c.n; n++)
        for (int64_t t = 0; t < c.d; t++) c.q[q_at(&c, 0, n, 4, t)] = 0.0f;
    fwd_result r = check_forward_in(&c, "large finite mask", FAS_FORMAT_ND);
    assert_nan_pattern(&c, &r, never, never);
    for (int64_t n = 0; n < c.n; n++)
        for (int64_t i = 0; i < c.sq; i++) {
            double sum = 0;
            for (int64_t j = 0; j < c.sk; j++) {
                float p = r.p[p_at(&c, 0, n, i, j)];
                sum += p;
                if (i == 2 && j < 4) assert_true(p == 0.0f);
                if (i == 4) assert_true(fabs(p - 1.0 / 7.0) <= (1.0 / 7.0) / 1024);
            }
            assert_true(fabs(sum - 1.0) <= 2e-3);
        }
    result_free(&r);
    r = check_forward_in(&c, "large finite mask", FAS_FORMAT_FRACTAL_NZ);
    result_free(&r);
    sv_free(&c);
}

static bool rows_0_1_3(int64_t b, int64_t n, int64_t i, int64_t j)
{
    (void)b, (void)n, (void)j;
    return i == 0 || i == 1 || i == 3;
}

/* Mask NaN at (1, 2) and +inf at (0, 5): rows 1 and 0 NaN in both heads (the mask broadcasts
 * over heads). Row 3 is -inf everywhere except a NaN at key 6: a NaN row, not the zero policy. */
static void test_mask_nan_and_inf(void **state)
{
    (void)state;
    sv_case c;
    sv_init(&c, 1, 2, 5, 7, 4, 3, true, 9);
    c.mask[m_at(&c, 0, 1, 2)] = NAN;
    c.mask[m_at(&c, 0, 0, 5)] = INFINITY;
    for (int64_t j = 0; j < c.sk; j++) c.mask[m_at(&c, 0, 3, j)] = j == 6 ? NAN : -INFINITY;
    run_forward_case(&c, "NaN/inf in mask", rows_0_1_3, rows_0_1_3);
    sv_free(&c);
}

static bool h0_row2(int64_t b, int64_t n, int64_t i, int64_t j)
{
    (void)b, (void)j;
    return n == 0 && i == 2;
}

/* Row 2 all -inf in the mask, and a NaN in q[0,0,2,0]: NaN + -inf = NaN, so head 0's row 2 is
 * NaN (the zero policy needs every logit -inf); head 1's row 2 is the zero row. */
static void test_nan_beats_masked_row(void **state)
{
    (void)state;
    sv_case c;
    sv_init(&c, 1, 2, 5, 7, 4, 3, true, 10);
    for (int64_t j = 0; j < c.sk; j++) c.mask[m_at(&c, 0, 2, j)] = -INFINITY;
    c.q[q_at(&c, 0, 0, 2, 0)] = NAN;
    fwd_result r = check_forward_in(&c, "NaN in a masked row", FAS_FORMAT_ND);
    assert_nan_pattern(&c, &r, h0_row2, h0_row2);
    for (int64_t j = 0; j < c.sk; j++) assert_true(r.p[p_at(&c, 0, 1, 2, j)] == 0.0f);
    for (int64_t e = 0; e < c.dv; e++) assert_true(r.ctx[c_at(&c, 0, 1, 2, e)] == 0.0f);
    result_free(&r);
    r = check_forward_in(&c, "NaN in a masked row", FAS_FORMAT_FRACTAL_NZ);
    result_free(&r);
    sv_free(&c);
}

static bool h0_e0_row0(int64_t b, int64_t n, int64_t i, int64_t e)
{
    (void)b;
    return n == 0 && e == 0 && i == 0;
}

/* +inf in v[0,0,1,0]: context column 0 of head 0 is +inf, except in row 0 whose key 1 is masked
 * (P = 0 exactly, 0 * inf = NaN). -inf in v[0,1,2,1]: column 1 of head 1 is -inf. */
static void test_inf_in_value(void **state)
{
    (void)state;
    sv_case c;
    sv_init(&c, 1, 2, 5, 7, 4, 3, true, 11);
    c.v[v_at(&c, 0, 0, 1, 0)] = INFINITY;
    c.v[v_at(&c, 0, 1, 2, 1)] = -INFINITY;
    c.mask[m_at(&c, 0, 0, 1)] = -INFINITY;
    fwd_result r = check_forward_in(&c, "inf in value", FAS_FORMAT_ND);
    assert_nan_pattern(&c, &r, never, h0_e0_row0);
    for (int64_t i = 1; i < c.sq; i++) assert_true(r.ctx[c_at(&c, 0, 0, i, 0)] == INFINITY);
    for (int64_t i = 0; i < c.sq; i++) assert_true(r.ctx[c_at(&c, 0, 1, i, 1)] == -INFINITY);
    result_free(&r);
    r = check_forward_in(&c, "inf in value", FAS_FORMAT_FRACTAL_NZ);
    result_free(&r);
    sv_free(&c);
}

static bool tiles_p(int64_t b, int64_t n, int64_t i, int64_t j)
{
    (void)b, (void)j;
    return n == 0 || i == 4;
}

static bool tiles_c(int64_t b, int64_t n, int64_t i, int64_t e)
{
    (void)b;
    return n == 0 || i == 4 || e == 1;
}

/* Sk = 600: the streaming variant walks two key tiles (512 + 88).
 * - NaN in k[0,0,550,1]: head 0 turns NaN in the second tile, after a finite first tile.
 * - NaN in v[0,1,3,1], key 3 masked (-inf) for row 1 over the whole first tile: column 1 of
 *   head 1 is NaN in every row (0 * NaN).
 * - row 2 all -inf: zero P row; its context is 0 . V, NaN only in column 1.
 * - row 3 -inf on the second tile only; row 4 +inf at key 580: NaN row. */
static void test_special_values_across_tiles(void **state)
{
    (void)state;
    sv_case c;
    sv_init(&c, 1, 2, 6, 600, 4, 3, true, 12);
    c.k[k_at(&c, 0, 0, 550, 1)] = NAN;
    c.v[v_at(&c, 0, 1, 3, 1)] = NAN;
    for (int64_t j = 0; j < c.sk; j++) {
        if (j < 512) c.mask[m_at(&c, 0, 1, j)] = -INFINITY;
        c.mask[m_at(&c, 0, 2, j)] = -INFINITY;
        if (j >= 512) c.mask[m_at(&c, 0, 3, j)] = -INFINITY;
    }
    c.mask[m_at(&c, 0, 4, 580)] = INFINITY;
    run_forward_case(&c, "special values across key tiles", tiles_p, tiles_c);
    sv_free(&c);
}

static bool wide_p(int64_t b, int64_t n, int64_t i, int64_t j)
{
    (void)b, (void)n, (void)j;
    return i <= 3;
}

/* Rows of 45 keys (32-key SIMD body, an 8-key vector, a 5-key tail) with the special value in
 * each part: NaN at key 3, 35 or 43 in rows 0-2, +inf at key 20 in row 3; row 4 all -inf (zero);
 * row 5 -inf except key 44, in the tail (one-hot). */
static void test_special_values_in_wide_rows(void **state)
{
    (void)state;
    sv_case c;
    sv_init(&c, 1, 2, 6, 45, 4, 3, true, 15);
    c.mask[m_at(&c, 0, 0, 3)] = NAN;
    c.mask[m_at(&c, 0, 1, 35)] = NAN;
    c.mask[m_at(&c, 0, 2, 43)] = NAN;
    c.mask[m_at(&c, 0, 3, 20)] = INFINITY;
    for (int64_t j = 0; j < c.sk; j++) {
        c.mask[m_at(&c, 0, 4, j)] = -INFINITY;
        if (j != 44) c.mask[m_at(&c, 0, 5, j)] = -INFINITY;
    }
    run_forward_case(&c, "special values in wide rows", wide_p, wide_p);
    fwd_result r = check_forward_in(&c, "special values in wide rows", FAS_FORMAT_ND);
    for (int64_t n = 0; n < c.n; n++)
        for (int64_t j = 0; j < c.sk; j++) {
            assert_true(r.p[p_at(&c, 0, n, 4, j)] == 0.0f);
            assert_true(r.p[p_at(&c, 0, n, 5, j)] == (j == 44 ? 1.0f : 0.0f));
        }
    result_free(&r);
    sv_free(&c);
}

/* ---- NZ padding is never read: NaN there changes nothing --------------------------------- */

/* Write `bits` into every padding element of an fp16 FRACTAL_NZ tensor of rank >= 2; returns
 * the number written. */
static int64_t nz_fill_padding(fas_tensor *t, uint16_t bits)
{
    int64_t m = t->dims[t->ndim - 2], n = t->dims[t->ndim - 1], batch = 1;
    for (int i = 0; i < t->ndim - 2; i++) batch *= t->dims[i];
    int64_t m1 = (m + 15) / 16, n1 = (n + 15) / 16, written = 0;
    uint16_t *x = t->data;
    for (int64_t beta = 0; beta < batch; beta++)
        for (int64_t cb = 0; cb < n1; cb++)
            for (int64_t rb = 0; rb < m1; rb++)
                for (int64_t r = 0; r < 16; r++)
                    for (int64_t col = 0; col < 16; col++)
                        if (rb * 16 + r >= m || cb * 16 + col >= n) {
                            x[beta * n1 * m1 * 256 + (cb * m1 + rb) * 256 + r * 16 + col] = bits;
                            written++;
                        }
    return written;
}

#define HALF_NAN 0x7E00u

static void test_nan_in_nz_padding_is_ignored(void **state)
{
    (void)state;
    sv_case c;
    sv_init(&c, 1, 2, 5, 7, 4, 3, true, 13);
    const fas_format nz = FAS_FORMAT_FRACTAL_NZ;
    sv_inputs clean, dirty;
    inputs_make(&c, nz, &clean);
    inputs_make(&c, nz, &dirty);
    fas_tensor *d[4] = {&dirty.q, &dirty.k, &dirty.v, &dirty.mask};
    for (int i = 0; i < 4; i++) assert_true(nz_fill_padding(d[i], HALF_NAN) > 0);

    for (int impl = 0; impl < 2; impl++) {
        fas_impl which = impl ? FAS_IMPL_REFERENCE : FAS_IMPL_AUTO;
        for (int with_p = 0; with_p < 2; with_p++) {
            fas_tensor o1 = fast_tensor_2d(FAS_DTYPE_FLOAT16, nz, 5, 6),
                       o2 = fast_tensor_2d(FAS_DTYPE_FLOAT16, nz, 5, 6);
            fas_tensor p1 = fast_tensor_4d(FAS_DTYPE_FLOAT16, nz, 1, 2, 5, 7),
                       p2 = fast_tensor_4d(FAS_DTYPE_FLOAT16, nz, 1, 2, 5, 7);
            assert_int_equal(forward(&c, &clean, which, &o1, with_p ? &p1 : NULL), FAS_OK);
            assert_int_equal(forward(&c, &dirty, which, &o2, with_p ? &p2 : NULL), FAS_OK);
            float *ctx = fast_to_f32(&o2);
            assert_int_equal(count_nan(ctx, 30), 0);
            free(ctx);
            assert_memory_equal(o1.data, o2.data, fas_tensor_bytes(&o1));
            if (with_p) assert_memory_equal(p1.data, p2.data, fas_tensor_bytes(&p1));
            fast_tensor_free(&o1);
            fast_tensor_free(&o2);
            fast_tensor_free(&p1);
            fast_tensor_free(&p2);
        }
    }

    /* backward: grad_output and softmax_output with NaN padding too */
    fas_tensor probs = fast_tensor_4d(FAS_DTYPE_FLOAT16, nz, 1, 2, 5, 7);
    fas_tensor out = fast_tensor_2d(FAS_DTYPE_FLOAT16, nz, 5, 6);
    assert_int_equal(forward(&c, &clean, FAS_IMPL_AUTO, &out, &probs), FAS_OK);
    fas_tensor probs_dirty = fast_tensor_4d(FAS_DTYPE_FLOAT16, nz, 1, 2, 5, 7);
    memcpy(probs_dirty.data, probs.data, fas_tensor_bytes(&probs));
    assert_true(nz_fill_padding(&probs_dirty, HALF_NAN) > 0);
    fas_tensor dout = fast_tensor_2d(FAS_DTYPE_FLOAT16, nz, 5, 6);
    fast_rng r;
    fast_rng_seed(&r, 14);
    fast_fill_uniform(&dout, &r, -1, 1);
    fas_tensor dout_dirty = fast_tensor_2d(FAS_DTYPE_FLOAT16, nz, 5, 6);
    memcpy(dout_dirty.data, dout.data, fas_tensor_bytes(&dout));
    assert_true(nz_fill_padding(&dout_dirty, HALF_NAN) > 0);
    for (int impl = 0; impl < 2; impl++) {
        fas_options o;
        fas_options_init(&o);
        o.impl = impl ? FAS_IMPL_REFERENCE : FAS_IMPL_AUTO;
        fas_tensor g1[3], g2[3];
        int64_t rows[3] = {5, 7, 7}, cols[3] = {4, 4, 3};
        for (int i = 0; i < 3; i++) {
            g1[i] = fast_tensor_4d(FAS_DTYPE_FLOAT16, nz, 1, 2, rows[i], cols[i]);
            g2[i] = fast_tensor_4d(FAS_DTYPE_FLOAT16, nz, 1, 2, rows[i], cols[i]);
        }
        assert_int_equal(fused_attention_score_grad_ex(&dout, &probs, &clean.q, &clean.k, &clean.v,
                                                       NULL, c.scale, 1.0, false, false, false,
                                                       false, &g1[0], &g1[1], &g1[2], &o),
                         FAS_OK);
        assert_int_equal(fused_attention_score_grad_ex(
                             &dout_dirty, &probs_dirty, &dirty.q, &dirty.k, &dirty.v, NULL, c.scale,
                             1.0, false, false, false, false, &g2[0], &g2[1], &g2[2], &o),
                         FAS_OK);
        for (int i = 0; i < 3; i++) {
            float *x = fast_to_f32(&g2[i]);
            assert_int_equal(count_nan(x, fast_tensor_numel(&g2[i])), 0);
            free(x);
            assert_memory_equal(g1[i].data, g2[i].data, fas_tensor_bytes(&g1[i]));
            fast_tensor_free(&g1[i]);
            fast_tensor_free(&g2[i]);
        }
    }
    fast_tensor_free(&probs);
    fast_tensor_free(&probs_dirty);
    fast_tensor_free(&out);
    fast_tensor_free(&dout);
    fast_tensor_free(&dout_dirty);
    inputs_free(&clean);
    inputs_free(&dirty);
    sv_free(&c);
}

/* ---- backward ---------------------------------------------------------------------------- */

typedef struct bwd_result {
    float *dq, *dk, *dv; /* [B,N,S,D], from the AUTO run in ND */
} bwd_result;

/* P from the forward (AUTO, materialising, fp16) of the case; then _grad in format f through
 * AUTO and REFERENCE against the expectation computed from that very P. dout is logical
 * [B*Sq, N*Dv]. */
static bwd_result check_backward_in(const sv_case *c, const float *dout, const char *name,
                                    fas_format f)
{
    sv_inputs in;
    inputs_make(c, f, &in);
    fas_tensor probs = fast_tensor_4d(FAS_DTYPE_FLOAT16, f, c->b, c->n, c->sq, c->sk);
    fas_tensor out = fast_tensor_2d(FAS_DTYPE_FLOAT16, f, c->b * c->sq, c->n * c->dv);
    assert_int_equal(forward(c, &in, FAS_IMPL_AUTO, &out, &probs), FAS_OK);
    int64_t dd[2] = {c->b * c->sq, c->n * c->dv};
    fas_tensor tdout = make_tensor(f, 2, dd, dout);
    float *p = fast_to_f32(&probs);

    double *wq = malloc((size_t)n_q(c) * sizeof *wq), *wk = malloc((size_t)n_k(c) * sizeof *wk),
           *wv = malloc((size_t)n_v(c) * sizeof *wv);
    assert_non_null(wq);
    assert_non_null(wk);
    assert_non_null(wv);
    oracle_backward(c, p, dout, wq, wk, wv);

    bwd_result res = {NULL, NULL, NULL};
    int64_t bad = 0;
    static const fas_impl impls[6] = {FAS_IMPL_AUTO,   FAS_IMPL_PORTABLE, FAS_IMPL_AVX2,
                                      FAS_IMPL_AVX512, FAS_IMPL_NEON,     FAS_IMPL_REFERENCE};
    static const char *impl_names[6] = {"auto", "portable", "avx2", "avx512", "neon", "reference"};
    for (int impl = 0; impl < 6; impl++) {
        fas_options o;
        fas_options_init(&o);
        o.impl = impls[impl];
        o.num_threads = 2;
        fas_tensor dq = fast_tensor_4d(FAS_DTYPE_FLOAT16, f, c->b, c->n, c->sq, c->d);
        fas_tensor dk = fast_tensor_4d(FAS_DTYPE_FLOAT16, f, c->b, c->n, c->sk, c->d);
        fas_tensor dv = fast_tensor_4d(FAS_DTYPE_FLOAT16, f, c->b, c->n, c->sk, c->dv);
        fas_status st =
            fused_attention_score_grad_ex(&tdout, &probs, &in.q, &in.k, &in.v, NULL, c->scale, 1.0,
                                          false, false, false, false, &dq, &dk, &dv, &o);
        if (st == FAS_ERR_UNSUPPORTED && impl >= 2 && impl <= 4) {
            fast_tensor_free(&dq);
            fast_tensor_free(&dk);
            fast_tensor_free(&dv);
            continue;
        }
        if (st != FAS_OK) fail_msg("%s: %s: %s", name, fas_status_string(st), fas_last_error());
        char run[64], what[96];
        snprintf(run, sizeof run, "%s, %s", impl_names[impl], fmt_name(f));
        float *gq = fast_to_f32(&dq), *gk = fast_to_f32(&dk), *gv = fast_to_f32(&dv);
        snprintf(what, sizeof what, "%s dQ", name);
        bad += compare(what, run, gq, wq, n_q(c));
        snprintf(what, sizeof what, "%s dK", name);
        bad += compare(what, run, gk, wk, n_k(c));
        snprintf(what, sizeof what, "%s dV", name);
        bad += compare(what, run, gv, wv, n_v(c));
        if (impl == 0) {
            res.dq = gq;
            res.dk = gk;
            res.dv = gv;
        } else {
            free(gq);
            free(gk);
            free(gv);
        }
        fast_tensor_free(&dq);
        fast_tensor_free(&dk);
        fast_tensor_free(&dv);
    }
    free(p);
    free(wq);
    free(wk);
    free(wv);
    fast_tensor_free(&tdout);
    fast_tensor_free(&probs);
    fast_tensor_free(&out);
    inputs_free(&in);
    if (bad)
        fail_msg("%s (%s): %lld gradient element(s) disagree with the IEEE expectation", name,
                 fmt_name(f), (long long)bad);
    return res;
}

static void bwd_result_free(bwd_result *r)
{
    free(r->dq);
    free(r->dk);
    free(r->dv);
}

/* NaN positions of a [B,N,S,D] gradient must be exactly those with pred(b, n, s, d). */
static void assert_grad_nan(const char *what, const float *g, int64_t b_, int64_t n_, int64_t s_,
                            int64_t d_, c_pred pred)
{
    int64_t bad = 0;
    for (int64_t b = 0; b < b_; b++)
        for (int64_t n = 0; n < n_; n++)
            for (int64_t s = 0; s < s_; s++)
                for (int64_t t = 0; t < d_; t++) {
                    float x = g[((b * n_ + n) * s_ + s) * d_ + t];
                    if ((isnan(x) != 0) != pred(b, n, s, t) && bad++ < 6)
                        printf("  %s[%lld,%lld,%lld,%lld] is %g\n", what, (long long)b,
                               (long long)n, (long long)s, (long long)t, (double)x);
                }
    assert_int_equal(bad, 0);
}

static float *random_dout(const sv_case *c, uint64_t seed)
{
    fast_rng r;
    fast_rng_seed(&r, seed);
    float *x = falloc(n_c(c));
    fill_dyadic(x, n_c(c), &r);
    return x;
}

static bool b1h0(int64_t b, int64_t n, int64_t s, int64_t t)
{
    (void)s, (void)t;
    return b == 1 && n == 0;
}
static bool b1h0_row2(int64_t b, int64_t n, int64_t s, int64_t t)
{
    (void)t;
    return b == 1 && n == 0 && s == 2;
}
static bool b1h0_col1(int64_t b, int64_t n, int64_t s, int64_t t)
{
    (void)s;
    return b == 1 && n == 0 && t == 1;
}

/* dO[(b=1, i=2), (n=0, e=1)] = NaN: dV column 1 of head (1,0) (every key), dP row 2, so dQ
 * row 2 and all of dK of head (1,0); nothing in other heads. Row 3 of batch 1 is fully masked
 * (zero P): its dQ row is exactly zero. */
static void test_backward_nan_in_grad_output(void **state)
{
    (void)state;
    sv_case c;
    sv_init(&c, 2, 2, 5, 7, 4, 3, true, 20);
    for (int64_t j = 0; j < c.sk; j++) c.mask[m_at(&c, 1, 3, j)] = -INFINITY;
    float *dout = random_dout(&c, 21);
    dout[c_at(&c, 1, 0, 2, 1)] = NAN;
    for (int fi = 0; fi < 2; fi++) {
        fas_format f = fi ? FAS_FORMAT_FRACTAL_NZ : FAS_FORMAT_ND;
        bwd_result r = check_backward_in(&c, dout, "NaN in grad_output", f);
        assert_grad_nan("dQ", r.dq, 2, 2, 5, 4, b1h0_row2);
        assert_grad_nan("dK", r.dk, 2, 2, 7, 4, b1h0);
        assert_grad_nan("dV", r.dv, 2, 2, 7, 3, b1h0_col1);
        for (int64_t n = 0; n < 2; n++)
            for (int64_t t = 0; t < 4; t++)
                assert_true(r.dq[((1 * 2 + n) * 5 + 3) * 4 + t] == 0.0f);
        bwd_result_free(&r);
    }
    free(dout);
    sv_free(&c);
}

static bool b0h1(int64_t b, int64_t n, int64_t s, int64_t t)
{
    (void)s, (void)t;
    return b == 0 && n == 1;
}
static bool b0h1_row1(int64_t b, int64_t n, int64_t s, int64_t t)
{
    (void)t;
    return b == 0 && n == 1 && s == 1;
}

/* NaN in q[0,1,1,0] makes row 1 of P NaN in head (0,1); with a finite dO: dV of that head is
 * NaN everywhere (every key sums over that row), dQ row 1, and dK everywhere. */
static void test_backward_nan_in_probs(void **state)
{
    (void)state;
    sv_case c;
    sv_init(&c, 2, 2, 5, 7, 4, 3, false, 22);
    c.q[q_at(&c, 0, 1, 1, 0)] = NAN;
    float *dout = random_dout(&c, 23);
    for (int fi = 0; fi < 2; fi++) {
        fas_format f = fi ? FAS_FORMAT_FRACTAL_NZ : FAS_FORMAT_ND;
        bwd_result r = check_backward_in(&c, dout, "NaN row of P", f);
        assert_grad_nan("dQ", r.dq, 2, 2, 5, 4, b0h1_row1);
        assert_grad_nan("dK", r.dk, 2, 2, 7, 4, b0h1);
        assert_grad_nan("dV", r.dv, 2, 2, 7, 3, b0h1);
        bwd_result_free(&r);
    }
    free(dout);
    sv_free(&c);
}

static bool b1h1(int64_t b, int64_t n, int64_t s, int64_t t)
{
    (void)s, (void)t;
    return b == 1 && n == 1;
}
static bool none4(int64_t b, int64_t n, int64_t s, int64_t t)
{
    (void)b, (void)n, (void)s, (void)t;
    return false;
}

/* NaN in v[1,1,3,2]: P stays finite, so dV = P^T dO is finite; dP column 3 is NaN in every row,
 * hence every rowsum, dA, dQ and dK of head (1,1). */
static void test_backward_nan_in_value(void **state)
{
    (void)state;
    sv_case c;
    sv_init(&c, 2, 2, 5, 7, 4, 3, true, 24);
    c.v[v_at(&c, 1, 1, 3, 2)] = NAN;
    float *dout = random_dout(&c, 25);
    for (int fi = 0; fi < 2; fi++) {
        fas_format f = fi ? FAS_FORMAT_FRACTAL_NZ : FAS_FORMAT_ND;
        bwd_result r = check_backward_in(&c, dout, "NaN in value (backward)", f);
        assert_grad_nan("dQ", r.dq, 2, 2, 5, 4, b1h1);
        assert_grad_nan("dK", r.dk, 2, 2, 7, 4, b1h1);
        assert_grad_nan("dV", r.dv, 2, 2, 7, 3, none4);
        bwd_result_free(&r);
    }
    free(dout);
    sv_free(&c);
}

/* ---- dropout: Pd = P * M / keep_prob is a product, so a dropped NaN stays NaN -------------- */

/* torch (x * mask * scale) and the NPU (P . mask . fp16(1/keep_prob)) multiply by the drop mask,
 * and docs/semantics.md §1 writes Pd = P (.) M / keep_prob: NaN * 0 = NaN. A row whose keys are all
 * dropped therefore has a NaN context when its P row is NaN, and a NaN dP row when its
 * dO . V^T row is NaN. B = N = 1, Sq = 3, Sk = 5, D = 4, Dv = 3, keep_prob 0.5, mask given:
 * rows 0 and 1 entirely dropped, row 2 keeps keys 1 and 3. */
static void test_dropout_multiplies_nan(void **state)
{
    (void)state;
    sv_case c;
    sv_init(&c, 1, 1, 3, 5, 4, 3, false, 30);
    sv_inputs in;
    uint8_t keep[15] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0};
    fas_tensor dmask = fast_tensor_4d(FAS_DTYPE_UINT8, FAS_FORMAT_ND, 1, 1, 3, 5);
    memcpy(dmask.data, keep, sizeof keep);
    static const fas_impl impls[3] = {FAS_IMPL_AUTO, FAS_IMPL_PORTABLE, FAS_IMPL_REFERENCE};
    int64_t bad = 0;

    /* forward: NaN in q row 0 */
    c.q[q_at(&c, 0, 0, 0, 1)] = NAN;
    inputs_make(&c, FAS_FORMAT_ND, &in);
    for (int impl = 0; impl < 3; impl++)
        for (int with_p = 0; with_p < 2; with_p++) {
            fas_options o;
            fas_options_init(&o);
            o.impl = impls[impl];
            o.drop_mask_is_input = true;
            int64_t run_bad = 0;
            fas_tensor out = fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 3, 3);
            fas_tensor probs = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 1, 1, 3, 5);
            assert_int_equal(fused_attention_score_fwd_ex(&in.q, &in.k, &in.v, NULL, c.scale, 0.5,
                                                          false, false, false, false, false, false,
                                                          &out, with_p ? &probs : NULL, &dmask, &o),
                             FAS_OK);
            float *ctx = fast_to_f32(&out);
            for (int64_t i = 0; i < 3; i++)
                for (int64_t e = 0; e < 3; e++) {
                    float x = ctx[i * 3 + e];
                    bool ok = i == 0 ? isnan(x) : i == 1 ? x == 0.0f : isfinite(x);
                    if (!ok && run_bad++ == 0)
                        printf("  dropout forward [impl %d, %s]: context[%lld][%lld] is %g, torch "
                               "gives %s\n",
                               (int)impls[impl], with_p ? "materialising" : "streaming",
                               (long long)i, (long long)e, (double)x,
                               i == 0   ? "NaN (NaN * 0)"
                               : i == 1 ? "0"
                                        : "a finite value");
                }
            if (run_bad) printf("    (%lld element(s) differ in this run)\n", (long long)run_bad);
            bad += run_bad;
            free(ctx);
            fast_tensor_free(&out);
            fast_tensor_free(&probs);
        }
    inputs_free(&in);

    /* backward: finite P; dO[0][0] NaN (row 0 all dropped), dO[2][1] NaN (row 2 partly kept) */
    c.q[q_at(&c, 0, 0, 0, 1)] = 0.25f;
    inputs_make(&c, FAS_FORMAT_ND, &in);
    fas_tensor probs = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 1, 1, 3, 5);
    fas_tensor out = fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 3, 3);
    fas_options fo;
    fas_options_init(&fo);
    fo.drop_mask_is_input = true;
    assert_int_equal(fused_attention_score_fwd_ex(&in.q, &in.k, &in.v, NULL, c.scale, 0.5, false,
                                                  false, false, false, false, false, &out, &probs,
                                                  &dmask, &fo),
                     FAS_OK);
    float *dout_v = random_dout(&c, 31);
    dout_v[0 * 3 + 0] = NAN;
    dout_v[2 * 3 + 1] = NAN;
    int64_t dd[2] = {3, 3};
    fas_tensor dout = make_tensor(FAS_FORMAT_ND, 2, dd, dout_v);
    for (int impl = 0; impl < 3; impl++) {
        fas_options o;
        fas_options_init(&o);
        o.impl = impls[impl];
        int64_t run_bad = 0;
        fas_tensor dq = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 1, 1, 3, 4);
        fas_tensor dk = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 1, 1, 5, 4);
        fas_tensor dv = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 1, 1, 5, 3);
        assert_int_equal(fused_attention_score_grad_ex(&dout, &probs, &in.q, &in.k, &in.v, &dmask,
                                                       c.scale, 0.5, false, false, false, false,
                                                       &dq, &dk, &dv, &o),
                         FAS_OK);
        float *gq = fast_to_f32(&dq), *gk = fast_to_f32(&dk), *gv = fast_to_f32(&dv);
        /* dP rows 0 and 2 are NaN (NaN * 0 where dropped), so dQ rows 0 and 2 and all of dK;
         * dV columns 0 and 1 (every key: Pd * NaN, Pd = 0 or not) */
        for (int64_t i = 0; i < 3; i++)
            for (int64_t t = 0; t < 4; t++)
                if ((isnan(gq[i * 4 + t]) != 0) != (i != 1) && run_bad++ == 0)
                    printf("  dropout backward [impl %d]: dQ[%lld][%lld] is %g, torch gives %s\n",
                           (int)impls[impl], (long long)i, (long long)t, (double)gq[i * 4 + t],
                           i != 1 ? "NaN" : "a finite value");
        for (int64_t j = 0; j < 5; j++) {
            for (int64_t t = 0; t < 4; t++)
                if (!isnan(gk[j * 4 + t]) && run_bad++ == 0)
                    printf("  dropout backward [impl %d]: dK[%lld][%lld] is %g, torch gives NaN\n",
                           (int)impls[impl], (long long)j, (long long)t, (double)gk[j * 4 + t]);
            for (int64_t e = 0; e < 3; e++)
                if ((isnan(gv[j * 3 + e]) != 0) != (e < 2) && run_bad++ == 0)
                    printf("  dropout backward [impl %d]: dV[%lld][%lld] is %g\n", (int)impls[impl],
                           (long long)j, (long long)e, (double)gv[j * 3 + e]);
        }
        if (run_bad)
            printf("    (%lld gradient element(s) differ in this run)\n", (long long)run_bad);
        bad += run_bad;
        free(gq);
        free(gk);
        free(gv);
        fast_tensor_free(&dq);
        fast_tensor_free(&dk);
        fast_tensor_free(&dv);
    }
    free(dout_v);
    fast_tensor_free(&dout);
    fast_tensor_free(&probs);
    fast_tensor_free(&out);
    fast_tensor_free(&dmask);
    inputs_free(&in);
    sv_free(&c);
    assert_int_equal(bad, 0);
}

/* A scale that is 0 in fp32 (0, or 1e-60) still multiplies: 0 * NaN = NaN, so a NaN in the
 * query poisons its row in every path (BLAS skips A.B when alpha is 0, so the pipeline must
 * not hand it alpha = 0). A mask is present so the masked path is covered too. */
static void test_zero_scale_keeps_nan(void **state)
{
    (void)state;
    const double scales[2] = {0.0, 1e-60};
    for (int si = 0; si < 2; si++) {
        /* B = N = 1, Sq = 2, Sk = 3, D = Dv = 2; q row 0 holds a NaN, row 1 is finite */
        uint16_t q[4] = {0x7e00, 0x3c00, 0x3c00, 0x4000}, k[6], v[6], mask[6];
        for (int i = 0; i < 6; i++) {
            k[i] = fas_float_to_half(0.25f * (float)i);
            v[i] = fas_float_to_half(1.0f + (float)i);
            mask[i] = fas_float_to_half(i == 4 ? -1.0f : 0.0f);
        }
        fas_tensor tq = {q, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {1, 1, 2, 2}};
        fas_tensor tk = {k, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {1, 1, 3, 2}};
        fas_tensor tv = {v, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {1, 1, 3, 2}};
        fas_tensor tm = {mask, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {1, 1, 2, 3}};
        for (int variant = 0; variant < 4; variant++) {
            float out[4] = {0, 0, 0, 0}, probs[6];
            fas_tensor to = {out, FAS_DTYPE_FLOAT, FAS_FORMAT_ND, 2, {2, 2}};
            fas_tensor tp = {probs, FAS_DTYPE_FLOAT, FAS_FORMAT_ND, 4, {1, 1, 2, 3}};
            fas_options o;
            fas_options_init(&o);
            o.impl = variant >= 2 ? FAS_IMPL_REFERENCE : FAS_IMPL_AUTO;
            bool with_probs = variant % 2 == 1;
            assert_int_equal(fused_attention_score_fwd_ex(&tq, &tk, &tv, &tm, scales[si], 1.0,
                                                          false, false, false, false, false, false,
                                                          &to, with_probs ? &tp : NULL, NULL, &o),
                             FAS_OK);
            assert_true(isnan(out[0]) && isnan(out[1]));
            /* row 1: logits are the mask (0, 0, -1 is row 0's; row 1 has 0, -1, 0) */
            double e = exp(-1.0), sum = 2.0 + e;
            double want0 = (1.0 * 1 + 3.0 * e + 5.0 * 1) / sum, want1 = (2.0 + 4.0 * e + 6.0) / sum;
            assert_true(fabs(out[2] - want0) < 1e-5 && fabs(out[3] - want1) < 1e-5);
        }
    }
}

/* A finite scale beyond the fp32 range cannot be applied by the fp32 pipeline: it is rejected
 * up front rather than turned into inf. */
static void test_scale_beyond_fp32_is_rejected(void **state)
{
    (void)state;
    uint16_t one = 0x3c00, out = 0x1234;
    fas_tensor t = {&one, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {1, 1, 1, 1}};
    fas_tensor to = {&out, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 2, {1, 1}};
    const double bad[2] = {1e39, -4e38};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(fused_attention_score(&t, &t, &t, NULL, bad[i], 1.0, false, false, false,
                                               false, false, false, &to),
                         FAS_ERR_VALUE);
        assert_non_null(strstr(fas_last_error(), "scale"));
        assert_int_equal(out, 0x1234);
    }
    assert_int_equal(fused_attention_score(&t, &t, &t, NULL, 3.4e38, 1.0, false, false, false,
                                           false, false, false, &to),
                     FAS_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nan_in_query),
        cmocka_unit_test(test_nan_in_key),
        cmocka_unit_test(test_nan_in_value),
        cmocka_unit_test(test_nan_in_value_of_masked_key),
        cmocka_unit_test(test_inf_in_query),
        cmocka_unit_test(test_mask_neg_inf_some_keys),
        cmocka_unit_test(test_mask_row_all_neg_inf),
        cmocka_unit_test(test_mask_large_finite),
        cmocka_unit_test(test_mask_nan_and_inf),
        cmocka_unit_test(test_nan_beats_masked_row),
        cmocka_unit_test(test_inf_in_value),
        cmocka_unit_test(test_special_values_across_tiles),
        cmocka_unit_test(test_special_values_in_wide_rows),
        cmocka_unit_test(test_nan_in_nz_padding_is_ignored),
        cmocka_unit_test(test_backward_nan_in_grad_output),
        cmocka_unit_test(test_backward_nan_in_probs),
        cmocka_unit_test(test_backward_nan_in_value),
        cmocka_unit_test(test_dropout_multiplies_nan),
        cmocka_unit_test(test_zero_scale_keeps_nan),
        cmocka_unit_test(test_scale_beyond_fp32_is_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
