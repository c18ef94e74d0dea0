/* Forward operator: blocked pipeline vs the fp64 reference vs a test-side oracle, golden cases,
 * determinism. Accuracy contract: docs/semantics.md §2 (fast_assert_close). */
#include <math.h>
#include <string.h>

#include "attn_case.h"

/* Keep the fp64 work of one random case bounded: B*N*Sq*Sk*(D+Dv) multiply-adds. */
#define CASE_BUDGET 3000000.0

static void shrink_to_budget(attn_case *c)
{
    for (;;) {
        double vol = (double)c->b * c->n * c->sq * c->sk * (double)(c->d + c->dv);
        if (vol <= CASE_BUDGET) return;
        int64_t *big = &c->sq;
        int64_t *cands[4] = {&c->sq, &c->sk, &c->d, &c->dv};
        for (int i = 1; i < 4; i++)
            if (*cands[i] > *big) big = cands[i];
        *big = (*big + 1) / 2;
        if (c->ta) c->sk = c->sq = (c->sq < c->sk ? c->sq : c->sk);
    }
}

static void random_case(attn_case *c, fast_rng *r)
{
    memset(c, 0, sizeof *c);
    c->b = fast_rng_int(r, 1, 4);
    c->n = fast_rng_int(r, 1, 4);
    c->sq = fast_rng_int(r, 1, 300);
    c->sk = fast_rng_int(r, 1, 300);
    c->d = fast_rng_int(r, 1, 130);
    c->dv = fast_rng_int(r, 1, 130);
    int flags = (int)fast_rng_int(r, 0, 15);
    c->qt = flags & 1;
    c->kt = flags & 2;
    c->ta = flags & 4;
    c->tb = flags & 8;
    if (c->ta) c->sk = c->sq;
    shrink_to_budget(c);
    c->mask_form = (int)fast_rng_int(r, 0, MASK_FORMS - 1);
    static const double keeps[3] = {1.0, 0.9, 0.5};
    c->keep_prob = keeps[fast_rng_int(r, 0, 2)];
    c->scale = fast_rng_int(r, 0, 1) ? 0.125 : 1.0 / sqrt((double)c->d);
}

typedef struct outputs {
    fas_tensor out, probs, dmask;
} outputs;

static void outputs_alloc(outputs *o, const attn_case *c, fas_dtype dt, fas_format f_out,
                          fas_format f_probs, fas_format f_mask)
{
    o->out = fast_tensor_2d(dt, f_out, c->b * c->sq, c->n * c->dv);
    o->probs = fast_tensor_4d(dt, f_probs, c->b, c->n, c->sq, c->sk);
    o->dmask = fast_tensor_4d(FAS_DTYPE_UINT8, f_mask, c->b, c->n, c->sq, c->sk);
}

static void outputs_free(outputs *o)
{
    fast_tensor_free(&o->out);
    fast_tensor_free(&o->probs);
    fast_tensor_free(&o->dmask);
}

static double *to_double(const float *x, int64_t n)
{
    double *d = malloc((size_t)n * sizeof *d);
    assert_non_null(d);
    for (int64_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* Each probability row of got sums to 1 within tol: 2e-3 for fp16 (docs/semantics.md §2); bf16
 * rounding alone can move a row sum by 2^-9, so bf16 rows get 2^-8. */
static void assert_rows_sum_within(const float *p, int64_t rows, int64_t sk, double tol)
{
    for (int64_t i = 0; i < rows; i++) {
        double s = 0;
        for (int64_t j = 0; j < sk; j++) s += p[i * sk + j];
        if (fabs(s - 1.0) > tol) {
            printf("  row %lld sums to %.6f\n", (long long)i, s);
            fail();
        }
    }
}

static fas_format random_format(fast_rng *r)
{
    return fast_rng_int(r, 0, 1) ? FAS_FORMAT_FRACTAL_NZ : FAS_FORMAT_ND;
}

/* One case: pipeline (fp16 outputs in random formats) and reference (fp32 ND outputs) with the
 * same seed; drop masks must be identical; pipeline within the contract of the reference;
 * reference within 1e-5 relative of the test's own oracle (it is fp64 rounded to fp32). */
static void run_case(attn_case *c, fast_rng *r, int index, fas_dtype dtype, bool print)
{
    fas_format fmt[4] = {random_format(r), random_format(r), random_format(r), random_format(r)};
    attn_case_alloc(c, r, dtype, fmt, -3.0, 3.0, -4.0, 0.5);
    if (print) attn_case_print(c, index);
    outputs pipe, ref;
    outputs_alloc(&pipe, c, dtype, random_format(r), random_format(r), random_format(r));
    outputs_alloc(&ref, c, FAS_DTYPE_FLOAT, FAS_FORMAT_ND, FAS_FORMAT_ND, FAS_FORMAT_ND);
    uint64_t seed = fast_rng_u64(r), offset = fast_rng_u64(r) >> 8;

    fas_status st =
        attn_run_forward(c, FAS_IMPL_AUTO, 0, seed, offset, &pipe.out, &pipe.probs, &pipe.dmask);
    if (st != FAS_OK) {
        attn_case_print(c, index);
        printf("  pipeline: %s: %s\n", fas_status_string(st), fas_last_error());
    }
    assert_int_equal(st, FAS_OK);
    st = attn_run_forward(c, FAS_IMPL_REFERENCE, 1, seed, offset, &ref.out, &ref.probs, &ref.dmask);
    assert_int_equal(st, FAS_OK);

    int64_t n_out = c->b * c->sq * c->n * c->dv, n_p = c->b * c->n * c->sq * c->sk;
    uint8_t *mask_pipe = fast_to_u8(&pipe.dmask), *mask_ref = fast_to_u8(&ref.dmask);
    if (memcmp(mask_pipe, mask_ref, (size_t)n_p) != 0) {
        attn_case_print(c, index);
        fail_msg("drop masks differ between pipeline and reference");
    }
    if (c->keep_prob == 1.0)
        for (int64_t i = 0; i < n_p; i++) assert_int_equal(mask_ref[i], 1);

    float *out_pipe = fast_to_f32(&pipe.out), *out_ref = fast_to_f32(&ref.out);
    float *p_pipe = fast_to_f32(&pipe.probs), *p_ref = fast_to_f32(&ref.probs);
    double *out_ref_d = to_double(out_ref, n_out), *p_ref_d = to_double(p_ref, n_p);

    /* the reference agrees with the test's own oracle (same keep bytes) */
    double *o_ctx = malloc((size_t)n_out * sizeof *o_ctx), *o_p = malloc((size_t)n_p * sizeof *o_p);
    assert_non_null(o_ctx);
    assert_non_null(o_p);
    attn_oracle_forward(c, mask_ref, o_p, o_ctx);
    fast_close_stats s1 =
        fast_check_close("reference ctx vs oracle", out_ref, o_ctx, n_out, 1e-5, 1e-6);
    fast_close_stats s2 = fast_check_close("reference P vs oracle", p_ref, o_p, n_p, 1e-5, 1e-6);
    /* bf16 keeps 8 significand bits: its own output rounding (2^-9 relative) uses the whole fp16
     * budget, so bf16 outputs get twice its unit roundoff; fp16 and fp32 get the contract. */
    double rtol = dtype == FAS_DTYPE_BF16 ? 1.0 / 256 : FAST_RTOL;
    double afrac = dtype == FAS_DTYPE_BF16 ? 1.0 / 512 : FAST_ATOL_FRAC;
    fast_close_stats s3 = fast_check_close("pipeline ctx", out_pipe, out_ref_d, n_out, rtol, afrac);
    fast_close_stats s4 = fast_check_close("pipeline P", p_pipe, p_ref_d, n_p, rtol, afrac);
    if (s1.failures || s2.failures || s3.failures || s4.failures) attn_case_print(c, index);
    if (getenv("FAS_TEST_VERBOSE"))
        printf(
            "  case %d ctx: max abs %.3g, worst/tolerance %.3f; P: max abs %.3g, worst/tolerance "
            "%.3f\n",
            index, s3.max_abs, s3.worst_excess + 1.0, s4.max_abs, s4.worst_excess + 1.0);
    assert_int_equal(s1.failures + s2.failures + s3.failures + s4.failures, 0);
    assert_rows_sum_within(p_pipe, c->b * c->n * c->sq, c->sk,
                           dtype == FAS_DTYPE_BF16 ? 1.0 / 256 : 2e-3);

    /* without softmax_output the pipeline streams over key tiles (online softmax): same
     * contract, and the drop mask is bitwise the materialising one */
    if (!c->ta) {
        fas_tensor out2 = fast_tensor_2d(dtype, random_format(r), c->b * c->sq, c->n * c->dv);
        fas_tensor mask2 =
            fast_tensor_4d(FAS_DTYPE_UINT8, random_format(r), c->b, c->n, c->sq, c->sk);
        assert_int_equal(attn_run_forward(c, FAS_IMPL_AUTO, 0, seed, offset, &out2, NULL, &mask2),
                         FAS_OK);
        uint8_t *m2 = fast_to_u8(&mask2);
        assert_memory_equal(m2, mask_ref, (size_t)n_p);
        float *o2 = fast_to_f32(&out2);
        fast_close_stats s5 = fast_check_close("streaming ctx", o2, out_ref_d, n_out, rtol, afrac);
        if (s5.failures) attn_case_print(c, index);
        assert_int_equal(s5.failures, 0);
        free(o2);
        free(m2);
        fast_tensor_free(&out2);
        fast_tensor_free(&mask2);
    }

    free(o_ctx);
    free(o_p);
    free(out_pipe);
    free(out_ref);
    free(p_pipe);
    free(p_ref);
    free(out_ref_d);
    free(p_ref_d);
    free(mask_pipe);
    free(mask_ref);
    outputs_free(&pipe);
    outputs_free(&ref);
    attn_case_free(c);
}

static void test_random_cases(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("random_cases", 20261127));
    const int cases = 120;
    for (int i = 0; i < cases; i++) {
        attn_case c;
        random_case(&c, &r);
        /* mostly the NPU's fp16; every 8th case FLOAT, every 8th+4 BF16 */
        fas_dtype dt = i % 8 == 0   ? FAS_DTYPE_FLOAT
                       : i % 8 == 4 ? FAS_DTYPE_BF16
                                    : FAS_DTYPE_FLOAT16;
        run_case(&c, &r, i, dt, getenv("FAS_TEST_VERBOSE") != NULL);
    }
}

/* Every flag combination and every mask form at least once, on one small odd shape. */
static void test_every_flag_and_mask(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("every_flag_and_mask", 7));
    int index = 0;
    for (int flags = 0; flags < 16; flags++) {
        for (int form = 0; form < MASK_FORMS; form++) {
            attn_case c;
            memset(&c, 0, sizeof c);
            c.b = 2;
            c.n = 3;
            c.sq = 19;
            c.sk = (flags & 4) ? 19 : 33;
            c.d = 17;
            c.dv = 9;
            c.qt = flags & 1;
            c.kt = flags & 2;
            c.ta = flags & 4;
            c.tb = flags & 8;
            c.mask_form = form;
            c.keep_prob = (form % 2) ? 0.9 : 1.0;
            c.scale = 0.3;
            run_case(&c, &r, index++, FAS_DTYPE_FLOAT16, false);
        }
    }
}

static void test_gv_f1_scaled(void **state)
{
    (void)state;
    attn_check_gv_f1(2, 4, 128, 64);
}

/* GV-D1 (scaled): q, k, v, mask uniform [0, 1), scale 0.125, keep 0.5; values cluster around
 * 0.5 (mean of V), within the contract of the reference for the same mask. */
static void test_gv_d1_scaled(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("gv_d1", 2));
    attn_case c;
    memset(&c, 0, sizeof c);
    c.b = 2;
    c.n = 2;
    c.sq = c.sk = 128;
    c.d = c.dv = 64;
    c.mask_form = MASK_BNSS;
    c.scale = 0.125;
    c.keep_prob = 0.5;
    fas_format nz[4] = {FAS_FORMAT_FRACTAL_NZ, FAS_FORMAT_FRACTAL_NZ, FAS_FORMAT_FRACTAL_NZ,
                        FAS_FORMAT_FRACTAL_NZ};
    attn_case_alloc(&c, &r, FAS_DTYPE_FLOAT16, nz, 0.0, 1.0, 0.0, 1.0);
    outputs pipe, ref;
    outputs_alloc(&pipe, &c, FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, FAS_FORMAT_ND,
                  FAS_FORMAT_FRACTAL_NZ);
    outputs_alloc(&ref, &c, FAS_DTYPE_FLOAT, FAS_FORMAT_ND, FAS_FORMAT_ND, FAS_FORMAT_ND);
    assert_int_equal(
        attn_run_forward(&c, FAS_IMPL_AUTO, 0, 5, 0, &pipe.out, &pipe.probs, &pipe.dmask), FAS_OK);
    assert_int_equal(
        attn_run_forward(&c, FAS_IMPL_REFERENCE, 1, 5, 0, &ref.out, &ref.probs, &ref.dmask),
        FAS_OK);
    int64_t n_out = c.b * c.sq * c.n * c.dv;
    float *o = fast_to_f32(&pipe.out), *oref = fast_to_f32(&ref.out);
    double mean = 0;
    for (int64_t i = 0; i < n_out; i++) mean += o[i];
    mean /= (double)n_out;
    printf("  GV-D1 mean of context %.4f\n", mean);
    assert_true(fabs(mean - 0.5) < 0.05);
    double *oref_d = to_double(oref, n_out);
    fast_assert_close("GV-D1 context", o, oref_d, n_out);
    free(o);
    free(oref);
    free(oref_d);
    outputs_free(&pipe);
    outputs_free(&ref);
    attn_case_free(&c);
}

/* Fully masked rows (all -inf) give zero probabilities and a zero context, never NaN. */
static void test_fully_masked_rows(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, 3);
    attn_case c;
    memset(&c, 0, sizeof c);
    c.b = 1;
    c.n = 2;
    c.sq = 5;
    c.sk = 21;
    c.d = c.dv = 8;
    c.mask_form = MASK_11SS;
    c.scale = 1.0;
    c.keep_prob = 1.0;
    fas_format nd[4] = {FAS_FORMAT_ND, FAS_FORMAT_ND, FAS_FORMAT_ND, FAS_FORMAT_ND};
    attn_case_alloc(&c, &r, FAS_DTYPE_FLOAT16, nd, -1.0, 1.0, 0.0, 0.0);
    float mvals[5 * 21];
    for (int i = 0; i < 5 * 21; i++) mvals[i] = (i / 21 == 2) ? -INFINITY : 0.0f;
    fast_from_f32(&c.mask, mvals);
    for (int impl = 0; impl < 2; impl++) {
        outputs o;
        outputs_alloc(&o, &c, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, FAS_FORMAT_FRACTAL_NZ,
                      FAS_FORMAT_ND);
        assert_int_equal(attn_run_forward(&c, impl ? FAS_IMPL_REFERENCE : FAS_IMPL_AUTO, 0, 1, 0,
                                          &o.out, &o.probs, &o.dmask),
                         FAS_OK);
        float *p = fast_to_f32(&o.probs), *ctx = fast_to_f32(&o.out);
        for (int64_t h = 0; h < 2; h++)
            for (int64_t j = 0; j < 21; j++) assert_true(p[(h * 5 + 2) * 21 + j] == 0.0f);
        for (int64_t e = 0; e < 16; e++) assert_true(ctx[2 * 16 + e] == 0.0f);
        for (int64_t i = 0; i < 5 * 16; i++) assert_false(isnan(ctx[i]));
        free(p);
        free(ctx);
        outputs_free(&o);
    }
    attn_case_free(&c);
}

/* Streaming over several key tiles: logits grow along the keys (the running max is raised
 * tile after tile), one row has -inf over the whole first tile, another over every key. */
static void test_streaming_multi_tile(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("streaming_multi_tile", 17));
    attn_case c;
    memset(&c, 0, sizeof c);
    c.b = 1;
    c.n = 2;
    c.sq = 70;
    c.sk = 1100;
    c.d = 24;
    c.dv = 20;
    c.mask_form = MASK_1NSS;
    c.scale = 0.5;
    c.keep_prob = 0.9;
    fas_format f[4] = {FAS_FORMAT_FRACTAL_NZ, FAS_FORMAT_ND, FAS_FORMAT_FRACTAL_NZ,
                       FAS_FORMAT_FRACTAL_NZ};
    attn_case_alloc(&c, &r, FAS_DTYPE_FLOAT16, f, -1.0, 1.0, 0.0, 0.0);
    int64_t nm = c.n * c.sq * c.sk;
    float *mv = malloc((size_t)nm * sizeof *mv);
    assert_non_null(mv);
    for (int64_t i = 0; i < nm; i++) {
        int64_t j = i % c.sk, row = (i / c.sk) % c.sq;
        mv[i] = (float)(j / 100) * 1.5f; /* a step up every 100 keys */
        if (row == 3 && j < 600) mv[i] = -INFINITY;
        if (row == 5) mv[i] = -INFINITY;
    }
    fast_from_f32(&c.mask, mv);
    free(mv);
    fas_tensor out = fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, c.sq, c.n * c.dv);
    fas_tensor dm = fast_tensor_4d(FAS_DTYPE_UINT8, FAS_FORMAT_ND, 1, c.n, c.sq, c.sk);
    fas_tensor ref = fast_tensor_2d(FAS_DTYPE_FLOAT, FAS_FORMAT_ND, c.sq, c.n * c.dv);
    fas_tensor dm_ref = fast_tensor_4d(FAS_DTYPE_UINT8, FAS_FORMAT_ND, 1, c.n, c.sq, c.sk);
    assert_int_equal(attn_run_forward(&c, FAS_IMPL_AUTO, 0, 3, 4, &out, NULL, &dm), FAS_OK);
    assert_int_equal(attn_run_forward(&c, FAS_IMPL_REFERENCE, 1, 3, 4, &ref, NULL, &dm_ref),
                     FAS_OK);
    assert_memory_equal(dm.data, dm_ref.data, fas_tensor_bytes(&dm));
    int64_t n_out = c.sq * c.n * c.dv;
    float *got = fast_to_f32(&out), *rv = fast_to_f32(&ref);
    double *rd = to_double(rv, n_out);
    fast_assert_close("streaming multi-tile ctx", got, rd, n_out);
    for (int64_t e = 0; e < c.n * c.dv; e++) assert_true(got[5 * c.n * c.dv + e] == 0.0f);
    free(got);
    free(rv);
    free(rd);
    fast_tensor_free(&out);
    fast_tensor_free(&dm);
    fast_tensor_free(&ref);
    fast_tensor_free(&dm_ref);
    attn_case_free(&c);
}

/* Identical bytes for 1, 2 and 3 threads and for repeated runs; other seeds/offsets differ. */
static void test_determinism(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, 11);
    attn_case c;
    memset(&c, 0, sizeof c);
    c.b = 2;
    c.n = 3;
    c.sq = 130;
    c.sk = 77;
    c.d = 40;
    c.dv = 24;
    c.mask_form = MASK_B11S;
    c.scale = 0.2;
    c.keep_prob = 0.7;
    fas_format f[4] = {FAS_FORMAT_FRACTAL_NZ, FAS_FORMAT_ND, FAS_FORMAT_FRACTAL_NZ, FAS_FORMAT_ND};
    attn_case_alloc(&c, &r, FAS_DTYPE_FLOAT16, f, -2.0, 2.0, -1.0, 0.0);
    outputs base;
    outputs_alloc(&base, &c, FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, FAS_FORMAT_FRACTAL_NZ,
                  FAS_FORMAT_FRACTAL_NZ);
    assert_int_equal(
        attn_run_forward(&c, FAS_IMPL_AUTO, 1, 42, 9, &base.out, &base.probs, &base.dmask), FAS_OK);
    for (int threads = 1; threads <= 3; threads++) {
        for (int rep = 0; rep < 2; rep++) {
            outputs o;
            outputs_alloc(&o, &c, FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, FAS_FORMAT_FRACTAL_NZ,
                          FAS_FORMAT_FRACTAL_NZ);
            assert_int_equal(
                attn_run_forward(&c, FAS_IMPL_AUTO, threads, 42, 9, &o.out, &o.probs, &o.dmask),
                FAS_OK);
            assert_memory_equal(o.out.data, base.out.data, fas_tensor_bytes(&o.out));
            assert_memory_equal(o.probs.data, base.probs.data, fas_tensor_bytes(&o.probs));
            assert_memory_equal(o.dmask.data, base.dmask.data, fas_tensor_bytes(&o.dmask));
            outputs_free(&o);
        }
    }
    /* fused_attention_score_ex is _fwd_ex without the extra outputs: same bytes as the
     * streaming path of _fwd_ex with explicit seed */
    {
        fas_tensor o1 = fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, c.b * c.sq, c.n * c.dv);
        fas_tensor o2 = fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, c.b * c.sq, c.n * c.dv);
        fas_options o;
        fas_options_init(&o);
        o.has_seed = true;
        o.seed = 42;
        o.offset = 9;
        assert_int_equal(fused_attention_score_ex(&c.q, &c.k, &c.v, attn_mask_ptr(&c), c.scale,
                                                  c.keep_prob, false, false, false, false, false,
                                                  false, &o1, &o),
                         FAS_OK);
        assert_int_equal(attn_run_forward(&c, FAS_IMPL_AUTO, 0, 42, 9, &o2, NULL, NULL), FAS_OK);
        assert_memory_equal(o1.data, o2.data, fas_tensor_bytes(&o1));
        fast_tensor_free(&o1);
        fast_tensor_free(&o2);
    }
    /* another seed, another offset: different masks */
    uint64_t seeds[2][2] = {{43, 9}, {42, 10}};
    for (int i = 0; i < 2; i++) {
        outputs o;
        outputs_alloc(&o, &c, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, FAS_FORMAT_ND,
                      FAS_FORMAT_FRACTAL_NZ);
        assert_int_equal(attn_run_forward(&c, FAS_IMPL_AUTO, 2, seeds[i][0], seeds[i][1], &o.out,
                                          &o.probs, &o.dmask),
                         FAS_OK);
        assert_memory_not_equal(o.dmask.data, base.dmask.data, fas_tensor_bytes(&o.dmask));
        outputs_free(&o);
    }
    /* the process-wide generator: successive calls differ, a re-seed repeats */
    outputs g1, g2, g3;
    outputs_alloc(&g1, &c, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, FAS_FORMAT_ND, FAS_FORMAT_ND);
    outputs_alloc(&g2, &c, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, FAS_FORMAT_ND, FAS_FORMAT_ND);
    outputs_alloc(&g3, &c, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, FAS_FORMAT_ND, FAS_FORMAT_ND);
    fas_manual_seed(1234);
    const fas_tensor *m = attn_mask_ptr(&c);
    assert_int_equal(fused_attention_score_fwd(&c.q, &c.k, &c.v, m, c.scale, c.keep_prob, false,
                                               false, false, false, false, false, &g1.out,
                                               &g1.probs, &g1.dmask),
                     FAS_OK);
    assert_int_equal(fused_attention_score_fwd(&c.q, &c.k, &c.v, m, c.scale, c.keep_prob, false,
                                               false, false, false, false, false, &g2.out,
                                               &g2.probs, &g2.dmask),
                     FAS_OK);
    fas_manual_seed(1234);
    assert_int_equal(fused_attention_score_fwd(&c.q, &c.k, &c.v, m, c.scale, c.keep_prob, false,
                                               false, false, false, false, false, &g3.out,
                                               &g3.probs, &g3.dmask),
                     FAS_OK);
    assert_memory_not_equal(g1.dmask.data, g2.dmask.data, fas_tensor_bytes(&g1.dmask));
    assert_memory_equal(g1.dmask.data, g3.dmask.data, fas_tensor_bytes(&g1.dmask));
    assert_memory_equal(g1.out.data, g3.out.data, fas_tensor_bytes(&g1.out));
    outputs_free(&g1);
    outputs_free(&g2);
    outputs_free(&g3);
    outputs_free(&base);
    attn_case_free(&c);
}

/* A caller-given drop mask is used as is (NPU parity runs) and nothing is drawn. */
static void test_drop_mask_as_input(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, 13);
    attn_case c;
    memset(&c, 0, sizeof c);
    c.b = 1;
    c.n = 2;
    c.sq = 33;
    c.sk = 48;
    c.d = c.dv = 16;
    c.mask_form = MASK_NONE;
    c.scale = 0.25;
    c.keep_prob = 0.6;
    fas_format f[4] = {FAS_FORMAT_ND, FAS_FORMAT_ND, FAS_FORMAT_ND, FAS_FORMAT_ND};
    attn_case_alloc(&c, &r, FAS_DTYPE_FLOAT16, f, -1.0, 1.0, 0.0, 0.0);
    int64_t n_p = c.b * c.n * c.sq * c.sk, n_out = c.b * c.sq * c.n * c.dv;
    uint8_t *keep = malloc((size_t)n_p);
    assert_non_null(keep);
    for (int64_t i = 0; i < n_p; i++) keep[i] = (uint8_t)(fast_rng_uniform(&r, 0, 1) < 0.6);
    fas_tensor dm = fast_tensor_4d(FAS_DTYPE_UINT8, FAS_FORMAT_FRACTAL_NZ, c.b, c.n, c.sq, c.sk);
    fas_tensor keep_nd = dm;
    keep_nd.format = FAS_FORMAT_ND;
    keep_nd.data = keep;
    assert_int_equal(fas_format_cast(&keep_nd, &dm), FAS_OK);
    fas_tensor out = fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, c.b * c.sq, c.n * c.dv);
    for (int impl = 0; impl < 2; impl++) {
        fas_options o;
        fas_options_init(&o);
        o.drop_mask_is_input = true;
        o.impl = impl ? FAS_IMPL_REFERENCE : FAS_IMPL_AUTO;
        assert_int_equal(fused_attention_score_fwd_ex(&c.q, &c.k, &c.v, NULL, c.scale, c.keep_prob,
                                                      false, false, false, false, false, false,
                                                      &out, NULL, &dm, &o),
                         FAS_OK);
        double *ctx = malloc((size_t)n_out * sizeof *ctx);
        assert_non_null(ctx);
        attn_oracle_forward(&c, keep, NULL, ctx);
        float *got = fast_to_f32(&out);
        fast_assert_close("context with given mask", got, ctx, n_out);
        free(got);
        free(ctx);
    }
    free(keep);
    fast_tensor_free(&dm);
    fast_tensor_free(&out);
    attn_case_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_flag_and_mask), cmocka_unit_test(test_random_cases),
        cmocka_unit_test(test_gv_f1_scaled),        cmocka_unit_test(test_gv_d1_scaled),
        cmocka_unit_test(test_fully_masked_rows),   cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_drop_mask_as_input),  cmocka_unit_test(test_streaming_multi_tile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
