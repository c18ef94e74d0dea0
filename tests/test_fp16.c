/* fp16 / bf16 conversions: the portable definition against independent references, and every
 * SIMD level against the portable definition, bit for bit.
 *
 * The references never use the library's bit manipulations: a finite value is computed with
 * ldexp from its integer significand, and rounding picks the nearest entry of a sorted table of
 * all finite non-negative values of the target format by comparing with the exact midpoint of
 * two neighbours (in double, where every fp16 / bf16 midpoint is exact); a tie goes to the entry
 * with an even significand, i.e. an even bit pattern.
 *
 * NaN rule under test (the x86 F16C convention, see fp16_portable.c): every conversion returns a
 * quiet NaN with the input's sign; narrowing keeps the top payload bits
 * (half = sign | 0x7e00 | payload >> 13, bf16 = bits >> 16 | 0x0040), widening puts the payload
 * at the top of the float payload and sets the quiet bit. */
#include "fas_test.h"
#include "levels.h"

#include <fenv.h>
#include <math.h>
#include <string.h>

#include "api/dispatch.h"
#include "common/isa.h"
#include "layout/layout.h"

/* ---- bit access */

static uint64_t d2u(double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

/* ---- independent references */

#define HALF_FINITE 0x7c00 /* finite non-negative halves are 0x0000 .. 0x7bff; 0x7c00 is inf */
#define BF16_FINITE 0x7f80 /* finite non-negative bf16 are 0x0000 .. 0x7f7f; 0x7f80 is inf */

static double half_table[HALF_FINITE];
static double bf16_table[BF16_FINITE];
static double half_overflow; /* 65520: the midpoint of 65504 and 2^16; at or above -> inf */
static double bf16_overflow; /* (2^8 - 1/2) * 2^120: likewise for bf16 */

/* Value of a finite non-negative binary16 (5-bit exponent, 10-bit fraction) bit pattern. */
static double half_value(unsigned bits)
{
    unsigned e = bits >> 10, m = bits & 1023u;
    return e == 0 ? ldexp((double)m, -24) : ldexp((double)(1024u + m), (int)e - 25);
}

/* Value of a finite non-negative bfloat16 (8-bit exponent, 7-bit fraction) bit pattern. */
static double bf16_value(unsigned bits)
{
    unsigned e = bits >> 7, m = bits & 127u;
    return e == 0 ? ldexp((double)m, -133) : ldexp((double)(128u + m), (int)e - 134);
}

static int setup_tables(void **state)
{
    (void)state;
    for (unsigned i = 0; i < HALF_FINITE; i++) half_table[i] = half_value(i);
    for (unsigned i = 0; i < BF16_FINITE; i++) bf16_table[i] = bf16_value(i);
    half_overflow = 65520.0;
    bf16_overflow = ldexp(255.5, 120);
    return 0;
}

/* Nearest entry to |x| (x not NaN) in a sorted table, ties to the even index; count (the
 * infinity pattern of both formats) when |x| rounds past the largest finite value. */
static unsigned nearest_index(double ax, const double *table, unsigned count, double overflow)
{
    if (ax >= overflow) return count;
    unsigned lo = 0, hi = count - 1; /* invariant: table[lo] <= ax */
    while (lo < hi) {
        unsigned mid = lo + (hi - lo + 1) / 2;
        if (table[mid] <= ax)
            lo = mid;
        else
            hi = mid - 1;
    }
    if (lo == count - 1) return lo;
    double midpoint = (table[lo] + table[lo + 1]) / 2;
    if (ax < midpoint) return lo;
    if (ax > midpoint) return lo + 1;
    return (lo & 1u) ? lo + 1 : lo;
}

static uint16_t ref_f64_to_half(double x)
{
    uint16_t sign = signbit(x) ? 0x8000u : 0u;
    if (isnan(x)) return (uint16_t)(sign | 0x7e00u); /* payload: only quietness is checked */
    return (uint16_t)(sign | nearest_index(fabs(x), half_table, HALF_FINITE, half_overflow));
}

static uint16_t ref_f64_to_bf16(double x)
{
    uint16_t sign = signbit(x) ? 0x8000u : 0u;
    if (isnan(x)) return (uint16_t)(sign | 0x7fc0u);
    return (uint16_t)(sign | nearest_index(fabs(x), bf16_table, BF16_FINITE, bf16_overflow));
}

static uint16_t ref_f32_to_half(float x)
{
    uint32_t u = fast_f32_bits(x);
    if (isnan(x)) return (uint16_t)(((u >> 16) & 0x8000u) | 0x7e00u | ((u >> 13) & 0x3ffu));
    return ref_f64_to_half((double)x);
}

static uint16_t ref_f32_to_bf16(float x)
{
    uint32_t u = fast_f32_bits(x);
    if (isnan(x)) return (uint16_t)((u >> 16) | 0x0040u);
    return ref_f64_to_bf16((double)x);
}

/* ---- mismatch reporting: print the first few, count all */

typedef struct mismatches {
    const char *what;
    long count;
} mismatches;

static void note16(mismatches *mm, uint64_t input, unsigned got, unsigned want)
{
    if (got == want) return;
    if (mm->count < 8)
        printf("  %s: input 0x%llx -> 0x%04x, expected 0x%04x\n", mm->what,
               (unsigned long long)input, got, want);
    mm->count++;
}

static void note32(mismatches *mm, uint64_t input, uint32_t got, uint32_t want)
{
    if (got == want) return;
    if (mm->count < 8)
        printf("  %s: input 0x%llx -> 0x%08x, expected 0x%08x\n", mm->what,
               (unsigned long long)input, (unsigned)got, (unsigned)want);
    mm->count++;
}

/* ---- half -> float */

static void test_half_to_float_all(void **state)
{
    (void)state;
    mismatches mm = {"half->float", 0};
    for (uint32_t h = 0; h < 65536; h++) {
        float f = fasi_f16_to_f32((uint16_t)h);
        uint32_t sign = (h & 0x8000u) << 16;
        unsigned mag = h & 0x7fffu;
        uint32_t want;
        if (mag < HALF_FINITE) {
            double v = half_value(mag);
            float fv = (float)v;
            assert_true((double)fv == v); /* every half is a float */
            want = sign | fast_f32_bits(fv);
        } else if (mag == HALF_FINITE) {
            want = sign | 0x7f800000u;
        } else {
            want = sign | 0x7fc00000u | ((uint32_t)(mag & 0x3ffu) << 13);
        }
        note32(&mm, h, fast_f32_bits(f), want);
    }
    assert_int_equal(mm.count, 0);

    /* A few values written out by hand. */
    assert_int_equal(fast_f32_bits(fasi_f16_to_f32(0x0001)), fast_f32_bits(0x1p-24f));
    assert_int_equal(fast_f32_bits(fasi_f16_to_f32(0x03ff)), fast_f32_bits(0x3ffp-24f));
    assert_int_equal(fast_f32_bits(fasi_f16_to_f32(0x0400)), fast_f32_bits(0x1p-14f));
    assert_int_equal(fast_f32_bits(fasi_f16_to_f32(0x3c00)), fast_f32_bits(1.0f));
    assert_int_equal(fast_f32_bits(fasi_f16_to_f32(0x7bff)), fast_f32_bits(65504.0f));
    assert_int_equal(fast_f32_bits(fasi_f16_to_f32(0xc000)), fast_f32_bits(-2.0f));
    assert_int_equal(fast_f32_bits(fasi_f16_to_f32(0x8000)), 0x80000000u);
    assert_int_equal(fast_f32_bits(fasi_f16_to_f32(0xfc00)), 0xff800000u);
    assert_int_equal(fast_f32_bits(fasi_f16_to_f32(0x7c01)), 0x7fc02000u); /* signalling -> quiet */
    assert_int_equal(fast_f32_bits(fasi_f16_to_f32(0xfe00)), 0xffc00000u);
}

static void test_half_round_trip_all(void **state)
{
    (void)state;
    mismatches mm = {"half->float->half", 0};
    for (uint32_t h = 0; h < 65536; h++) {
        bool is_nan = (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0;
        uint16_t back = fasi_f32_to_f16(fasi_f16_to_f32((uint16_t)h));
        note16(&mm, h, back, is_nan ? (h | 0x0200u) : h);
    }
    assert_int_equal(mm.count, 0);
}

/* ---- float -> half */

static void check_f32_to_half(mismatches *mm, float x)
{
    note16(mm, fast_f32_bits(x), fasi_f32_to_f16(x), ref_f32_to_half(x));
}

static void test_float_to_half_hand_values(void **state)
{
    (void)state;
    static const struct {
        uint32_t in;
        uint16_t out;
    } cases[] = {
        {0x00000000u, 0x0000}, /* +0 */
        {0x80000000u, 0x8000}, /* -0 */
        {0x3f800000u, 0x3c00}, /* 1 */
        {0x3f801000u, 0x3c00}, /* 1 + 2^-11: tie, to even */
        {0x3f803000u, 0x3c02}, /* 1 + 3*2^-11: tie, to even (up) */
        {0x3f801001u, 0x3c01}, /* just above the tie */
        {0x3f800fffu, 0x3c00}, /* just below the tie */
        {0x477fe000u, 0x7bff}, /* 65504, the largest half */
        {0x477fefffu, 0x7bff}, /* just below 65520 */
        {0x477ff000u, 0x7c00}, /* 65520: tie between 65504 and 2^16, to even = inf */
        {0xc77ff000u, 0xfc00},
        {0x7f7fffffu, 0x7c00}, /* FLT_MAX */
        {0x7f800000u, 0x7c00}, /* inf */
        {0xff800000u, 0xfc00},
        {0x33800000u, 0x0001}, /* 2^-24, the smallest subnormal half */
        {0x33000000u, 0x0000}, /* 2^-25: tie between 0 and 2^-24, to even = 0 */
        {0x33000001u, 0x0001}, /* just above 2^-25 */
        {0xb3000001u, 0x8001},
        {0x32ffffffu, 0x0000},
        {0x33c00000u, 0x0002}, /* 1.5 * 2^-24: tie, to even (up) */
        {0x34200000u, 0x0002}, /* 2.5 * 2^-24: tie, to even (down) */
        {0x387fc000u, 0x03ff}, /* largest subnormal half */
        {0x387fe000u, 0x0400}, /* tie between it and 2^-14, to even (up) */
        {0x38800000u, 0x0400}, /* 2^-14 */
        {0x00000001u, 0x0000}, /* smallest float subnormal */
        {0x807fffffu, 0x8000},
        {0x7f800001u, 0x7e00}, /* signalling NaN, payload below the kept bits */
        {0x7fa00000u, 0x7f00}, /* signalling NaN, payload kept */
        {0x7f802000u, 0x7e01},
        {0x7fc00000u, 0x7e00}, /* default quiet NaN */
        {0xffc00000u, 0xfe00},
        {0xffffffffu, 0xffff},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = fasi_f32_to_f16(fast_bits_f32(cases[i].in));
        if (got != cases[i].out)
            printf("  float 0x%08x -> 0x%04x, expected 0x%04x\n", (unsigned)cases[i].in, got,
                   cases[i].out);
        assert_int_equal(got, cases[i].out);
        /* The independent reference must agree with the hand-written values too. */
        assert_int_equal(ref_f32_to_half(fast_bits_f32(cases[i].in)), cases[i].out);
    }
}

/* Every half value, every midpoint between neighbours, the floats one ulp either side of each,
 * both signs; the overflow edge and the tiny range densely. */
static void test_float_to_half_dense(void **state)
{
    (void)state;
    mismatches mm = {"float->half (dense)", 0};
    long checked = 0;
    for (unsigned i = 0; i < HALF_FINITE; i++) {
        double next = i + 1 < HALF_FINITE ? half_table[i + 1] : 65536.0;
        float points[7];
        points[0] = (float)half_table[i];
        points[1] = (float)((half_table[i] + next) / 2); /* exact: 12 significant bits */
        assert_true((double)points[1] == (half_table[i] + next) / 2);
        points[2] = nextafterf(points[1], 0.0f);
        points[3] = nextafterf(points[1], INFINITY);
        points[4] = nextafterf(points[0], 0.0f);
        points[5] = nextafterf(points[0], INFINITY);
        points[6] = nextafterf(points[2], 0.0f);
        for (int p = 0; p < 7; p++) {
            check_f32_to_half(&mm, points[p]);
            check_f32_to_half(&mm, -points[p]);
            checked += 2;
        }
    }
    /* Every float in [65000, 66000] and in [2^-26, 2^-23], both signs. */
    for (uint32_t u = fast_f32_bits(65000.0f); u <= fast_f32_bits(66000.0f); u++) {
        check_f32_to_half(&mm, fast_bits_f32(u));
        check_f32_to_half(&mm, fast_bits_f32(u | 0x80000000u));
        checked += 2;
    }
    for (uint32_t u = fast_f32_bits(0x1p-26f); u <= fast_f32_bits(0x1p-23f); u += 7) {
        check_f32_to_half(&mm, fast_bits_f32(u));
        check_f32_to_half(&mm, fast_bits_f32(u | 0x80000000u));
        checked += 2;
    }
    /* Every exponent with edge significands: zeros, subnormals, infinities, NaNs. */
    static const uint32_t mant[] = {0u,        1u,        2u,       0x1000u,   0x0fffu,
                                    0x1001u,   0x2000u,   0x3000u,  0x400000u, 0x7fe000u,
                                    0x7fefffu, 0x7ff000u, 0x7fffffu};
    for (uint32_t e = 0; e < 256; e++)
        for (size_t j = 0; j < sizeof mant / sizeof mant[0]; j++)
            for (uint32_t s = 0; s < 2; s++) {
                check_f32_to_half(&mm, fast_bits_f32((s << 31) | (e << 23) | mant[j]));
                checked++;
            }
    printf("  float->half dense sweep: %ld values\n", checked);
    assert_int_equal(mm.count, 0);
}

static void test_float_to_half_random(void **state)
{
    (void)state;
    fast_rng rng;
    fast_rng_seed(&rng, fast_test_seed("float_to_half_random", 0xf16f16u));
    mismatches mm = {"float->half (random)", 0};
    for (long i = 0; i < (1L << 21); i++) {
        uint64_t r = fast_rng_u64(&rng);
        uint32_t any = (uint32_t)r;
        /* The second draw concentrates on exponents where halves live (2^-27 .. 2^17). */
        uint32_t e = 100u + (uint32_t)((r >> 32) % 45u);
        uint32_t near = ((uint32_t)(r >> 63) << 31) | (e << 23) | ((uint32_t)(r >> 9) & 0x7fffffu);
        check_f32_to_half(&mm, fast_bits_f32(any));
        check_f32_to_half(&mm, fast_bits_f32(near));
    }
    assert_int_equal(mm.count, 0);
}

/* ---- double -> half / bf16, single rounding */

static void test_f64_to_half(void **state)
{
    (void)state;
    /* Hand values where rounding through float first would give the other neighbour. */
    assert_int_equal(fasi_f64_to_f16(1.0 + 0x1p-11 + 0x1p-40), 0x3c01);
    assert_int_equal(fasi_f64_to_f16(1.0 + 0x1p-11 - 0x1p-40), 0x3c00);
    assert_int_equal(fasi_f64_to_f16(1.0 + 0x1p-11), 0x3c00);
    assert_int_equal(fasi_f64_to_f16(-(1.0 + 3 * 0x1p-11 - 0x1p-45)), 0xbc01);
    assert_int_equal(fasi_f64_to_f16(0x1p-25 + 0x1p-70), 0x0001);
    assert_int_equal(fasi_f64_to_f16(0x1p-25), 0x0000);
    assert_int_equal(fasi_f64_to_f16(65520.0 - 0x1p-30), 0x7bff);
    assert_int_equal(fasi_f64_to_f16(65520.0), 0x7c00);
    assert_int_equal(fasi_f64_to_f16(1e300), 0x7c00);
    assert_int_equal(fasi_f64_to_f16(-1e-300), 0x8000);
    assert_int_equal(fasi_f64_to_f16(-INFINITY), 0xfc00);
    uint16_t qn = fasi_f64_to_f16(-NAN);
    assert_int_equal(qn & 0xfe00u, 0xfe00u); /* NaN, quiet, sign kept */

    mismatches mm = {"double->half", 0};
    for (unsigned i = 0; i < HALF_FINITE; i++) {
        double next = i + 1 < HALF_FINITE ? half_table[i + 1] : 65536.0;
        double mid = (half_table[i] + next) / 2;
        /* Offsets far below a float ulp of mid: rounding via float would land on the tie. */
        double offs[] = {0.0, mid * 0x1p-30, mid * 0x1p-45, mid * 0x1p-52, ldexp(1.0, -1074)};
        for (size_t j = 0; j < sizeof offs / sizeof offs[0]; j++) {
            double xs[] = {mid + offs[j], mid - offs[j], -(mid + offs[j]), -(mid - offs[j])};
            for (int t = 0; t < 4; t++)
                note16(&mm, d2u(xs[t]), fasi_f64_to_f16(xs[t]), ref_f64_to_half(xs[t]));
        }
    }
    fast_rng rng;
    fast_rng_seed(&rng, fast_test_seed("f64_to_half_random", 0xd0bu));
    for (long i = 0; i < (1L << 20); i++) {
        uint64_t r = fast_rng_u64(&rng);
        double any;
        memcpy(&any, &r, sizeof any);
        double near = ldexp((double)(r >> 11), (int)(r % 48u) - 80) * ((r & 1024u) ? -1 : 1);
        note16(&mm, d2u(near), fasi_f64_to_f16(near), ref_f64_to_half(near));
        if (!isnan(any)) note16(&mm, r, fasi_f64_to_f16(any), ref_f64_to_half(any));
    }
    assert_int_equal(mm.count, 0);
}

static void test_f64_to_bf16(void **state)
{
    (void)state;
    assert_int_equal(fasi_f64_to_bf16(1.0 + 0x1p-8 + 0x1p-40), 0x3f81);
    assert_int_equal(fasi_f64_to_bf16(1.0 + 0x1p-8 - 0x1p-40), 0x3f80);
    assert_int_equal(fasi_f64_to_bf16(1.0 + 0x1p-8), 0x3f80);
    assert_int_equal(fasi_f64_to_bf16(1.0 + 3 * 0x1p-8), 0x3f82);
    assert_int_equal(fasi_f64_to_bf16(ldexp(1.0, -134) + ldexp(1.0, -160)), 0x0001);
    assert_int_equal(fasi_f64_to_bf16(ldexp(1.0, -134)), 0x0000);
    assert_int_equal(fasi_f64_to_bf16(ldexp(255.5, 120)), 0x7f80);
    assert_int_equal(fasi_f64_to_bf16(ldexp(255.5, 120) - ldexp(1.0, 80)), 0x7f7f);
    assert_int_equal(fasi_f64_to_bf16(-1e300), 0xff80);
    uint16_t qn = fasi_f64_to_bf16(NAN);
    assert_int_equal(qn & 0xffc0u, 0x7fc0u);

    mismatches mm = {"double->bf16", 0};
    for (unsigned i = 0; i < BF16_FINITE; i++) {
        double next = i + 1 < BF16_FINITE ? bf16_table[i + 1] : ldexp(1.0, 128);
        double mid = (bf16_table[i] + next) / 2;
        double offs[] = {0.0, mid * 0x1p-30, mid * 0x1p-45, mid * 0x1p-52, ldexp(1.0, -1074)};
        for (size_t j = 0; j < sizeof offs / sizeof offs[0]; j++) {
            double xs[] = {mid + offs[j], mid - offs[j], -(mid + offs[j]), -(mid - offs[j])};
            for (int t = 0; t < 4; t++)
                note16(&mm, d2u(xs[t]), fasi_f64_to_bf16(xs[t]), ref_f64_to_bf16(xs[t]));
        }
    }
    fast_rng rng;
    fast_rng_seed(&rng, fast_test_seed("f64_to_bf16_random", 0xbf16du));
    for (long i = 0; i < (1L << 20); i++) {
        uint64_t r = fast_rng_u64(&rng);
        double any;
        memcpy(&any, &r, sizeof any);
        double near = ldexp((double)(r >> 11), (int)(r % 300u) - 240) * ((r & 1024u) ? -1 : 1);
        note16(&mm, d2u(near), fasi_f64_to_bf16(near), ref_f64_to_bf16(near));
        if (!isnan(any)) note16(&mm, r, fasi_f64_to_bf16(any), ref_f64_to_bf16(any));
    }
    assert_int_equal(mm.count, 0);
}

/* ---- bf16 */

static void test_bf16_all(void **state)
{
    (void)state;
    mismatches to_f = {"bf16->float", 0}, trip = {"bf16->float->bf16", 0};
    for (uint32_t b = 0; b < 65536; b++) {
        uint32_t sign = (b & 0x8000u) << 16;
        unsigned mag = b & 0x7fffu;
        bool is_nan = mag > BF16_FINITE;
        uint32_t want;
        if (mag < BF16_FINITE) {
            double v = bf16_value(mag);
            assert_true((double)(float)v == v);
            want = sign | fast_f32_bits((float)v);
        } else if (mag == BF16_FINITE) {
            want = sign | 0x7f800000u;
        } else {
            want = sign | 0x7fc00000u | ((uint32_t)(mag & 0x7fu) << 16);
        }
        float f = fasi_bf16_to_f32((uint16_t)b);
        note32(&to_f, b, fast_f32_bits(f), want);
        note16(&trip, b, fasi_f32_to_bf16(f), is_nan ? (b | 0x40u) : b);
    }
    assert_int_equal(to_f.count, 0);
    assert_int_equal(trip.count, 0);
    assert_int_equal(fast_f32_bits(fasi_bf16_to_f32(0x7f81)),
                     0x7fc10000u); /* signalling -> quiet */
    assert_int_equal(fast_f32_bits(fasi_bf16_to_f32(0x3f80)), fast_f32_bits(1.0f));
    assert_int_equal(fast_f32_bits(fasi_bf16_to_f32(0x0001)), fast_f32_bits(0x1p-133f));
}

static void test_float_to_bf16(void **state)
{
    (void)state;
    static const struct {
        uint32_t in;
        uint16_t out;
    } cases[] = {
        {0x3f808000u, 0x3f80}, /* tie, to even (down) */
        {0x3f818000u, 0x3f82}, /* tie, to even (up) */
        {0x3f808001u, 0x3f81}, {0x3f807fffu, 0x3f80}, {0x7f7f7fffu, 0x7f7f},
        {0x7f7f8000u, 0x7f80}, /* tie between the largest bf16 and 2^128: inf */
        {0xff7fffffu, 0xff80}, {0x00008000u, 0x0000}, /* subnormal tie, to even */
        {0x00018000u, 0x0002}, {0x80008001u, 0x8001}, {0x7f800000u, 0x7f80},
        {0x7f800001u, 0x7fc0}, /* signalling NaN: quieted, low payload dropped */
        {0x7f810000u, 0x7fc1}, {0xffffffffu, 0xffff},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = fasi_f32_to_bf16(fast_bits_f32(cases[i].in));
        if (got != cases[i].out)
            printf("  float 0x%08x -> bf16 0x%04x, expected 0x%04x\n", (unsigned)cases[i].in, got,
                   cases[i].out);
        assert_int_equal(got, cases[i].out);
        assert_int_equal(ref_f32_to_bf16(fast_bits_f32(cases[i].in)), cases[i].out);
    }

    mismatches mm = {"float->bf16", 0};
    for (unsigned i = 0; i < BF16_FINITE; i++) {
        double next = i + 1 < BF16_FINITE ? bf16_table[i + 1] : ldexp(1.0, 128);
        float mid = (float)((bf16_table[i] + next) / 2);
        float points[] = {(float)bf16_table[i], mid, nextafterf(mid, 0.0f),
                          nextafterf(mid, INFINITY)};
        for (size_t p = 0; p < sizeof points / sizeof points[0]; p++) {
            note16(&mm, fast_f32_bits(points[p]), fasi_f32_to_bf16(points[p]),
                   ref_f32_to_bf16(points[p]));
            note16(&mm, fast_f32_bits(-points[p]), fasi_f32_to_bf16(-points[p]),
                   ref_f32_to_bf16(-points[p]));
        }
    }
    fast_rng rng;
    fast_rng_seed(&rng, fast_test_seed("float_to_bf16_random", 0xbf16u));
    for (long i = 0; i < (1L << 22); i++) {
        float x = fast_bits_f32((uint32_t)fast_rng_u64(&rng));
        note16(&mm, fast_f32_bits(x), fasi_f32_to_bf16(x), ref_f32_to_bf16(x));
    }
    assert_int_equal(mm.count, 0);
}

/* ---- SIMD levels against the portable table */

#define CHUNK 65536u

static void compare_u16(const char *what, const uint16_t *got, const uint16_t *want,
                        const float *in, size_t n, long *bad)
{
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i]) {
            if (*bad < 8)
                printf("  %s: float 0x%08x -> 0x%04x, portable 0x%04x\n", what,
                       (unsigned)fast_f32_bits(in[i]), got[i], want[i]);
            (*bad)++;
        }
}

static void compare_f32(const char *what, const float *got, const float *want, const uint16_t *in,
                        size_t n, long *bad)
{
    for (size_t i = 0; i < n; i++)
        if (fast_f32_bits(got[i]) != fast_f32_bits(want[i])) {
            if (*bad < 8)
                printf("  %s: 0x%04x -> 0x%08x, portable 0x%08x\n", what, in[i],
                       (unsigned)fast_f32_bits(got[i]), (unsigned)fast_f32_bits(want[i]));
            (*bad)++;
        }
}

/* Converts `in` with both tables and compares; float inputs. */
static void cross_f32(const fasi_kernels *k, const fasi_kernels *p, const float *in, size_t n,
                      uint16_t *o1, uint16_t *o2, long *bad_h, long *bad_b)
{
    k->f32_to_f16(in, n, o1, n, 1, n);
    p->f32_to_f16(in, n, o2, n, 1, n);
    compare_u16("f32_to_f16", o1, o2, in, n, bad_h);
    k->f32_to_bf16(in, n, o1, n, 1, n);
    p->f32_to_bf16(in, n, o2, n, 1, n);
    compare_u16("f32_to_bf16", o1, o2, in, n, bad_b);
}

static void check_level_identical(fasi_isa isa)
{
    const fasi_kernels *k = fasi_kernels_for(isa);
    const fasi_kernels *p = fasi_kernels_for(FASI_ISA_PORTABLE);
    assert_non_null(p);
    assert_non_null(k);
    /* The level must really provide its own code, or this test would compare portable with
     * itself. */
    assert_true(k->f16_to_f32 != p->f16_to_f32);
    assert_true(k->f32_to_f16 != p->f32_to_f16);
    assert_true(k->bf16_to_f32 != p->bf16_to_f32);
    assert_true(k->f32_to_bf16 != p->f32_to_bf16);

    uint16_t *h = malloc(CHUNK * sizeof *h);
    float *f1 = malloc(CHUNK * sizeof *f1), *f2 = malloc(CHUNK * sizeof *f2);
    uint16_t *o1 = malloc(CHUNK * sizeof *o1), *o2 = malloc(CHUNK * sizeof *o2);
    assert_true(h && f1 && f2 && o1 && o2);

    /* All 2^16 halves and bf16 patterns. */
    long bad = 0;
    for (uint32_t i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    k->f16_to_f32(h, 65536, f1, 65536, 1, 65536);
    p->f16_to_f32(h, 65536, f2, 65536, 1, 65536);
    compare_f32("f16_to_f32", f1, f2, h, 65536, &bad);
    k->bf16_to_f32(h, 65536, f1, 65536, 1, 65536);
    p->bf16_to_f32(h, 65536, f2, 65536, 1, 65536);
    compare_f32("bf16_to_f32", f1, f2, h, 65536, &bad);
    assert_int_equal(bad, 0);

    /* Floats: a stride-255 sweep over all 2^32 patterns (odd stride: every low-bit residue
     * occurs), then random patterns. */
    long bad_h = 0, bad_b = 0, total = 0;
    uint64_t u = 0;
    while (u < (1ull << 32)) {
        size_t n = 0;
        for (; n < CHUNK && u < (1ull << 32); n++, u += 255) f1[n] = fast_bits_f32((uint32_t)u);
        cross_f32(k, p, f1, n, o1, o2, &bad_h, &bad_b);
        total += (long)n;
    }
    fast_rng rng;
    fast_rng_seed(&rng, fast_test_seed("simd_identity_random", 0x51d0u + (uint64_t)isa));
    for (int c = 0; c < 16; c++) {
        for (size_t i = 0; i < CHUNK; i++) f1[i] = fast_bits_f32((uint32_t)fast_rng_u64(&rng));
        cross_f32(k, p, f1, CHUNK, o1, o2, &bad_h, &bad_b);
        total += CHUNK;
    }
    printf("  %s: %ld float patterns compared\n", k->name, total);
    assert_true(total >= (1L << 24));
    assert_int_equal(bad_h, 0);
    assert_int_equal(bad_b, 0);

    /* Short and unaligned arrays: every length 0..40 at element offsets 0..7; elements outside
     * [off, off+n) must stay untouched. */
    enum { MAXN = 40, GUARD = 8, SPAN = MAXN + 2 * GUARD };
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n <= MAXN; n++) {
            float in_f[SPAN], out_f[SPAN], want_f[SPAN];
            uint16_t in_h[SPAN], out_h[SPAN], want_h[SPAN];
            for (size_t i = 0; i < SPAN; i++) {
                uint64_t r = fast_rng_u64(&rng);
                in_f[i] = fast_bits_f32((uint32_t)r);
                in_h[i] = (uint16_t)(r >> 32);
            }
            for (int op = 0; op < 4; op++) {
                memset(out_f, 0xa5, sizeof out_f);
                memset(want_f, 0xa5, sizeof want_f);
                memset(out_h, 0xa5, sizeof out_h);
                memset(want_h, 0xa5, sizeof want_h);
                switch (op) {
                case 0:
                    k->f16_to_f32(in_h + off, n, out_f + off, n, 1, n);
                    p->f16_to_f32(in_h + off, n, want_f + off, n, 1, n);
                    break;
                case 1:
                    k->bf16_to_f32(in_h + off, n, out_f + off, n, 1, n);
                    p->bf16_to_f32(in_h + off, n, want_f + off, n, 1, n);
                    break;
                case 2:
                    k->f32_to_f16(in_f + off, n, out_h + off, n, 1, n);
                    p->f32_to_f16(in_f + off, n, want_h + off, n, 1, n);
                    break;
                default:
                    k->f32_to_bf16(in_f + off, n, out_h + off, n, 1, n);
                    p->f32_to_bf16(in_f + off, n, want_h + off, n, 1, n);
                    break;
                }
                if (memcmp(out_f, want_f, sizeof out_f) != 0 ||
                    memcmp(out_h, want_h, sizeof out_h) != 0) {
                    printf("  %s: op %d differs at offset %zu, n %zu\n", k->name, op, off, n);
                    fail();
                }
            }
        }

    free(h);
    free(f1);
    free(f2);
    free(o1);
    free(o2);
}

static void test_avx2_identical(void **state)
{
    (void)state;
    (void)fast_level_or_skip(FASI_ISA_AVX2);
    check_level_identical(FASI_ISA_AVX2);
}

static void test_avx512_identical(void **state)
{
    (void)state;
    (void)fast_level_or_skip(FASI_ISA_AVX512);
    check_level_identical(FASI_ISA_AVX512);
}

static void test_neon_identical(void **state)
{
    (void)state;
    (void)fast_level_or_skip(FASI_ISA_NEON);
    check_level_identical(FASI_ISA_NEON);
}

/* ---- SIMD levels under every floating-point environment
 *
 * The portable conversions are integer code and ignore the floating-point environment; the
 * hardware conversions read it (x86: MXCSR, though vcvtps2ph takes its rounding from the
 * immediate; aarch64: FPCR, see fp16_neon.c). Each SIMD level must still equal the portable one
 * under every rounding mode of <fenv.h>, and on x86-64 with MXCSR.DAZ and FTZ set, on aarch64
 * with FPCR.FZ, DN, AHP and FZ16 set (alone and together). */

#if defined(__aarch64__)
static uint64_t read_fpcr(void)
{
    uint64_t v;
    __asm__ volatile("mrs %0, fpcr" : "=r"(v));
    return v;
}

static void write_fpcr(uint64_t v) { __asm__ volatile("msr fpcr, %0" : : "r"(v)); }

#define FPCR_FZ16 (1u << 19)
#define FPCR_FZ (1u << 24)
#define FPCR_DN (1u << 25)
#define FPCR_AHP (1u << 26)
#elif defined(__x86_64__)
#include <xmmintrin.h>
#endif

/* Floats at every rounding decision of float -> half: each half's value, one below and above
 * it, the midpoints to its neighbour and one either side, then NaNs with every payload bit. */
static size_t edge_floats(float *f)
{
    size_t n = 0;
    for (uint32_t h = 0; h < 0x7c00u; h++) {
        const uint32_t b = fast_f32_bits(fasi_f16_to_f32((uint16_t)h));
        /* for a normal half, b + 0x1000 is the midpoint to the next half */
        const uint32_t around[6] = {b, b + 1, b - 1, b + 0x1000u, b + 0xfffu, b + 0x1001u};
        for (int i = 0; i < 6; i++) {
            f[n++] = fast_bits_f32(around[i]);
            f[n++] = fast_bits_f32(around[i] | 0x80000000u);
        }
    }
    for (uint32_t bit = 0; bit < 23; bit++) {
        f[n++] = fast_bits_f32(0x7f800000u | (1u << bit));
        f[n++] = fast_bits_f32(0xff800000u | (1u << bit) | 0x00400000u);
    }
    f[n++] = fast_bits_f32(0x7f800000u);
    f[n++] = fast_bits_f32(0x00000001u); /* the smallest denormal float */
    f[n++] = fast_bits_f32(0x807fffffu); /* the largest negative denormal */
    return n;
}

/* All halves and bf16 patterns widened and the edge floats narrowed, level k against p. */
static long compare_in_env(const fasi_kernels *k, const fasi_kernels *p, const uint16_t *h,
                           const float *f, size_t nf, float *w1, float *w2, uint16_t *n1,
                           uint16_t *n2)
{
    long bad = 0;
    k->f16_to_f32(h, 65536, w1, 65536, 1, 65536);
    p->f16_to_f32(h, 65536, w2, 65536, 1, 65536);
    compare_f32("f16_to_f32", w1, w2, h, 65536, &bad);
    k->bf16_to_f32(h, 65536, w1, 65536, 1, 65536);
    p->bf16_to_f32(h, 65536, w2, 65536, 1, 65536);
    compare_f32("bf16_to_f32", w1, w2, h, 65536, &bad);
    k->f32_to_f16(f, nf, n1, nf, 1, nf);
    p->f32_to_f16(f, nf, n2, nf, 1, nf);
    compare_u16("f32_to_f16", n1, n2, f, nf, &bad);
    k->f32_to_bf16(f, nf, n1, nf, 1, nf);
    p->f32_to_bf16(f, nf, n2, nf, 1, nf);
    compare_u16("f32_to_bf16", n1, n2, f, nf, &bad);
    /* a 16-wide rectangle: the NZ slab path of the 2-D entries */
    k->f32_to_f16(f, 17, n1, 16, 64, 16);
    p->f32_to_f16(f, 17, n2, 16, 64, 16);
    compare_u16("f32_to_f16 16-wide", n1, n2, f, 64 * 16, &bad);
    return bad;
}

static void check_level_fp_env(fasi_isa isa)
{
    const fasi_kernels *k = fast_level_or_skip(isa);
    const fasi_kernels *p = fasi_kernels_for(FASI_ISA_PORTABLE);
    enum { MAXF = 0x7c00 * 12 + 64 };
    uint16_t *h = malloc(65536 * sizeof *h), *n1 = malloc(MAXF * sizeof *n1),
             *n2 = malloc(MAXF * sizeof *n2);
    float *f = malloc(MAXF * sizeof *f), *w1 = malloc(65536 * sizeof *w1),
          *w2 = malloc(65536 * sizeof *w2);
    assert_true(h && n1 && n2 && f && w1 && w2);
    for (uint32_t i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    const size_t nf = edge_floats(f);
    assert_true(nf <= MAXF);

    static const struct {
        int mode;
        const char *name;
    } modes[] = {{FE_TONEAREST, "to nearest"},
                 {FE_UPWARD, "upward"},
                 {FE_DOWNWARD, "downward"},
                 {FE_TOWARDZERO, "toward zero"}};
#if defined(__aarch64__)
    static const struct {
        uint64_t bits;
        const char *name;
    } extra[] = {{0, "default"},
                 {FPCR_FZ, "FPCR.FZ"},
                 {FPCR_DN, "FPCR.DN"},
                 {FPCR_AHP, "FPCR.AHP"},
                 {FPCR_FZ16, "FPCR.FZ16"},
                 {FPCR_FZ | FPCR_DN | FPCR_AHP | FPCR_FZ16, "FPCR.FZ+DN+AHP+FZ16"}};
    const uint64_t saved = read_fpcr();
#elif defined(__x86_64__)
    static const struct {
        unsigned bits;
        const char *name;
    } extra[] = {{0, "default"}, {0x8040u, "MXCSR.DAZ+FTZ"}};
    const unsigned saved = _mm_getcsr();
#else
    static const struct {
        unsigned bits;
        const char *name;
    } extra[] = {{0, "default"}};
#endif
    long bad = 0;
    int envs = 0;
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        for (size_t e = 0; e < sizeof extra / sizeof extra[0]; e++) {
            assert_int_equal(fesetround(modes[m].mode), 0);
#if defined(__aarch64__)
            write_fpcr(read_fpcr() | extra[e].bits);
#elif defined(__x86_64__)
            _mm_setcsr(_mm_getcsr() | extra[e].bits);
#endif
            long b = compare_in_env(k, p, h, f, nf, w1, w2, n1, n2);
#if defined(__aarch64__)
            write_fpcr(saved);
#elif defined(__x86_64__)
            _mm_setcsr(saved);
#endif
            assert_int_equal(fesetround(FE_TONEAREST), 0);
            if (b)
                printf("  %s: %ld differences rounding %s, %s\n", k->name, b, modes[m].name,
                       extra[e].name);
            bad += b;
            envs++;
        }
    }
    printf("  %s: 2 x 65536 halves and %zu edge floats in %d environments\n", k->name, nf, envs);
    assert_int_equal(bad, 0);
    free(h);
    free(n1);
    free(n2);
    free(f);
    free(w1);
    free(w2);
}

static void test_avx2_fp_env(void **state)
{
    (void)state;
    check_level_fp_env(FASI_ISA_AVX2);
}

static void test_avx512_fp_env(void **state)
{
    (void)state;
    check_level_fp_env(FASI_ISA_AVX512);
}

static void test_neon_fp_env(void **state)
{
    (void)state;
    check_level_fp_env(FASI_ISA_NEON);
}

/* ---- strided 2-D entries: random rectangles against the scalar definitions */

/* Random rectangles in all four directions: rows 1..40, cols 1..70 (a quarter of them exactly
 * 16, the NZ fractal row of the block loaders), pitches cols or cols + 1..19, element offsets
 * 0..15 on both sides. Each source buffer ends exactly at the rectangle's last element, so a
 * read past it is caught by ASan or valgrind; each destination buffer is canary-filled with
 * GUARD elements after the rectangle. Inside the rectangle every element must be bit-identical
 * to the scalar conversion of its source element, and every other destination byte must still
 * hold its canary. */
static void check_level_strided(const fasi_kernels *k, uint64_t seed)
{
    enum { CASES = 600, GUARD = 24 };
    fast_rng rng;
    fast_rng_seed(&rng, seed);
    long checked = 0;
    for (int it = 0; it < CASES; it++) {
        const size_t rows = (size_t)fast_rng_int(&rng, 1, 40);
        const size_t cols = fast_rng_int(&rng, 0, 3) == 0 ? 16 : (size_t)fast_rng_int(&rng, 1, 70);
        const size_t lds =
            cols + (fast_rng_int(&rng, 0, 2) ? (size_t)fast_rng_int(&rng, 1, 19) : 0);
        const size_t ldd =
            cols + (fast_rng_int(&rng, 0, 2) ? (size_t)fast_rng_int(&rng, 1, 19) : 0);
        const size_t soff = (size_t)fast_rng_int(&rng, 0, 15),
                     doff = (size_t)fast_rng_int(&rng, 0, 15);
        const size_t sn = soff + (rows - 1) * lds + cols,
                     dn = doff + (rows - 1) * ldd + cols + GUARD;
        uint16_t *sh = malloc(sn * sizeof *sh), *dh = malloc(dn * sizeof *dh);
        uint16_t *canary_h = malloc(dn * sizeof *canary_h);
        float *sf = malloc(sn * sizeof *sf), *df = malloc(dn * sizeof *df);
        float *canary_f = malloc(dn * sizeof *canary_f);
        assert_true(sh && dh && canary_h && sf && df && canary_f);
        for (size_t i = 0; i < sn; i++) {
            uint64_t r = fast_rng_u64(&rng);
            sf[i] = fast_bits_f32((uint32_t)r);
            sh[i] = (uint16_t)(r >> 32);
        }
        fast_canary_fill(canary_h, dn * sizeof *canary_h);
        fast_canary_fill(canary_f, dn * sizeof *canary_f);
        for (int op = 0; op < 4; op++) {
            static const char *const names[] = {"f16_to_f32", "bf16_to_f32", "f32_to_f16",
                                                "f32_to_bf16"};
            memcpy(dh, canary_h, dn * sizeof *dh);
            memcpy(df, canary_f, dn * sizeof *df);
            switch (op) {
            case 0: k->f16_to_f32(sh + soff, lds, df + doff, ldd, rows, cols); break;
            case 1: k->bf16_to_f32(sh + soff, lds, df + doff, ldd, rows, cols); break;
            case 2: k->f32_to_f16(sf + soff, lds, dh + doff, ldd, rows, cols); break;
            default: k->f32_to_bf16(sf + soff, lds, dh + doff, ldd, rows, cols); break;
            }
            long bad = 0;
            for (size_t i = 0; i < dn; i++) {
                const size_t r = (i - doff) / ldd, c = (i - doff) % ldd;
                const bool inside = i >= doff && r < rows && c < cols;
                const size_t si = soff + r * lds + c;
                uint32_t got, want;
                if (op < 2) {
                    got = fast_f32_bits(df[i]);
                    want = !inside   ? fast_f32_bits(canary_f[i])
                           : op == 0 ? fast_f32_bits(fasi_f16_to_f32(sh[si]))
                                     : fast_f32_bits(fasi_bf16_to_f32(sh[si]));
                } else {
                    got = dh[i];
                    want = !inside   ? canary_h[i]
                           : op == 2 ? fasi_f32_to_f16(sf[si])
                                     : fasi_f32_to_bf16(sf[si]);
                }
                if (got != want) {
                    if (bad < 8)
                        printf("  %s %s: rows %zu cols %zu lds %zu ldd %zu offsets %zu/%zu: "
                               "dst element %zu (%s) = 0x%08x, expected 0x%08x\n",
                               k->name, names[op], rows, cols, lds, ldd, soff, doff, i,
                               inside ? "inside" : "outside", (unsigned)got, (unsigned)want);
                    bad++;
                }
            }
            if (bad) fail();
            checked += (long)(rows * cols);
        }
        free(sh);
        free(dh);
        free(canary_h);
        free(sf);
        free(df);
        free(canary_f);
    }
    printf("  %s: %d rectangles x 4 directions, %ld elements compared\n", k->name, CASES, checked);
}

static void test_portable_strided(void **state)
{
    (void)state;
    const fasi_kernels *p = fasi_kernels_for(FASI_ISA_PORTABLE);
    assert_non_null(p);
    check_level_strided(p, fast_test_seed("strided_portable", 0x2d0u));
}

static void test_avx2_strided(void **state)
{
    (void)state;
    check_level_strided(fast_level_or_skip(FASI_ISA_AVX2), fast_test_seed("strided_avx2", 0x2d1u));
}

static void test_avx512_strided(void **state)
{
    (void)state;
    check_level_strided(fast_level_or_skip(FASI_ISA_AVX512),
                        fast_test_seed("strided_avx512", 0x2d2u));
}

static void test_neon_strided(void **state)
{
    (void)state;
    check_level_strided(fast_level_or_skip(FASI_ISA_NEON), fast_test_seed("strided_neon", 0x2d3u));
}

/* ---- public wrappers */

static void test_public_wrappers(void **state)
{
    (void)state;
    long bad = 0;
    for (uint32_t b = 0; b < 65536; b++) {
        bad += fast_f32_bits(fas_half_to_float((uint16_t)b)) !=
               fast_f32_bits(fasi_f16_to_f32((uint16_t)b));
        bad += fast_f32_bits(fas_bf16_to_float((uint16_t)b)) !=
               fast_f32_bits(fasi_bf16_to_f32((uint16_t)b));
    }
    fast_rng rng;
    fast_rng_seed(&rng, fast_test_seed("public_wrappers", 0x9ab1u));
    for (long i = 0; i < (1L << 20); i++) {
        float x = fast_bits_f32((uint32_t)fast_rng_u64(&rng));
        bad += fas_float_to_half(x) != fasi_f32_to_f16(x);
        bad += fas_float_to_bf16(x) != fasi_f32_to_bf16(x);
    }
    assert_int_equal(bad, 0);
    assert_int_equal(fas_float_to_half(1.0f), 0x3c00);
    assert_int_equal(fas_float_to_bf16(-2.0f), 0xc000);
    assert_true(fas_half_to_float(0x3555) == 0x555p-12f);
    assert_true(fas_bf16_to_float(0x4049) == 3.140625f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_half_to_float_all),
        cmocka_unit_test(test_half_round_trip_all),
        cmocka_unit_test(test_float_to_half_hand_values),
        cmocka_unit_test(test_float_to_half_dense),
        cmocka_unit_test(test_float_to_half_random),
        cmocka_unit_test(test_f64_to_half),
        cmocka_unit_test(test_f64_to_bf16),
        cmocka_unit_test(test_bf16_all),
        cmocka_unit_test(test_float_to_bf16),
        cmocka_unit_test(test_avx2_identical),
        cmocka_unit_test(test_avx512_identical),
        cmocka_unit_test(test_neon_identical),
        cmocka_unit_test(test_avx2_fp_env),
        cmocka_unit_test(test_avx512_fp_env),
        cmocka_unit_test(test_neon_fp_env),
        cmocka_unit_test(test_portable_strided),
        cmocka_unit_test(test_avx2_strided),
        cmocka_unit_test(test_avx512_strided),
        cmocka_unit_test(test_neon_strided),
        cmocka_unit_test(test_public_wrappers),
    };
    return cmocka_run_group_tests(tests, setup_tables, NULL);
}
