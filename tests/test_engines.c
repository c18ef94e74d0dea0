/* The matrix engines (docs/design.md §6, docs/testing.md): the fas_gemm option and the FAS_GEMM
 * variable, refusals that write nothing, the BLAS's thread count left as the host set it, and
 * every engine against the fp64 reference with identical drop masks (engines agree on the
 * contract, not on bits), deterministic for any thread count. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/engines.h"
#include "attn_case.h"
#include "blas/blas.h"
#include "fas_test.h"

static const fas_gemm all_engines[] = {FAS_GEMM_BUILTIN, FAS_GEMM_BLAS, FAS_GEMM_AMX};
static const char *const engine_names[] = {"auto", "builtin", "blas", "amx"};

/* FAS_GEMM as the process had it (the engine dimension of CTest sets it), restored by each test
 * that changes it. */
static char *saved_env;

static void set_env(const char *v)
{
    if (v)
        setenv("FAS_GEMM", v, 1);
    else
        unsetenv("FAS_GEMM");
    fasi_engines_reread_env();
}

static void restore_env(void) { set_env(saved_env); }

/* A small fp16 problem: B 2, N 3, Sq 37, Sk 45, D 24, Dv 20, ND, padding mask, keep 0.8. */
typedef struct small {
    attn_case c;
    fas_tensor out, probs, dmask;
} small;

static void small_make(small *s, uint64_t seed)
{
    fast_rng r;
    fast_rng_seed(&r, seed);
    memset(s, 0, sizeof *s);
    s->c.b = 2, s->c.n = 3, s->c.sq = 37, s->c.sk = 45, s->c.d = 24, s->c.dv = 20;
    s->c.mask_form = MASK_B11S;
    s->c.scale = 0.2, s->c.keep_prob = 0.8;
    const fas_format nd[4] = {FAS_FORMAT_ND, FAS_FORMAT_ND, FAS_FORMAT_ND, FAS_FORMAT_ND};
    attn_case_alloc(&s->c, &r, FAS_DTYPE_FLOAT16, nd, -2, 2, -1, 0);
    s->out = fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, s->c.b * s->c.sq, s->c.n * s->c.dv);
    s->probs = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, s->c.b, s->c.n, s->c.sq, s->c.sk);
    s->dmask = fast_tensor_4d(FAS_DTYPE_UINT8, FAS_FORMAT_ND, s->c.b, s->c.n, s->c.sq, s->c.sk);
}

static void small_free(small *s)
{
    attn_case_free(&s->c);
    fast_tensor_free(&s->out);
    fast_tensor_free(&s->probs);
    fast_tensor_free(&s->dmask);
}

static fas_status small_run(small *s, const fas_options *o)
{
    return fused_attention_score_fwd_ex(&s->c.q, &s->c.k, &s->c.v, attn_mask_ptr(&s->c), s->c.scale,
                                        s->c.keep_prob, false, false, false, false, false, false,
                                        &s->out, &s->probs, &s->dmask, o);
}

/* Runs a call expected to fail: the status, a sentence containing `needle`, and no output byte
 * changed. */
static void expect_refusal(small *s, const fas_options *o, fas_status want, const char *needle)
{
    size_t nb[3] = {fas_tensor_bytes(&s->out), fas_tensor_bytes(&s->probs),
                    fas_tensor_bytes(&s->dmask)};
    void *data[3] = {s->out.data, s->probs.data, s->dmask.data};
    for (int i = 0; i < 3; i++) fast_canary_fill(data[i], nb[i]);
    assert_int_equal(small_run(s, o), want);
    printf("  refused: %s\n", fas_last_error());
    assert_non_null(strstr(fas_last_error(), needle));
    for (int i = 0; i < 3; i++) assert_true(fast_canary_intact(data[i], nb[i]));
}

static void test_option_values(void **state)
{
    (void)state;
    small s;
    small_make(&s, 1);
    fas_options o;
    fas_options_init(&o);
    o.has_seed = true;
    for (size_t i = 0; i < sizeof all_engines / sizeof *all_engines; i++) {
        o.gemm = all_engines[i];
        if (fasi_engine_available(all_engines[i])) {
            assert_int_equal(small_run(&s, &o), FAS_OK);
            assert_string_equal(fas_last_error(), "");
        } else {
            printf("  %s engine unavailable here\n", engine_names[all_engines[i]]);
            expect_refusal(&s, &o, FAS_ERR_UNSUPPORTED, "AMX");
        }
    }
    const int bad[] = {-1, 4, 77};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        o.gemm = (fas_gemm)bad[i];
        char want[64];
        snprintf(want, sizeof want, "options: gemm %d is not a fas_gemm value", bad[i]);
        expect_refusal(&s, &o, FAS_ERR_VALUE, want);
    }
    /* a caller compiled before the field existed gets AUTO */
    fas_options_init(&o);
    o.struct_size = offsetof(fas_options, gemm);
    o.gemm = (fas_gemm)77; /* beyond the caller's struct: never read */
    assert_int_equal(small_run(&s, &o), FAS_OK);
    small_free(&s);
}

static void test_environment(void **state)
{
    (void)state;
    small s;
    small_make(&s, 2);
    const char *rule = (set_env(NULL), fas_gemm_engine());
    printf("  AUTO without FAS_GEMM: %s\n", rule);
    assert_true(strcmp(rule, "builtin") == 0 || strcmp(rule, "blas") == 0 ||
                strcmp(rule, "amx") == 0);
    const struct {
        const char *value, *engine;
    } ok[] = {{"auto", rule},   {"", rule},       {"AUTO", rule},        {"builtin", "builtin"},
              {"blas", "blas"}, {"BLAS", "blas"}, {"Builtin", "builtin"}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        set_env(ok[i].value);
        assert_string_equal(fas_gemm_engine(), ok[i].engine);
        assert_int_equal(small_run(&s, NULL), FAS_OK);
    }
    set_env("amx");
    if (fasi_engine_available(FAS_GEMM_AMX)) {
        assert_string_equal(fas_gemm_engine(), "amx");
    } else {
        assert_string_equal(fas_gemm_engine(), "invalid");
        expect_refusal(&s, NULL, FAS_ERR_UNSUPPORTED, "FAS_GEMM: the AMX engine");
    }
    const char *bogus[] = {"bogus", "blas ", "builtin2", "amx,blas"};
    fas_options o;
    fas_options_init(&o);
    for (size_t i = 0; i < sizeof bogus / sizeof *bogus; i++) {
        set_env(bogus[i]);
        char want[160];
        snprintf(want, sizeof want,
                 "FAS_GEMM: \"%s\" is not a matrix engine; use auto, builtin, blas or amx (or "
                 "unset it)",
                 bogus[i]);
        assert_string_equal(fas_gemm_engine(), "invalid");
        assert_string_equal(fas_last_error(), want);
        expect_refusal(&s, NULL, FAS_ERR_VALUE, want);
        expect_refusal(&s, &o, FAS_ERR_VALUE, want); /* gemm AUTO in the options */
        o.gemm = FAS_GEMM_BLAS; /* an explicit engine does not read the variable */
        assert_int_equal(small_run(&s, &o), FAS_OK);
        o.gemm = FAS_GEMM_AUTO;
    }
    restore_env();
    small_free(&s);
}

/* The host's BLAS thread count is what it was after every call, also when calls overlap. */
static void test_blas_threads_restored(void **state)
{
    (void)state;
    const int before = fasi_blas_threads();
    if (!fasi_blas_set_threads(2)) {
        printf("  SKIPPED: this BLAS (%s) has no thread count the library can read or set\n",
               fas_blas_info());
        skip();
    }
    small s;
    small_make(&s, 3);
    fas_options o;
    fas_options_init(&o);
    o.gemm = FAS_GEMM_BLAS;
    o.has_seed = true;
    for (int host = 1; host <= 3; host++) {
        assert_true(fasi_blas_set_threads(host));
        for (int threads = 1; threads <= 2; threads++) {
            o.num_threads = threads;
            assert_int_equal(small_run(&s, &o), FAS_OK);
            assert_int_equal(fasi_blas_threads(), host);
        }
    }
    assert_true(fasi_blas_set_threads(before > 0 ? before : 1));
    small_free(&s);
}

/* Every engine against the fp64 reference on random shapes: the same drop mask bytes, P and
 * the context within the contract (docs/semantics.md §2), and the gradients too. */
static void test_engines_meet_the_contract(void **state)
{
    (void)state;
    uint64_t seed = fast_test_seed("test_engines_meet_the_contract", 19);
    fast_rng r;
    fast_rng_seed(&r, seed);
    int served = 0;
    for (int it = 0; it < 24; it++) {
        attn_case c;
        memset(&c, 0, sizeof c);
        c.b = fast_rng_int(&r, 1, 2), c.n = fast_rng_int(&r, 1, 3);
        c.sq = fast_rng_int(&r, 1, 150), c.sk = fast_rng_int(&r, 1, 700);
        c.d = fast_rng_int(&r, 1, 80), c.dv = fast_rng_int(&r, 1, 80);
        c.qt = fast_rng_int(&r, 0, 3) == 0, c.kt = fast_rng_int(&r, 0, 3) == 0;
        c.tb = fast_rng_int(&r, 0, 3) == 0;
        c.ta = fast_rng_int(&r, 0, 5) == 0;
        if (c.ta) c.sk = c.sq;
        c.mask_form = (int)fast_rng_int(&r, 0, MASK_FORMS - 1);
        c.scale = fast_rng_uniform(&r, 0.05, 0.4);
        c.keep_prob = it % 3 == 0 ? 1.0 : 0.75;
        fas_format f[4];
        for (int i = 0; i < 4; i++)
            f[i] = fast_rng_int(&r, 0, 1) ? FAS_FORMAT_FRACTAL_NZ : FAS_FORMAT_ND;
        attn_case_alloc(&c, &r, FAS_DTYPE_FLOAT16, f, -2, 2, -1, 0);
        const int64_t np = c.b * c.n * c.sq * c.sk, rows = c.b * (c.ta ? c.sk : c.sq);
        fas_tensor ref = fast_tensor_2d(FAS_DTYPE_FLOAT, FAS_FORMAT_ND, rows, c.n * c.dv);
        fas_tensor refp = fast_tensor_4d(FAS_DTYPE_FLOAT, FAS_FORMAT_ND, c.b, c.n, c.sq, c.sk);
        fas_tensor refm = fast_tensor_4d(FAS_DTYPE_UINT8, FAS_FORMAT_ND, c.b, c.n, c.sq, c.sk);
        assert_int_equal(
            attn_run_forward(&c, FAS_IMPL_REFERENCE, 1, seed, 8 * it, &ref, &refp, &refm), FAS_OK);
        float *rf = fast_to_f32(&ref), *rp = fast_to_f32(&refp);
        uint8_t *rm = fast_to_u8(&refm);
        double *dref = malloc(sizeof *dref * (size_t)(rows * c.n * c.dv));
        double *dp = malloc(sizeof *dp * (size_t)np);
        for (int64_t i = 0; i < rows * c.n * c.dv; i++) dref[i] = rf[i];
        for (int64_t i = 0; i < np; i++) dp[i] = rp[i];
        for (size_t e = 0; e < sizeof all_engines / sizeof *all_engines; e++) {
            if (!fasi_engine_available(all_engines[e])) continue;
            served++;
            fas_tensor out = fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, rows, c.n * c.dv);
            fas_tensor probs = fast_tensor_4d(FAS_DTYPE_FLOAT16, f[0], c.b, c.n, c.sq, c.sk);
            fas_tensor dmask = fast_tensor_4d(FAS_DTYPE_UINT8, f[1], c.b, c.n, c.sq, c.sk);
            fas_options o;
            fas_options_init(&o);
            o.gemm = all_engines[e];
            o.has_seed = true;
            o.seed = seed;
            o.offset = 8 * (uint64_t)it;
            o.num_threads = 2;
            assert_int_equal(fused_attention_score_fwd_ex(
                                 &c.q, &c.k, &c.v, attn_mask_ptr(&c), c.scale, c.keep_prob, c.qt,
                                 c.kt, c.ta, c.tb, false, false, &out, &probs, &dmask, &o),
                             FAS_OK);
            uint8_t *m = fast_to_u8(&dmask);
            if (memcmp(m, rm, (size_t)np) != 0) {
                attn_case_print(&c, it);
                fail_msg("%s: drop mask differs from the reference's", engine_names[o.gemm]);
            }
            float *got = fast_to_f32(&out), *gp = fast_to_f32(&probs);
            fast_close_stats sc = fast_check_close("context", got, dref, rows * c.n * c.dv,
                                                   FAST_RTOL, FAST_ATOL_FRAC);
            fast_close_stats sp =
                fast_check_close("softmax_output", gp, dp, np, FAST_RTOL, FAST_ATOL_FRAC);
            if (sc.failures || sp.failures) {
                attn_case_print(&c, it);
                fail_msg("%s engine misses the contract", engine_names[o.gemm]);
            }
            /* without softmax_output: the streaming path, same mask bits */
            assert_int_equal(fused_attention_score_fwd_ex(&c.q, &c.k, &c.v, attn_mask_ptr(&c),
                                                          c.scale, c.keep_prob, c.qt, c.kt, c.ta,
                                                          c.tb, false, false, &out, NULL, NULL, &o),
                             FAS_OK);
            free(got);
            got = fast_to_f32(&out);
            sc = fast_check_close("streaming context", got, dref, rows * c.n * c.dv, FAST_RTOL,
                                  FAST_ATOL_FRAC);
            if (sc.failures) {
                attn_case_print(&c, it);
                fail_msg("%s engine (streaming) misses the contract", engine_names[o.gemm]);
            }
            free(got);
            free(gp);
            free(m);
            fast_tensor_free(&out);
            fast_tensor_free(&probs);
            fast_tensor_free(&dmask);
        }
        free(rf), free(rp), free(rm), free(dref), free(dp);
        fast_tensor_free(&ref), fast_tensor_free(&refp), fast_tensor_free(&refm);
        attn_case_free(&c);
    }
    assert_true(served >= 48);
}

/* The backward on every engine against the reference's gradients. */
static void test_engines_backward(void **state)
{
    (void)state;
    uint64_t seed = fast_test_seed("test_engines_backward", 23);
    fast_rng r;
    fast_rng_seed(&r, seed);
    for (int it = 0; it < 10; it++) {
        attn_case c;
        memset(&c, 0, sizeof c);
        c.b = fast_rng_int(&r, 1, 2), c.n = fast_rng_int(&r, 1, 2);
        c.sq = fast_rng_int(&r, 1, 300), c.sk = fast_rng_int(&r, 1, 300);
        c.d = fast_rng_int(&r, 1, 72), c.dv = fast_rng_int(&r, 1, 72);
        c.mask_form = MASK_NONE;
        c.scale = 0.125;
        c.keep_prob = 0.8;
        const fas_format nd[4] = {FAS_FORMAT_ND, FAS_FORMAT_ND, FAS_FORMAT_ND, FAS_FORMAT_ND};
        attn_case_alloc(&c, &r, FAS_DTYPE_FLOAT16, nd, -2, 2, 0, 0);
        const int64_t rows = c.b * c.sq, cols = c.n * c.dv;
        fas_tensor out = fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, rows, cols);
        fas_tensor probs = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, c.b, c.n, c.sq, c.sk);
        fas_tensor dmask = fast_tensor_4d(FAS_DTYPE_UINT8, FAS_FORMAT_ND, c.b, c.n, c.sq, c.sk);
        assert_int_equal(attn_run_forward(&c, FAS_IMPL_AUTO, 1, seed, 0, &out, &probs, &dmask),
                         FAS_OK);
        fas_tensor dout = fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, rows, cols);
        fast_fill_uniform(&dout, &r, -1, 1);
        const int64_t gd[3][2] = {{c.sq, c.d}, {c.sk, c.d}, {c.sk, c.dv}};
        fas_tensor ref[3], got[3];
        for (int g = 0; g < 3; g++) {
            ref[g] = fast_tensor_4d(FAS_DTYPE_FLOAT, FAS_FORMAT_ND, c.b, c.n, gd[g][0], gd[g][1]);
            got[g] = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, c.b, c.n, gd[g][0], gd[g][1]);
        }
        fas_options o;
        fas_options_init(&o);
        o.impl = FAS_IMPL_REFERENCE;
        assert_int_equal(fused_attention_score_grad_ex(&dout, &probs, &c.q, &c.k, &c.v, &dmask,
                                                       c.scale, c.keep_prob, false, false, false,
                                                       false, &ref[0], &ref[1], &ref[2], &o),
                         FAS_OK);
        for (size_t e = 0; e < sizeof all_engines / sizeof *all_engines; e++) {
            if (!fasi_engine_available(all_engines[e])) continue;
            fas_options_init(&o);
            o.gemm = all_engines[e];
            assert_int_equal(fused_attention_score_grad_ex(
                                 &dout, &probs, &c.q, &c.k, &c.v, &dmask, c.scale, c.keep_prob,
                                 false, false, false, false, &got[0], &got[1], &got[2], &o),
                             FAS_OK);
            for (int g = 0; g < 3; g++) {
                const int64_t n = c.b * c.n * gd[g][0] * gd[g][1];
                float *rv = fast_to_f32(&ref[g]), *gv = fast_to_f32(&got[g]);
                double *dv = malloc(sizeof *dv * (size_t)n);
                for (int64_t i = 0; i < n; i++) dv[i] = rv[i];
                fast_close_stats st =
                    fast_check_close("gradient", gv, dv, n, FAST_RTOL, FAST_ATOL_FRAC);
                if (st.failures) {
                    attn_case_print(&c, it);
                    fail_msg("%s engine: gradient %d misses the contract", engine_names[o.gemm], g);
                }
                free(rv), free(gv), free(dv);
            }
        }
        for (int g = 0; g < 3; g++) fast_tensor_free(&ref[g]), fast_tensor_free(&got[g]);
        fast_tensor_free(&out), fast_tensor_free(&probs), fast_tensor_free(&dmask);
        fast_tensor_free(&dout);
        attn_case_free(&c);
    }
}

/* Within one engine the bytes do not depend on the thread count or on the run. */
static void test_engines_deterministic(void **state)
{
    (void)state;
    for (size_t e = 0; e < sizeof all_engines / sizeof *all_engines; e++) {
        if (!fasi_engine_available(all_engines[e])) continue;
        small s, t;
        small_make(&s, 4);
        small_make(&t, 4);
        fas_options o;
        fas_options_init(&o);
        o.gemm = all_engines[e];
        o.has_seed = true;
        o.num_threads = 1;
        assert_int_equal(small_run(&s, &o), FAS_OK);
        for (int threads = 1; threads <= 3; threads++) {
            o.num_threads = threads;
            assert_int_equal(small_run(&t, &o), FAS_OK);
            assert_memory_equal(s.out.data, t.out.data, fas_tensor_bytes(&s.out));
            assert_memory_equal(s.probs.data, t.probs.data, fas_tensor_bytes(&s.probs));
            assert_memory_equal(s.dmask.data, t.dmask.data, fas_tensor_bytes(&s.dmask));
        }
        small_free(&s);
        small_free(&t);
    }
}

static void test_blas_info(void **state)
{
    (void)state;
    const char *info = fas_blas_info();
    printf("  fas_blas_info(): %s\n", info);
    assert_true(strlen(info) > 4);
    assert_ptr_equal(info, fas_blas_info()); /* static storage, the same line */
    /* the warning is there exactly when the BLAS's core is below the CPU's level */
    assert_int_equal(strstr(info, "WARNING") != NULL, fasi_blas_below_cpu());
    if (fasi_blas_core()) {
        char core[96];
        snprintf(core, sizeof core, "(core %s)", fasi_blas_core());
        assert_non_null(strstr(info, core));
    }
}

int main(void)
{
    const char *v = getenv("FAS_GEMM");
    saved_env = v ? strdup(v) : NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_option_values),
        cmocka_unit_test(test_environment),
        cmocka_unit_test(test_blas_threads_restored),
        cmocka_unit_test(test_engines_meet_the_contract),
        cmocka_unit_test(test_engines_backward),
        cmocka_unit_test(test_engines_deterministic),
        cmocka_unit_test(test_blas_info),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(saved_env);
    return rc;
}
