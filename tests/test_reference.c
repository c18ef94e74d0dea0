/* The fp64 oracle: its backward core against finite differences of its forward core, its
 * forward core against hand-computable cases, and the problem-level entry points
 * (fasi_reference_forward / _backward) against the core on the same data, read back through
 * the public format cast and test-side index arithmetic written from the layout contracts. */
#include <math.h>
#include <string.h>

#include "fas_test.h"

#include "api/dispatch.h"
#include "layout/layout.h"
#include "problem/problem.h"
#include "reference/reference.h"
#include "rng/philox.h"

enum { MAXS = 5 };

static void fill_uniform(fast_rng *r, double *x, int64_t n, double lo, double hi)
{
    for (int64_t i = 0; i < n; i++) x[i] = fast_rng_uniform(r, lo, hi);
}

/* ============================== gradient check ============================================ */

typedef struct grad_case {
    int64_t sq, sk, d, dv;
    double q[MAXS * MAXS], k[MAXS * MAXS], v[MAXS * MAXS];
    double mask[MAXS * MAXS];
    bool has_mask;
    uint8_t keep[MAXS * MAXS];
    bool has_keep;
    double keep_prob, scale;
    double w[MAXS * MAXS]; /* L = sum(ctx .* w) */
} grad_case;

static double loss(const grad_case *c)
{
    double probs[MAXS * MAXS], ctx[MAXS * MAXS];
    fasi_ref_forward_head(c->sq, c->sk, c->d, c->dv, c->q, c->k, c->v, c->has_mask ? c->mask : NULL,
                          c->scale, c->has_keep ? c->keep : NULL, c->keep_prob, false, probs, ctx);
    double l = 0.0;
    for (int64_t t = 0; t < c->sq * c->dv; t++) l += ctx[t] * c->w[t];
    return l;
}

/* Central differences with h = 1e-5 on inputs of magnitude <= 2. L is analytic in q, k, v (a
 * -inf mask entry only removes a term, for every perturbation alike), so the truncation error
 * is h^2/6 * |L'''| ~ 1.7e-11 * |L'''|, and |L'''| stays below ~1e2 here (logits |scale*q.k| <=
 * 1.2*4*5 = 24 enter through exp, whose derivatives are bounded by the softmax's own
 * moments). The rounding error is ~ eps * sum|terms of L| / h ~ 2.2e-16 * 50 / 1e-5 ~ 1e-9.
 * Both are far below the 1e-6 bound, while a wrong gradient term is O(1e-2..1). The step is
 * taken as (x+h) - (x-h) as actually represented, so no representation error enters. */
static double fd_worst = 0.0;

static void check_one(grad_case *c, double *x, double analytic, const char *what, int64_t idx)
{
    const double h = 1e-5;
    double x0 = *x;
    double xp = x0 + h, xm = x0 - h;
    *x = xp;
    double lp = loss(c);
    *x = xm;
    double lm = loss(c);
    *x = x0;
    double fd = (lp - lm) / (xp - xm);
    double err = fabs(fd - analytic) / fmax(1.0, fabs(analytic));
    if (err > fd_worst) fd_worst = err;
    if (!(err <= 1e-6)) {
        printf("  %s[%lld]: finite difference %.12g, analytic %.12g (sq %lld sk %lld d %lld "
               "dv %lld mask %d keep %d)\n",
               what, (long long)idx, fd, analytic, (long long)c->sq, (long long)c->sk,
               (long long)c->d, (long long)c->dv, c->has_mask, c->has_keep);
        fail();
    }
}

static void test_gradient_check(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("gradient_check", 20260101));
    int fully_masked_rows = 0;
    for (int cs = 0; cs < 400; cs++) {
        grad_case c;
        memset(&c, 0, sizeof c);
        c.sq = fast_rng_int(&r, 1, MAXS);
        c.sk = fast_rng_int(&r, 1, MAXS);
        c.d = fast_rng_int(&r, 1, MAXS);
        c.dv = fast_rng_int(&r, 1, MAXS);
        c.scale = fast_rng_uniform(&r, 0.3, 1.2);
        fill_uniform(&r, c.q, c.sq * c.d, -2, 2);
        fill_uniform(&r, c.k, c.sk * c.d, -2, 2);
        fill_uniform(&r, c.v, c.sk * c.dv, -2, 2);
        fill_uniform(&r, c.w, c.sq * c.dv, -1, 1);
        int mask_kind = cs % 4;
        c.has_mask = mask_kind != 0;
        for (int64_t t = 0; t < c.sq * c.sk; t++) {
            c.mask[t] = fast_rng_uniform(&r, -3, 1);
            if (mask_kind >= 2 && fast_rng_uniform(&r, 0, 1) < 0.3) c.mask[t] = -INFINITY;
        }
        if (mask_kind == 3)
            for (int64_t j = 0; j < c.sk; j++) c.mask[j] = -INFINITY;
        if (mask_kind >= 2) {
            for (int64_t i = 0; i < c.sq; i++) {
                bool all = true;
                for (int64_t j = 0; j < c.sk; j++) all = all && c.mask[i * c.sk + j] == -INFINITY;
                fully_masked_rows += all;
            }
        }
        c.has_keep = (cs / 4) % 2 == 1;
        c.keep_prob = c.has_keep ? 0.8 : 1.0;
        for (int64_t t = 0; t < c.sq * c.sk; t++)
            c.keep[t] = fast_rng_uniform(&r, 0, 1) < 0.7 ? 1 : 0;

        double probs[MAXS * MAXS], ctx[MAXS * MAXS];
        double dq[MAXS * MAXS], dk[MAXS * MAXS], dv[MAXS * MAXS];
        fasi_ref_forward_head(c.sq, c.sk, c.d, c.dv, c.q, c.k, c.v, c.has_mask ? c.mask : NULL,
                              c.scale, c.has_keep ? c.keep : NULL, c.keep_prob, false, probs, ctx);
        fasi_ref_backward_head(c.sq, c.sk, c.d, c.dv, c.w, probs, c.q, c.k, c.v,
                               c.has_keep ? c.keep : NULL, c.scale, c.keep_prob, dq, dk, dv);
        for (int64_t t = 0; t < c.sq * c.d; t++) check_one(&c, &c.q[t], dq[t], "dq", t);
        for (int64_t t = 0; t < c.sk * c.d; t++) check_one(&c, &c.k[t], dk[t], "dk", t);
        for (int64_t t = 0; t < c.sk * c.dv; t++) check_one(&c, &c.v[t], dv[t], "dv", t);
    }
    /* the policy rows were really exercised */
    assert_true(fully_masked_rows > 10);
    printf("  worst finite-difference error |fd - an| / max(1, |an|) = %.3g\n", fd_worst);
}

/* The harness itself can fail: an analytic gradient off by 1e-4 relative is caught. */
static void test_gradient_check_detects_error(void **state)
{
    (void)state;
    grad_case c;
    memset(&c, 0, sizeof c);
    c.sq = 2, c.sk = 3, c.d = 2, c.dv = 2, c.scale = 1.0, c.keep_prob = 1.0;
    fast_rng r;
    fast_rng_seed(&r, 7);
    /* small logits keep every P >= e^-1 / 3, so dv[0] = sum_i P[i][0] w[i][0] >= 0.2 */
    fill_uniform(&r, c.q, 4, -0.5, 0.5);
    fill_uniform(&r, c.k, 6, -0.5, 0.5);
    fill_uniform(&r, c.v, 6, 1, 2);
    fill_uniform(&r, c.w, 4, 1, 2);
    double probs[6], ctx[4], dq[4], dk[6], dv[6];
    fasi_ref_forward_head(2, 3, 2, 2, c.q, c.k, c.v, NULL, 1.0, NULL, 1.0, false, probs, ctx);
    fasi_ref_backward_head(2, 3, 2, 2, c.w, probs, c.q, c.k, c.v, NULL, 1.0, 1.0, dq, dk, dv);
    assert_true(fabs(dv[0]) > 0.1);
    const double h = 1e-5;
    double x0 = c.v[0];
    c.v[0] = x0 + h;
    double lp = loss(&c);
    c.v[0] = x0 - h;
    double lm = loss(&c);
    double fd = (lp - lm) / ((x0 + h) - (x0 - h));
    assert_true(fabs(fd - dv[0]) <= 1e-6 * fmax(1, fabs(dv[0])));
    double wrong = dv[0] * (1 + 1e-4);
    assert_false(fabs(fd - wrong) <= 1e-6 * fmax(1, fabs(wrong)));
}

/* ============================== forward structure ========================================= */

static void test_single_key_single_query(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, 11);
    double q[4], k[4], v[5], probs[1], ctx[5];
    fill_uniform(&r, q, 4, -3, 3);
    fill_uniform(&r, k, 4, -3, 3);
    fill_uniform(&r, v, 5, -3, 3);
    double mask = -7.5;

    fasi_ref_forward_head(1, 1, 4, 5, q, k, v, &mask, 0.3, NULL, 1.0, false, probs, ctx);
    assert_true(probs[0] == 1.0);
    for (int c = 0; c < 5; c++) assert_true(ctx[c] == v[c]);

    uint8_t kept = 1, dropped = 0;
    fasi_ref_forward_head(1, 1, 4, 5, q, k, v, NULL, 0.3, &kept, 0.8, false, probs, ctx);
    assert_true(probs[0] == 1.0);
    for (int c = 0; c < 5; c++) assert_true(fabs(ctx[c] - v[c] / 0.8) <= 1e-15 * fabs(v[c]));

    fasi_ref_forward_head(1, 1, 4, 5, q, k, v, NULL, 0.3, &dropped, 0.8, false, probs, ctx);
    assert_true(probs[0] == 1.0); /* P is before dropout */
    for (int c = 0; c < 5; c++) assert_true(ctx[c] == 0.0);

    /* backward of a one-element softmax: no gradient to q, k; dV = dO * G */
    double dout[5], dq[4], dk[4], dvo[5];
    fill_uniform(&r, dout, 5, -1, 1);
    fasi_ref_backward_head(1, 1, 4, 5, dout, probs, q, k, v, &kept, 0.3, 0.8, dq, dk, dvo);
    for (int t = 0; t < 4; t++) assert_true(dq[t] == 0.0 && dk[t] == 0.0);
    for (int c = 0; c < 5; c++) assert_true(fabs(dvo[c] - dout[c] / 0.8) <= 1e-15);
    fasi_ref_backward_head(1, 1, 4, 5, dout, probs, q, k, v, &dropped, 0.3, 0.8, dq, dk, dvo);
    for (int c = 0; c < 5; c++) assert_true(dvo[c] == 0.0);
}

/* q = (1, 0), k = I, scale 1: logits (1, 0), P = (e, 1) / (e + 1). */
static void test_hand_computed_2x2(void **state)
{
    (void)state;
    double q[2] = {1, 0}, k[4] = {1, 0, 0, 1}, v[2] = {2, 4}, probs[2], ctx[1];
    fasi_ref_forward_head(1, 2, 2, 1, q, k, v, NULL, 1.0, NULL, 1.0, false, probs, ctx);
    const double e = 2.718281828459045;
    assert_true(fabs(probs[0] - e / (e + 1)) <= 1e-15);
    assert_true(fabs(probs[1] - 1 / (e + 1)) <= 1e-15);
    assert_true(fabs(ctx[0] - (2 * e + 4) / (e + 1)) <= 1e-14);
    /* an additive mask of +1 on key 1 evens the logits */
    double mask[2] = {0, 1};
    fasi_ref_forward_head(1, 2, 2, 1, q, k, v, mask, 1.0, NULL, 1.0, false, probs, ctx);
    assert_true(probs[0] == 0.5 && probs[1] == 0.5 && ctx[0] == 3.0);
    /* the scale multiplies A before the mask is added: 2 * (1, 0) + (0, 2) evens them too */
    double mask2[2] = {0, 2};
    fasi_ref_forward_head(1, 2, 2, 1, q, k, v, mask2, 2.0, NULL, 1.0, false, probs, ctx);
    assert_true(probs[0] == 0.5 && probs[1] == 0.5);
}

/* Row i unmasks only key perm[i]: P is the permutation matrix, so ctx[i] = v[perm[i]], and with
 * transpose_a ctx[i] = sum_j P[j][i] v[j] = v[perm^-1[i]]. */
static void test_one_hot_and_transpose_a(void **state)
{
    (void)state;
    enum { S = 4, D = 3, DV = 2 };
    const int perm[S] = {1, 2, 3, 0}, inv[S] = {3, 0, 1, 2};
    fast_rng r;
    fast_rng_seed(&r, 12);
    double q[S * D], k[S * D], v[S * DV], mask[S * S], probs[S * S], ctx[S * DV];
    fill_uniform(&r, q, S * D, -3, 3);
    fill_uniform(&r, k, S * D, -3, 3);
    fill_uniform(&r, v, S * DV, -3, 3);
    for (int i = 0; i < S; i++)
        for (int j = 0; j < S; j++) mask[i * S + j] = j == perm[i] ? -3.0 : -INFINITY;

    fasi_ref_forward_head(S, S, D, DV, q, k, v, mask, 0.7, NULL, 1.0, false, probs, ctx);
    for (int i = 0; i < S; i++) {
        for (int j = 0; j < S; j++) assert_true(probs[i * S + j] == (j == perm[i] ? 1.0 : 0.0));
        for (int c = 0; c < DV; c++) assert_true(ctx[i * DV + c] == v[perm[i] * DV + c]);
    }
    fasi_ref_forward_head(S, S, D, DV, q, k, v, mask, 0.7, NULL, 1.0, true, probs, ctx);
    for (int i = 0; i < S; i++)
        for (int c = 0; c < DV; c++) assert_true(ctx[i * DV + c] == v[inv[i] * DV + c]);

    /* dropout applies to Pd before the transpose: dropping P[inv[2]][2] zeroes ctx row 2 */
    uint8_t keep[S * S];
    memset(keep, 1, sizeof keep);
    keep[inv[2] * S + 2] = 0;
    fasi_ref_forward_head(S, S, D, DV, q, k, v, mask, 0.7, keep, 0.5, true, probs, ctx);
    for (int i = 0; i < S; i++)
        for (int c = 0; c < DV; c++)
            assert_true(ctx[i * DV + c] == (i == 2 ? 0.0 : v[inv[i] * DV + c] / 0.5));
}

static void test_identical_keys_uniform(void **state)
{
    (void)state;
    enum { SQ = 3, SK = 5, D = 4, DV = 3 };
    fast_rng r;
    fast_rng_seed(&r, 13);
    double q[SQ * D], k[SK * D], v[SK * DV], probs[SQ * SK], ctx[SQ * DV];
    fill_uniform(&r, q, SQ * D, -3, 3);
    fill_uniform(&r, k, D, -3, 3);
    for (int j = 1; j < SK; j++) memcpy(k + j * D, k, D * sizeof *k);
    fill_uniform(&r, v, SK * DV, -3, 3);
    fasi_ref_forward_head(SQ, SK, D, DV, q, k, v, NULL, 0.9, NULL, 1.0, false, probs, ctx);
    for (int i = 0; i < SQ; i++) {
        for (int j = 0; j < SK; j++) assert_true(fabs(probs[i * SK + j] - 0.2) <= 1e-16);
        for (int c = 0; c < DV; c++) {
            double mean = 0;
            for (int j = 0; j < SK; j++) mean += v[j * DV + c] / SK;
            assert_true(fabs(ctx[i * DV + c] - mean) <= 1e-14);
        }
    }
}

static void test_fully_masked_row_and_row_sums(void **state)
{
    (void)state;
    enum { SQ = 4, SK = 6, D = 5, DV = 3 };
    fast_rng r;
    fast_rng_seed(&r, 14);
    double q[SQ * D], k[SK * D], v[SK * DV], mask[SQ * SK], probs[SQ * SK], ctx[SQ * DV];
    fill_uniform(&r, q, SQ * D, -3, 3);
    fill_uniform(&r, k, SK * D, -3, 3);
    fill_uniform(&r, v, SK * DV, -3, 3);
    /* large finite logits: a softmax without the max shift would overflow exp */
    for (int t = 0; t < SQ * SK; t++) mask[t] = fast_rng_uniform(&r, 600, 800);
    for (int j = 0; j < SK; j++) mask[2 * SK + j] = -INFINITY;
    mask[3 * SK + 1] = -INFINITY;
    fasi_ref_forward_head(SQ, SK, D, DV, q, k, v, mask, 0.5, NULL, 1.0, false, probs, ctx);
    for (int i = 0; i < SQ; i++) {
        double sum = 0;
        for (int j = 0; j < SK; j++) {
            assert_true(probs[i * SK + j] >= 0 && probs[i * SK + j] <= 1);
            sum += probs[i * SK + j];
        }
        if (i == 2) {
            assert_true(sum == 0.0);
            for (int c = 0; c < DV; c++) assert_true(ctx[i * DV + c] == 0.0);
        } else {
            assert_true(fabs(sum - 1) <= 1e-14);
        }
    }
    assert_true(probs[3 * SK + 1] == 0.0);
    /* the fully masked row passes no gradient */
    double dout[SQ * DV], dq[SQ * D], dk[SK * D], dvo[SK * DV];
    fill_uniform(&r, dout, SQ * DV, -1, 1);
    fasi_ref_backward_head(SQ, SK, D, DV, dout, probs, q, k, v, NULL, 0.5, 1.0, dq, dk, dvo);
    for (int t = 0; t < D; t++) assert_true(dq[2 * D + t] == 0.0);
}

static void test_nan_propagates(void **state)
{
    (void)state;
    enum { SQ = 3, SK = 4, D = 2, DV = 2 };
    fast_rng r;
    fast_rng_seed(&r, 15);
    double q[SQ * D], k[SK * D], v[SK * DV], mask[SQ * SK], probs[SQ * SK], ctx[SQ * DV];
    fill_uniform(&r, q, SQ * D, -3, 3);
    fill_uniform(&r, k, SK * D, -3, 3);
    fill_uniform(&r, v, SK * DV, -3, 3);
    for (int t = 0; t < SQ * SK; t++) mask[t] = -INFINITY;
    mask[0 * SK + 3] = NAN; /* row 0: NaN among -inf is NaN, not the zero-row policy */
    mask[1 * SK + 0] = 0;
    mask[1 * SK + 2] = 0;
    mask[2 * SK + 1] = 0;
    q[1 * D + 1] = NAN; /* row 1: a NaN query */
    fasi_ref_forward_head(SQ, SK, D, DV, q, k, v, mask, 1.0, NULL, 1.0, false, probs, ctx);
    for (int j = 0; j < SK; j++) {
        assert_true(isnan(probs[0 * SK + j]));
        assert_true(isnan(probs[1 * SK + j]));
        assert_true(probs[2 * SK + j] == (j == 1 ? 1.0 : 0.0));
    }
    for (int c = 0; c < DV; c++) {
        assert_true(isnan(ctx[0 * DV + c]) && isnan(ctx[1 * DV + c]));
        assert_true(ctx[2 * DV + c] == v[1 * DV + c]);
    }
}

/* ============================== problem-level entry points ================================ */

/* A per-head tensor built the way problem.h describes fasi_heads, plus its logical ND copy. */
typedef struct heads_buf {
    fas_tensor t;
    fasi_heads h;
    int64_t b, n;
} heads_buf;

static heads_buf heads_make(int64_t b, int64_t n, int64_t rows, int64_t cols, bool merged,
                            bool trans, fas_dtype dt, fas_format f)
{
    heads_buf hb;
    memset(&hb, 0, sizeof hb);
    if (merged)
        hb.t = trans ? fast_tensor_2d(dt, f, n * cols, b * rows)
                     : fast_tensor_2d(dt, f, b * rows, n * cols);
    else
        hb.t = trans ? fast_tensor_4d(dt, f, b, n, cols, rows)
                     : fast_tensor_4d(dt, f, b, n, rows, cols);
    fasi_mat_init(&hb.h.mat, &hb.t);
    hb.h.merged = merged;
    hb.h.trans = trans;
    hb.h.heads = n;
    hb.h.rows = rows;
    hb.h.cols = cols;
    hb.b = b;
    hb.n = n;
    return hb;
}

/* Head (b, n) element (r, c) read from the logical ND copy nd of hb's tensor. */
static double heads_at(const heads_buf *hb, const float *nd, int64_t b, int64_t n, int64_t r,
                       int64_t c)
{
    int64_t rows = hb->h.rows, cols = hb->h.cols;
    if (hb->h.merged) {
        int64_t gr = b * rows + r, gc = n * cols + c;
        return hb->h.trans ? nd[gc * (hb->b * rows) + gr] : nd[gr * (hb->n * cols) + gc];
    }
    int64_t base = (b * hb->n + n) * rows * cols;
    return hb->h.trans ? nd[base + c * rows + r] : nd[base + r * cols + c];
}

static void head_copy(const heads_buf *hb, const float *nd, int64_t b, int64_t n, double *dst)
{
    for (int64_t r = 0; r < hb->h.rows; r++)
        for (int64_t c = 0; c < hb->h.cols; c++)
            dst[r * hb->h.cols + c] = heads_at(hb, nd, b, n, r, c);
}

/* The value a once-rounded store of x into dt reads back as. */
static float stored(fas_dtype dt, double x)
{
    switch (dt) {
    case FAS_DTYPE_FLOAT16: return fasi_f16_to_f32(fasi_f64_to_f16(x));
    case FAS_DTYPE_BF16: return fasi_bf16_to_f32(fasi_f64_to_bf16(x));
    default: return (float)x;
    }
}

static void assert_stored(fas_dtype dt, float got, double ref, const char *what)
{
    float want = stored(dt, ref);
    if (!(got == want || (isnan(got) && isnan(want)))) {
        printf("  %s: got %.9g, want %.9g (ref %.17g)\n", what, (double)got, (double)want, ref);
        fail();
    }
}

/* Every byte of t outside its logical matrices is zero (NZ; docs/semantics.md §7 index formula). */
static void assert_nz_padding_zero(const fas_tensor *t)
{
    if (t->format != FAS_FORMAT_FRACTAL_NZ) return;
    assert_true(t->ndim >= 2);
    int64_t rows = t->dims[t->ndim - 2], cols = t->dims[t->ndim - 1], batch = 1;
    for (int i = 0; i < t->ndim - 2; i++) batch *= t->dims[i];
    int64_t m1 = (rows + 15) / 16, n1 = (cols + 15) / 16;
    size_t es = t->dtype == FAS_DTYPE_FLOAT ? 4 : t->dtype == FAS_DTYPE_UINT8 ? 1 : 2;
    const unsigned char *bytes = t->data;
    int64_t padding = 0;
    for (int64_t bt = 0; bt < batch; bt++) {
        for (int64_t r = 0; r < m1 * 16; r++) {
            for (int64_t c = 0; c < n1 * 16; c++) {
                if (r < rows && c < cols) continue;
                int64_t idx =
                    bt * n1 * m1 * 256 + ((c / 16) * m1 + r / 16) * 256 + (r % 16) * 16 + c % 16;
                for (size_t e = 0; e < es; e++) assert_int_equal(bytes[(size_t)idx * es + e], 0);
                padding++;
            }
        }
    }
    assert_true(padding > 0); /* the shapes used here are not multiples of 16 */
}

static void canary(fas_tensor *t) { fast_canary_fill(t->data, fas_tensor_bytes(t)); }

typedef struct fwd_case {
    int64_t b, n, sq, sk, d, dv;
    double scale, keep_prob;
    fas_dtype qt, kt, vt, outt;
    fas_format qf, kf, vf, outf;
    bool q_trans, k_trans, v_trans;
    int64_t mask_b, mask_n, mask_rows; /* mask_b == 0: no mask */
    fas_format maskf;
    bool transpose_a;
    fasi_dropout_mode dropout;
    bool has_probs, has_dmask;
    fas_format probsf, dmaskf;
} fwd_case;

static void run_forward_case(const fwd_case *fc, uint64_t seed)
{
    const int64_t B = fc->b, N = fc->n, SQ = fc->sq, SK = fc->sk, D = fc->d, DV = fc->dv;
    fast_rng r;
    fast_rng_seed(&r, seed);
    heads_buf q = heads_make(B, N, SQ, D, false, fc->q_trans, fc->qt, fc->qf);
    heads_buf k = heads_make(B, N, SK, D, false, fc->k_trans, fc->kt, fc->kf);
    heads_buf v = heads_make(B, N, SK, DV, false, fc->v_trans, fc->vt, fc->vf);
    heads_buf out = heads_make(B, N, SQ, DV, true, false, fc->outt, fc->outf);
    fast_fill_uniform(&q.t, &r, -2, 2);
    fast_fill_uniform(&k.t, &r, -2, 2);
    fast_fill_uniform(&v.t, &r, -2, 2);
    canary(&out.t);

    fasi_fwd_problem p;
    memset(&p, 0, sizeof p);
    p.core.b = B, p.core.n = N, p.core.sq = SQ, p.core.sk = SK, p.core.d = D, p.core.dv = DV;
    p.core.scale = fc->scale;
    p.core.keep_prob = fc->keep_prob;
    p.q = q.h, p.k = k.h, p.v = v.h, p.out = out.h;
    p.transpose_a = fc->transpose_a;
    p.dropout = fc->dropout;
    p.seed = 0x1234567890abcdefull;
    p.offset = 977;
    p.threshold = fasi_dropout_threshold(fc->keep_prob);
    p.global_heads = N; /* an unsharded call */
    p.core.threads = 3; /* ignored by the reference */
    p.core.kern = fasi_kernels_for(FASI_ISA_PORTABLE);
    assert_non_null(p.core.kern);

    fas_tensor mask = {0}, probs = {0}, dmask = {0};
    float *mask_nd = NULL;
    if (fc->mask_b) {
        mask =
            fast_tensor_4d(FAS_DTYPE_FLOAT16, fc->maskf, fc->mask_b, fc->mask_n, fc->mask_rows, SK);
        int64_t cnt = fast_tensor_numel(&mask);
        float *vals = malloc((size_t)cnt * sizeof *vals);
        assert_non_null(vals);
        for (int64_t t = 0; t < cnt; t++) {
            double u = fast_rng_uniform(&r, 0, 1);
            vals[t] = u < 0.2 ? -INFINITY : u < 0.3 ? -10000.0f : (float)(-3 * u);
        }
        fast_from_f32(&mask, vals);
        free(vals);
        mask_nd = fast_to_f32(&mask);
        p.mask.present = true;
        fasi_mat_init(&p.mask.mat, &mask);
        p.mask.mask_b = fc->mask_b;
        p.mask.mask_n = fc->mask_n;
        p.mask.mask_rows = fc->mask_rows;
    }
    if (fc->has_probs) {
        probs = fast_tensor_4d(FAS_DTYPE_FLOAT16, fc->probsf, B, N, SQ, SK);
        canary(&probs);
        p.has_probs = true;
        fasi_mat_init(&p.probs, &probs);
    }
    uint8_t *dmask_in = NULL;
    if (fc->has_dmask) {
        dmask = fast_tensor_4d(FAS_DTYPE_UINT8, fc->dmaskf, B, N, SQ, SK);
        if (fc->dropout == FASI_DROPOUT_INPUT) {
            /* any nonzero byte means keep */
            fas_tensor src = dmask;
            src.format = FAS_FORMAT_ND;
            src.data = malloc((size_t)(B * N * SQ * SK));
            assert_non_null(src.data);
            uint8_t *sb = src.data;
            for (int64_t t = 0; t < B * N * SQ * SK; t++) {
                int64_t u = fast_rng_int(&r, 0, 3);
                sb[t] = (uint8_t)(u == 0 ? 0 : u == 1 ? 1 : u == 2 ? 7 : 255);
            }
            assert_int_equal(fas_format_cast(&src, &dmask), FAS_OK);
            free(src.data);
        } else {
            canary(&dmask);
        }
        dmask_in = malloc(fas_tensor_bytes(&dmask));
        assert_non_null(dmask_in);
        memcpy(dmask_in, dmask.data, fas_tensor_bytes(&dmask));
        p.has_dmask = true;
        fasi_mat_init(&p.dmask, &dmask);
    }
    uint8_t *dmask_nd = fc->dropout == FASI_DROPOUT_INPUT ? fast_to_u8(&dmask) : NULL;

    assert_int_equal(fasi_reference_forward(&p), FAS_OK);

    float *q_nd = fast_to_f32(&q.t), *k_nd = fast_to_f32(&k.t), *v_nd = fast_to_f32(&v.t);
    float *out_nd = fast_to_f32(&out.t);
    float *probs_nd = fc->has_probs ? fast_to_f32(&probs) : NULL;
    uint8_t *dmask_out = fc->has_dmask ? fast_to_u8(&dmask) : NULL;
    double *hq = malloc((size_t)(SQ * D) * sizeof(double));
    double *hk = malloc((size_t)(SK * D) * sizeof(double));
    double *hv = malloc((size_t)(SK * DV) * sizeof(double));
    double *hm = malloc((size_t)(SQ * SK) * sizeof(double));
    uint8_t *keep = malloc((size_t)(SQ * SK));
    double *hp = malloc((size_t)(SQ * SK) * sizeof(double));
    double *hc = malloc((size_t)(SQ * DV) * sizeof(double));
    assert_true(hq && hk && hv && hm && keep && hp && hc);
    int64_t kept = 0;
    for (int64_t b = 0; b < B; b++) {
        for (int64_t n = 0; n < N; n++) {
            const int64_t bn = b * N + n;
            head_copy(&q, q_nd, b, n, hq);
            head_copy(&k, k_nd, b, n, hk);
            head_copy(&v, v_nd, b, n, hv);
            for (int64_t i = 0; i < SQ; i++) {
                for (int64_t j = 0; j < SK; j++) {
                    if (mask_nd) {
                        int64_t mb = fc->mask_b > 1 ? b : 0, mn = fc->mask_n > 1 ? n : 0;
                        int64_t mr = fc->mask_rows > 1 ? i : 0;
                        int64_t mi = (mb * fc->mask_n + mn) * fc->mask_rows + mr;
                        hm[i * SK + j] = mask_nd[mi * SK + j];
                    }
                    bool kp = true;
                    if (fc->dropout == FASI_DROPOUT_GENERATE)
                        kp = fasi_dropout_keep(p.seed, p.offset, (uint64_t)(bn * SQ + i),
                                               (uint64_t)j, p.threshold);
                    else if (fc->dropout == FASI_DROPOUT_INPUT)
                        kp = dmask_nd[bn * SQ * SK + i * SK + j] != 0;
                    keep[i * SK + j] = kp;
                    kept += kp;
                }
            }
            fasi_ref_forward_head(SQ, SK, D, DV, hq, hk, hv, mask_nd ? hm : NULL, fc->scale, keep,
                                  fc->keep_prob, fc->transpose_a, hp, hc);
            for (int64_t i = 0; i < SQ; i++) {
                for (int64_t c = 0; c < DV; c++)
                    assert_stored(fc->outt, out_nd[(b * SQ + i) * (N * DV) + n * DV + c],
                                  hc[i * DV + c], "attention_score");
                for (int64_t j = 0; j < SK; j++) {
                    int64_t e = bn * SQ * SK + i * SK + j;
                    if (probs_nd)
                        assert_stored(FAS_DTYPE_FLOAT16, probs_nd[e], hp[i * SK + j],
                                      "softmax_output");
                    if (dmask_out && fc->dropout != FASI_DROPOUT_INPUT)
                        assert_int_equal(dmask_out[e], keep[i * SK + j]);
                }
            }
        }
    }
    if (fc->dropout == FASI_DROPOUT_GENERATE) {
        /* the keep rate is keep_prob (a loose 5-sigma window for these few elements) */
        double n_el = (double)(B * N * SQ * SK), rate = (double)kept / n_el;
        double sigma = sqrt(fc->keep_prob * (1 - fc->keep_prob) / n_el);
        assert_true(fabs(rate - fc->keep_prob) <= 5 * sigma);
    }
    if (fc->dropout == FASI_DROPOUT_NONE) assert_int_equal(kept, B * N * SQ * SK);
    if (fc->has_dmask && fc->dropout == FASI_DROPOUT_INPUT)
        assert_memory_equal(dmask.data, dmask_in, fas_tensor_bytes(&dmask));
    assert_nz_padding_zero(&out.t);
    if (fc->has_probs) assert_nz_padding_zero(&probs);
    if (fc->has_dmask && fc->dropout != FASI_DROPOUT_INPUT) assert_nz_padding_zero(&dmask);

    free(hq), free(hk), free(hv), free(hm), free(keep), free(hp), free(hc);
    free(q_nd), free(k_nd), free(v_nd), free(out_nd), free(probs_nd), free(dmask_out);
    free(dmask_nd), free(dmask_in), free(mask_nd);
    fast_tensor_free(&q.t), fast_tensor_free(&k.t), fast_tensor_free(&v.t);
    fast_tensor_free(&out.t);
    if (fc->mask_b) fast_tensor_free(&mask);
    if (fc->has_probs) fast_tensor_free(&probs);
    if (fc->has_dmask) fast_tensor_free(&dmask);
}

static void test_forward_nz_generated_dropout_key_padding_mask(void **state)
{
    (void)state;
    fwd_case fc = {.b = 2,
                   .n = 3,
                   .sq = 5,
                   .sk = 7,
                   .d = 4,
                   .dv = 6,
                   .scale = 0.5,
                   .keep_prob = 0.8,
                   .qt = FAS_DTYPE_FLOAT,
                   .kt = FAS_DTYPE_FLOAT16,
                   .vt = FAS_DTYPE_FLOAT16,
                   .outt = FAS_DTYPE_FLOAT16,
                   .qf = FAS_FORMAT_ND,
                   .kf = FAS_FORMAT_FRACTAL_NZ,
                   .vf = FAS_FORMAT_ND,
                   .outf = FAS_FORMAT_FRACTAL_NZ,
                   .v_trans = true,
                   .mask_b = 1,
                   .mask_n = 1,
                   .mask_rows = 1,
                   .maskf = FAS_FORMAT_ND,
                   .dropout = FASI_DROPOUT_GENERATE,
                   .has_probs = true,
                   .has_dmask = true,
                   .probsf = FAS_FORMAT_FRACTAL_NZ,
                   .dmaskf = FAS_FORMAT_FRACTAL_NZ};
    run_forward_case(&fc, fast_test_seed("forward_nz_generated", 101));
}

static void test_forward_input_dropout_transpose_a_full_mask(void **state)
{
    (void)state;
    fwd_case fc = {.b = 2,
                   .n = 2,
                   .sq = 6,
                   .sk = 6,
                   .d = 3,
                   .dv = 5,
                   .scale = 0.7,
                   .keep_prob = 0.6,
                   .qt = FAS_DTYPE_FLOAT16,
                   .kt = FAS_DTYPE_BF16,
                   .vt = FAS_DTYPE_FLOAT16,
                   .outt = FAS_DTYPE_FLOAT16,
                   .qf = FAS_FORMAT_FRACTAL_NZ,
                   .kf = FAS_FORMAT_ND,
                   .vf = FAS_FORMAT_FRACTAL_NZ,
                   .outf = FAS_FORMAT_ND,
                   .q_trans = true,
                   .k_trans = true,
                   .mask_b = 2,
                   .mask_n = 2,
                   .mask_rows = 6,
                   .maskf = FAS_FORMAT_FRACTAL_NZ,
                   .transpose_a = true,
                   .dropout = FASI_DROPOUT_INPUT,
                   .has_probs = true,
                   .has_dmask = true,
                   .probsf = FAS_FORMAT_ND,
                   .dmaskf = FAS_FORMAT_FRACTAL_NZ};
    run_forward_case(&fc, fast_test_seed("forward_input_transpose_a", 102));
}

static void test_forward_no_dropout_batch_masks(void **state)
{
    (void)state;
    fwd_case fc = {.b = 3,
                   .n = 2,
                   .sq = 4,
                   .sk = 9,
                   .d = 17,
                   .dv = 2,
                   .scale = 0.25,
                   .keep_prob = 1.0,
                   .qt = FAS_DTYPE_FLOAT16,
                   .kt = FAS_DTYPE_FLOAT16,
                   .vt = FAS_DTYPE_FLOAT16,
                   .outt = FAS_DTYPE_BF16,
                   .qf = FAS_FORMAT_ND,
                   .kf = FAS_FORMAT_ND,
                   .vf = FAS_FORMAT_ND,
                   .outf = FAS_FORMAT_FRACTAL_NZ,
                   .mask_b = 3,
                   .mask_n = 1,
                   .mask_rows = 4,
                   .maskf = FAS_FORMAT_ND,
                   .dropout = FASI_DROPOUT_NONE,
                   .has_probs = false,
                   .has_dmask = true,
                   .dmaskf = FAS_FORMAT_ND};
    run_forward_case(&fc, fast_test_seed("forward_no_dropout", 103));
    fwd_case kp = fc;
    kp.mask_b = 3, kp.mask_n = 1, kp.mask_rows = 1; /* [B,1,1,Sk] key padding */
    kp.has_dmask = false;
    run_forward_case(&kp, 104);
    fwd_case hm = fc;
    hm.mask_b = 1, hm.mask_n = 2, hm.mask_rows = 4; /* [1,N,Sq,Sk] */
    hm.has_probs = true, hm.probsf = FAS_FORMAT_FRACTAL_NZ;
    run_forward_case(&hm, 105);
    fwd_case shared = fc;
    shared.mask_b = 1, shared.mask_n = 1, shared.mask_rows = 4; /* [1,1,Sq,Sk] */
    shared.maskf = FAS_FORMAT_FRACTAL_NZ;
    run_forward_case(&shared, 107);
    fwd_case none = fc;
    none.mask_b = 0; /* no mask */
    run_forward_case(&none, 106);
}

typedef struct bwd_case {
    int64_t b, n, sq, sk, d, dv;
    double scale, keep_prob;
    fas_format qf, kf, vf, doutf, probsf, dmaskf;
    bool q_trans, k_trans, v_trans, dout_trans, has_dmask;
    bool dq_merged, dk_merged, dv_merged;
    fas_format dqf, dkf, dvf;
    fas_dtype dqt, dkt, dvt;
} bwd_case;

static void run_backward_case(const bwd_case *bc, uint64_t seed)
{
    const int64_t B = bc->b, N = bc->n, SQ = bc->sq, SK = bc->sk, D = bc->d, DV = bc->dv;
    fast_rng r;
    fast_rng_seed(&r, seed);
    const fas_dtype H = FAS_DTYPE_FLOAT16;
    heads_buf q = heads_make(B, N, SQ, D, false, bc->q_trans, H, bc->qf);
    heads_buf k = heads_make(B, N, SK, D, false, bc->k_trans, H, bc->kf);
    heads_buf v = heads_make(B, N, SK, DV, false, bc->v_trans, H, bc->vf);
    heads_buf dout = heads_make(B, N, SQ, DV, true, bc->dout_trans, H, bc->doutf);
    heads_buf dq = heads_make(B, N, SQ, D, bc->dq_merged, false, bc->dqt, bc->dqf);
    heads_buf dk = heads_make(B, N, SK, D, bc->dk_merged, false, bc->dkt, bc->dkf);
    heads_buf dv = heads_make(B, N, SK, DV, bc->dv_merged, false, bc->dvt, bc->dvf);
    fas_tensor probs = fast_tensor_4d(H, bc->probsf, B, N, SQ, SK);
    fast_fill_uniform(&q.t, &r, -2, 2);
    fast_fill_uniform(&k.t, &r, -2, 2);
    fast_fill_uniform(&v.t, &r, -2, 2);
    fast_fill_uniform(&dout.t, &r, -1, 1);
    /* the backward takes P as given; any values in [0, 1) exercise it */
    fast_fill_uniform(&probs, &r, 0, 1);
    canary(&dq.t), canary(&dk.t), canary(&dv.t);

    fasi_bwd_problem p;
    memset(&p, 0, sizeof p);
    p.core.b = B, p.core.n = N, p.core.sq = SQ, p.core.sk = SK, p.core.d = D, p.core.dv = DV;
    p.core.scale = bc->scale, p.core.keep_prob = bc->keep_prob;
    p.dout = dout.h, p.q = q.h, p.k = k.h, p.v = v.h;
    p.dq = dq.h, p.dk = dk.h, p.dv_out = dv.h;
    fasi_mat_init(&p.probs, &probs);
    fas_tensor dmask = {0};
    uint8_t *dmask_nd = NULL;
    if (bc->has_dmask) {
        dmask = fast_tensor_4d(FAS_DTYPE_UINT8, bc->dmaskf, B, N, SQ, SK);
        fas_tensor src = dmask;
        src.format = FAS_FORMAT_ND;
        src.data = malloc((size_t)(B * N * SQ * SK));
        assert_non_null(src.data);
        uint8_t *sb = src.data;
        for (int64_t t = 0; t < B * N * SQ * SK; t++) sb[t] = fast_rng_int(&r, 0, 4) != 0;
        assert_int_equal(fas_format_cast(&src, &dmask), FAS_OK);
        free(src.data);
        dmask_nd = fast_to_u8(&dmask);
        p.has_dmask = true;
        fasi_mat_init(&p.dmask, &dmask);
    }
    p.core.threads = 2;
    p.core.kern = fasi_kernels_for(FASI_ISA_PORTABLE);

    assert_int_equal(fasi_reference_backward(&p), FAS_OK);

    float *q_nd = fast_to_f32(&q.t), *k_nd = fast_to_f32(&k.t), *v_nd = fast_to_f32(&v.t);
    float *dout_nd = fast_to_f32(&dout.t), *probs_nd = fast_to_f32(&probs);
    float *dq_nd = fast_to_f32(&dq.t), *dk_nd = fast_to_f32(&dk.t), *dv_nd = fast_to_f32(&dv.t);
    double *hq = malloc((size_t)(SQ * D) * sizeof(double));
    double *hk = malloc((size_t)(SK * D) * sizeof(double));
    double *hv = malloc((size_t)(SK * DV) * sizeof(double));
    double *ho = malloc((size_t)(SQ * DV) * sizeof(double));
    double *hp = malloc((size_t)(SQ * SK) * sizeof(double));
    uint8_t *keep = malloc((size_t)(SQ * SK));
    double *gq = malloc((size_t)(SQ * D) * sizeof(double));
    double *gk = malloc((size_t)(SK * D) * sizeof(double));
    double *gv = malloc((size_t)(SK * DV) * sizeof(double));
    assert_true(hq && hk && hv && ho && hp && keep && gq && gk && gv);
    for (int64_t b = 0; b < B; b++) {
        for (int64_t n = 0; n < N; n++) {
            const int64_t bn = b * N + n;
            head_copy(&q, q_nd, b, n, hq);
            head_copy(&k, k_nd, b, n, hk);
            head_copy(&v, v_nd, b, n, hv);
            head_copy(&dout, dout_nd, b, n, ho);
            for (int64_t t = 0; t < SQ * SK; t++) {
                hp[t] = probs_nd[bn * SQ * SK + t];
                keep[t] = dmask_nd ? dmask_nd[bn * SQ * SK + t] : 1;
            }
            fasi_ref_backward_head(SQ, SK, D, DV, ho, hp, hq, hk, hv, dmask_nd ? keep : NULL,
                                   bc->scale, bc->keep_prob, gq, gk, gv);
            for (int64_t i = 0; i < SQ; i++)
                for (int64_t c = 0; c < D; c++)
                    assert_stored(bc->dqt, (float)heads_at(&dq, dq_nd, b, n, i, c), gq[i * D + c],
                                  "query_dx");
            for (int64_t j = 0; j < SK; j++) {
                for (int64_t c = 0; c < D; c++)
                    assert_stored(bc->dkt, (float)heads_at(&dk, dk_nd, b, n, j, c), gk[j * D + c],
                                  "key_dw");
                for (int64_t c = 0; c < DV; c++)
                    assert_stored(bc->dvt, (float)heads_at(&dv, dv_nd, b, n, j, c), gv[j * DV + c],
                                  "value_dw");
            }
        }
    }
    assert_nz_padding_zero(&dq.t);
    assert_nz_padding_zero(&dk.t);
    assert_nz_padding_zero(&dv.t);

    free(hq), free(hk), free(hv), free(ho), free(hp), free(keep), free(gq), free(gk), free(gv);
    free(q_nd), free(k_nd), free(v_nd), free(dout_nd), free(probs_nd);
    free(dq_nd), free(dk_nd), free(dv_nd), free(dmask_nd);
    fast_tensor_free(&q.t), fast_tensor_free(&k.t), fast_tensor_free(&v.t);
    fast_tensor_free(&dout.t), fast_tensor_free(&dq.t), fast_tensor_free(&dk.t);
    fast_tensor_free(&dv.t), fast_tensor_free(&probs);
    if (bc->has_dmask) fast_tensor_free(&dmask);
}

static void test_backward_nz_merged_transposed_dout(void **state)
{
    (void)state;
    bwd_case bc = {.b = 2,
                   .n = 3,
                   .sq = 5,
                   .sk = 7,
                   .d = 4,
                   .dv = 6,
                   .scale = 0.5,
                   .keep_prob = 0.8,
                   .qf = FAS_FORMAT_FRACTAL_NZ,
                   .kf = FAS_FORMAT_ND,
                   .vf = FAS_FORMAT_FRACTAL_NZ,
                   .doutf = FAS_FORMAT_FRACTAL_NZ,
                   .probsf = FAS_FORMAT_FRACTAL_NZ,
                   .dmaskf = FAS_FORMAT_FRACTAL_NZ,
                   .q_trans = true,
                   .v_trans = true,
                   .dout_trans = true,
                   .has_dmask = true,
                   .dq_merged = true,
                   .dk_merged = false,
                   .dv_merged = true,
                   .dqf = FAS_FORMAT_FRACTAL_NZ,
                   .dkf = FAS_FORMAT_FRACTAL_NZ,
                   .dvf = FAS_FORMAT_ND,
                   .dqt = FAS_DTYPE_FLOAT16,
                   .dkt = FAS_DTYPE_FLOAT,
                   .dvt = FAS_DTYPE_BF16};
    run_backward_case(&bc, fast_test_seed("backward_nz", 201));
}

static void test_backward_nd_no_dropout(void **state)
{
    (void)state;
    bwd_case bc = {.b = 1,
                   .n = 2,
                   .sq = 9,
                   .sk = 3,
                   .d = 18,
                   .dv = 2,
                   .scale = 0.125,
                   .keep_prob = 1.0,
                   .qf = FAS_FORMAT_ND,
                   .kf = FAS_FORMAT_ND,
                   .vf = FAS_FORMAT_ND,
                   .doutf = FAS_FORMAT_ND,
                   .probsf = FAS_FORMAT_ND,
                   .k_trans = true,
                   .has_dmask = false,
                   .dq_merged = false,
                   .dk_merged = true,
                   .dv_merged = false,
                   .dqf = FAS_FORMAT_ND,
                   .dkf = FAS_FORMAT_FRACTAL_NZ,
                   .dvf = FAS_FORMAT_FRACTAL_NZ,
                   .dqt = FAS_DTYPE_FLOAT16,
                   .dkt = FAS_DTYPE_FLOAT16,
                   .dvt = FAS_DTYPE_FLOAT16};
    run_backward_case(&bc, fast_test_seed("backward_nd", 202));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradient_check),
        cmocka_unit_test(test_gradient_check_detects_error),
        cmocka_unit_test(test_single_key_single_query),
        cmocka_unit_test(test_hand_computed_2x2),
        cmocka_unit_test(test_one_hot_and_transpose_a),
        cmocka_unit_test(test_identical_keys_uniform),
        cmocka_unit_test(test_fully_masked_row_and_row_sums),
        cmocka_unit_test(test_nan_propagates),
        cmocka_unit_test(test_forward_nz_generated_dropout_key_padding_mask),
        cmocka_unit_test(test_forward_input_dropout_transpose_a_full_mask),
        cmocka_unit_test(test_forward_no_dropout_batch_masks),
        cmocka_unit_test(test_backward_nz_merged_transposed_dout),
        cmocka_unit_test(test_backward_nd_no_dropout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
