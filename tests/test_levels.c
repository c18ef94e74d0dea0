/* SIMD levels: the level fas_simd_level() names is the one this target and CPU must pick, found
 * here without the library's detection; the set of available levels is consistent (a table
 * exactly for each available level, with its own name); levels of another architecture are
 * never available; and a forced fas_impl is served exactly when its level is available, with
 * results bitwise equal to the portable level, and refused with FAS_ERR_UNSUPPORTED and a
 * sentence naming options otherwise. */
#include "fas_test.h"
#include "levels.h"

#include "api/dispatch.h"

static void test_simd_level_of_target(void **state)
{
    (void)state;
    const char *why = NULL;
    const char *want = fast_expected_simd_level(&why);
    const char *got = fas_simd_level();
    printf("  fas_simd_level() = \"%s\"; expected \"%s\" (%s)\n", got, want, why);
    assert_string_equal(got, want);
    assert_string_equal(got, fasi_isa_name(fasi_cpu_best_isa()));
#if defined(__aarch64__) && FAS_HAVE_NEON
    assert_string_equal(got, "neon");
#endif
}

static void test_available_set(void **state)
{
    (void)state;
    for (int i = 0; i < FASI_ISA_COUNT; i++) {
        const fasi_isa isa = (fasi_isa)i;
        const char *why = fast_level_absent_reason(isa);
        const fasi_kernels *k = fasi_kernels_for(isa);
        printf("  %-8s %s\n", fasi_isa_name(isa), why ? why : "available");
        assert_int_equal(fasi_isa_available(isa), why == NULL);
        assert_int_equal(k != NULL, why == NULL);
        if (k) {
            assert_int_equal(k->isa, isa);
            assert_string_equal(k->name, fasi_isa_name(isa));
        }
    }
    assert_true(fasi_isa_available(FASI_ISA_PORTABLE));
    assert_true(fasi_isa_available(fasi_cpu_best_isa()));
    /* never a level of another architecture */
#if !defined(__x86_64__)
    assert_false(fasi_isa_available(FASI_ISA_AVX2));
    assert_false(fasi_isa_available(FASI_ISA_AVX512));
#endif
#if !defined(__aarch64__)
    assert_false(fasi_isa_available(FASI_ISA_NEON));
#endif
    /* AVX-512's table is built on AVX2's: one never comes without the other */
    if (fasi_isa_available(FASI_ISA_AVX512)) assert_true(fasi_isa_available(FASI_ISA_AVX2));
    assert_false(fasi_isa_available((fasi_isa)-1));
    assert_false(fasi_isa_available(FASI_ISA_COUNT));
    assert_null(fasi_kernels_for(FASI_ISA_COUNT));
    assert_string_equal(fasi_isa_name(FASI_ISA_COUNT), "unknown");
}

/* One small forward (B = 1, N = 2, Sq = 5, Sk = 37, D = 8, dropout 0.75, P requested) at the
 * forced level; returns the status, outputs in out/probs/mask. */
static fas_status forward_at(fas_impl impl, const fas_tensor *q, const fas_tensor *k,
                             const fas_tensor *v, fas_tensor *out, fas_tensor *probs,
                             fas_tensor *mask)
{
    fas_options o;
    fas_options_init(&o);
    o.impl = impl;
    o.num_threads = 1;
    o.has_seed = true;
    o.seed = 99;
    o.offset = 5;
    return fused_attention_score_fwd_ex(q, k, v, NULL, 0.35, 0.75, false, false, false, false,
                                        false, false, out, probs, mask, &o);
}

static void test_forced_levels(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("forced_levels", 0x1e7e1u));
    fas_tensor q = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 1, 2, 5, 8);
    fas_tensor k = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 1, 2, 37, 8);
    fas_tensor v = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 1, 2, 37, 8);
    fast_fill_uniform(&q, &r, -2, 2);
    fast_fill_uniform(&k, &r, -2, 2);
    fast_fill_uniform(&v, &r, -2, 2);
    const size_t out_bytes = 5 * 16 * 2, p_bytes = 2 * 5 * 37 * 2, m_bytes = 2 * 5 * 37;
    fas_tensor base[3], got[3];
    for (int s = 0; s < 2; s++) {
        fas_tensor *t = s ? got : base;
        t[0] = fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 5, 16);
        t[1] = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 1, 2, 5, 37);
        t[2] = fast_tensor_4d(FAS_DTYPE_UINT8, FAS_FORMAT_ND, 1, 2, 5, 37);
    }
    assert_int_equal(forward_at(FAS_IMPL_PORTABLE, &q, &k, &v, &base[0], &base[1], &base[2]),
                     FAS_OK);
    static const fas_impl forced[] = {FAS_IMPL_AVX2, FAS_IMPL_AVX512, FAS_IMPL_NEON};
    for (size_t i = 0; i < sizeof forced / sizeof forced[0]; i++) {
        const fasi_isa isa = (fasi_isa)fast_isa_of_impl(forced[i]);
        const char *why = fast_level_absent_reason(isa);
        for (int s = 0; s < 3; s++) fast_canary_fill(got[s].data, fas_tensor_bytes(&got[s]));
        fas_status st = forward_at(forced[i], &q, &k, &v, &got[0], &got[1], &got[2]);
        printf("  FAS_IMPL %d (%s): %s%s%s\n", (int)forced[i], fasi_isa_name(isa),
               fas_status_string(st), why ? ", expected: " : "", why ? why : "");
        if (why) {
            assert_int_equal(st, FAS_ERR_UNSUPPORTED);
            assert_true(strncmp(fas_last_error(), "options: ", 9) == 0);
            for (int s = 0; s < 3; s++)
                assert_true(fast_canary_intact(got[s].data, fas_tensor_bytes(&got[s])));
        } else {
            assert_int_equal(st, FAS_OK);
            assert_memory_equal(got[0].data, base[0].data, out_bytes);
            assert_memory_equal(got[1].data, base[1].data, p_bytes);
            assert_memory_equal(got[2].data, base[2].data, m_bytes);
        }
    }
    fas_tensor *all[] = {&q, &k, &v, &base[0], &base[1], &base[2], &got[0], &got[1], &got[2]};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) fast_tensor_free(all[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simd_level_of_target),
        cmocka_unit_test(test_available_set),
        cmocka_unit_test(test_forced_levels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
