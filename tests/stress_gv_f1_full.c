/* Opt-in (-DFAS_STRESS=ON, CTest label "stress"): GV-F1 at the full torch_npu shape
 * [24, 16, 512, 64] against the fp64 reference. */
#include "attn_case.h"

static void test_gv_f1_full(void **state)
{
    (void)state;
    attn_check_gv_f1(24, 16, 512, 64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_gv_f1_full)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
