/* Philox4x32-10, the dropout keep decision and its SIMD kernels, the process-wide generator. */
#define _POSIX_C_SOURCE 200809L

#include <fenv.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "fas_test.h"
#include "levels.h"
#include "api/dispatch.h"
#include "common/isa.h"
#include "rng/philox.h"

#define TWO32 4294967296ull
#define TWO16 65536ull

/* ---- known answers ------------------------------------------------------------------------ */

typedef struct kat {
    uint32_t ctr[4];
    uint32_t key[2];
    uint32_t expected[4];
} kat;

/* Random123 (D. E. Shaw Research), tests/kat_vectors, the "philox4x32 10" lines: all zeros, all
 * ones and the digits of pi. Then further philox4x32 10 lines from the extended Random123
 * vector file examples/kat_vectors (girving/random123-manual), chosen to set single high and
 * low words of the counter and of both key words. Columns: CTR[4] KEY[2] EXPECTED[4]. */
static const kat kats[] = {
    {{0x00000000, 0x00000000, 0x00000000, 0x00000000},
     {0x00000000, 0x00000000},
     {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    {{0x00000001, 0x00000000, 0x00000000, 0x00000000},
     {0x00000001, 0x00000000},
     {0xac08141b, 0xdfc5ccbe, 0x79c07a47, 0xa7f66093}},
    {{0x00000000, 0x00000000, 0x00000000, 0xffffffff},
     {0x00000001, 0x00000000},
     {0xf50c9398, 0xb36cdab2, 0x436bdc89, 0xcc49431b}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0x00000000, 0xffffffff},
     {0x08f7720c, 0x845ee9e0, 0x502ccd3d, 0xa9a00e27}},
    {{0xa4093822, 0x299f31d0, 0x082efa98, 0xec4e6c89},
     {0x00000000, 0x00000001},
     {0x1c28fa3f, 0x8c5bf977, 0xbb989783, 0x0c1a3737}},
    {{0x00000000, 0x00000000, 0x00000000, 0x80000000},
     {0x00000000, 0x80000000},
     {0xf7a0b371, 0xe51dc93d, 0x56ce135d, 0x1d4b5580}},
};

static void test_kat_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof kats / sizeof kats[0]; i++) {
        uint32_t out[4] = {0, 0, 0, 0};
        fasi_philox4x32_10(kats[i].ctr, kats[i].key, out);
        for (int w = 0; w < 4; w++) {
            if (out[w] != kats[i].expected[w])
                printf("KAT %zu word %d: got %08x, expected %08x\n", i, w, (unsigned)out[w],
                       (unsigned)kats[i].expected[w]);
            assert_int_equal(out[w], kats[i].expected[w]);
        }
    }
}

/* ---- the documented keep mapping -------------------------------------------------------- */

/* rng/philox.h recomputed from the block function alone. */
static bool mapping_keep(uint64_t seed, uint64_t offset, uint64_t row, uint64_t j,
                         uint64_t threshold)
{
    uint64_t c = offset + j / 8; /* eight columns per block: two 16-bit halves per word */
    uint32_t ctr[4] = {(uint32_t)c, (uint32_t)(c >> 32), (uint32_t)row, (uint32_t)(row >> 32)};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t out[4];
    fasi_philox4x32_10(ctr, key, out);
    uint32_t word = out[(j % 8) / 2];
    uint32_t half = j % 2 == 0 ? word % 65536u : word / 65536u;
    return (uint64_t)half < threshold;
}

/* Offsets that exercise the 64-bit counter: near 0, near the 32-bit carry, near the 64-bit wrap,
 * or anywhere. */
static uint64_t pick_offset(fast_rng *r)
{
    switch (fast_rng_int(r, 0, 4)) {
    case 0: return (uint64_t)fast_rng_int(r, 0, 100);
    case 1: return 0xffffffffull - (uint64_t)fast_rng_int(r, 0, 100);
    case 2: return UINT64_MAX - (uint64_t)fast_rng_int(r, 0, 100);
    case 3: return ((uint64_t)fast_rng_int(r, 1, 0xffff) << 32) - (uint64_t)fast_rng_int(r, 0, 100);
    default: return fast_rng_u64(r);
    }
}

static uint64_t pick_threshold(fast_rng *r)
{
    switch (fast_rng_int(r, 0, 6)) {
    case 0: return 0;
    case 1: return 1;
    case 2: return TWO16 / 2;
    case 3: return TWO16 - 1;
    case 4: return TWO16;
    default: return fast_rng_u64(r) >> 48;
    }
}

static uint64_t pick_row(fast_rng *r)
{
    return fast_rng_int(r, 0, 1) ? (uint64_t)fast_rng_int(r, 0, 100000) : fast_rng_u64(r);
}

static void test_keep_matches_mapping(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("keep_matches_mapping", 0x5eed0001));
    int kept = 0, total = 0;
    for (int i = 0; i < 200000; i++) {
        uint64_t seed = fast_rng_u64(&r), offset = pick_offset(&r), row = pick_row(&r);
        uint64_t j =
            fast_rng_int(&r, 0, 1) ? (uint64_t)fast_rng_int(&r, 0, 5000) : fast_rng_u64(&r) >> 2;
        uint64_t thr = pick_threshold(&r);
        bool want = mapping_keep(seed, offset, row, j, thr);
        bool got = fasi_dropout_keep(seed, offset, row, j, thr);
        if (got != want)
            printf("seed %llu offset %llu row %llu j %llu thr %llu: got %d want %d\n",
                   (unsigned long long)seed, (unsigned long long)offset, (unsigned long long)row,
                   (unsigned long long)j, (unsigned long long)thr, (int)got, (int)want);
        assert_int_equal(got, want);
        if (thr > 0 && thr < TWO16) {
            kept += got;
            total++;
        }
    }
    /* a constant answer would match a constant mapping */
    assert_true(kept > 0 && kept < total);
}

/* ---- dropout_bits at every level ---------------------------------------------------------- */

#define CANARY_BYTES 80

static void check_bits_once(const fasi_kernels *k, uint64_t seed, uint64_t offset, uint64_t row,
                            uint64_t j0, size_t n, uint64_t thr, uint8_t *buf)
{
    memset(buf, 0xA5, n + CANARY_BYTES);
    k->dropout_bits(seed, offset, row, j0, n, thr, buf);
    for (size_t t = 0; t < n; t++) {
        uint8_t want = fasi_dropout_keep(seed, offset, row, j0 + t, thr);
        if (buf[t] != want) {
            printf("%s: seed %llu offset %llu row %llu j0 %llu n %zu thr %llu: byte %zu is %u, "
                   "want %u\n",
                   k->name, (unsigned long long)seed, (unsigned long long)offset,
                   (unsigned long long)row, (unsigned long long)j0, n, (unsigned long long)thr, t,
                   (unsigned)buf[t], (unsigned)want);
        }
        assert_int_equal(buf[t], want);
    }
    for (size_t t = n; t < n + CANARY_BYTES; t++) assert_int_equal(buf[t], 0xA5);
}

static void check_bits_level(fasi_isa isa, uint64_t fallback_seed)
{
    const fasi_kernels *k = fast_level_or_skip(isa);
    if (isa != FASI_ISA_PORTABLE) {
        /* this test is meant for the SIMD kernel, not the inherited portable one */
        assert_ptr_not_equal(k->dropout_bits, fasi_kernels_for(FASI_ISA_PORTABLE)->dropout_bits);
    }
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed(k->name, fallback_seed));
    uint8_t *buf = malloc(4096 + CANARY_BYTES);
    assert_non_null(buf);

    for (int i = 0; i < 6000; i++) {
        uint64_t seed = fast_rng_u64(&r), offset = pick_offset(&r), row = pick_row(&r);
        uint64_t j0 =
            fast_rng_int(&r, 0, 3) ? (uint64_t)fast_rng_int(&r, 0, 300) : fast_rng_u64(&r) >> 3;
        size_t n = (size_t)fast_rng_int(&r, 0, 200);
        check_bits_once(k, seed, offset, row, j0, n, pick_threshold(&r), buf);
    }
    /* longer rows: many full SIMD steps, then a tail */
    for (int i = 0; i < 40; i++) {
        uint64_t seed = fast_rng_u64(&r), offset = pick_offset(&r), row = pick_row(&r);
        uint64_t j0 = (uint64_t)fast_rng_int(&r, 0, 15);
        size_t n = (size_t)fast_rng_int(&r, 1000, 4096);
        check_bits_once(k, seed, offset, row, j0, n, fast_rng_u64(&r) >> 48, buf);
    }
    /* every start phase (within a block of eight columns and across the next) and every length
     * around the step sizes (up to two passes of 16 lanes: 256 columns), with counters crossing
     * both carries */
    const uint64_t offsets[] = {0xffffffffull - 3, UINT64_MAX - 3, 0xfffffffffull - 17};
    for (size_t o = 0; o < sizeof offsets / sizeof offsets[0]; o++)
        for (uint64_t j0 = 0; j0 < 16; j0++)
            for (size_t n = 0; n <= 280; n++)
                check_bits_once(k, 0x0123456789abcdefull, offsets[o], 7, j0, n, TWO16 / 3, buf);
    free(buf);
}

static void test_bits_portable(void **state)
{
    (void)state;
    check_bits_level(FASI_ISA_PORTABLE, 0x5eed0002);
}

static void test_bits_avx2(void **state)
{
    (void)state;
    check_bits_level(FASI_ISA_AVX2, 0x5eed0003);
}

static void test_bits_avx512(void **state)
{
    (void)state;
    check_bits_level(FASI_ISA_AVX512, 0x5eed0004);
}

static void test_bits_neon(void **state)
{
    (void)state;
    check_bits_level(FASI_ISA_NEON, 0x5eed0005);
}

/* ---- threshold ---------------------------------------------------------------------------- */

static void test_threshold(void **state)
{
    (void)state;
    assert_true(fasi_dropout_threshold(1.0) == TWO16);
    assert_true(fasi_dropout_threshold(0.5) == TWO16 / 2);
    assert_true(fasi_dropout_threshold(0.25) == TWO16 / 4);
    assert_true(fasi_dropout_threshold(0.1) == 6554);          /* 6553.6 */
    assert_true(fasi_dropout_threshold(0.2) == 13107);         /* 13107.2 */
    assert_true(fasi_dropout_threshold(ldexp(1.0, -17)) == 0); /* 0.5: tie to even */
    assert_true(fasi_dropout_threshold(ldexp(3.0, -17)) == 2); /* 1.5: tie to even */
    assert_true(fasi_dropout_threshold(ldexp(5.0, -17)) == 2); /* 2.5: tie to even */
    assert_true(fasi_dropout_threshold(1.0 - ldexp(1.0, -40)) == TWO16);
    assert_true(fasi_dropout_threshold(2.0) == TWO16);
    assert_true(fasi_dropout_threshold(0.0) == 0);
    assert_true(fasi_dropout_threshold(-1.0) == 0);
    assert_true(fasi_dropout_threshold(NAN) == 0);
    /* the caller's rounding mode must not change the mask */
    const int modes[] = {FE_DOWNWARD, FE_UPWARD, FE_TOWARDZERO};
    int saved = fegetround();
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (fesetround(modes[i]) != 0) continue;
        uint64_t t1 = fasi_dropout_threshold(0.1), t2 = fasi_dropout_threshold(0.2),
                 t3 = fasi_dropout_threshold(ldexp(3.0, -17));
        fesetround(saved);
        assert_true(t1 == 6554);
        assert_true(t2 == 13107);
        assert_true(t3 == 2);
    }
    fesetround(saved);
}

/* ---- statistics --------------------------------------------------------------------------- */

#define STAT_COLS 4096
#define STAT_ROWS 2443 /* 2443 * 4096 > 10^7 */

static void check_within(const char *what, double p_keep, uint64_t hits, uint64_t trials, double q)
{
    double rate = (double)hits / (double)trials;
    double sigma = sqrt(q * (1 - q) / (double)trials);
    printf("keep_prob %.2f %-22s rate %.6f expected %.6f (%.2f sigma)\n", p_keep, what, rate, q,
           (rate - q) / sigma);
    assert_true(fabs(rate - q) <= 4 * sigma);
}

static void test_keep_rate_and_independence(void **state)
{
    (void)state;
    const fasi_kernels *k = fasi_kernels_for(fasi_cpu_best_isa());
    assert_non_null(k);
    uint8_t *prev = malloc(STAT_COLS), *cur = malloc(STAT_COLS);
    assert_non_null(prev);
    assert_non_null(cur);
    const double probs[] = {0.1, 0.5, 0.9};
    for (size_t pi = 0; pi < 3; pi++) {
        uint64_t thr = fasi_dropout_threshold(probs[pi]);
        double p = (double)thr / (double)TWO16;
        uint64_t seed = 0x9e3779b97f4a7c15ull * (pi + 1), offset = 1000 * pi;
        uint64_t kept = 0, lag1 = 0, lag2 = 0, lag8 = 0, rowpair = 0;
        for (uint64_t row = 0; row < STAT_ROWS; row++) {
            k->dropout_bits(seed, offset, row, 0, STAT_COLS, thr, cur);
            for (size_t j = 0; j < STAT_COLS; j++) {
                kept += cur[j];
                /* the other half of a word, the next word, the next block */
                if (j + 1 < STAT_COLS) lag1 += cur[j] & cur[j + 1];
                if (j + 2 < STAT_COLS) lag2 += cur[j] & cur[j + 2];
                if (j + 8 < STAT_COLS) lag8 += cur[j] & cur[j + 8];
                if (row > 0) rowpair += cur[j] & prev[j];
            }
            uint8_t *t = prev;
            prev = cur;
            cur = t;
        }
        check_within("P(keep)", probs[pi], kept, (uint64_t)STAT_ROWS * STAT_COLS, p);
        check_within("P(j and j+1 kept)", probs[pi], lag1, (uint64_t)STAT_ROWS * (STAT_COLS - 1),
                     p * p);
        check_within("P(j and j+2 kept)", probs[pi], lag2, (uint64_t)STAT_ROWS * (STAT_COLS - 2),
                     p * p);
        check_within("P(j and j+8 kept)", probs[pi], lag8, (uint64_t)STAT_ROWS * (STAT_COLS - 8),
                     p * p);
        check_within("P(rows i, i+1 kept)", probs[pi], rowpair,
                     (uint64_t)(STAT_ROWS - 1) * STAT_COLS, p * p);
    }
    free(prev);
    free(cur);
}

/* ---- every input of the mapping changes the mask ------------------------------------------ */

static double fraction_differing(const fasi_kernels *k, uint64_t s1, uint64_t o1, uint64_t r1,
                                 uint64_t s2, uint64_t o2, uint64_t r2)
{
    static uint8_t a[STAT_COLS], b[STAT_COLS];
    uint64_t thr = TWO16 / 2;
    k->dropout_bits(s1, o1, r1, 0, STAT_COLS, thr, a);
    k->dropout_bits(s2, o2, r2, 0, STAT_COLS, thr, b);
    size_t diff = 0;
    for (size_t j = 0; j < STAT_COLS; j++) diff += a[j] != b[j];
    return (double)diff / STAT_COLS;
}

static void test_inputs_change_mask(void **state)
{
    (void)state;
    const fasi_kernels *k = fasi_kernels_for(fasi_cpu_best_isa());
    const uint64_t s = 0x0123456789abcdefull, o = 12345, r = 678;
    const struct {
        const char *what;
        uint64_t s, o, r;
    } variants[] = {
        {"seed + 1", s + 1, o, r},          {"seed + 2^32", s + TWO32, o, r},
        {"offset + 1", s, o + 1, r},        {"offset + 1024", s, o + 1024, r},
        {"offset + 2^32", s, o + TWO32, r}, {"row + 1", s, o, r + 1},
        {"row + 2^32", s, o, r + TWO32},
    };
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        double f = fraction_differing(k, s, o, r, variants[i].s, variants[i].o, variants[i].r);
        printf("%-14s differs in %.3f of %d positions\n", variants[i].what, f, STAT_COLS);
        assert_true(f > 0.4);
    }
    assert_true(fraction_differing(k, s, o, r, s, o, r) == 0.0);
}

/* ---- process-wide generator --------------------------------------------------------------- */

#define DRAWS_PER_THREAD 50000

static void *draw_many(void *arg)
{
    uint64_t *offsets = arg;
    for (int i = 0; i < DRAWS_PER_THREAD; i++) {
        uint64_t seed;
        fasi_generator_draw(3, &seed, &offsets[i]);
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Touches process-wide state: everything about the generator stays in this one test. */
static void test_generator(void **state)
{
    (void)state;
    uint64_t seed, offset;
    fasi_generator_draw(0, &seed, &offset);
    assert_true(seed == 67280421310721ull); /* documented default, nothing drew before */
    assert_true(offset == 0);

    fas_manual_seed(42);
    fasi_generator_draw(10, &seed, &offset);
    assert_true(seed == 42 && offset == 0);
    fasi_generator_draw(7, &seed, &offset);
    assert_true(seed == 42 && offset == 10);
    fasi_generator_draw(0, &seed, &offset);
    assert_true(seed == 42 && offset == 17);
    fasi_generator_draw(0, &seed, &offset);
    assert_true(seed == 42 && offset == 17);

    fas_manual_seed(UINT64_MAX);
    fasi_generator_draw(1, &seed, &offset);
    assert_true(seed == UINT64_MAX && offset == 0);
    fas_manual_seed(42);
    fasi_generator_draw(5, &seed, &offset);
    assert_true(seed == 42 && offset == 0);

    /* concurrent draws never share an offset */
    fas_manual_seed(7);
    uint64_t *offs = malloc(2 * DRAWS_PER_THREAD * sizeof *offs);
    assert_non_null(offs);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, draw_many, offs), 0);
    draw_many(offs + DRAWS_PER_THREAD);
    assert_int_equal(pthread_join(th, NULL), 0);
    qsort(offs, 2 * DRAWS_PER_THREAD, sizeof *offs, cmp_u64);
    for (size_t i = 0; i < 2 * DRAWS_PER_THREAD; i++) assert_true(offs[i] == 3 * i);
    fasi_generator_draw(0, &seed, &offset);
    assert_true(seed == 7 && offset == 3ull * 2 * DRAWS_PER_THREAD);
    free(offs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kat_vectors),
        cmocka_unit_test(test_keep_matches_mapping),
        cmocka_unit_test(test_bits_portable),
        cmocka_unit_test(test_bits_avx2),
        cmocka_unit_test(test_bits_avx512),
        cmocka_unit_test(test_bits_neon),
        cmocka_unit_test(test_threshold),
        cmocka_unit_test(test_keep_rate_and_independence),
        cmocka_unit_test(test_inputs_change_mask),
        cmocka_unit_test(test_generator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
