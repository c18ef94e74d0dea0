/* The stage counters behind fas_bench --profile (common/profile.h; docs/design.md §4): off, a call
 * counts nothing; on, a forward and a backward count time in every stage they run, and only
 * there. No timing is asserted, only which counters move. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "common/profile.h"
#include "fas_test.h"

typedef struct calls {
    fas_tensor q, out, probs, dmask, dq;
} calls;

static void calls_make(calls *c)
{
    fast_rng r;
    fast_rng_seed(&r, 5);
    c->q = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 2, 3, 200, 64);
    fast_fill_uniform(&c->q, &r, -1, 1);
    c->out = fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 400, 192);
    c->probs = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 2, 3, 200, 200);
    c->dmask = fast_tensor_4d(FAS_DTYPE_UINT8, FAS_FORMAT_ND, 2, 3, 200, 200);
    c->dq = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 2, 3, 200, 64);
}

static void calls_free(calls *c)
{
    fast_tensor_free(&c->q);
    fast_tensor_free(&c->out);
    fast_tensor_free(&c->probs);
    fast_tensor_free(&c->dmask);
    fast_tensor_free(&c->dq);
}

static void forward(calls *c, bool probs)
{
    fas_options o;
    fas_options_init(&o);
    o.has_seed = true;
    assert_int_equal(fused_attention_score_fwd_ex(
                         &c->q, &c->q, &c->q, NULL, 0.125, 0.9, false, false, false, false, false,
                         false, &c->out, probs ? &c->probs : NULL, probs ? &c->dmask : NULL, &o),
                     FAS_OK);
}

static void backward(calls *c)
{
    /* the context as grad_output: any [B*Sq, N*Dv] fp16 matrix will do */
    fas_tensor dk = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 2, 3, 200, 64);
    fas_tensor dv = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 2, 3, 200, 64);
    assert_int_equal(fused_attention_score_grad(&c->out, &c->probs, &c->q, &c->q, &c->q, &c->dmask,
                                                0.125, 0.9, false, false, false, false, &c->dq, &dk,
                                                &dv),
                     FAS_OK);
    fast_tensor_free(&dk);
    fast_tensor_free(&dv);
}

static void read(double s[FASI_PROF_COUNT]) { fasi_profile_read(s); }

static void test_off_counts_nothing(void **state)
{
    (void)state;
    calls c;
    calls_make(&c);
    fasi_profile_enable(false);
    fasi_profile_reset();
    forward(&c, false);
    forward(&c, true);
    backward(&c);
    double s[FASI_PROF_COUNT];
    read(s);
    for (int i = 0; i < FASI_PROF_COUNT; i++) assert_true(s[i] == 0.0);
    calls_free(&c);
}

static void test_on_counts_every_stage(void **state)
{
    (void)state;
    calls c;
    calls_make(&c);
    double s[FASI_PROF_COUNT];
    /* the streaming forward: products, row passes and loads; the context's store */
    fasi_profile_reset();
    fasi_profile_enable(true);
    forward(&c, false);
    fasi_profile_enable(false);
    read(s);
    for (int i = 0; i < FASI_PROF_COUNT; i++) {
        printf("  streaming forward: %s %.3g s\n", fasi_profile_stage_name((fasi_prof_stage)i),
               s[i]);
        assert_true(s[i] > 0.0);
    }
    /* the materialising forward and the backward count in every stage too */
    forward(&c, true); /* off again: P and the drop mask for the backward */
    fasi_profile_reset();
    fasi_profile_enable(true);
    forward(&c, true);
    backward(&c);
    fasi_profile_enable(false);
    read(s);
    for (int i = 0; i < FASI_PROF_COUNT; i++) assert_true(s[i] > 0.0);
    /* reset clears */
    fasi_profile_reset();
    read(s);
    for (int i = 0; i < FASI_PROF_COUNT; i++) assert_true(s[i] == 0.0);
    assert_string_equal(fasi_profile_stage_name(FASI_PROF_MATMUL), "matmul");
    assert_string_equal(fasi_profile_stage_name((fasi_prof_stage)FASI_PROF_COUNT), "unknown");
    calls_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off_counts_nothing),
        cmocka_unit_test(test_on_counts_every_stage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
