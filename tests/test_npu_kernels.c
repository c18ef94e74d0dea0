/* The NPU precision mode's row kernels (the npu_* and round_f16 entries of common/isa.h) at
 * every SIMD level: each element against the expression written in isa.h, evaluated with the
 * test's own fp16 rounding (nearest of all finite halves by search, ties to even, overflow to
 * inf; no library conversion code), and every level bit-identical to the portable one. Values
 * cover the whole fp16 range: subnormal results, ties, overflow to inf, NaN, +-inf, -0. Rows of
 * every length up to 70 (row sums: every multiple of 16 up to 1024, so that odd block counts
 * occur at every halving) and canaries after each row catch writes past the end. */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "fas_test.h"
#include "api/dispatch.h"
#include "common/isa.h"

/* ---- the test's fp16 rounding ------------------------------------------------------------- */

static double finite_halves[63488]; /* every finite half except -0, ascending */
static int n_finite;

static double half_value(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return (h & 0x8000) ? -v : v;
}

static int group_setup(void **state)
{
    (void)state;
    n_finite = 0;
    for (int h = 0xfbff; h >= 0x8001; h--) finite_halves[n_finite++] = half_value((uint16_t)h);
    for (int h = 0; h <= 0x7bff; h++) finite_halves[n_finite++] = half_value((uint16_t)h);
    return 0;
}

/* x rounded to the nearest half (ties to the even significand), overflow to +-inf, as a float;
 * the sign of a zero result follows x. */
static float th(float x)
{
    if (isnan(x)) return x;
    double v = x;
    if (fabs(v) >= 65520.0) return v > 0 ? INFINITY : -INFINITY; /* 65504 + half its ulp */
    int lo = 0, hi = n_finite - 1;
    while (hi - lo > 1) { /* finite_halves[lo] <= v <= finite_halves[hi] */
        int mid = (lo + hi) / 2;
        if (finite_halves[mid] <= v)
            lo = mid;
        else
            hi = mid;
    }
    double a = finite_halves[lo], b = finite_halves[hi];
    double r;
    if (v - a < b - v)
        r = a;
    else if (b - v < v - a)
        r = b;
    else {
        /* a tie: the neighbour with an even significand; for halves of one binade, the one
         * whose distance to 0 in ulps of the smaller exponent is even */
        double ulp = b - a;
        r = fmod(fabs(a) / ulp, 2.0) == 0.0 ? a : b;
    }
    if (r == 0.0) return signbit(x) ? -0.0f : 0.0f;
    return (float)r;
}

static bool same_float(float a, float b)
{
    return fast_f32_bits(a) == fast_f32_bits(b) || (isnan(a) && isnan(b));
}

/* ---- inputs ------------------------------------------------------------------------------- */

/* A value from the whole fp16 range and around it: ties and near-ties, subnormals, overflow. */
static float any_value(fast_rng *r)
{
    switch (fast_rng_int(r, 0, 11)) {
    case 0: return (float)fast_rng_uniform(r, -70000, 70000);
    case 1: return (float)ldexp(fast_rng_uniform(r, -1, 1), -(int)fast_rng_int(r, 10, 30));
    case 2: { /* an exact tie between two halves */
        uint16_t h = (uint16_t)fast_rng_int(r, 0, 0x7bfe);
        return (float)((half_value(h) + half_value((uint16_t)(h + 1))) / 2);
    }
    case 3: return fast_rng_int(r, 0, 1) ? NAN : INFINITY;
    case 4: return -INFINITY;
    case 5: return fast_rng_int(r, 0, 1) ? -0.0f : 0.0f;
    default: return (float)fast_rng_uniform(r, -12, 12);
    }
}

static float *row_with_canary(size_t n)
{
    float *p = malloc((n + 8) * sizeof *p);
    assert_non_null(p);
    fast_canary_fill(p + n, 8 * sizeof *p);
    return p;
}

static void check_canary(const float *p, size_t n)
{
    assert_true(fast_canary_intact(p + n, 8 * sizeof *p));
}

static const fasi_kernels *level_or_skip(fasi_isa isa)
{
    const fasi_kernels *k = fasi_kernels_for(isa);
    if (!k) {
        printf("[ SKIP     ] level %d: not available on this CPU or build\n", (int)isa);
        skip();
    }
    return k;
}

/* ---- the checks --------------------------------------------------------------------------- */

static void check_elementwise(const fasi_kernels *k, fast_rng *r, size_t n)
{
    const fasi_kernels *pk = fasi_kernels_for(FASI_ISA_PORTABLE);
    float x[80], y[80], e32_ref[80];
    uint8_t keep[80];
    for (size_t j = 0; j < n; j++) {
        x[j] = any_value(r);
        y[j] = th(any_value(r)); /* masks, P, and the like are fp16 values */
        keep[j] = (uint8_t)(fast_rng_int(r, 0, 3) == 0 ? 0 : fast_rng_int(r, 1, 255));
    }
    const float sc = th((float)fast_rng_uniform(r, 0.01, 2)), g = th((float)(1.0 / 0.7));

    float *t = row_with_canary(n);
    memcpy(t, x, n * sizeof *t);
    k->round_f16(t, n);
    for (size_t j = 0; j < n; j++) assert_true(same_float(t[j], th(x[j])));
    check_canary(t, n);

    for (int with_mask = 0; with_mask < 2; with_mask++) {
        memcpy(t, x, n * sizeof *t);
        k->npu_logits(t, with_mask ? y : NULL, n, sc);
        for (size_t j = 0; j < n; j++) {
            float want = th(th(th(x[j]) * sc) + (with_mask ? y[j] : 0.0f));
            if (!same_float(t[j], want))
                printf("%s npu_logits x=%a m=%a sc=%a: %a, want %a\n", k->name, x[j], y[j], sc,
                       t[j], want);
            assert_true(same_float(t[j], want));
        }
        check_canary(t, n);
    }

    float *e = row_with_canary(n);
    const float m = th((float)fast_rng_uniform(r, -4, 4));
    for (size_t j = 0; j < n; j++) y[j] = th(y[j] / 8); /* X values, mostly below m + 11 */
    memcpy(t, y, n * sizeof *t);
    k->npu_exp(t, e, n, m);
    memcpy(e32_ref, y, n * sizeof *e32_ref);
    float *pe = row_with_canary(n);
    pk->npu_exp(e32_ref, pe, n, m);
    for (size_t j = 0; j < n; j++) {
        double arg = th(y[j] - m);
        /* fasi_exp: within 1 ulp of exp on [-87, 88], +0 below -87, exp(88) above */
        if (arg >= -87 && arg <= 88)
            assert_true(fabs(e[j] - exp(arg)) <= 1.01 * ldexp(1.0, ilogb(exp(arg)) - 23));
        assert_true(same_float(t[j], th(e[j])));
        assert_true(same_float(e[j], pe[j])); /* the exp itself: bit-identical to portable */
    }
    check_canary(t, n);
    check_canary(e, n);
    free(pe);
    free(e);

    const float s = th((float)fast_rng_uniform(r, 0, 3));
    memcpy(t, x, n * sizeof *t);
    k->npu_scale(t, n, s);
    for (size_t j = 0; j < n; j++) assert_true(same_float(t[j], th(x[j] * s)));
    check_canary(t, n);

    memcpy(t, y, n * sizeof *t);
    k->npu_dropout(t, keep, n, g);
    for (size_t j = 0; j < n; j++) /* a product: a dropped inf or NaN gives NaN */
        assert_true(same_float(t[j], th(y[j] * (keep[j] ? g : 0.0f))));
    check_canary(t, n);

    const float rr = th(any_value(r) / 16);
    for (size_t j = 0; j < n; j++) x[j] = th(x[j]);
    memcpy(t, x, n * sizeof *t);
    k->npu_softmax_bwd(t, y, n, rr, sc);
    for (size_t j = 0; j < n; j++) assert_true(same_float(t[j], th(th(x[j] - rr) * th(y[j] * sc))));
    check_canary(t, n);
    free(t);
}

/* The fp16 row sum of isa.h, block by block and lane by lane, on the test's rounding. */
static float rowsum_model(const float *dp, const float *p, size_t n)
{
    float t[1024];
    for (size_t j = 0; j < n; j++) t[j] = th(dp[j] * p[j]);
    size_t blocks = n / 16;
    while (blocks > 1) {
        if (blocks % 2) {
            for (int l = 0; l < 16; l++) t[l] = th(t[l] + t[(blocks - 1) * 16 + l]);
            blocks--;
        }
        for (size_t b = 0; b < blocks / 2; b++)
            for (int l = 0; l < 16; l++)
                t[b * 16 + l] = th(t[b * 16 + l] + t[(b + blocks / 2) * 16 + l]);
        blocks /= 2;
    }
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) t[l] = th(t[l] + t[l + w]);
    return t[0];
}

static void check_rowsum(const fasi_kernels *k, fast_rng *r)
{
    float dp[1024], p[1024];
    for (size_t n = 16; n <= 1024; n += 16) {
        const int kind = (int)(n / 16 % 3); /* ordinary, large (overflowing) or with specials */
        for (size_t j = 0; j < n; j++) {
            dp[j] = th((float)fast_rng_uniform(r, -1, 1) * (kind == 1 ? 60000.0f : 2.0f));
            p[j] = th((float)fast_rng_uniform(r, 0, 1));
            if (kind == 2 && fast_rng_int(r, 0, 40) == 0) dp[j] = any_value(r);
        }
        float *t = row_with_canary(n);
        float got = k->npu_rowsum(dp, p, t, n), want = rowsum_model(dp, p, n);
        if (!same_float(got, want))
            printf("%s npu_rowsum n=%zu: %a, want %a\n", k->name, n, got, want);
        assert_true(same_float(got, want));
        check_canary(t, n);
        free(t);
    }
}

static void check_level(fasi_isa isa, uint64_t seed)
{
    const fasi_kernels *k = level_or_skip(isa);
    if (isa != FASI_ISA_PORTABLE) {
        /* the level has its own versions: a fallback to portable would prove nothing here */
        const fasi_kernels *pk = fasi_kernels_for(FASI_ISA_PORTABLE);
        assert_ptr_not_equal(k->npu_logits, pk->npu_logits);
        assert_ptr_not_equal(k->npu_rowsum, pk->npu_rowsum);
    }
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed(k->name, seed));
    for (int rep = 0; rep < 20; rep++)
        for (size_t n = 0; n <= 70; n++) check_elementwise(k, &r, n);
    check_rowsum(k, &r);
}

/* The test's rounding itself, on values whose halves are known. */
static void test_reference_rounding(void **state)
{
    (void)state;
    assert_true(th(1.0f) == 1.0f);
    assert_true(th(1.0f + 0x1p-11f) == 1.0f);               /* tie, to even */
    assert_true(th(1.0f + 3 * 0x1p-11f) == 1.0f + 0x1p-9f); /* tie, to even (up) */
    assert_true(th(65504.0f) == 65504.0f);
    assert_true(th(65519.0f) == 65504.0f);
    assert_true(th(65520.0f) == INFINITY);
    assert_true(th(0x1p-25f) == 0.0f); /* tie between 0 and the least subnormal */
    assert_true(th(0x1.8p-25f) == 0x1p-24f);
    assert_true(th(0x1.8p-24f) == 0x1p-23f); /* tie between 1 and 2 subnormal ulps */
    assert_true(signbit(th(-0x1p-30f)));
    assert_true(isnan(th(NAN)));
}

static void test_portable(void **state)
{
    (void)state;
    check_level(FASI_ISA_PORTABLE, 0x4e5055u);
}

static void test_avx2(void **state)
{
    (void)state;
    check_level(FASI_ISA_AVX2, 0x4e5056u);
}

static void test_avx512(void **state)
{
    (void)state;
    check_level(FASI_ISA_AVX512, 0x4e5057u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_rounding),
        cmocka_unit_test(test_portable),
        cmocka_unit_test(test_avx2),
        cmocka_unit_test(test_avx512),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
