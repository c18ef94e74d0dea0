/* Row kernels of the softmax / dropout passes (kernels/isa.h) at every ISA level: the exp
 * accuracy contract over the float range, each kernel against an fp64 reference with derived
 * bounds or against the exact fp32 expression, bit-identity of the SIMD levels with the
 * portable one (the design of kernels/exp_poly.h), NaN and -inf semantics, tails, unaligned rows
 * and rows that end at an unmapped page. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS on glibc */

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fas_test.h"
#include "levels.h"
#include "api/dispatch.h"
#include "common/isa.h"
#include "kernels/exp_poly.h"

#if !defined(MAP_ANONYMOUS) && defined(MAP_ANON)
#define MAP_ANONYMOUS MAP_ANON
#endif

#define UNIT_ROUNDOFF 0x1p-24
#define SUM_LANES 32 /* the canonical summation width of kernels/exp_poly.h */
#define MAX_N 300
#define GUARD 40 /* floats of canary after an output row */

/* Same bits, or both NaN (payloads are not part of any contract). */
static bool same_float(float a, float b)
{
    return fast_f32_bits(a) == fast_f32_bits(b) || (isnan(a) && isnan(b));
}

static const fasi_kernels *level_or_skip(fasi_isa isa) { return fast_level_or_skip(isa); }

static const fasi_kernels *portable(void) { return fasi_kernels_for(FASI_ISA_PORTABLE); }

/* |got - exact| in units of the last place of exact rounded to float (2^-149 for subnormals
 * and zero). A result that should overflow must be +inf, and +inf is wrong anywhere else. */
static double ulp_error(float got, double exact)
{
    float rounded = (float)exact;
    if (isinf(rounded)) return (isinf(got) && got > 0) ? 0.0 : INFINITY;
    if (!isfinite(got)) return INFINITY;
    int e;
    (void)frexp((double)rounded, &e);
    double ulp = ldexp(1.0, e - 24);
    if (ulp < 0x1p-149) ulp = 0x1p-149;
    return fabs((double)got - exact) / ulp;
}

/* ---- exp accuracy ------------------------------------------------------------------------- */

typedef struct bit_range {
    uint32_t first, last, step;
} bit_range;

typedef struct exp_stats {
    double worst;
    float worst_x;
    uint64_t count;
} exp_stats;

enum { EXP_CHUNK = 4096 };

/* The result exp_shift_sum must give for x (shift 0), per kernels/exp_poly.h: +0 below -87,
 * exp(88) above 88 (the clamp; arguments there never occur in the library), exp(x) otherwise.
 * Returns the value to compare with (<= 2 ulp), or sets *exact_zero. */
static double exp_target(float x, bool *exact_zero)
{
    *exact_zero = x < -87.0f;
    return x > 88.0f ? exp(88.0) : exp((double)x);
}

/* Runs in[0..cnt) through exp_shift_sum with shift 0 (x - 0 is x for every x, -0 and NaN
 * included), checks the target of exp_target (<= 2 ulp, or exactly +0) and, for a SIMD level,
 * bit-identity with the portable level. */
static void exp_chunk_check(const fasi_kernels *k, const float *in, size_t cnt, float *out,
                            float *pout, exp_stats *st)
{
    memcpy(out, in, cnt * sizeof *out);
    (void)k->exp_shift_sum(out, cnt, 0.0f);
    if (k->isa != FASI_ISA_PORTABLE) {
        memcpy(pout, in, cnt * sizeof *pout);
        (void)portable()->exp_shift_sum(pout, cnt, 0.0f);
    }
    for (size_t i = 0; i < cnt; i++) {
        bool zero;
        double want = exp_target(in[i], &zero);
        double e;
        if (isnan(in[i]))
            e = isnan(out[i]) ? 0.0 : INFINITY;
        else if (zero)
            e = fast_f32_bits(out[i]) == 0u ? 0.0 : INFINITY;
        else
            e = ulp_error(out[i], want);
        if (e > st->worst) {
            st->worst = e;
            st->worst_x = in[i];
        }
        if (e > 2.0) {
            printf("%s exp(%a) = %a, expected %a: %.3f ulp\n", k->name, in[i], out[i],
                   zero ? 0.0f : (float)want, e);
            fail();
        }
        if (k->isa != FASI_ISA_PORTABLE && !same_float(out[i], pout[i])) {
            printf("%s exp(%a) = %a but portable gives %a\n", k->name, in[i], out[i], pout[i]);
            fail();
        }
    }
    st->count += cnt;
}

static void check_exp_accuracy(fasi_isa isa)
{
    const fasi_kernels *k = level_or_skip(isa);
    if (isa != FASI_ISA_PORTABLE) {
        /* meant for the SIMD kernel, not the inherited portable one */
        assert_ptr_not_equal(k->exp_shift_sum, portable()->exp_shift_sum);
    }
    /* Every 64th bit pattern of [+0, 88] and [-0, -87] (the exact domain), every 1024th of
     * [-87, -200] (flushed to +0) and of [88, 1e30] (clamped), then every float within 4096
     * patterns of the points where the result changes regime: the flush bound -87, the first
     * k = -126 (-86.98), the clamp 88, the ends of the reduced interval (+-ln2/2, +-3 ln2/2), 0,
     * 1, -1 and the old subnormal boundary -126 ln 2 (now flushed). */
    const float centres[] = {-87.0f,       -86.98f, 88.0f, 0.34657359f, -0.34657359f, 1.03972077f,
                             -1.03972077f, 1.0f,    -1.0f, 0x1p-126f,   -0x1p-126f,   -87.3365448f};
    bit_range ranges[4 + sizeof centres / sizeof centres[0]];
    size_t nr = 0;
    ranges[nr++] = (bit_range){0x00000000u, fast_f32_bits(88.0f), 64};
    ranges[nr++] = (bit_range){0x80000000u, fast_f32_bits(-87.0f), 64};
    ranges[nr++] = (bit_range){fast_f32_bits(-87.0f), fast_f32_bits(-200.0f), 1024};
    ranges[nr++] = (bit_range){fast_f32_bits(88.0f), fast_f32_bits(1e30f), 1024};
    for (size_t c = 0; c < sizeof centres / sizeof centres[0]; c++) {
        uint32_t b = fast_f32_bits(centres[c]);
        ranges[nr++] = (bit_range){b - 4096u, b + 4096u, 1};
    }

    float *in = malloc(EXP_CHUNK * sizeof *in), *out = malloc(EXP_CHUNK * sizeof *out),
          *pout = malloc(EXP_CHUNK * sizeof *pout);
    assert_non_null(in);
    assert_non_null(out);
    assert_non_null(pout);
    exp_stats st = {0.0, 0.0f, 0};
    for (size_t r = 0; r < nr; r++) {
        size_t cnt = 0;
        for (uint64_t b = ranges[r].first; b <= ranges[r].last; b += ranges[r].step) {
            in[cnt++] = fast_bits_f32((uint32_t)b);
            if (cnt == EXP_CHUNK) {
                exp_chunk_check(k, in, cnt, out, pout, &st);
                cnt = 0;
            }
        }
        if (cnt) exp_chunk_check(k, in, cnt, out, pout, &st);
    }
    printf("%s exp: %llu inputs, max error %.4f ulp at x = %a (%.9g)\n", k->name,
           (unsigned long long)st.count, st.worst, st.worst_x, st.worst_x);
    free(in);
    free(out);
    free(pout);
}

/* ---- exp special values, at every position of a row --------------------------------------- */

typedef struct special {
    float x;
    float want; /* exact expected result; NaN means "any NaN" */
    bool exact; /* false: only the 2-ulp bound to exp_target applies */
} special;

/* ---- FMA sentinels ------------------------------------------------------------------------
 * exp fuses seven of its multiply-adds (kernels/exp_poly.h). Computing one of them as a separate
 * multiply and add changes the result only for some arguments (about one in 10^2 to 10^4 here),
 * which the sweeps above could miss, so these arguments were found by searching [-87, -0] from
 * -0 downwards: each gives a different exp when the step named with it is not fused. Step 1
 * (fma(-kf, LN2_HI, xc), whose product and difference are exact) changes no result, so leaving
 * it unfused is harmless and it has no sentinel. The test fails if a sentinel stops separating
 * its step, which happens when the exp formula changes: then search again. */
static const struct {
    int step;
    uint32_t x[6];
    int n;
} fma_sentinels[] = {
    {0, {0xbf851592u, 0xc01b43d5u, 0xc073fce1u, 0xc18d66ebu, 0xc1a3952eu, 0xc1b9c371u}, 6},
    {2, {0xc004d75cu, 0xc004d865u, 0xc004da85u, 0xc004de70u, 0xc004df05u, 0xc004df9cu}, 6},
    {3, {0xbe7a0ca7u, 0xbe9a031bu, 0xbea657fcu, 0xbea98d6au, 0xbeadf8a5u, 0xbeb16509u}, 6},
    {4, {0xbe3a6167u, 0xbe49a882u, 0xbe548105u, 0xbe5caf11u, 0xbe5e6c6fu, 0xbe650354u}, 6},
    {5, {0xbd547f6cu, 0xbd6d3d10u, 0xbd89ce5fu, 0xbdab1499u, 0xbdab4383u, 0xbdc1ef2au}, 6},
    {6, {0xbb98897fu, 0xbc62baa3u, 0xbc742fa8u, 0xbc794dfdu, 0xbc8c6bc7u, 0xbcddd512u}, 6},
    {7, {0xba5be99cu, 0xbaa4cb83u, 0xbaad1c40u, 0xbab12da4u, 0xbace2078u, 0xbaddc501u}, 6},
};

/* fasi_exp (kernels/exp_poly.h) written out again with the multiply-add of step `plain` as a
 * separate multiply and add: 0 t, 1 and 2 the Cody-Waite steps, 3..6 Horner, 7 r + r^2 q. */
static float exp_unfused_at(float x, int plain)
{
    float xc = x < FASI_EXP_LOW ? FASI_EXP_LOW : x;
    xc = xc > FASI_EXP_HIGH ? FASI_EXP_HIGH : xc;
    float t = plain == 0 ? xc * FASI_EXP_LOG2E + FASI_EXP_ROUND
                         : fmaf(xc, FASI_EXP_LOG2E, FASI_EXP_ROUND);
    float kf = t - FASI_EXP_ROUND;
    float r = plain == 1 ? xc - kf * FASI_EXP_LN2_HI : fmaf(-kf, FASI_EXP_LN2_HI, xc);
    r = plain == 2 ? r - kf * FASI_EXP_LN2_LO : fmaf(-kf, FASI_EXP_LN2_LO, r);
    static const float c[4] = {FASI_EXP_C3, FASI_EXP_C2, FASI_EXP_C1, FASI_EXP_C0};
    float q = FASI_EXP_C4;
    for (int i = 0; i < 4; i++) q = plain == 3 + i ? q * r + c[i] : fmaf(q, r, c[i]);
    float y = 1.0f + (plain == 7 ? r + (r * r) * q : fmaf(r * r, q, r));
    float e = y * fasi_bits_to_float((fasi_float_to_bits(t) + 127u) << 23);
    return x < FASI_EXP_LOW ? 0.0f : e;
}

static void check_fma_sentinels(fasi_isa isa)
{
    const fasi_kernels *k = level_or_skip(isa);
    int checked = 0;
    for (size_t s = 0; s < sizeof fma_sentinels / sizeof fma_sentinels[0]; s++) {
        int separating = 0;
        for (int i = 0; i < fma_sentinels[s].n; i++) {
            float x = fast_bits_f32(fma_sentinels[s].x[i]), got = x, want = x;
            (void)k->exp_shift_sum(&got, 1, 0.0f);
            (void)portable()->exp_shift_sum(&want, 1, 0.0f);
            float plain = exp_unfused_at(x, fma_sentinels[s].step);
            separating += fast_f32_bits(plain) != fast_f32_bits(want);
            if (fast_f32_bits(got) != fast_f32_bits(want)) {
                printf("%s exp(%a) = %a, portable %a (with step %d not fused: %a)\n", k->name, x,
                       got, want, fma_sentinels[s].step, plain);
                fail();
            }
            checked++;
        }
        /* the list must still tell the unfused step apart from the defined formula; if the exp
         * formula changed, search new arguments */
        if (separating == 0)
            fail_msg("no sentinel of step %d separates it any more", fma_sentinels[s].step);
    }
    printf("  %s: %d FMA sentinels equal to portable\n", k->name, checked);
}

static void check_exp_specials(fasi_isa isa)
{
    const fasi_kernels *k = level_or_skip(isa);
    const special sp[] = {
        {-INFINITY, 0.0f, true},
        {NAN, NAN, true},
        {-NAN, NAN, true},
        {fast_bits_f32(0x7f800001u), NAN, true}, /* signalling NaN */
        {0.0f, 1.0f, true},
        {-0.0f, 1.0f, true},
        {FLT_TRUE_MIN, 1.0f, true},
        {-FLT_TRUE_MIN, 1.0f, true},
        {-FLT_MAX, 0.0f, true},
        {-1e30f, 0.0f, true},
        {-104.0f, 0.0f, true},
        {-87.5f, 0.0f, true},
        {fast_bits_f32(0xc2ae0001u), 0.0f, true}, /* the float just below -87: flushed */
        {-87.0f, 0.0f, false},                    /* exp(-87) = 1.65e-38, normal */
        {-86.99f, 0.0f, false},                   /* k = -126 */
        {1.0f, 0.0f, false},
        {-1.0f, 0.0f, false},
        {10.0f, 0.0f, false},
        {88.0f, 0.0f, false},
        {INFINITY, 0.0f, false}, /* clamped to 88 */
        {FLT_MAX, 0.0f, false},
        {89.0f, 0.0f, false},
    };
    enum { NS = sizeof sp / sizeof sp[0], ROW = 37 };
    float row[ROW];
    for (size_t s = 0; s < NS; s++) {
        for (size_t p = 0; p < ROW; p++) {
            for (size_t j = 0; j < ROW; j++) row[j] = 0.0f;
            row[p] = sp[s].x;
            size_t n = p + 1 + (s + p) % 5; /* the special sits in full chunks and in tails */
            if (n > ROW) n = ROW;
            (void)k->exp_shift_sum(row, n, 0.0f);
            float got = row[p];
            bool ok;
            if (isnan(sp[s].want)) {
                ok = isnan(got);
            } else if (sp[s].exact) {
                ok = fast_f32_bits(got) == fast_f32_bits(sp[s].want);
            } else {
                bool zero;
                ok = ulp_error(got, exp_target(sp[s].x, &zero)) <= 2.0 && !zero;
            }
            if (!ok) printf("%s exp(%a) at %zu of %zu = %a\n", k->name, sp[s].x, p, n, got);
            assert_true(ok);
            for (size_t j = 0; j < n; j++) {
                if (j != p) assert_true(row[j] == 1.0f);
            }
        }
    }
}

/* ---- each kernel on random rows ----------------------------------------------------------- */

/* A 64-byte aligned buffer holding a row at float offset `off`, with canaries before and after. */
typedef struct guarded {
    float *base;
    float *row;
    size_t off, n;
} guarded;

static guarded guarded_new(size_t off, size_t n)
{
    guarded g;
    g.base = aligned_alloc(64, ((off + n + GUARD) * sizeof(float) + 63) / 64 * 64);
    assert_non_null(g.base);
    g.row = g.base + off;
    g.off = off;
    g.n = n;
    fast_canary_fill(g.base, off * sizeof(float));
    fast_canary_fill(g.row + n, GUARD * sizeof(float));
    return g;
}

static void guarded_check_free(guarded *g)
{
    assert_true(fast_canary_intact(g->base, g->off * sizeof(float)));
    assert_true(fast_canary_intact(g->row + g->n, GUARD * sizeof(float)));
    free(g->base);
}

/* Additions an element passes through in the canonical order: its partial (ceil(n/32)) plus the
 * 5-level tree. */
static double sum_depth(size_t n) { return (double)((n + SUM_LANES - 1) / SUM_LANES + 5); }

/* Softmax-like scores: mostly uniform in [-20, 20], some masked (-10000) and some -inf. */
static float random_score(fast_rng *r)
{
    int64_t c = fast_rng_int(r, 0, 19);
    if (c == 0) return -INFINITY;
    if (c <= 2) return -10000.0f;
    return (float)fast_rng_uniform(r, -20.0, 20.0);
}

static void check_exp_shift_sum_row(const fasi_kernels *k, fast_rng *r, size_t n, size_t off)
{
    float x[MAX_N + 1];
    for (size_t j = 0; j < n; j++) x[j] = random_score(r);
    float shift = portable()->row_max(x, n);
    if (!isfinite(shift)) shift = 0.0f;
    if (fast_rng_int(r, 0, 3) == 0) shift += (float)fast_rng_uniform(r, -5.0, 5.0);

    guarded g = guarded_new(off, n), pg = guarded_new(0, n);
    memcpy(g.row, x, n * sizeof(float));
    memcpy(pg.row, x, n * sizeof(float));
    float s = k->exp_shift_sum(g.row, n, shift);
    float ps = portable()->exp_shift_sum(pg.row, n, shift);

    /* Elements: <= 2 ulp from exp of the fp32 difference (the kernel's argument). Sum: each
     * element is within 2 ulp <= 4u relative and the fp32 sum of nonnegative terms in the
     * canonical order is within gamma_L ~ L*u of the exact sum of the computed terms,
     * L = sum_depth(n), so |s - sum(exact)| <= (L + 5) u sum(exact), plus 2^-149 per element for
     * subnormal results. */
    double ref_sum = 0.0;
    for (size_t j = 0; j < n; j++) {
        float arg = x[j] - shift;
        double ref = exp((double)arg);
        ref_sum += ref;
        double e = ulp_error(g.row[j], ref);
        if (e > 2.0)
            printf("%s n=%zu j=%zu exp(%a) = %a: %.3f ulp\n", k->name, n, j, arg, g.row[j], e);
        assert_true(e <= 2.0);
        if (x[j] == -INFINITY) assert_true(fast_f32_bits(g.row[j]) == 0u);
        assert_true(same_float(g.row[j], pg.row[j]));
    }
    double tol = (sum_depth(n) + 5.0) * UNIT_ROUNDOFF * ref_sum + (double)n * 0x1p-149;
    if (!(fabs((double)s - ref_sum) <= tol))
        printf("%s n=%zu sum %a ref %.17g tol %.3g\n", k->name, n, s, ref_sum, tol);
    assert_true(fabs((double)s - ref_sum) <= tol);
    assert_true(same_float(s, ps));
    guarded_check_free(&g);
    guarded_check_free(&pg);
}

static void check_elementwise_rows(const fasi_kernels *k, fast_rng *r, size_t n, size_t off)
{
    float x[MAX_N + 1], y[MAX_N + 1];
    uint8_t keep[MAX_N + 1];
    static const uint8_t keep_values[] = {0, 1, 1, 2, 255, 0, 1}; /* any nonzero byte keeps */
    for (size_t j = 0; j < n; j++) {
        x[j] = (float)fast_rng_uniform(r, -3.0, 3.0);
        y[j] = (float)fast_rng_uniform(r, -3.0, 3.0);
        keep[j] = keep_values[fast_rng_int(r, 0, 6)];
        if (keep[j] == 0 && fast_rng_int(r, 0, 3) == 0)
            x[j] = fast_rng_int(r, 0, 1) ? NAN : INFINITY;
    }
    float s = (float)fast_rng_uniform(r, 0.1, 4.0), c = (float)fast_rng_uniform(r, -1.0, 1.0);

    /* row_max: exact, so equal to the fp64 maximum. */
    float ym = k->row_max(y, n);
    double yref = -INFINITY;
    for (size_t j = 0; j < n; j++) yref = y[j] > yref ? y[j] : yref;
    assert_true((double)ym == yref);

    /* scale, add, dropout_apply, softmax_bwd: each element is one fp32 expression, so every
     * level must give the exact fp32 result of the expression as written in isa.h. */
    guarded g = guarded_new(off, n);
    memcpy(g.row, y, n * sizeof(float));
    k->scale(g.row, n, s);
    for (size_t j = 0; j < n; j++) assert_true(same_float(g.row[j], y[j] * s));
    guarded_check_free(&g);

    g = guarded_new(off, n);
    memcpy(g.row, y, n * sizeof(float));
    float *addend = malloc((n + 1) * sizeof(float));
    assert_non_null(addend);
    memcpy(addend, x, n * sizeof(float));
    k->add(g.row, addend, n);
    for (size_t j = 0; j < n; j++) assert_true(same_float(g.row[j], y[j] + x[j]));
    guarded_check_free(&g);

    g = guarded_new(off, n);
    memcpy(g.row, x, n * sizeof(float));
    uint8_t *kb = malloc(n + 8);
    assert_non_null(kb);
    memcpy(kb + off % 8, keep, n); /* keep bytes unaligned too */
    k->dropout_apply(g.row, kb + off % 8, n, s);
    for (size_t j = 0; j < n; j++) {
        float want = x[j] * (keep[j] ? s : 0.0f); /* a product: dropped NaN stays NaN */
        if (!same_float(g.row[j], want))
            printf("%s dropout n=%zu j=%zu keep=%u x=%a got %a\n", k->name, n, j, keep[j], x[j],
                   g.row[j]);
        assert_true(same_float(g.row[j], want));
    }
    guarded_check_free(&g);
    free(kb);

    g = guarded_new(off, n);
    memcpy(g.row, y, n * sizeof(float));
    for (size_t j = 0; j < n; j++) addend[j] = fabsf(y[j]) / 3.0f; /* p in [0, 1] */
    k->softmax_bwd(g.row, addend, n, c, s);
    for (size_t j = 0; j < n; j++) assert_true(same_float(g.row[j], (s * addend[j]) * (y[j] - c)));
    guarded_check_free(&g);
    free(addend);

    /* probs_dropout: p = x * inv, its fp16 (the public conversion, checked exhaustively by
     * test_fp16) into p16 when given, then x = p * (keep ? s : 0) when keep is given */
    const float inv = (float)fast_rng_uniform(r, 0.001, 2.0);
    for (int variant = 0; variant < 4; variant++) {
        const bool with_keep = variant & 1, with_p16 = variant & 2;
        g = guarded_new(off, n);
        memcpy(g.row, y, n * sizeof(float));
        uint16_t *p16 = malloc((n + 8) * sizeof *p16);
        assert_non_null(p16);
        fast_canary_fill(p16, n * sizeof *p16);
        fast_canary_fill(p16 + n, 8 * sizeof *p16);
        k->probs_dropout(g.row, with_keep ? keep : NULL, n, inv, s, with_p16 ? p16 : NULL);
        for (size_t j = 0; j < n; j++) {
            float pj = y[j] * inv;
            float want = with_keep ? pj * (keep[j] ? s : 0.0f) : pj;
            if (!same_float(g.row[j], want) || (with_p16 && p16[j] != fas_float_to_half(pj)))
                printf("%s probs_dropout n=%zu j=%zu variant %d: %a (%04x), want %a (%04x)\n",
                       k->name, n, j, variant, g.row[j], with_p16 ? p16[j] : 0, want,
                       fas_float_to_half(pj));
            assert_true(same_float(g.row[j], want));
            if (with_p16) assert_int_equal(p16[j], fas_float_to_half(pj));
        }
        /* nothing past the row; nothing at all without p16 */
        assert_true(fast_canary_intact(p16 + n, 8 * sizeof *p16));
        if (!with_p16) assert_true(fast_canary_intact(p16, n * sizeof *p16));
        free(p16);
        guarded_check_free(&g);
    }
}

static void check_dot_row(const fasi_kernels *k, fast_rng *r, size_t n, size_t off)
{
    float *a = aligned_alloc(64, 64 * ((n + off + 16) * sizeof(float) / 64 + 1));
    float *b = aligned_alloc(64, 64 * ((n + off + 16) * sizeof(float) / 64 + 1));
    assert_non_null(a);
    assert_non_null(b);
    float *ar = a + off, *br = b + (off * 3) % 8;
    double ref = 0.0, mag = 0.0;
    for (size_t j = 0; j < n; j++) {
        ar[j] = (float)fast_rng_uniform(r, -1.0, 1.0);
        br[j] = (float)fast_rng_uniform(r, -1.0, 1.0);
        ref += (double)ar[j] * br[j];
        mag += fabs((double)ar[j] * br[j]);
    }
    float d = k->dot(ar, br, n);
    /* Each product is rounded once and then passes through sum_depth(n) additions:
     * |d - ref| <= gamma_(L+1) sum|a b| <= (L + 2) u sum|a b|. */
    double tol = (sum_depth(n) + 2.0) * UNIT_ROUNDOFF * mag;
    if (!(fabs((double)d - ref) <= tol))
        printf("%s dot n=%zu got %a ref %.17g tol %.3g\n", k->name, n, d, ref, tol);
    assert_true(fabs((double)d - ref) <= tol);
    assert_true(same_float(d, portable()->dot(ar, br, n)));
    free(a);
    free(b);
}

static void check_kernels_random(fasi_isa isa, uint64_t fallback_seed)
{
    const fasi_kernels *k = level_or_skip(isa);
    if (isa != FASI_ISA_PORTABLE) {
        const fasi_kernels *p = portable();
        assert_ptr_not_equal(k->row_max, p->row_max);
        assert_ptr_not_equal(k->exp_shift_sum, p->exp_shift_sum);
        assert_ptr_not_equal(k->scale, p->scale);
        assert_ptr_not_equal(k->add, p->add);
        assert_ptr_not_equal(k->dot, p->dot);
        assert_ptr_not_equal(k->dropout_apply, p->dropout_apply);
        assert_ptr_not_equal(k->softmax_bwd, p->softmax_bwd);
    }
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed(k->name, fallback_seed));
    static const size_t offs[] = {0, 1, 3, 7, 13};
    for (size_t n = 0; n <= MAX_N; n++) {
        for (size_t o = 0; o < sizeof offs / sizeof offs[0]; o++) {
            check_exp_shift_sum_row(k, &r, n, offs[o]);
            check_elementwise_rows(k, &r, n, offs[o]);
            check_dot_row(k, &r, n, offs[o]);
        }
    }
}

/* ---- row_max NaN / -inf semantics, exp_shift_sum with -inf entries ------------------------ */

static void check_row_semantics(fasi_isa isa)
{
    const fasi_kernels *k = level_or_skip(isa);
    enum { N = 70 };
    float x[N];
    assert_true(k->row_max(x, 0) == -INFINITY);
    for (size_t n = 1; n <= N; n++) {
        for (size_t j = 0; j < n; j++) x[j] = -INFINITY;
        assert_true(fast_f32_bits(k->row_max(x, n)) == fast_f32_bits(-INFINITY));
        for (size_t p = 0; p < n; p++) {
            for (size_t j = 0; j < n; j++) x[j] = (float)j * 0.25f - 3.0f;
            float top = (float)(n - 1) * 0.25f - 3.0f;
            x[p] = NAN;
            assert_true(isnan(k->row_max(x, n)));
            x[p] = -NAN;
            assert_true(isnan(k->row_max(x, n)));
            x[p] = INFINITY;
            assert_true(k->row_max(x, n) == INFINITY);
            x[n - 1 - p] = NAN; /* NaN beats +inf wherever either sits */
            assert_true(isnan(k->row_max(x, n)));
            for (size_t j = 0; j < n; j++) x[j] = -INFINITY;
            x[p] = 1.5f;
            assert_true(k->row_max(x, n) == 1.5f);
            for (size_t j = 0; j < n; j++) x[j] = (float)j * 0.25f - 3.0f;
            x[p] = -INFINITY;
            float want = p == n - 1 ? (n > 1 ? top - 0.25f : -INFINITY) : top;
            assert_true(k->row_max(x, n) == want);
        }
    }

    /* exp_shift_sum: -inf entries become +0 and do not disturb the sum. */
    for (size_t n = 1; n <= N; n++) {
        for (size_t p = 0; p < n; p++) {
            float y[N], z[N];
            for (size_t j = 0; j < n; j++) y[j] = (j + p) % 3 == 0 ? -INFINITY : -(float)j * 0.1f;
            y[p] = -INFINITY;
            memcpy(z, y, n * sizeof(float));
            for (size_t j = 0; j < n; j++) {
                if (z[j] == -INFINITY) z[j] = -200.0f; /* exp underflows to +0 too */
            }
            float s = k->exp_shift_sum(y, n, 2.5f), sz = k->exp_shift_sum(z, n, 2.5f);
            for (size_t j = 0; j < n; j++) {
                assert_true(fast_f32_bits(y[j]) == fast_f32_bits(z[j]));
                if (j == p) assert_true(fast_f32_bits(y[j]) == 0u);
            }
            assert_true(fast_f32_bits(s) == fast_f32_bits(sz));
        }
    }
}

/* ---- rows that end where the mapping ends ------------------------------------------------- */

/* Every n in 0..MAX_N with the row's last element (or keep byte) the last byte before an
 * unmapped page: a kernel that reads past the row faults. */
static void check_guard_page(fasi_isa isa)
{
    const fasi_kernels *k = level_or_skip(isa);
#ifndef MAP_ANONYMOUS
    printf("no anonymous mmap on this system\n");
    skip();
#else
    long page = sysconf(_SC_PAGESIZE);
    assert_true(page >= 4096);
    size_t ps = (size_t)page;
    unsigned char *map =
        mmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(map != MAP_FAILED);
    assert_int_equal(mprotect(map + ps, ps, PROT_NONE), 0);
    assert_int_equal(mprotect(map + 3 * ps, ps, PROT_NONE), 0);
    float *fend = (float *)(void *)(map + ps);     /* one past the end of page 0 */
    float *gend = (float *)(void *)(map + 3 * ps); /* one past the end of page 2 */
    uint8_t *bend = map + 3 * ps;
    float ref[MAX_N], tmp[MAX_N];
    for (size_t n = 0; n <= MAX_N; n++) {
        float *x = fend - n, *y = gend - n;
        uint8_t *kb = bend - n;
        for (size_t j = 0; j < n; j++) {
            x[j] = (float)j * -0.01f;
            y[j] = 0.5f;
        }
        assert_true(k->row_max(x, n) == (n ? 0.0f : -INFINITY));
        memcpy(ref, x, n * sizeof(float));
        float want = portable()->exp_shift_sum(ref, n, 0.0f);
        assert_true(same_float(k->exp_shift_sum(x, n, 0.0f), want));
        for (size_t j = 0; j < n; j++) assert_true(same_float(x[j], ref[j]));
        assert_true(same_float(k->dot(x, y, n), portable()->dot(x, y, n)));
        k->add(x, y, n);
        k->scale(x, n, 2.0f);
        k->softmax_bwd(x, y, n, 0.25f, 0.5f);
        memcpy(tmp, x, n * sizeof(float));
        for (size_t j = 0; j < n; j++) kb[j] = (uint8_t)(j & 1);
        k->dropout_apply(x, kb, n, 3.0f);
        for (size_t j = 0; j < n; j++) {
            float e = (0.5f * 0.5f) * ((ref[j] + 0.5f) * 2.0f - 0.25f);
            assert_true(same_float(tmp[j], e));
            assert_true(same_float(x[j], e * ((j & 1) ? 3.0f : 0.0f)));
        }
    }
    munmap(map, 4 * ps);
#endif
}

/* ---- per-level cases ---------------------------------------------------------------------- */

#define LEVEL_CASES(suffix, isa, seed)                                                             \
    static void test_exp_accuracy_##suffix(void **state)                                           \
    {                                                                                              \
        (void)state;                                                                               \
        check_exp_accuracy(isa);                                                                   \
    }                                                                                              \
    static void test_exp_specials_##suffix(void **state)                                           \
    {                                                                                              \
        (void)state;                                                                               \
        check_exp_specials(isa);                                                                   \
    }                                                                                              \
    static void test_kernels_random_##suffix(void **state)                                         \
    {                                                                                              \
        (void)state;                                                                               \
        check_kernels_random(isa, seed);                                                           \
    }                                                                                              \
    static void test_row_semantics_##suffix(void **state)                                          \
    {                                                                                              \
        (void)state;                                                                               \
        check_row_semantics(isa);                                                                  \
    }                                                                                              \
    static void test_guard_page_##suffix(void **state)                                             \
    {                                                                                              \
        (void)state;                                                                               \
        check_guard_page(isa);                                                                     \
    }                                                                                              \
    static void test_fma_sentinels_##suffix(void **state)                                          \
    {                                                                                              \
        (void)state;                                                                               \
        check_fma_sentinels(isa);                                                                  \
    }

LEVEL_CASES(portable, FASI_ISA_PORTABLE, 0x5eed0001u)
LEVEL_CASES(avx2, FASI_ISA_AVX2, 0x5eed0002u)
LEVEL_CASES(avx512, FASI_ISA_AVX512, 0x5eed0003u)
LEVEL_CASES(neon, FASI_ISA_NEON, 0x5eed0004u)

#define LEVEL_TESTS(suffix)                                                                        \
    cmocka_unit_test(test_exp_accuracy_##suffix), cmocka_unit_test(test_exp_specials_##suffix),    \
        cmocka_unit_test(test_kernels_random_##suffix),                                            \
        cmocka_unit_test(test_row_semantics_##suffix), cmocka_unit_test(test_guard_page_##suffix), \
        cmocka_unit_test(test_fma_sentinels_##suffix)

int main(void)
{
    const struct CMUnitTest tests[] = {
        LEVEL_TESTS(portable),
        LEVEL_TESTS(avx2),
        LEVEL_TESTS(avx512),
        LEVEL_TESTS(neon),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
