/* The AMX engine (engine/amx.c, kernels/amx.h; docs/design.md §6, docs/precision.md):
 *  (a) the split: every fp16 value (+-0, +-inf, NaN too) is hi + lo exactly with lo2 = 0; fp32
 *      values are hi + lo + lo2 exactly and hi + lo within 2^-16 relative; special and
 *      overflowing values;
 *  (b) the packing and blocking on the portable model of the tile instruction, on every
 *      machine, against an fp64 product with the tolerance the split states: random shapes with
 *      odd m, n, k, partial tiles, offsets t0 and j0, transposed A, accumulate, alpha 0, an fp16
 *      addend (ND, NZ, broadcast), NaN and +-inf (also in rows of B outside the product, which
 *      must not contribute); nothing outside the m x n rectangle of c is written;
 *  (c) where the CPU and OS allow AMX: the AVX-512 splits bit for bit against the portable ones,
 *      and the tiles (the engine itself) against the same fp64 products and tolerances and
 *      against the model within twice them, NaN and +-inf at the same places (not the model's
 *      bits: the hardware's order inside one instruction is its own); elsewhere a visible skip
 *      with the reason;
 *  (d) the model on hand cases: exact bf16 products, round to nearest even, denormal inputs read
 *      as zero, denormal results flushed. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "fas_test.h"
#include "api/dispatch.h"
#include "api/engines.h"
#include "common/memory.h"
#include "engine/amx.h"
#include "kernels/gemm.h"

static float bf(uint16_t h) { return fasi_amx_bf16_value(h); }

/* ---- (a) the split -------------------------------------------------------------------------- */

static void test_split_fp16(void **state)
{
    (void)state;
    for (uint32_t bits = 0; bits < 0x10000u; bits++) {
        const float x = fas_half_to_float((uint16_t)bits);
        uint16_t p[3];
        const bool finite = fasi_amx_split1(x, p);
        assert_int_equal(p[2], 0);
        if (isnan(x)) {
            assert_false(finite);
            assert_true(isnan(bf(p[0])));
            assert_int_equal(p[0] & 0x40u, 0x40u); /* quiet */
            assert_int_equal(p[0] >> 15, bits >> 15);
            assert_int_equal(p[1], 0);
            continue;
        }
        if (isinf(x)) {
            assert_false(finite);
            assert_true(bf(p[0]) == x);
            assert_int_equal(p[1], 0); /* not inf - inf */
            continue;
        }
        assert_true(finite);
        /* hi + lo == x exactly; lo is x - hi (so x - hi is a bf16 value); hi keeps x's sign */
        assert_true((double)bf(p[0]) + (double)bf(p[1]) == (double)x);
        assert_true((double)bf(p[1]) == (double)x - (double)bf(p[0]));
        assert_true(signbit(bf(p[0])) == signbit(x));
        /* no part is a bf16 denormal (the tile instruction would read it as zero) */
        for (int q = 0; q < 2; q++) assert_true((p[q] & 0x7fffu) == 0 || (p[q] & 0x7f80u) != 0);
    }
}

static void test_split_fp32(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("split_fp32", 11));
    for (int rep = 0; rep < 200000; rep++) {
        /* magnitudes 2^-100 .. 2^127 (parts stay normal), and the largest floats */
        uint32_t u = (uint32_t)fast_rng_u64(&r);
        const uint32_t e = (uint32_t)fast_rng_int(&r, 27, 254);
        u = (u & 0x807fffffu) | (e << 23);
        if (rep % 100 == 0)
            u = (u & 0x80000000u) | (0x7f7fffffu - (uint32_t)fast_rng_int(&r, 0, 0x8000));
        const float x = fast_bits_f32(u);
        uint16_t p[3];
        assert_true(fasi_amx_split1(x, p));
        assert_true(isfinite(bf(p[0])));
        const double hi = bf(p[0]), lo = bf(p[1]), lo2 = bf(p[2]);
        if (hi + lo + lo2 != (double)x || fabs((double)x - hi - lo) > 0x1p-16 * fabs(x)) {
            printf("split of %a: %a + %a + %a\n", x, hi, lo, lo2);
            fail();
        }
    }
    /* the largest float's bf16 rounding overflows: hi is rounded toward zero instead */
    uint16_t p[3];
    assert_true(fasi_amx_split1(FLT_MAX, p));
    assert_int_equal(p[0], 0x7f7fu);
    assert_true((double)bf(p[0]) + bf(p[1]) + bf(p[2]) == (double)FLT_MAX);
    assert_true(fasi_amx_split1(-FLT_MAX, p));
    assert_int_equal(p[0], 0xff7fu);
    assert_false(fasi_amx_split1(-INFINITY, p));
    assert_true(p[0] == 0xff80u && p[1] == 0 && p[2] == 0);
}

/* ---- (b), (c) products ---------------------------------------------------------------------- */

typedef struct gemm_case {
    size_t m, n, k, kb, nb, t0, j0; /* B is kb x nb; the product reads rows t0.., columns j0.. */
    bool trans_a, accumulate, fp32a, fp32b;
    int addend;   /* 0 none, 1 ND, 2 NZ, 3 ND broadcast */
    int specials; /* 0 none, 1 among the operands, 2 only in B rows outside the product */
    float alpha;
    size_t lda, ldc;
} gemm_case;

static float value(fast_rng *r, bool fp32)
{
    const float x = (float)fast_rng_uniform(r, -2, 2);
    return fp32 ? x : fas_half_to_float(fas_float_to_half(x));
}

static float special(fast_rng *r)
{
    switch (fast_rng_int(r, 0, 2)) {
    case 0: return NAN;
    case 1: return INFINITY;
    default: return -INFINITY;
    }
}

/* The product error a split allows, relative to |alpha| * sum |a b| (docs/precision.md): the
 * dropped passes plus fp32 accumulation of 2k products per pass (generous). */
static double split_bound(int split, bool fp32, size_t k)
{
    double drop = fp32 ? 0x1p-21 : 0.0; /* split 3 */
    if (split == 1) drop = 0x1p-7;
    /* |lo| <= 2^-8 |x|, |x - hi - lo| <= 2^-16 |x| */
    if (split == 2) drop = fp32 ? 0x1p-14 : 0x1p-16;
    if (split == FASI_AMX_SPLIT_AUTO) drop = fp32 ? 0x1p-14 : 0.0; /* 3 for fp16 data, else 2 */
    return drop + 6.0 * (double)(k + 2) * 0x1p-24;
}

static size_t nz_index(size_t m1, size_t r, size_t c)
{
    return (c / 16 * m1 + r / 16) * 256 + (r % 16) * 16 + c % 16;
}

/* Runs one case with ops at a split, checks against fp64; returns false on a miss. */
static bool run_case(const gemm_case *g, const fasi_amx_ops *ops, int split, fast_rng *r,
                     const char *what)
{
    const fasi_kernels *kern = fasi_kernels_for(FASI_ISA_PORTABLE);
    const size_t m = g->m, n = g->n, k = g->k;
    const size_t a_elems = (g->trans_a ? k : m) * g->lda + 1;
    float *a = malloc(a_elems * sizeof *a);
    float *bm = malloc((g->kb * g->nb + 1) * sizeof *bm);
    float *bp =
        aligned_alloc(64, fasi_round64(fasi_packed_floats(g->kb, g->nb) * sizeof(float)) + 64);
    void *own = aligned_alloc(64, fasi_round64(fasi_amx_own_bytes(g->kb, g->nb)));
    void *work = aligned_alloc(64, fasi_round64(fasi_amx_work_bytes(m, n, k)));
    const size_t c_elems = (m + 1) * g->ldc;
    float *c = malloc(c_elems * sizeof *c), *c0 = malloc(c_elems * sizeof *c0);
    /* the addend: an fp16 matrix of am rows x an columns (ND or NZ) */
    const size_t am = m + 17, an = g->j0 + n + 16, am1 = (am + 15) / 16;
    const size_t add_elems = (an + 15) / 16 * am1 * 256 + am * an;
    uint16_t *addm = malloc(add_elems * sizeof *addm);
    assert_true(a && bm && bp && own && work && c && c0 && addm);
    for (size_t i = 0; i < a_elems; i++) a[i] = value(r, g->fp32a);
    for (size_t i = 0; i < g->kb * g->nb; i++) bm[i] = value(r, g->fp32b);
    for (size_t i = 0; i < c_elems; i++) c0[i] = value(r, true);
    for (size_t i = 0; i < add_elems; i++)
        addm[i] = fas_float_to_half((float)fast_rng_uniform(r, -1, 1));
    if (g->specials == 1) {
        const int count = (int)fast_rng_int(r, 1, 3);
        for (int s = 0; s < count; s++) {
            if (fast_rng_int(r, 0, 1) && k)
                bm[(g->t0 + (size_t)fast_rng_int(r, 0, (int64_t)k - 1)) * g->nb + g->j0 +
                   (size_t)fast_rng_int(r, 0, (int64_t)n - 1)] = special(r);
            else if (k)
                a[(size_t)fast_rng_int(r, 0, (int64_t)(g->trans_a ? k : m) - 1) * g->lda +
                  (size_t)fast_rng_int(r, 0, (int64_t)(g->trans_a ? m : k) - 1)] = special(r);
        }
    } else if (g->specials == 2) {
        for (size_t t = 0; t < g->kb; t++)
            if (t < g->t0 || t >= g->t0 + k)
                for (size_t j = 0; j < g->nb; j++) bm[t * g->nb + j] = special(r);
    }
    fasi_pack_panels(bm, g->nb, g->kb, g->nb, 0, bp);
    fasi_operand b = {bp, 0, false, own, g->kb, g->nb};
    fasi_amx_prepare_with(ops, &b);
    fasi_addend add = {addm, g->addend == 2, g->addend == 3, an, am1, 0, g->j0};
    if (g->addend)
        add.row0 = g->addend == 3 ? (size_t)fast_rng_int(r, 0, (int64_t)am - 1)
                                  : (size_t)fast_rng_int(r, 0, 16);
    memcpy(c, c0, c_elems * sizeof *c);
    const size_t rsa = g->trans_a ? 1 : g->lda, csa = g->trans_a ? g->lda : 1;
    fasi_amx_gemm_with(ops, split, kern, work, m, n, k, g->alpha, a, rsa, csa, &b, g->t0, g->j0, c,
                       g->ldc, g->accumulate, g->addend ? &add : NULL);
    /* the tiles against the model too: the same contract, not the same bits */
    float *cm = NULL;
    if (ops != &fasi_amx_model_ops) {
        cm = malloc(c_elems * sizeof *cm);
        void *own2 = aligned_alloc(64, fasi_round64(fasi_amx_own_bytes(g->kb, g->nb)));
        assert_true(cm && own2);
        fasi_operand bm2 = {bp, 0, false, own2, g->kb, g->nb};
        fasi_amx_prepare_with(&fasi_amx_model_ops, &bm2);
        memcpy(cm, c0, c_elems * sizeof *cm);
        fasi_amx_gemm_with(&fasi_amx_model_ops, split, kern, work, m, n, k, g->alpha, a, rsa, csa,
                           &bm2, g->t0, g->j0, cm, g->ldc, g->accumulate, g->addend ? &add : NULL);
        free(own2);
    }

    const double bound = split_bound(split, g->fp32a || g->fp32b, k);
    bool ok = true;
    for (size_t i = 0; i <= m && ok; i++)
        for (size_t j = 0; j < g->ldc && ok; j++) {
            const float got = c[i * g->ldc + j];
            double want = c0[i * g->ldc + j], tol = 0.0;
            if (i < m && j < n) {
                double acc = 0.0, mag = 0.0;
                for (size_t t = 0; t < k; t++) {
                    const double x = a[(i * rsa + t * csa)],
                                 y = bm[(g->t0 + t) * g->nb + g->j0 + j];
                    acc += x * y;
                    mag += fabs(x * y);
                }
                double base = g->accumulate ? want : 0.0;
                if (g->addend) {
                    const size_t rr = add.row0 + (add.broadcast ? 0 : i), cc = add.col0 + j;
                    base = fas_half_to_float(addm[add.nz ? nz_index(am1, rr, cc) : rr * an + cc]);
                }
                want = (double)g->alpha * acc + base;
                tol = fabs((double)g->alpha) * bound * mag + 0x1p-23 * fabs(want) + 0x1p-120;
            }
            const bool same_special =
                (isnan(want) && isnan(got)) || (isinf(want) && (double)got == want);
            const bool close =
                !isnan(want) && !isinf(want) && isfinite(got) && fabs((double)got - want) <= tol;
            bool like_model = true;
            if (cm) {
                const float gm = cm[i * g->ldc + j];
                like_model =
                    (isnan(gm) && isnan(got)) || (isinf(gm) && got == gm) ||
                    (isfinite(gm) && isfinite(got) && fabs((double)got - (double)gm) <= 2.0 * tol);
            }
            if (!like_model)
                printf("%s (%s, split %d): m=%zu n=%zu k=%zu: c[%zu][%zu] = %a, the model's %a\n",
                       what, ops->name, split, m, n, k, i, j, got, cm[i * g->ldc + j]);
            ok &= like_model;
            if (!same_special && !close) {
                printf("%s (%s, split %d): m=%zu n=%zu k=%zu t0=%zu j0=%zu trans_a=%d acc=%d "
                       "add=%d alpha=%a specials=%d fp32 %d/%d: c[%zu][%zu] = %a, want %a "
                       "(tol %.3g)\n",
                       what, ops->name, split, m, n, k, g->t0, g->j0, (int)g->trans_a,
                       (int)g->accumulate, g->addend, g->alpha, g->specials, (int)g->fp32a,
                       (int)g->fp32b, i, j, got, want, tol);
                ok = false;
            }
        }
    free(a);
    free(bm);
    free(bp);
    free(own);
    free(work);
    free(c);
    free(c0);
    free(cm);
    free(addm);
    return ok;
}

static gemm_case random_case(fast_rng *r, size_t max_m, size_t max_n, size_t max_k)
{
    gemm_case g;
    g.m = (size_t)fast_rng_int(r, 1, (int64_t)max_m);
    g.n = (size_t)fast_rng_int(r, 1, (int64_t)max_n);
    g.k = (size_t)fast_rng_int(r, 0, (int64_t)max_k);
    g.t0 = 16 * (size_t)fast_rng_int(r, 0, 2);
    /* t0 + k even, or the operand's last row */
    const bool last = (g.t0 + g.k) % 2 == 1 || fast_rng_int(r, 0, 1);
    g.kb = last ? g.t0 + g.k : g.t0 + g.k + 2 * (size_t)fast_rng_int(r, 1, 9);
    g.j0 = 16 * (size_t)fast_rng_int(r, 0, 2);
    g.nb = g.j0 + g.n + (size_t)fast_rng_int(r, 0, 20);
    g.trans_a = fast_rng_int(r, 0, 1) != 0;
    g.accumulate = fast_rng_int(r, 0, 1) != 0;
    g.fp32a = fast_rng_int(r, 0, 2) == 0;
    g.fp32b = fast_rng_int(r, 0, 3) == 0;
    g.addend = (int)fast_rng_int(r, 0, 5);
    if (g.addend > 3) g.addend = 0;
    g.specials = (int)fast_rng_int(r, 0, 7);
    if (g.specials > 2) g.specials = 0;
    const float alphas[] = {1.0f, 0.0f, 0.125f, -3.0f, (float)fast_rng_uniform(r, -2, 2)};
    g.alpha = alphas[fast_rng_int(r, 0, 4)];
    g.lda = (g.trans_a ? g.m : g.k) + (size_t)fast_rng_int(r, 0, 3);
    if (g.lda == 0) g.lda = 1;
    g.ldc = g.n + (size_t)fast_rng_int(r, 0, 5);
    return g;
}

static void check_products(const fasi_amx_ops *ops, const char *seed_name, int reps)
{
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed(seed_name, 23));
    int misses = 0;
    for (int rep = 0; rep < reps; rep++) {
        gemm_case g = random_case(&r, 70, 70, 100);
        const int split = rep % 4; /* FASI_AMX_SPLIT_AUTO, 1, 2, 3 */
        if (!run_case(&g, ops, split, &r, "random")) misses++;
    }
    /* the forward's and the backward's shapes (scores with a mask, P.V, dV, dQ) */
    const size_t shapes[][3] = {{128, 512, 64}, {128, 64, 512}, {512, 64, 128}, {128, 64, 96}};
    for (size_t s = 0; s < 4; s++) {
        gemm_case g = random_case(&r, 1, 1, 1);
        g.m = shapes[s][0];
        g.n = shapes[s][1];
        g.k = shapes[s][2];
        g.t0 = g.j0 = 0;
        g.kb = g.k;
        g.nb = g.n;
        g.trans_a = s == 2;
        g.lda = g.trans_a ? g.m : g.k;
        g.ldc = g.n;
        g.fp32a = s != 0;
        g.fp32b = false;
        g.addend = s == 0 ? 2 : 0;
        g.specials = 0;
        if (!run_case(&g, ops, FASI_AMX_SPLIT, &r, "pipeline shape")) misses++;
    }
    assert_int_equal(misses, 0);
}

static void test_model_products(void **state)
{
    (void)state;
    check_products(&fasi_amx_model_ops, "model_products", 400);
}

static const fasi_amx_ops *usable_tiles(void)
{
    const fasi_amx_ops *t = fasi_amx_tile_ops();
    if (!t) {
        printf("[ SKIP     ] the AMX tiles: this build has no AMX code (FAS_SIMD=OFF, a compiler "
               "without -mamx-tile -mamx-bf16, or not x86-64)\n");
        return NULL;
    }
    if (!fasi_amx_acquire()) {
        printf("[ SKIP     ] the AMX tiles: %s\n", fasi_amx_unusable_reason());
        return NULL;
    }
    return t;
}

static void test_tile_products(void **state)
{
    (void)state;
    const fasi_amx_ops *t = usable_tiles();
    if (!t) skip();
    check_products(t, "tile_products", 600);
}

/* The AVX-512 splits of the tile kernels equal the portable definitions bit for bit. */
static void test_tile_splits(void **state)
{
    (void)state;
    const fasi_amx_ops *t = fasi_amx_tile_ops();
    if (!t || !fasi_isa_available(FASI_ISA_AVX512)) {
        printf("[ SKIP     ] the AVX-512 splits: %s\n",
               t ? "this CPU has no AVX-512" : "this build has no AMX code");
        skip();
    }
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("tile_splits", 5));
    const size_t ld = 96;
    uint16_t *buf = malloc(6 * 32 * ld * sizeof *buf);
    float *a = malloc(100 * 100 * sizeof *a), *tmp = malloc(32 * ld * sizeof *tmp);
    assert_true(buf && a && tmp);
    for (int rep = 0; rep < 300; rep++) {
        for (size_t i = 0; i < 100 * 100; i++) {
            uint32_t u = (uint32_t)fast_rng_u64(&r);
            switch (fast_rng_int(&r, 0, 5)) {
            case 0: a[i] = fast_bits_f32(u); break; /* any pattern: NaN, inf, denormals */
            case 1: a[i] = fast_bits_f32((u & 0x80000000u) | 0x7f7f8000u | (u & 0x7fff)); break;
            case 2: a[i] = value(&r, false); break;
            default: a[i] = value(&r, true); break;
            }
        }
        const size_t rows = (size_t)fast_rng_int(&r, 1, 32), k = (size_t)fast_rng_int(&r, 0, ld);
        const bool trans = fast_rng_int(&r, 0, 1) != 0;
        const size_t lda = (trans ? rows : k) + (size_t)fast_rng_int(&r, 0, 3);
        uint16_t *p1[3] = {buf, buf + 32 * ld, buf + 64 * ld};
        uint16_t *p2[3] = {buf + 96 * ld, buf + 128 * ld, buf + 160 * ld};
        uint8_t bad1[32], bad2[32];
        const size_t rsa = trans ? 1 : lda, csa = trans ? lda : 1;
        const int want = (int)fast_rng_int(&r, 1, 3);
        memset(buf, 0, 6 * 32 * ld * sizeof *buf);
        const int n1 = fasi_amx_model_ops.split_a(a, rsa, csa, rows, k, want, p1, ld, bad1, tmp);
        const int n2 = t->split_a(a, rsa, csa, rows, k, want, p2, ld, bad2, tmp);
        assert_int_equal(n1, n2);
        assert_memory_equal(bad1, bad2, 32);
        assert_memory_equal(buf, buf + 96 * ld, 96 * ld * sizeof *buf);
        /* B: one panel of k rows */
        const size_t kb = (size_t)fast_rng_int(&r, 1, 90);
        uint8_t g1[8], g2[8];
        const int m1 = fasi_amx_model_ops.split_b(a, kb, p1, g1);
        const int m2 = t->split_b(a, kb, p2, g2);
        assert_int_equal(m1, m2);
        assert_memory_equal(g1, g2, (kb + 15) / 16);
        for (int p = 0; p < 3; p++)
            assert_memory_equal(p1[p], p2[p], (kb + 1) / 2 * 32 * sizeof(uint16_t));
    }
    free(buf);
    free(a);
    free(tmp);
}

/* The engine as the pipelines reach it: resolved by the API, or refused with a reason. */
static void test_engine_resolve(void **state)
{
    (void)state;
    const fasi_engine *e = NULL;
    const fas_status st = fasi_resolve_engine(FAS_GEMM_AMX, &e);
    if (fasi_engine_available(FAS_GEMM_AMX)) {
        assert_int_equal(st, FAS_OK);
        assert_ptr_equal(e, &fasi_engine_amx);
        assert_string_equal(e->name, "amx");
        assert_int_equal(e->panel, FASI_PANEL);
    } else {
        assert_int_equal(st, FAS_ERR_UNSUPPORTED);
        printf("FAS_GEMM_AMX refused: %s\n", fas_last_error());
        assert_non_null(strstr(fas_last_error(), "the AMX engine cannot run: "));
    }
}

/* ---- (d) the model on hand cases ------------------------------------------------------------ */

static uint16_t h_of(float x)
{
    uint16_t p[3];
    fasi_amx_split1(x, p);
    return p[0];
}

static void test_model_hand(void **state)
{
    (void)state;
    const uint16_t one = h_of(1.0f), big = h_of(1.0f + 0x1p-7f);
    /* bf16 products are exact */
    assert_true(fasi_amx_model_fma(big, big, 0.0f) == (1.0f + 0x1p-7f) * (1.0f + 0x1p-7f));
    /* round to nearest even: 1 + 2^-24 is a tie down to 1; 1 + 2^-23 + 2^-24 a tie up */
    const uint16_t tiny = h_of(0x1p-24f);
    assert_true(fasi_amx_model_fma(tiny, one, 1.0f) == 1.0f);
    assert_true(fasi_amx_model_fma(tiny, one, 1.0f + 0x1p-23f) == 1.0f + 0x1p-22f);
    /* a denormal bf16 input is read as zero */
    assert_true(fasi_amx_model_fma(0x0001u, one, 0.0f) == 0.0f);
    assert_true(fasi_amx_model_fma(one, 0x8040u, 1.0f) == 1.0f);
    /* a denormal result is flushed to a zero of its sign */
    const uint16_t e100 = h_of(0x1p-100f), e30 = h_of(0x1p-30f), me30 = h_of(-0x1p-30f);
    float z = fasi_amx_model_fma(e100, e30, 0.0f);
    assert_true(z == 0.0f && !signbit(z));
    z = fasi_amx_model_fma(e100, me30, 0.0f);
    assert_true(z == 0.0f && signbit(z));
    z = fasi_amx_model_fma(e100, h_of(-0x1p-27f), 0x1p-126f); /* 2^-126 - 2^-127 */
    assert_true(z == 0.0f);
    /* 0 * inf and NaN are NaN; inf propagates */
    assert_true(isnan(fasi_amx_model_fma(h_of(0.0f), h_of(INFINITY), 1.0f)));
    assert_true(isnan(fasi_amx_model_fma(one, h_of(NAN), 1.0f)));
    assert_true(fasi_amx_model_fma(one, h_of(-INFINITY), 1.0f) == -INFINITY);

    /* one block by hand: C = A . B over one k step with A(i, t) = 1 and B(t, j) = t + j */
    uint16_t *a = calloc(32 * 32, sizeof *a), *b = calloc(2 * 512, sizeof *b);
    float *acc = malloc(32 * 32 * sizeof *acc);
    assert_true(a && b && acc);
    for (size_t i = 0; i < 32 * 32; i++) a[i] = one;
    for (size_t t = 0; t < 32; t++)
        for (size_t j = 0; j < 32; j++)
            b[(j / 16) * 512 + (t / 2) * 32 + 2 * (j % 16) + t % 2] = h_of((float)(t + j));
    fasi_amx_block blk = {2, 2, 1, {a, a, a}, {b, b, b}, 512, 1, {{0, 0}}, true, true, acc};
    fasi_amx_model_ops.block(&blk);
    for (size_t i = 0; i < 32; i++)
        for (size_t j = 0; j < 32; j++) assert_true(acc[i * 32 + j] == (float)(496 + 32 * j));
    free(a);
    free(b);
    free(acc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_fp16),     cmocka_unit_test(test_split_fp32),
        cmocka_unit_test(test_model_hand),     cmocka_unit_test(test_model_products),
        cmocka_unit_test(test_tile_splits),    cmocka_unit_test(test_tile_products),
        cmocka_unit_test(test_engine_resolve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
