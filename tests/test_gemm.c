/* The gemm and gemm_add entries of the kernel table (kernels/gemm.h) at every SIMD level
 * (portable, AVX2, AVX-512, NEON; a level this build or CPU lacks is skipped with the reason
 * printed): every element equals its definition - one chain of fmaf (the C library's, not the
 * library's code) in increasing t from +0, then alpha fused into the accumulation - bit for bit,
 * on random shapes with odd sizes and on the edges of every tile shape (5 or 6 rows by 16 or
 * 64 columns), both accumulate modes, alpha 0, 1 and others, NaN, +-inf and -0 among the operands,
 * the fp16 addend ND or NZ, broadcast or not; nothing outside the m x n rectangle is written
 * (canaries before, between and after the rows); each SIMD level has its own gemm, not its
 * base's; on aarch64 the NEON level also under non-default FPCR (docs/design.md section 6: the
 * addend's widening must not depend on it); and the panel packing against its index formula. */
#include <fenv.h>
#include <math.h>
#include <string.h>

#include "fas_test.h"
#include "levels.h"
#include "api/dispatch.h"
#include "kernels/gemm.h"

enum { GUARD = 8 }; /* canary floats before and after c */

static bool same_float(float a, float b)
{
    return fast_f32_bits(a) == fast_f32_bits(b) || (isnan(a) && isnan(b));
}

static float operand(fast_rng *r)
{
    switch (fast_rng_int(r, 0, 40)) {
    case 0: return NAN;
    case 1: return INFINITY;
    case 2: return -INFINITY;
    case 3: return -0.0f;
    case 4: return 0.0f;
    default: return (float)fast_rng_uniform(r, -2, 2);
    }
}

static void check_case(const fasi_kernels *k, fast_rng *r, size_t m, size_t n, size_t kk,
                       bool specials)
{
    const bool trans_a = fast_rng_int(r, 0, 1) != 0;
    const size_t lda = (trans_a ? m : kk) + (size_t)fast_rng_int(r, 0, 3);
    const size_t ldc = n + (size_t)fast_rng_int(r, 0, 5);
    const size_t ldb = n + (size_t)fast_rng_int(r, 0, 2);
    const size_t a_elems = (trans_a ? kk : m) * lda;
    float *a = malloc((a_elems + 1) * sizeof *a), *b = malloc((kk * ldb + 1) * sizeof *b);
    float *bp = aligned_alloc(64, (fasi_packed_floats(kk, n) + 16) * sizeof *bp);
    float *cbuf = malloc((GUARD + m * ldc + GUARD) * sizeof *cbuf);
    float *c0 = malloc((m * ldc + GUARD) * sizeof *c0);
    assert_true(a && b && bp && cbuf && c0);
    float *c = cbuf + GUARD;
    fast_canary_fill(cbuf, GUARD * sizeof *cbuf);
    for (size_t i = 0; i < a_elems; i++)
        a[i] = specials ? operand(r) : (float)fast_rng_uniform(r, -1, 1);
    for (size_t i = 0; i < kk * ldb; i++)
        b[i] = specials ? operand(r) : (float)fast_rng_uniform(r, -1, 1);
    for (size_t i = 0; i < m * ldc + GUARD; i++)
        c0[i] = specials ? operand(r) : (float)fast_rng_uniform(r, -1, 1);
    const float alphas[] = {1.0f, 0.0f, 0.125f, -3.0f, (float)fast_rng_uniform(r, -2, 2)};
    const float alpha = alphas[fast_rng_int(r, 0, 4)];
    const bool accumulate = fast_rng_int(r, 0, 1) != 0;
    fasi_pack_panels(b, ldb, kk, n, 0, bp);
    memcpy(c, c0, (m * ldc + GUARD) * sizeof *c);
    /* A row-major, or (trans_a) the transpose of the stored matrix a, k x m with pitch lda */
    k->gemm(m, n, kk, alpha, a, trans_a ? 1 : lda, trans_a ? lda : 1, bp, kk * FASI_PANEL, c, ldc,
            accumulate);
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < ldc; j++) {
            float want = c0[i * ldc + j];
            if (j < n) {
                float acc = 0.0f;
                for (size_t t = 0; t < kk; t++)
                    acc = fmaf(trans_a ? a[t * lda + i] : a[i * lda + t], b[t * ldb + j], acc);
                want = accumulate ? fmaf(alpha, acc, want) : alpha * acc;
            }
            if (!same_float(c[i * ldc + j], want)) {
                printf("%s gemm m=%zu n=%zu k=%zu alpha=%a acc=%d trans_a=%d: c[%zu][%zu] = %a, "
                       "want %a\n",
                       k->name, m, n, kk, alpha, (int)accumulate, (int)trans_a, i, j,
                       c[i * ldc + j], want);
                fail();
            }
        }
    }
    for (size_t i = m * ldc; i < m * ldc + GUARD; i++)
        assert_int_equal(fast_f32_bits(c[i]), fast_f32_bits(c0[i]));
    assert_true(fast_canary_intact(cbuf, GUARD * sizeof *cbuf));
    free(a);
    free(b);
    free(bp);
    free(cbuf);
    free(c0);
}

/* gemm_add: the fp16 addend (ND or NZ, broadcast or not, any origin) replaces c's old values.
 * Expected values read the halves through the index formula of the test's layout model. */
static void check_add_case(const fasi_kernels *k, fast_rng *r, size_t m, size_t n, size_t kk)
{
    const bool nz = fast_rng_int(r, 0, 1) != 0, broadcast = fast_rng_int(r, 0, 3) == 0;
    const size_t row0 = (size_t)fast_rng_int(r, 0, 20);
    const size_t col0 = nz ? 16 * (size_t)fast_rng_int(r, 0, 2) : (size_t)fast_rng_int(r, 0, 20);
    const int64_t rows = (int64_t)(row0 + (broadcast ? 1 : m)) + fast_rng_int(r, 0, 3);
    const int64_t cols = (int64_t)(col0 + n) + fast_rng_int(r, 0, 3);
    int64_t dims[2] = {rows, cols};
    fast_geom g = fast_geom_of(2, dims);
    const int64_t elems = fast_storage_elems(&g, nz);
    uint16_t *store = malloc((size_t)(elems + 16) * sizeof *store);
    float *a = malloc((m * kk + 1) * sizeof *a), *b = malloc((kk * n + 1) * sizeof *b);
    float *bp = aligned_alloc(64, (fasi_packed_floats(kk, n) + 16) * sizeof *bp);
    const size_t ldc = n + (size_t)fast_rng_int(r, 0, 5);
    const size_t c_bytes = (GUARD + m * ldc + GUARD) * sizeof(float);
    float *cbuf = malloc(c_bytes), *c = cbuf + GUARD;
    assert_true(store && a && b && bp && cbuf);
    fast_canary_fill(cbuf, c_bytes); /* the gaps between rows and the guards must stay so */
    unsigned char *canary = malloc(c_bytes);
    assert_non_null(canary);
    memcpy(canary, cbuf, c_bytes);
    for (int64_t i = 0; i < elems + 16; i++)
        store[i] = fas_float_to_half(
            fast_rng_int(r, 0, 50) == 0 ? -INFINITY : (float)fast_rng_uniform(r, -9, 1));
    for (size_t i = 0; i < m * kk; i++) a[i] = operand(r);
    for (size_t i = 0; i < kk * n; i++) b[i] = operand(r);
    fasi_pack_panels(b, n, kk, n, 0, bp);
    fasi_addend add = {store, nz, broadcast, (size_t)cols, (size_t)g.m1, row0, col0};
    const float alpha = (float)fast_rng_uniform(r, -1, 1);
    k->gemm_add(m, n, kk, alpha, a, kk, 1, bp, kk * FASI_PANEL, c, ldc, &add);
    for (size_t i = 0; i < m; i++) {
        for (size_t j = n; j < ldc; j++) /* between the rows */
            assert_memory_equal(c + i * ldc + j, canary + (GUARD + i * ldc + j) * sizeof(float),
                                sizeof(float));
        for (size_t j = 0; j < n; j++) {
            float acc = 0.0f;
            for (size_t t = 0; t < kk; t++) acc = fmaf(a[i * kk + t], b[t * n + j], acc);
            int64_t idx = fast_storage_index(&g, nz, 0, (int64_t)(row0 + (broadcast ? 0 : i)),
                                             (int64_t)(col0 + j));
            float want = fmaf(alpha, acc, fas_half_to_float(store[idx]));
            if (!same_float(c[i * ldc + j], want)) {
                printf(
                    "%s gemm_add m=%zu n=%zu k=%zu nz=%d bcast=%d row0=%zu col0=%zu: c[%zu][%zu] "
                    "= %a, want %a\n",
                    k->name, m, n, kk, (int)nz, (int)broadcast, row0, col0, i, j, c[i * ldc + j],
                    want);
                fail();
            }
        }
    }
    assert_memory_equal(cbuf, canary, GUARD * sizeof(float));
    assert_memory_equal(c + m * ldc, canary + (GUARD + m * ldc) * sizeof(float),
                        GUARD * sizeof(float));
    free(store);
    free(a);
    free(b);
    free(bp);
    free(cbuf);
    free(canary);
}

/* The level whose table a level's table starts as a copy of (docs/design.md section 6). */
static fasi_isa base_of(fasi_isa isa)
{
    return isa == FASI_ISA_AVX512 ? FASI_ISA_AVX2 : FASI_ISA_PORTABLE;
}

/* Every tile edge: m around multiples of 5 (NEON) and 6 (AVX), n around multiples of 16 and 64,
 * short k. */
static void check_edges(const fasi_kernels *k, fast_rng *r)
{
    static const size_t ms[] = {1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 13};
    static const size_t ns[] = {1, 3, 4, 5, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 80};
    static const size_t ks[] = {0, 1, 2, 7};
    for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++)
        for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++) {
            const size_t kk = ks[(a + b) % 4];
            check_case(k, r, ms[a], ns[b], kk, (a + b) % 3 == 0);
            check_add_case(k, r, ms[a], ns[b], kk + 3);
        }
}

static void check_level(fasi_isa isa, uint64_t seed)
{
    const fasi_kernels *k = fast_level_or_skip(isa);
    if (isa != FASI_ISA_PORTABLE) {
        /* the level's own tiles, not the entries its table inherited */
        const fasi_kernels *base = fasi_kernels_for(base_of(isa));
        assert_non_null(base);
        assert_ptr_not_equal(k->gemm, base->gemm);
        assert_ptr_not_equal(k->gemm_add, base->gemm_add);
    }
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed(k->name, seed));
    for (int rep = 0; rep < 300; rep++)
        check_case(k, &r, (size_t)fast_rng_int(&r, 0, 30), (size_t)fast_rng_int(&r, 0, 70),
                   (size_t)fast_rng_int(&r, 0, 80), rep % 4 == 0);
    for (int rep = 0; rep < 200; rep++)
        check_add_case(k, &r, (size_t)fast_rng_int(&r, 1, 30), (size_t)fast_rng_int(&r, 1, 70),
                       (size_t)fast_rng_int(&r, 0, 40));
    check_edges(k, &r);
    /* the forward's shapes: 128 rows, D = 64 by 512 keys, 512 keys by Dv = 64 */
    check_case(k, &r, 128, 512, 64, false);
    check_case(k, &r, 128, 64, 512, false);
}

static void test_pack(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("pack", 7));
    for (int rep = 0; rep < 50; rep++) {
        size_t rows = (size_t)fast_rng_int(&r, 1, 40), cols = (size_t)fast_rng_int(&r, 1, 50);
        int trans = rep % 2;
        size_t ld = (trans ? rows : cols) + (size_t)fast_rng_int(&r, 0, 3);
        size_t stored_rows = trans ? cols : rows;
        float *src = malloc(stored_rows * ld * sizeof *src);
        float *dst = malloc(fasi_packed_floats(rows, cols) * sizeof *dst);
        assert_true(src && dst);
        for (size_t i = 0; i < stored_rows * ld; i++) src[i] = (float)i;
        memset(dst, 0xff, fasi_packed_floats(rows, cols) * sizeof *dst);
        fasi_pack_panels(src, ld, rows, cols, trans, dst);
        size_t panels = (cols + 15) / 16;
        for (size_t p = 0; p < panels; p++)
            for (size_t t = 0; t < rows; t++)
                for (size_t l = 0; l < 16; l++) {
                    size_t j = p * 16 + l;
                    float want = j >= cols ? 0.0f : trans ? src[j * ld + t] : src[t * ld + j];
                    assert_true(same_float(dst[p * rows * 16 + t * 16 + l], want));
                }
        free(src);
        free(dst);
    }
}

static void test_portable(void **state)
{
    (void)state;
    check_level(FASI_ISA_PORTABLE, 0x6e11);
}

static void test_avx2(void **state)
{
    (void)state;
    check_level(FASI_ISA_AVX2, 0x6e12);
}

static void test_avx512(void **state)
{
    (void)state;
    check_level(FASI_ISA_AVX512, 0x6e13);
}

static void test_neon(void **state)
{
    (void)state;
    check_level(FASI_ISA_NEON, 0x6e14);
}

/* ---- NEON under a non-default FPCR
 * FCVTL widens fp16 exactly only under the default FPCR: with AHP set it reads a half with
 * exponent 31 (the -inf of a mask) as a finite number, with DN set a NaN loses its payload. The
 * addend of gemm_add must still be fasi_f16_to_f32's value (the addends above hold -inf), and
 * the products follow FPCR exactly as the C library's fmaf of the expected values does. */
#if defined(__aarch64__)
static uint64_t read_fpcr(void)
{
    uint64_t v;
    __asm__ volatile("mrs %0, fpcr" : "=r"(v));
    return v;
}

static void write_fpcr(uint64_t v) { __asm__ volatile("msr fpcr, %0" : : "r"(v)); }
#endif

static void test_neon_fpcr(void **state)
{
    (void)state;
#if defined(__aarch64__)
    const fasi_kernels *k = fast_level_or_skip(FASI_ISA_NEON);
    static const struct {
        uint64_t bits;
        const char *name;
    } envs[] = {{1u << 26, "FPCR.AHP"},
                {1u << 25, "FPCR.DN"},
                {1u << 24, "FPCR.FZ"},
                {(1u << 26) | (1u << 25) | (1u << 24) | (1u << 19), "FPCR.AHP+DN+FZ+FZ16"}};
    static const int modes[] = {FE_TONEAREST, FE_UPWARD};
    const uint64_t saved = read_fpcr();
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("neon_fpcr", 0x6e15));
    for (size_t e = 0; e < sizeof envs / sizeof envs[0]; e++)
        for (size_t md = 0; md < sizeof modes / sizeof modes[0]; md++) {
            printf("  neon: gemm and gemm_add under %s, rounding %s\n", envs[e].name,
                   modes[md] == FE_TONEAREST ? "to nearest" : "upward");
            assert_int_equal(fesetround(modes[md]), 0);
            write_fpcr(read_fpcr() | envs[e].bits);
            for (int rep = 0; rep < 20; rep++) {
                check_add_case(k, &r, (size_t)fast_rng_int(&r, 1, 14),
                               (size_t)fast_rng_int(&r, 1, 40), (size_t)fast_rng_int(&r, 0, 20));
                check_case(k, &r, (size_t)fast_rng_int(&r, 0, 14), (size_t)fast_rng_int(&r, 0, 40),
                           (size_t)fast_rng_int(&r, 0, 20), rep % 4 == 0);
            }
            write_fpcr(saved);
            assert_int_equal(fesetround(FE_TONEAREST), 0);
        }
#else
    printf("  neon: not tested under FPCR: FPCR is aarch64's, and this build targets %s\n",
           fast_build_arch());
    skip();
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack), cmocka_unit_test(test_portable),
        cmocka_unit_test(test_avx2), cmocka_unit_test(test_avx512),
        cmocka_unit_test(test_neon), cmocka_unit_test(test_neon_fpcr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
