/* The NPU precision mode (fas_options.precision = FAS_PRECISION_NPU, docs/precision.md)
 * against an independent test-side model.
 *
 * What it proves
 * - (a) The kernel's row-max block reduction: which blocks never take part, for T = 1 .. 32,
 *   against a table worked out by hand (NPU_LEFT_OUT, reusable for the library's own reduction);
 *   the row sums' addition orders on hand-made rows; the model's fp16 rounding.
 * - The model is sound on its own: P rows sum to 1 within the fp16 roundings, context, P and
 *   gradients are close to fp64 (torch_npu's test rule where it applies), the effect of left-out
 *   blocks and the overflow they cause, in a controlled setting.
 * - (b) The library's NPU mode computes what the model computes: on 48 random cases (S = 16 ..
 *   512, powers of two and not; D = 16 .. 128; every mask form; dropout from the library's own
 *   mask; ND and FRACTAL_NZ) its fp16 softmax_output, attention_score, query_dx, key_dw and
 *   value_dw are bit for bit the model's except for a small share, within bounds that a single
 *   modelling error breaks (test_bounds_can_fail shows ten of them doing so).
 * - (c) The overflow the mode exists to show: at S = 384 a logit 16 above the rest in a left-out
 *   block gives +inf in softmax_output and a non-finite context row, as in the model; FP32 mode
 *   stays finite, and so does NPU mode when the block takes part.
 * - (d) FP32 mode is unchanged: precision FAS_PRECISION_FP32, and options of the size before the
 *   field existed, give the bytes of options NULL (of default options with the same seed when
 *   there is dropout).
 * - (e) Outside the NPU domain every entry point answers FAS_ERR_UNSUPPORTED with a sentence and
 *   writes no output byte; (f) NPU mode does not depend on thread count or implementation.
 * - (g) is tests/stress_npu_gv_f1.c: GV-F1 at full size within torch_npu's tolerance.
 *
 * Independence. tests/support/npu_model.c was written from docs/precision.md alone and shares no
 * code with src/: it includes no library header, rounds to fp16 with its own code (checked
 * against the library's public converter, which is an independent implementation), and runs
 * plain scalar loops over one head in the formula order of the specification. The tests feed it
 * logical (ND) values that the public API's fas_format_cast extracts. Its readings of the
 * specification's open points are listed in npu_model.h.
 *
 * The agreement metric. Per output, over all elements: the share that is bit-identical (equal NaN
 * or equal infinity counts as identical), the largest distance on the fp16 number line (ulps),
 * and the largest difference in fp16 spacings at the row's largest |value| (a row: one head's
 * row of the output). Any NaN or infinity on one side only is a failure. Remaining differences
 * come only from the order of fp32 summation inside the matmuls and from exp (up to 1 ulp in
 * fp32); each moves an fp32 value far below an fp16 step, so an fp16 output flips by one step in
 * rare cases, and downstream the effect stays within a bounded number of fp16 spacings at the
 * row's largest value; the argument and the measurements behind the bounds are at BOUNDS.
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "attn_case.h"
#include "npu_model.h"
#include "pipeline/npu.h"

/* ============================================================================================
 * (a) The row-max block reduction: the blocks that NEVER take part, for T = S/16 = 1 .. 32,
 * worked out by hand from the rule of docs/precision.md §3 step 4 and §4 (halve the list of blocks,
 * the odd last entry of each level dropped; then block T-1 folded in when T is odd). The one entry
 * left after the halvings covers 2^floor(log2 T) blocks, so T - 2^floor(log2 T) blocks are left
 * out, less one when T > 1 is odd (block T-1 comes back). Terminated by -1. Reusable: the library's
 * own reduction can be checked against the same table.
 * ========================================================================================== */
enum { NPU_TABLE_MAX_T = 32 };

/* clang-format off */
static const int NPU_LEFT_OUT[NPU_TABLE_MAX_T + 1][16] = {
    [1] = {-1},
    [2] = {-1},
    [3] = {-1},                                         /* [0,1] (2 dropped), 2 folded back */
    [4] = {-1},
    [5] = {-1},                                         /* {0,2},{1,3}; 4 folded back */
    [6] = {2, 5, -1},                                   /* {0,3},{1,4},{2,5} -> {2,5} dropped */
    [7] = {2, 5, -1},                                   /* as 6; block 6 folded back */
    [8] = {-1},
    [9] = {-1},                                         /* as 8; block 8 folded back */
    [10] = {4, 9, -1},                                  /* {t,t+5} x5 -> {4,9} dropped */
    [11] = {4, 9, -1},                                  /* as 10; block 10 folded back */
    [12] = {2, 5, 8, 11, -1},                           /* 12 -> 6 -> 3: {2,8,5,11} dropped */
    [13] = {2, 5, 8, 11, -1},                           /* as 12; block 12 folded back */
    [14] = {2, 5, 6, 9, 12, 13, -1},                    /* 14 -> 7 ({6,13} dropped) -> 3 */
    [15] = {2, 5, 6, 9, 12, 13, -1},                    /* as 14; block 14 folded back */
    [16] = {-1},
    [17] = {-1},                                        /* as 16; block 16 folded back */
    [18] = {8, 17, -1},                                 /* 18 -> 9 ({8,17} dropped) -> 4 */
    [19] = {8, 17, -1},                                 /* as 18; block 18 folded back */
    [20] = {4, 9, 14, 19, -1},                          /* 20 -> 10 -> 5 ({4,14,9,19}) -> 2 */
    [21] = {4, 9, 14, 19, -1},                          /* as 20; block 20 folded back */
    [22] = {4, 9, 10, 15, 20, 21, -1},                  /* 22 -> 11 ({10,21}) -> 5 ({4,15,9,20}) */
    [23] = {4, 9, 10, 15, 20, 21, -1},                  /* as 22; block 22 folded back */
    [24] = {2, 5, 8, 11, 14, 17, 20, 23, -1},           /* every t = 2 mod 3 */
    [25] = {2, 5, 8, 11, 14, 17, 20, 23, -1},           /* as 24; block 24 folded back */
    [26] = {2, 5, 8, 11, 12, 15, 18, 21, 24, 25, -1},   /* 26 -> 13 ({12,25}) -> 6 -> 3 */
    [27] = {2, 5, 8, 11, 12, 15, 18, 21, 24, 25, -1},   /* as 26; block 26 folded back */
    [28] = {2, 5, 6, 9, 12, 13, 16, 19, 20, 23, 26, 27, -1},         /* 28 -> 14 -> 7 -> 3 */
    [29] = {2, 5, 6, 9, 12, 13, 16, 19, 20, 23, 26, 27, -1},         /* as 28; 28 folded back */
    [30] = {2, 5, 6, 9, 12, 13, 14, 17, 20, 21, 24, 27, 28, 29, -1}, /* 30 -> 15 -> 7 -> 3 */
    [31] = {2, 5, 6, 9, 12, 13, 14, 17, 20, 21, 24, 27, 28, 29, -1}, /* as 30; 30 folded back */
    [32] = {-1},
};
/* clang-format on */

/* The table as a bit mask of the blocks that DO take part. */
static uint64_t table_used_mask(int t_blocks)
{
    uint64_t m = t_blocks == 64 ? ~0ull : (1ull << t_blocks) - 1;
    for (int i = 0; NPU_LEFT_OUT[t_blocks][i] >= 0; i++) m &= ~(1ull << NPU_LEFT_OUT[t_blocks][i]);
    return m;
}

static void test_rowmax_table(void **state)
{
    (void)state;
    int failures = 0;
    /* the hand-written table itself: sorted, in range, and of the size the rule implies */
    for (int t = 1; t <= NPU_TABLE_MAX_T; t++) {
        int n = 0, pow2 = 1;
        while (pow2 * 2 <= t) pow2 *= 2;
        for (; NPU_LEFT_OUT[t][n] >= 0; n++) {
            assert_true(NPU_LEFT_OUT[t][n] < t);
            if (n > 0) assert_true(NPU_LEFT_OUT[t][n] > NPU_LEFT_OUT[t][n - 1]);
        }
        /* T - 2^floor(log2 T) dropped, one of them (block T-1) back when T > 1 is odd */
        assert_int_equal(n, t - pow2 - (t > 1 && t % 2 == 1));
    }
    assert_int_equal(table_used_mask(24), 0x6db6dbull); /* binary 011 repeated: t = 2 mod 3 out */
    for (int t = 1; t <= NPU_TABLE_MAX_T; t++) {
        uint64_t want = table_used_mask(t), got = npu_rowmax_mask(t);
        bool used[NPU_TABLE_MAX_T];
        npu_rowmax_participants(t, used);
        for (int b = 0; b < t; b++)
            if (used[b] != (((got >> b) & 1) != 0)) failures++;
        if (got != want) {
            printf("  T = %d: model uses 0x%llx, table says 0x%llx\n", t, (unsigned long long)got,
                   (unsigned long long)want);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* The library's own reduction (fasi_npu_max_blocks, which the NPU mode's row max visits)
 * against the same hand-written table. */
static void test_rowmax_table_library(void **state)
{
    (void)state;
    for (int t = 1; t <= NPU_TABLE_MAX_T; t++) {
        uint8_t take[NPU_TABLE_MAX_T];
        fasi_npu_max_blocks(t, take);
        uint64_t got = 0;
        for (int b = 0; b < t; b++) got |= (uint64_t)(take[b] != 0) << b;
        if (got != table_used_mask(t))
            printf("  T = %d: the library visits 0x%llx, the table says 0x%llx\n", t,
                   (unsigned long long)got, (unsigned long long)table_used_mask(t));
        assert_true(got == table_used_mask(t));
    }
}

/* The value reduction (written as the kernel's loop) agrees with the participant list: on
 * random rows the row max is the max over the blocks that take part, and a large value planted
 * in any block changes the max exactly when that block takes part. T = 1 .. 40. */
static void test_rowmax_values(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("rowmax_values", 31));
    float x[40 * 16];
    bool used[40];
    for (int t = 1; t <= 40; t++) {
        npu_rowmax_participants(t, used);
        for (int rep = 0; rep < 20; rep++) {
            for (int i = 0; i < t * 16; i++) x[i] = npu_h((float)fast_rng_uniform(&r, -8, 8));
            float want = -INFINITY;
            for (int b = 0; b < t; b++)
                if (used[b])
                    for (int l = 0; l < 16; l++) want = fmaxf(want, x[b * 16 + l]);
            assert_true(npu_row_max(x, t) == want);
        }
        for (int b = 0; b < t; b++) {
            for (int i = 0; i < t * 16; i++) x[i] = 0.0f;
            x[b * 16 + (b * 7) % 16] = 100.0f;
            assert_true(npu_row_max(x, t) == (used[b] ? 100.0f : 0.0f));
        }
    }
}

/* The row sums on hand-made rows whose result depends on the order of the additions; each
 * expected value is worked out in the comment from docs/precision.md and the readings of
 * npu_model.h. In fp32, 2^24 + 1 is a tie and rounds to 2^24 (even); in fp16, 2048 + 1 is a tie
 * and rounds to 2048. */
static void test_row_sum_orders(void **state)
{
    (void)state;
    float x[12 * 16];
    const float big32 = 16777216.0f; /* 2^24 */

    /* fp32, T = 3 (odd): block 2 is first added into block 0: 1 + 2^24 -> 2^24, then + block 1:
     * 2^24 + 1 -> 2^24. (Left to right would give 1 + 1 + 2^24 = 2^24 + 2.) */
    memset(x, 0, sizeof x);
    x[0 * 16] = 1.0f;
    x[1 * 16] = 1.0f;
    x[2 * 16] = big32;
    assert_true(npu_row_sum_f32(x, 3) == big32);

    /* fp32, T = 6: 6 -> 3 blocks {b0+b3, b1+b4, b2+b5} = {1, 1, 2^24}; the length 3 is odd at
     * this second level, so block 2 goes into block 0 first (2^24), then block 1 (2^24). */
    memset(x, 0, sizeof x);
    x[0 * 16] = 1.0f;
    x[1 * 16] = 1.0f;
    x[2 * 16] = big32;
    assert_true(npu_row_sum_f32(x, 6) == big32);

    /* fp32 lanes, left to right: 1 + 1 = 2, 2 + 2^24 = 2^24 + 2 (exact). A pairwise lane tree
     * would add lane 2 into lane 0 first and give 2^24. */
    memset(x, 0, sizeof x);
    x[0] = 1.0f;
    x[1] = 1.0f;
    x[2] = big32;
    assert_true(npu_row_sum_f32(x, 1) == big32 + 2.0f);

    /* fp16, T = 3: h(1 + 2048) = 2048, h(2048 + 1) = 2048. */
    memset(x, 0, sizeof x);
    x[0 * 16] = 1.0f;
    x[1 * 16] = 1.0f;
    x[2 * 16] = 2048.0f;
    assert_true(npu_row_sum_f16(x, 3) == 2048.0f);

    /* fp16, T = 12 (the backward at S = 192): 12 -> 6 -> 3 = {1, 1, 2048}; odd: block 2 into
     * block 0 (2048), then block 1 (2048). */
    memset(x, 0, sizeof x);
    x[0 * 16] = 1.0f;
    x[1 * 16] = 1.0f;
    x[2 * 16] = 2048.0f;
    assert_true(npu_row_sum_f16(x, 12) == 2048.0f);

    /* fp16 lanes l+8, +4, +2, +1: lane 0 = 2048, lane 4 = 1, lane 8 = 1: step 8 gives
     * h(2048 + 1) = 2048, step 4 h(2048 + 1) = 2048. */
    memset(x, 0, sizeof x);
    x[0] = 2048.0f;
    x[4] = 1.0f;
    x[8] = 1.0f;
    assert_true(npu_row_sum_f16(x, 1) == 2048.0f);

    /* ... and lane 0 = 2048, lanes 1 and 9 = 1: step 8 makes lane 1 = 2, step 1 gives
     * h(2048 + 2) = 2050 (left to right would give 2048). */
    memset(x, 0, sizeof x);
    x[0] = 2048.0f;
    x[1] = 1.0f;
    x[9] = 1.0f;
    assert_true(npu_row_sum_f16(x, 1) == 2050.0f);

    /* T = 4 (no odd level): ((b0 + b2) + (b1 + b3)) per lane: b0 = 2048, b2 = 1, b1 = 1, b3 = 1:
     * h(2048 + 1) = 2048, h(1 + 1) = 2, h(2048 + 2) = 2050. */
    memset(x, 0, sizeof x);
    x[0 * 16] = 2048.0f;
    x[1 * 16] = 1.0f;
    x[2 * 16] = 1.0f;
    x[3 * 16] = 1.0f;
    assert_true(npu_row_sum_f16(x, 4) == 2050.0f);
}

/* The model's own fp16 rounding (both paths, from double and from fp32): every fp16 value
 * round-trips; every midpoint between two neighbours goes to the even one and the numbers just
 * beside it to the nearer one; overflow at 65520; and both agree with the library's public
 * converter (an independent implementation) on a million random fp32 bit patterns. */
static void test_model_fp16_rounding(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 0x10000u; h++) {
        float v = npu_half_value((uint16_t)h);
        if (isnan(v)) {
            uint16_t back = npu_h_bits(v);
            assert_true((back & 0x7c00u) == 0x7c00u && (back & 0x3ffu) != 0);
            continue;
        }
        assert_int_equal(npu_h_bits(v), h);
        uint16_t mag = (uint16_t)(h & 0x7fffu);
        if (mag >= 0x7bffu)
            continue; /* the largest finite value and inf have no finite neighbour above */
        double lo = fabs((double)v), hi = fabs((double)npu_half_value((uint16_t)(mag + 1)));
        double mid = (lo + hi) / 2; /* exact in double */
        uint16_t sign = (uint16_t)(h & 0x8000u);
        uint16_t even = (mag & 1u) ? (uint16_t)(mag + 1) : mag;
        double s = sign ? -1.0 : 1.0;
        assert_int_equal(npu_h_bits(s * mid), sign | even);
        assert_int_equal(npu_h_bits(s * nextafter(mid, 0.0)), sign | mag);
        assert_int_equal(npu_h_bits(s * nextafter(mid, 1e9)), sign | (uint16_t)(mag + 1));
        /* the fp32 fast path: the midpoint has 12 significant bits, so it is an fp32 value */
        float midf = (float)(s * mid);
        assert_int_equal(npu_h_bits_f32(v), h);
        assert_int_equal(npu_h_bits_f32(midf), sign | even);
        assert_int_equal(npu_h_bits_f32(nextafterf(midf, 0.0f)), sign | mag);
        assert_int_equal(npu_h_bits_f32(nextafterf(midf, (float)s * 1e9f)),
                         sign | (uint16_t)(mag + 1));
    }
    assert_int_equal(npu_h_bits_f32(65519.99f), 0x7bffu);
    assert_int_equal(npu_h_bits_f32(65520.0f), 0x7c00u);
    assert_int_equal(npu_h_bits_f32(-INFINITY), 0xfc00u);
    assert_int_equal(npu_h_bits_f32(0x1p-25f), 0x0000u);
    assert_int_equal(npu_h_bits_f32(-0x1p-149f), 0x8000u);
    assert_int_equal(npu_h_bits(65519.99), 0x7bffu);
    assert_int_equal(npu_h_bits(65520.0), 0x7c00u);
    assert_int_equal(npu_h_bits(-1e30), 0xfc00u);
    assert_int_equal(npu_h_bits(0x1p-25), 0x0000u); /* tie with 0: even */
    assert_int_equal(npu_h_bits(nextafter(0x1p-25, 1.0)), 0x0001u);
    assert_int_equal(npu_h_bits(-0.0), 0x8000u);
    /* the scales and keep probabilities the tests use are not near an fp16 rounding boundary,
     * so h of the double and h of its fp32 rounding agree (see the reading in npu_model.h) */
    static const double params[] = {
        0.125,     0.25,      0.3,      0.17677669529663687, 0.08838834764831845,
        1.0 / 0.9, 1.0 / 0.8, 1.0 / 0.5};
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++)
        assert_int_equal(npu_h_bits(params[i]), npu_h_bits_f32((float)params[i]));
    fast_rng r;
    fast_rng_seed(&r, 5);
    for (int i = 0; i < 1000000; i++) {
        float x = fast_bits_f32((uint32_t)fast_rng_u64(&r));
        uint16_t mine = npu_h_bits(x), fast = npu_h_bits_f32(x), lib = fas_float_to_half(x);
        if (isnan(x))
            assert_true((mine & 0x7fffu) > 0x7c00u && (fast & 0x7fffu) > 0x7c00u &&
                        (lib & 0x7fffu) > 0x7c00u);
        else if (mine != lib || fast != lib)
            fail_msg("h(%a): model 0x%04x / 0x%04x, library 0x%04x", (double)x, mine, fast, lib);
    }
}

/* ============================================================================================
 * Comparing fp16 outputs
 * ========================================================================================== */

static bool f16_is_nan(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x03ffu) != 0; }
static bool f16_is_inf(uint16_t h) { return (h & 0x7fffu) == 0x7c00u; }

/* Position on the fp16 number line: consecutive finite values differ by 1, -0 and +0 are 0. */
static int32_t f16_ordinal(uint16_t h)
{
    return (h & 0x8000u) ? -(int32_t)(h & 0x7fffu) : (int32_t)h;
}

/* The spacing of fp16 values at magnitude mag (finite): 2^(e - 10) for mag in [2^e, 2^(e+1)),
 * 2^-24 in the subnormal range. */
static double f16_spacing(double mag)
{
    if (mag < 0x1p-14) return 0x1p-24;
    int e;
    (void)frexp(mag, &e);
    return ldexp(1.0, e - 11);
}

/* Agreement of one output (library vs model), accumulated over cases. A "row" is one head's row
 * of the output (seg consecutive elements). */
typedef struct agreement {
    const char *name;
    int64_t total, identical;
    int64_t worst_ulps;       /* largest distance between finite values, in fp16 steps */
    double worst_row_ulps;    /* largest |lib - model| in fp16 spacings at the row's largest
                               * finite |model| */
    int64_t class_mismatches; /* NaN, inf or sign of inf on one side only */
} agreement;

static void agreement_add(agreement *a, const uint16_t *lib, const uint16_t *model, int64_t n,
                          int64_t seg)
{
    for (int64_t r0 = 0; r0 < n; r0 += seg) {
        double rowmax = 0;
        for (int64_t i = r0; i < r0 + seg; i++) {
            double v = fabs((double)npu_half_value(model[i]));
            if (isfinite(v) && v > rowmax) rowmax = v;
        }
        double spacing = f16_spacing(rowmax);
        for (int64_t i = r0; i < r0 + seg; i++) {
            uint16_t x = lib[i], y = model[i];
            a->total++;
            if (x == y || (f16_is_nan(x) && f16_is_nan(y))) {
                a->identical++;
                continue;
            }
            if (f16_is_nan(x) || f16_is_nan(y) || f16_is_inf(x) || f16_is_inf(y)) {
                a->class_mismatches++;
                continue;
            }
            int64_t d = llabs((int64_t)f16_ordinal(x) - f16_ordinal(y));
            if (d > a->worst_ulps) a->worst_ulps = d;
            double rel = fabs((double)npu_half_value(x) - npu_half_value(y)) / spacing;
            if (rel > a->worst_row_ulps) a->worst_row_ulps = rel;
        }
    }
}

static double agreement_share(const agreement *a)
{
    return a->total ? (double)a->identical / (double)a->total : 1.0;
}

static void agreement_print(const agreement *a, const char *who)
{
    printf("  %-8s %-15s %9.5f %% bit-identical of %lld, worst %lld ulps, worst %.3f ulps of the "
           "row's largest value, %lld inf/NaN mismatches\n",
           who, a->name, 100.0 * agreement_share(a), (long long)a->total, (long long)a->worst_ulps,
           a->worst_row_ulps, (long long)a->class_mismatches);
}

/* ============================================================================================
 * Cases: attn_case in the NPU domain (Sq = Sk = S, Dv = D, no flags, fp16), plus the mask form
 * PADDING: [B,1,S,S] with 0 on the first `valid` keys of batch b and -10000 on the rest.
 * ========================================================================================== */

enum { MASK_PADDING = MASK_FORMS };

typedef struct npu_case {
    attn_case c;
    int form; /* a MASK_* form of attn_case.h or MASK_PADDING */
} npu_case;

/* ND fp16 bit patterns of a FLOAT16 tensor (any format). */
static uint16_t *nd_bits(const fas_tensor *t)
{
    int64_t n = fast_tensor_numel(t);
    uint16_t *buf = malloc((size_t)n * sizeof *buf);
    assert_non_null(buf);
    fas_tensor dst = *t;
    dst.format = FAS_FORMAT_ND;
    dst.data = buf;
    assert_int_equal(fas_format_cast(t, &dst), FAS_OK);
    return buf;
}

static fas_format random_format(fast_rng *r)
{
    return fast_rng_int(r, 0, 1) ? FAS_FORMAT_FRACTAL_NZ : FAS_FORMAT_ND;
}

/* Allocate and fill q, k, v (uniform [-amp, amp)) and the mask in random formats. */
static void npu_case_alloc(npu_case *nc, fast_rng *r, int64_t b, int64_t n, int64_t s, int64_t d,
                           int form, double scale, double keep_prob, double amp)
{
    attn_case *c = &nc->c;
    memset(nc, 0, sizeof *nc);
    c->b = b;
    c->n = n;
    c->sq = c->sk = s;
    c->d = c->dv = d;
    c->mask_form = form == MASK_PADDING ? MASK_B1SS : form;
    c->scale = scale;
    c->keep_prob = keep_prob;
    nc->form = form;
    fas_format fmt[4] = {random_format(r), random_format(r), random_format(r), random_format(r)};
    attn_case_alloc(c, r, FAS_DTYPE_FLOAT16, fmt, -amp, amp, -4.0, 0.5);
    if (form == MASK_PADDING) {
        float *mv = malloc((size_t)(b * s * s) * sizeof *mv);
        assert_non_null(mv);
        for (int64_t bb = 0; bb < b; bb++) {
            int64_t valid = fast_rng_int(r, 1, s);
            for (int64_t i = 0; i < s * s; i++)
                mv[bb * s * s + i] = (i % s) < valid ? 0.0f : -10000.0f;
        }
        fast_from_f32(&c->mask, mv);
        free(mv);
    }
}

/* The model over every head of the case: probs ND [B,N,S,S], ctx ND [B*S, N*D] (either may be
 * NULL); keep ND [B,N,S,S] or NULL (all kept). */
static void model_forward_case(const attn_case *c, const uint8_t *keep, uint16_t *probs,
                               uint16_t *ctx, const npu_variant *var)
{
    int64_t s = c->sq, d = c->d, nh = c->n;
    uint16_t *q = nd_bits(&c->q), *k = nd_bits(&c->k), *v = nd_bits(&c->v);
    uint16_t *mask = c->mask_form == MASK_NONE ? NULL : nd_bits(&c->mask);
    int64_t md[4] = {0, 0, 0, 0};
    if (mask) attn_mask_dims(c, c->mask_form, md);
    uint16_t *mh = malloc((size_t)(s * s) * sizeof *mh), *ph = malloc((size_t)(s * s) * sizeof *ph);
    uint16_t *ch = malloc((size_t)(s * d) * sizeof *ch);
    assert_non_null(mh);
    assert_non_null(ph);
    assert_non_null(ch);
    for (int64_t b = 0; b < c->b; b++) {
        for (int64_t n = 0; n < nh; n++) {
            int64_t h = b * nh + n;
            if (mask) {
                int64_t mb = md[0] > 1 ? b : 0, mn = md[1] > 1 ? n : 0;
                for (int64_t i = 0; i < s; i++) {
                    int64_t mi = md[2] > 1 ? i : 0;
                    memcpy(mh + i * s, mask + ((mb * md[1] + mn) * md[2] + mi) * s,
                           (size_t)s * sizeof *mh);
                }
            }
            npu_head hd = {s,
                           d,
                           q + h * s * d,
                           k + h * s * d,
                           v + h * s * d,
                           mask ? mh : NULL,
                           keep ? keep + h * s * s : NULL,
                           c->scale,
                           c->keep_prob};
            assert_int_equal(npu_forward_head(&hd, ph, ch, var), NPU_MODEL_OK);
            if (probs) memcpy(probs + h * s * s, ph, (size_t)(s * s) * sizeof *ph);
            if (ctx)
                for (int64_t i = 0; i < s; i++)
                    memcpy(ctx + (b * s + i) * (nh * d) + n * d, ch + i * d,
                           (size_t)d * sizeof *ch);
        }
    }
    free(q), free(k), free(v), free(mask), free(mh), free(ph), free(ch);
}

/* Index of gradient element (b, n, row, col) in the ND copy of an output of the given rank. */
static int64_t grad_index(const attn_case *c, int rank, int64_t b, int64_t n, int64_t row,
                          int64_t col)
{
    int64_t s = c->sq, d = c->d;
    if (rank == 2) return (b * s + row) * (c->n * d) + n * d + col;
    return ((b * c->n + n) * s + row) * d + col;
}

/* The model's backward over every head: dout ND [B*S, N*D], probs ND [B,N,S,S], keep or NULL;
 * dq, dk, dv in the ND layout of the given rank (2: [B*S, N*D], 4: [B,N,S,D]). */
static void model_backward_case(const attn_case *c, const uint16_t *dout, const uint16_t *probs,
                                const uint8_t *keep, int rank, uint16_t *dq, uint16_t *dk,
                                uint16_t *dv, const npu_variant *var)
{
    int64_t s = c->sq, d = c->d, nh = c->n;
    uint16_t *q = nd_bits(&c->q), *k = nd_bits(&c->k), *v = nd_bits(&c->v);
    uint16_t *oh = malloc((size_t)(s * d) * sizeof *oh), *g[3];
    assert_non_null(oh);
    for (int i = 0; i < 3; i++) {
        g[i] = malloc((size_t)(s * d) * sizeof *g[i]);
        assert_non_null(g[i]);
    }
    uint16_t *outs[3] = {dq, dk, dv};
    for (int64_t b = 0; b < c->b; b++) {
        for (int64_t n = 0; n < nh; n++) {
            int64_t h = b * nh + n;
            for (int64_t i = 0; i < s; i++)
                memcpy(oh + i * d, dout + (b * s + i) * (nh * d) + n * d, (size_t)d * sizeof *oh);
            npu_head hd = {s,
                           d,
                           q + h * s * d,
                           k + h * s * d,
                           v + h * s * d,
                           NULL,
                           keep ? keep + h * s * s : NULL,
                           c->scale,
                           c->keep_prob};
            assert_int_equal(npu_backward_head(&hd, oh, probs + h * s * s, g[0], g[1], g[2], var),
                             NPU_MODEL_OK);
            for (int o = 0; o < 3; o++)
                for (int64_t i = 0; i < s; i++)
                    memcpy(outs[o] + grad_index(c, rank, b, n, i, 0), g[o] + i * d,
                           (size_t)d * sizeof *g[o]);
        }
    }
    free(q), free(k), free(v), free(oh), free(g[0]), free(g[1]), free(g[2]);
}

/* ============================================================================================
 * The random cases
 * ========================================================================================== */

/* S values: every multiple of 16 that the cases use, powers of two and not; those that are
 * multiples of 64 also run the backward. */
static const int64_t CASE_S[] = {16,  48,  64,  80, 96,  112, 128, 160, 192, 208, 256, 320,
                                 384, 448, 512, 32, 144, 176, 224, 240, 288, 352, 416, 480};
enum { N_CASE_S = (int)(sizeof CASE_S / sizeof CASE_S[0]) };

/* Model work of one case, B*N*S*S*D multiply-adds per matmul, kept under this budget by
 * shrinking N, then B, then D (the default suite must stay fast). */
#define CASE_BUDGET (16.0 * 1024 * 1024)

static void random_npu_case(npu_case *nc, fast_rng *r, int index)
{
    static const int64_t ds[4] = {16, 32, 64, 128};
    static const double keeps[3] = {0.9, 0.5, 0.8};
    static const int forms[8] = {MASK_NONE, MASK_PADDING, MASK_B1SS, MASK_BNSS,
                                 MASK_11SS, MASK_1NSS,    MASK_B11S, MASK_111S};
    /* round 0 and round 1 (index >= 24) give each S the opposite dropout and amplitude */
    int round = (index / N_CASE_S) % 2, k = index % N_CASE_S;
    int64_t s = CASE_S[k];
    int64_t d = ds[fast_rng_int(r, 0, 3)];
    int64_t b = fast_rng_int(r, 1, 3), n = fast_rng_int(r, 1, 3);
    while ((double)b * n * s * s * d > CASE_BUDGET) {
        if (n > 1)
            n--;
        else if (b > 1)
            b--;
        else
            d /= 2;
    }
    int sel = (index + round) % 3;
    double scale = sel == 0 ? 0.125 : sel == 1 ? 1.0 / sqrt((double)d) : 0.3;
    double keep = ((k % 2) ^ round) ? keeps[(index / 2) % 3] : 1.0;
    /* q, k in [-amp, amp]: the logits' spread is scale * amp^2 * sqrt(D) / 3, at most 4.2 here
     * (amp 3 with scale 0.125 or 1/sqrt(D); amp 1.5 with 0.3), as in GV-F1 (3): every logit
     * stays well inside |X| < 32 (see BOUNDS), and no left-out block rises 11 above the row max
     * (that overflow has its own test) */
    double amp = !(((k / 2) % 2) ^ round) ? 1.0 : scale == 0.3 ? 1.5 : 3.0;
    int form = forms[(index + 3 * round) % 8];
    npu_case_alloc(nc, r, b, n, s, d, form, scale, keep, amp);
}

/* Keep bytes for model-only runs: the test's own random 0/1 pattern. */
static uint8_t *random_keep(const attn_case *c, fast_rng *r)
{
    int64_t n = c->b * c->n * c->sq * c->sk;
    uint8_t *keep = malloc((size_t)n);
    assert_non_null(keep);
    for (int64_t i = 0; i < n; i++) keep[i] = fast_rng_uniform(r, 0, 1) < c->keep_prob;
    return keep;
}

static uint16_t *alloc_u16(int64_t n)
{
    uint16_t *p = malloc((size_t)n * sizeof *p);
    assert_non_null(p);
    return p;
}

static uint16_t *random_dout(const attn_case *c, fast_rng *r)
{
    int64_t n = c->b * c->sq * c->n * c->d;
    uint16_t *o = alloc_u16(n);
    for (int64_t i = 0; i < n; i++) o[i] = npu_h_bits(fast_rng_uniform(r, -1, 1));
    return o;
}

/* ============================================================================================
 * The model on its own
 * ========================================================================================== */

/* fp64 backward of one head (docs/semantics.md §6) from the same fp16 inputs (the self-check). */
static void oracle_backward_head(int64_t s, int64_t d, const uint16_t *q, const uint16_t *k,
                                 const uint16_t *v, const uint16_t *dout, const uint16_t *probs,
                                 const uint8_t *keep, double scale, double keep_prob, double *dq,
                                 double *dk, double *dv)
{
#define F(a, i) ((double)npu_half_value((a)[i]))
    double *ds = malloc((size_t)(s * s) * sizeof *ds);
    assert_non_null(ds);
    for (int64_t i = 0; i < s; i++) {
        double dot = 0;
        for (int64_t j = 0; j < s; j++) {
            double gij = keep ? keep[i * s + j] / keep_prob : 1.0, acc = 0;
            for (int64_t t = 0; t < d; t++) acc += F(dout, i * d + t) * F(v, j * d + t);
            ds[i * s + j] = acc * gij;
            dot += ds[i * s + j] * F(probs, i * s + j);
        }
        for (int64_t j = 0; j < s; j++)
            ds[i * s + j] = scale * F(probs, i * s + j) * (ds[i * s + j] - dot);
    }
    for (int64_t j = 0; j < s; j++)
        for (int64_t t = 0; t < d; t++) {
            double aq = 0, ak = 0, av = 0;
            for (int64_t i = 0; i < s; i++) {
                double gij = keep ? keep[i * s + j] / keep_prob : 1.0;
                ak += ds[i * s + j] * F(q, i * d + t);
                av += F(probs, i * s + j) * gij * F(dout, i * d + t);
                aq += ds[j * s + i] * F(k, i * d + t); /* dq row j */
            }
            dq[j * d + t] = aq;
            dk[j * d + t] = ak;
            dv[j * d + t] = av;
        }
    free(ds);
#undef F
}

/* torch_npu's acceptance rule: at most 0.6 % of the elements miss both |got - ref| <= tol and
 * |got - ref| <= tol * |ref|. Returns the share that misses. */
static double torch_miss_share(const uint16_t *got, const double *ref, int64_t n, double tol)
{
    int64_t miss = 0;
    for (int64_t i = 0; i < n; i++) {
        double err = fabs((double)npu_half_value(got[i]) - ref[i]);
        if (!(err <= tol) && !(err <= tol * fabs(ref[i]))) miss++;
    }
    return (double)miss / (double)n;
}

/* Largest |got - ref| over the output, as a share of the output's largest |ref|. */
static double worst_error_of_max(const uint16_t *got, const double *ref, int64_t n)
{
    double mx = 0, worst = 0;
    for (int64_t i = 0; i < n; i++) {
        if (fabs(ref[i]) > mx) mx = fabs(ref[i]);
        double e = fabs((double)npu_half_value(got[i]) - ref[i]);
        if (!(e <= worst)) worst = e; /* NaN propagates as a failure */
    }
    return mx > 0 ? worst / mx : worst;
}

/* Self-checks of the model against exact arithmetic (fp64 from the same fp16 inputs, with the
 * model's own P and drop mask feeding the backward):
 * - every row of P sums to 1 within 3 * 2^-11 + S * 2^-25: P_j = h(E_j * R) with E_j = h(E32_j)
 *   and R = h(1 / Z), Z the fp32 sum of the same E32_j, so the sum carries one relative rounding
 *   of R (2^-11) plus weighted means of the roundings of E_j and of P_j (2^-11 each); the
 *   rounding of Y cancels because Z sums the same exps; the S = 128 path's Z = h(sum E) trades
 *   the E rounding for the Z rounding; a P_j below 2^-25 may be lost entirely;
 * - context and P meet torch_npu's test rule (at most 0.6 % of elements outside both 0.006
 *   absolute and relative for the context, 1e-3 for P);
 * - the gradients: every element within 2^-8 of the output's largest |fp64| value. The backward
 *   keeps dP, U = dP - r and dS in fp16 and sums r in fp16 with up to log2(T) + 4 roundings, so
 *   an error of a few 2^-11 of |dP| reaches dS and, summed over a row, dQ and dK (measured: up to
 *   0.2 % of the largest value with q, k, v in [-3, 3], where |dP| ~ 8); with inputs in [-1, 1]
 *   they also meet torch_npu's rule (1e-3). A transposed index or a wrong formula would be off by
 *   the order of the values themselves. */
static void test_model_against_fp64(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("model_against_fp64", 404));
    static const struct {
        int64_t b, n, s, d;
        int form;
        double scale, keep, amp;
    } cases[] = {
        {1, 2, 128, 64, MASK_PADDING, 0.125, 1.0, 3.0},
        {1, 1, 384, 64, MASK_NONE, 0.125, 1.0, 3.0},
        {2, 1, 96, 32, MASK_B1SS, 0.3, 0.9, 1.0},
        {1, 1, 192, 128, MASK_BNSS, 0.08838834764831845, 0.8, 1.0},
        {1, 1, 512, 16, MASK_111S, 0.25, 1.0, 3.0},
        {2, 2, 256, 32, MASK_B11S, 0.125, 0.5, 1.0},
    };
    int failures = 0;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        npu_case nc;
        npu_case_alloc(&nc, &r, cases[ci].b, cases[ci].n, cases[ci].s, cases[ci].d, cases[ci].form,
                       cases[ci].scale, cases[ci].keep, cases[ci].amp);
        attn_case *c = &nc.c;
        int64_t s = c->sq, d = c->d, np = c->b * c->n * s * s, no = c->b * s * c->n * d;
        uint8_t *keep = c->keep_prob < 1 ? random_keep(c, &r) : NULL;
        uint16_t *p = alloc_u16(np), *ctx = alloc_u16(no);
        model_forward_case(c, keep, p, ctx, NULL);
        double worst_sum = 0, sum_bound = 3.0 * 0x1p-11 + (double)s * 0x1p-25;
        for (int64_t row = 0; row < c->b * c->n * s; row++) {
            double sum = 0;
            for (int64_t j = 0; j < s; j++) sum += npu_half_value(p[row * s + j]);
            if (!(fabs(sum - 1) <= worst_sum)) worst_sum = fabs(sum - 1);
        }
        double *rp = malloc((size_t)np * sizeof *rp), *rc = malloc((size_t)no * sizeof *rc);
        assert_non_null(rp);
        assert_non_null(rc);
        attn_oracle_forward(c, keep, rp, rc);
        double miss_c = torch_miss_share(ctx, rc, no, 0.006),
               miss_p = torch_miss_share(p, rp, np, 1e-3);
        double miss_g[3] = {0, 0, 0}, worst_g[3] = {0, 0, 0};
        if (s % 64 == 0) {
            uint16_t *dout = random_dout(c, &r);
            uint16_t *g[3] = {alloc_u16(no), alloc_u16(no), alloc_u16(no)};
            model_backward_case(c, dout, p, keep, 4, g[0], g[1], g[2], NULL);
            uint16_t *q = nd_bits(&c->q), *k = nd_bits(&c->k), *v = nd_bits(&c->v),
                     *doh = alloc_u16(s * d);
            double *ref[3];
            for (int o = 0; o < 3; o++) {
                ref[o] = malloc((size_t)no * sizeof *ref[o]);
                assert_non_null(ref[o]);
            }
            for (int64_t b = 0; b < c->b; b++)
                for (int64_t n = 0; n < c->n; n++) {
                    int64_t h = b * c->n + n;
                    for (int64_t i = 0; i < s; i++)
                        memcpy(doh + i * d, dout + (b * s + i) * (c->n * d) + n * d,
                               (size_t)d * sizeof *doh);
                    oracle_backward_head(s, d, q + h * s * d, k + h * s * d, v + h * s * d, doh,
                                         p + h * s * s, keep ? keep + h * s * s : NULL, c->scale,
                                         c->keep_prob, ref[0] + h * s * d, ref[1] + h * s * d,
                                         ref[2] + h * s * d);
                }
            for (int o = 0; o < 3; o++) {
                miss_g[o] = torch_miss_share(g[o], ref[o], no, 1e-3);
                worst_g[o] = worst_error_of_max(g[o], ref[o], no);
                if (!(worst_g[o] <= 0x1p-8)) failures++;
                if (cases[ci].amp == 1.0 && miss_g[o] > 0.006) failures++;
                free(ref[o]);
                free(g[o]);
            }
            free(doh), free(q), free(k), free(v), free(dout);
        }
        printf("  model S=%lld D=%lld: |row sum - 1| <= %.2e (bound %.2e); torch rule misses: "
               "context %.3f %%, P %.3f %%",
               (long long)s, (long long)d, worst_sum, sum_bound, 100 * miss_c, 100 * miss_p);
        if (s % 64 == 0)
            printf(
                ", dQ %.3f %%, dK %.3f %%, dV %.3f %%; worst gradient error / max %.5f %.5f %.5f",
                100 * miss_g[0], 100 * miss_g[1], 100 * miss_g[2], worst_g[0], worst_g[1],
                worst_g[2]);
        printf("\n");
        if (!(worst_sum <= sum_bound) || miss_c > 0.006 || miss_p > 0.006) failures++;
        free(p), free(ctx), free(rp), free(rc), free(keep);
        attn_case_free(c);
    }
    assert_int_equal(failures, 0);
}

/* Left-out blocks in a controlled setting, S = 96 (T = 6, blocks 2 and 5 left out): small
 * logits (|A * sc| <= 0.5) plus a mask that lifts one key of every row by `lift`.
 * - lift on key 0 (block 0 takes part): the kernel's max is the true max, so the model equals
 *   the variant with the true row max bit for bit;
 * - lift 8 on key 40 (block 2, left out): Y reaches about 8 > 0, still finite (e^8.5 < 65504):
 *   P stays finite, rows sum to 1 within the bound above, and the result differs from the
 *   true-max variant only by rounding: within torch_npu's rule of fp64;
 * - lift 14 on key 40: Y >= 13.5 > ln 65504, E = h(e^Y) = +inf, so that row of P holds +inf and
 *   its context row is not finite, while the same lift on key 0 keeps everything finite. */
static void test_model_left_out_blocks(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("model_left_out_blocks", 96));
    const int64_t s = 96, d = 16;
    assert_int_equal(npu_rowmax_mask(6), 0x1bu); /* blocks 0, 1, 3, 4 */
    static const struct {
        int64_t key;
        float lift;
    } setups[] = {{0, 8.0f}, {40, 8.0f}, {40, 14.0f}, {0, 14.0f}};
    for (int si = 0; si < 4; si++) {
        npu_case nc;
        npu_case_alloc(&nc, &r, 1, 2, s, d, MASK_11SS, 0.125, 1.0, 1.0);
        attn_case *c = &nc.c;
        float *mv = calloc((size_t)(s * s), sizeof *mv);
        assert_non_null(mv);
        for (int64_t i = 0; i < s; i++) mv[i * s + setups[si].key] = setups[si].lift;
        fast_from_f32(&c->mask, mv);
        free(mv);
        int64_t np = 2 * s * s, no = s * 2 * d;
        uint16_t *p = alloc_u16(np), *ctx = alloc_u16(no), *pt = alloc_u16(np), *ct = alloc_u16(no);
        npu_variant truemax = {NPU_CUBE_SEQUENTIAL, false, NPU_MUT_TRUE_MAX};
        model_forward_case(c, NULL, p, ctx, NULL);
        model_forward_case(c, NULL, pt, ct, &truemax);
        bool left_out = setups[si].key == 40, overflow = setups[si].lift > 11.1f;
        if (!left_out) {
            assert_memory_equal(p, pt, (size_t)np * sizeof *p);
            assert_memory_equal(ctx, ct, (size_t)no * sizeof *ctx);
        }
        if (left_out && overflow) {
            for (int64_t row = 0; row < 2 * s; row++) {
                assert_int_equal(p[row * s + 40], 0x7c00u); /* +inf */
                int64_t i = row % s, n = row / s;
                for (int64_t t = 0; t < d; t++)
                    assert_false(isfinite(npu_half_value(ctx[i * 2 * d + n * d + t])));
            }
        } else {
            for (int64_t i = 0; i < np; i++) assert_true(isfinite(npu_half_value(p[i])));
            for (int64_t i = 0; i < no; i++) assert_true(isfinite(npu_half_value(ctx[i])));
            for (int64_t row = 0; row < 2 * s; row++) {
                double sum = 0;
                for (int64_t j = 0; j < s; j++) sum += npu_half_value(p[row * s + j]);
                assert_true(fabs(sum - 1) <= 3.0 * 0x1p-11 + (double)s * 0x1p-25);
            }
            double *rp = malloc((size_t)np * sizeof *rp), *rc = malloc((size_t)no * sizeof *rc);
            assert_non_null(rp);
            assert_non_null(rc);
            attn_oracle_forward(c, NULL, rp, rc);
            assert_true(torch_miss_share(p, rp, np, 1e-3) <= 0.006);
            assert_true(torch_miss_share(ctx, rc, no, 0.006) <= 0.006);
            free(rp), free(rc);
        }
        free(p), free(ctx), free(pt), free(ct);
        attn_case_free(c);
    }
}

/* ============================================================================================
 * Agreement bounds, library vs model
 *
 * Library and model compute the same formulas on the same fp16 inputs (the same drop mask, and
 * for the backward the same softmax_output). What may legitimately differ:
 * (1) the order of the fp32 additions inside each cube: the model adds t = 0 .. K-1, the library
 *     may use blocked or SIMD sums (products of two fp16 values are exact in fp32, so only the
 *     order matters, and an FMA changes nothing);
 * (2) exp: libm's expf here; the library's may differ by up to 1 ulp in fp32.
 * Either moves an fp32 value by a few fp32 ulps, far below the fp16 spacing (2^13 fp32 ulps), so
 * an fp16 result changes only when its fp32 value lies that close to an fp16 rounding boundary:
 * rarely, and then by one fp16 step of its own. (Near cancellation a sum's own step is small
 * against its terms, so the count of steps can be large there; hence the distances below are
 * measured in spacings at the largest |value| of the row, not in ulps of the element.) Downstream:
 * - a score A one step off moves its logit X by at most one fp16 step of X, hence P_j by the
 *   factor exp(+-step(X_j)); every case here keeps |X| < 32 (random_npu_case), where
 *   step(X) <= 2^-6, so P_j moves by at most 2^-6 P_j <= 32 spacings at the row's largest P, 33
 *   with P's own rounding. A one-step change of the row max m shifts all of Y = h(X - m) and
 *   re-rounds the row, which the normalisation cancels up to rounding;
 * - the context mixes such P changes: for a peaked row (C ~ v_j) the same 33 spacings at the
 *   row's largest value, for diffuse rows the changes average out;
 * - the backward takes identical P and drop mask, so only its own cube orders differ: a dPd one
 *   step off moves dS by one step of dP times P * sc, and each gradient sum re-rounds within a
 *   step of its own value: a few spacings at the row's largest value; U = dP - r cancels where
 *   P_j ~ 1, so 16 leaves room.
 * The bit-identical shares come from measurement: FAS_NPU_SELF_CALIBRATE=240 runs
 * test_library_vs_model with the model itself, cube sums in 16 interleaved lanes and exp moved by
 * one ulp on half the elements, in place of the library. Over 960 such cases (seeds 20260311,
 * 1, 2, 3) the lowest share of one case was 98.93 % for softmax_output (small S: one re-rounded
 * row is a large part), 97.75 % for attention_score, 98.92 % / 95.82 % / 99.78 % for query_dx /
 * key_dw / value_dw (key_dw at S = 512 sums 512 terms), and over a whole run of 240 at least
 * 99.97 %, 99.69 %, 99.65 %, 99.42 %, 99.89 %; the largest distances were 11, 10 and 2 spacings
 * at the row's largest value. The bounds leave room below those and stay far above what a
 * modelling error gives: test_bounds_can_fail sees 40 - 90 % on the cases an error affects.
 * ========================================================================================== */

enum { OUT_PROBS, OUT_CTX, OUT_DQ, OUT_DK, OUT_DV, N_OUTS };
static const char *const OUT_NAMES[N_OUTS] = {"softmax_output", "attention_score", "query_dx",
                                              "key_dw", "value_dw"};

typedef struct agreement_bound {
    double case_share;  /* least bit-identical share in any one case */
    double total_share; /* least bit-identical share over all cases */
    double row_ulps;    /* largest difference, in fp16 spacings at the row's largest |value| */
} agreement_bound;

static const agreement_bound BOUNDS[N_OUTS] = {
    {0.97, 0.995, 33.0}, /* softmax_output */
    {0.95, 0.99, 33.0},  /* attention_score */
    {0.92, 0.985, 16.0}, /* query_dx */
    {0.92, 0.985, 16.0}, /* key_dw */
    {0.92, 0.985, 16.0}, /* value_dw */
};

static bool agreement_within(const agreement *a, const agreement_bound *b, bool whole_run)
{
    double least = whole_run ? b->total_share : b->case_share;
    return a->class_mismatches == 0 && agreement_share(a) >= least &&
           a->worst_row_ulps <= b->row_ulps;
}

/* Agreement over a run of cases: totals per output and the number of cases outside the
 * per-case bounds. */
typedef struct comparison {
    agreement total[N_OUTS];
    double least_case_share[N_OUTS]; /* the lowest bit-identical share of any one case */
    int failed_cases;
} comparison;

static void comparison_init(comparison *cmp)
{
    memset(cmp, 0, sizeof *cmp);
    for (int o = 0; o < N_OUTS; o++) {
        cmp->total[o].name = OUT_NAMES[o];
        cmp->least_case_share[o] = 1.0;
    }
}

/* One output of one case; false (and, when verbose, a line) when outside the per-case bounds. */
static bool comparison_add(comparison *cmp, int out, const uint16_t *lib, const uint16_t *model,
                           int64_t n, int64_t seg, bool verbose)
{
    agreement a;
    memset(&a, 0, sizeof a);
    a.name = OUT_NAMES[out];
    agreement_add(&a, lib, model, n, seg);
    agreement_add(&cmp->total[out], lib, model, n, seg);
    if (agreement_share(&a) < cmp->least_case_share[out])
        cmp->least_case_share[out] = agreement_share(&a);
    bool ok = agreement_within(&a, &BOUNDS[out], false);
    if (!ok && verbose) agreement_print(&a, "OUTSIDE");
    return ok;
}

static bool comparison_ok(const comparison *cmp)
{
    bool ok = cmp->failed_cases == 0;
    for (int o = 0; o < N_OUTS; o++) ok = ok && agreement_within(&cmp->total[o], &BOUNDS[o], true);
    return ok;
}

/* Model-only cases that the modelling errors below affect: left-out blocks (T = 24 and 6), a
 * scale that is not a power of two, the S = 128 path, dropout, the backward at T = 8, 12, 24. */
static const struct challenge {
    int64_t b, n, s, d;
    int form;
    double scale, keep, amp;
} CHALLENGES[] = {
    {1, 1, 384, 32, MASK_NONE, 0.125, 1.0, 3.0},
    {1, 2, 96, 64, MASK_B1SS, 0.3, 1.0, 3.0},
    {1, 1, 128, 32, MASK_PADDING, 0.125, 1.0, 3.0},
    {1, 1, 192, 32, MASK_BNSS, 0.17677669529663687, 0.9, 1.0},
};

/* The comparison of the model (as "library") in `variant` against the model as specified. */
static comparison compare_variant(const npu_variant *variant)
{
    comparison cmp;
    comparison_init(&cmp);
    fast_rng r;
    fast_rng_seed(&r, 1234);
    for (size_t ci = 0; ci < sizeof CHALLENGES / sizeof CHALLENGES[0]; ci++) {
        const struct challenge *ch = &CHALLENGES[ci];
        npu_case nc;
        npu_case_alloc(&nc, &r, ch->b, ch->n, ch->s, ch->d, ch->form, ch->scale, ch->keep, ch->amp);
        attn_case *c = &nc.c;
        int64_t s = c->sq, d = c->d, np = c->b * c->n * s * s, no = c->b * s * c->n * d;
        uint8_t *keep = c->keep_prob < 1 ? random_keep(c, &r) : NULL;
        uint16_t *p0 = alloc_u16(np), *c0 = alloc_u16(no), *p1 = alloc_u16(np), *c1 = alloc_u16(no);
        model_forward_case(c, keep, p0, c0, NULL);
        model_forward_case(c, keep, p1, c1, variant);
        bool ok = comparison_add(&cmp, OUT_PROBS, p1, p0, np, s, false);
        ok = comparison_add(&cmp, OUT_CTX, c1, c0, no, d, false) && ok;
        if (s % 64 == 0) {
            uint16_t *dout = random_dout(c, &r), *g0[3], *g1[3];
            for (int o = 0; o < 3; o++) {
                g0[o] = alloc_u16(no);
                g1[o] = alloc_u16(no);
            }
            /* both backward runs take the specified model's P, as library and model both take
             * the library's P in test_library_vs_model */
            model_backward_case(c, dout, p0, keep, 2, g0[0], g0[1], g0[2], NULL);
            model_backward_case(c, dout, p0, keep, 2, g1[0], g1[1], g1[2], variant);
            for (int o = 0; o < 3; o++) {
                ok = comparison_add(&cmp, OUT_DQ + o, g1[o], g0[o], no, d, false) && ok;
                free(g0[o]);
                free(g1[o]);
            }
            free(dout);
        }
        if (!ok) cmp.failed_cases++;
        free(p0), free(c0), free(p1), free(c1), free(keep);
        attn_case_free(c);
    }
    return cmp;
}

static void print_comparison_line(const char *what, const comparison *cmp)
{
    printf("  %-34s %s: identical", what, comparison_ok(cmp) ? "within bounds " : "OUTSIDE bounds");
    for (int o = 0; o < N_OUTS; o++) printf(" %.4f", agreement_share(&cmp->total[o]));
    printf(", row ulps");
    for (int o = 0; o < N_OUTS; o++) printf(" %.1f", cmp->total[o].worst_row_ulps);
    printf(", %d of %d cases outside\n", cmp->failed_cases,
           (int)(sizeof CHALLENGES / sizeof CHALLENGES[0]));
}

/* The bounds can fail. The model with another legitimate fp32 order (16 interleaved lanes) and
 * an exp off by one ulp on half the elements stays within them; each deliberate modelling error,
 * one departure from docs/precision.md, falls outside on the CHALLENGES cases. Printed per variant:
 * the bit-identical share and the worst distance (spacings at the row's largest value) for
 * softmax_output, attention_score, query_dx, key_dw, value_dw. The mutations and what they gave
 * (bit-identical share over the four cases):
 * - the true row max instead of the block reduction: P 85 %, context 85 %;
 * - no h on the score A: P 97 %, context 75 %;
 * - the scale in fp32 instead of h(scale): P 97 %, context 76 % (only a scale that is not a power
 *   of two shows it; h(0.125) = 0.125);
 * - no h on Y = X - m: P 51 %, context 80 %;
 * - P = h(E32 / Z), the fp32 softmax: P 72 %, context 58 %;
 * - no S = 128 path: P 99.0 % overall, but 73 % on the S = 128 case;
 * - dropout in fp32 (P * M / keep_prob): context 90 % (only where keep_prob < 1);
 * - the backward's row sum in fp32: dQ 69 %, dK 62 %;
 * - dS = h((dP - r) * P * sc) in fp32: dQ 50 %, dK 54 %;
 * - dPd kept in fp32: dQ and dK 84 % (only with dropout: without it h(1 * dPd) = h(dPd)). */
static void test_bounds_can_fail(void **state)
{
    (void)state;
    npu_variant alt = {NPU_CUBE_LANES16, true, 0};
    comparison cmp = compare_variant(&alt);
    print_comparison_line("lane-wise cube sums, exp +-1 ulp", &cmp);
    assert_true(comparison_ok(&cmp));
    static const struct {
        unsigned mutation;
        const char *what;
    } mutations[] = {
        {NPU_MUT_TRUE_MAX, "true row max"},
        {NPU_MUT_NO_H_SCORE, "no h on the score A"},
        {NPU_MUT_FP32_SCALE, "scale in fp32"},
        {NPU_MUT_NO_H_Y, "no h on Y = X - m"},
        {NPU_MUT_FP32_SOFTMAX, "P = h(E32 / Z)"},
        {NPU_MUT_NO_S128_PATH, "no S = 128 path"},
        {NPU_MUT_FP32_DROPOUT, "dropout in fp32"},
        {NPU_MUT_FP32_BWD_ROWSUM, "backward row sum in fp32"},
        {NPU_MUT_NO_H_DS_CHAIN, "dS = h((dP - r) P sc) in fp32"},
        {NPU_MUT_NO_H_DP, "dPd kept in fp32"},
    };
    int caught = 0, n = (int)(sizeof mutations / sizeof mutations[0]);
    for (int i = 0; i < n; i++) {
        npu_variant wrong = {NPU_CUBE_SEQUENTIAL, false, mutations[i].mutation};
        cmp = compare_variant(&wrong);
        print_comparison_line(mutations[i].what, &cmp);
        if (!comparison_ok(&cmp)) caught++;
    }
    assert_int_equal(caught, n);
}

/* ============================================================================================
 * The library in NPU mode
 * ========================================================================================== */

static fas_options npu_options(fas_precision precision, fas_impl impl, int threads, uint64_t seed)
{
    fas_options o;
    fas_options_init(&o);
    o.impl = impl;
    o.num_threads = threads;
    o.has_seed = true;
    o.seed = seed;
    o.offset = 0;
    o.precision = precision;
    return o;
}

static fas_status lib_forward(const attn_case *c, fas_precision precision, fas_impl impl,
                              int threads, uint64_t seed, fas_tensor *out, fas_tensor *probs,
                              fas_tensor *dmask)
{
    fas_options o = npu_options(precision, impl, threads, seed);
    return fused_attention_score_fwd_ex(&c->q, &c->k, &c->v, attn_mask_ptr(c), c->scale,
                                        c->keep_prob, false, false, false, false, false, false, out,
                                        probs, dmask, &o);
}

static fas_status lib_backward(const attn_case *c, fas_precision precision, fas_impl impl,
                               int threads, const fas_tensor *dout, const fas_tensor *probs,
                               const fas_tensor *dmask, fas_tensor *dq, fas_tensor *dk,
                               fas_tensor *dv)
{
    fas_options o = npu_options(precision, impl, threads, 0);
    return fused_attention_score_grad_ex(dout, probs, &c->q, &c->k, &c->v, dmask, c->scale,
                                         c->keep_prob, false, false, false, false, dq, dk, dv, &o);
}

static void print_npu_case(const npu_case *nc, int index)
{
    const attn_case *c = &nc->c;
    printf("  case %d: B=%lld N=%lld S=%lld D=%lld mask=%s%d fmt q/k/v/m=%d/%d/%d/%d keep=%g "
           "scale=%g\n",
           index, (long long)c->b, (long long)c->n, (long long)c->sq, (long long)c->d,
           nc->form == MASK_PADDING ? "padding/" : "", c->mask_form, c->q.format, c->k.format,
           c->v.format, c->mask.data ? (int)c->mask.format : -1, c->keep_prob, c->scale);
}

static void grads_alloc(fas_tensor g[3], const attn_case *c, int rank, fas_dtype dt, fast_rng *r)
{
    for (int o = 0; o < 3; o++) {
        int64_t rows = c->sq, cols = c->d; /* S = Sq = Sk and Dv = D in the NPU domain */
        g[o] = rank == 2 ? fast_tensor_2d(dt, random_format(r), c->b * rows, c->n * cols)
                         : fast_tensor_4d(dt, random_format(r), c->b, c->n, rows, cols);
    }
}

static void grads_free(fas_tensor g[3])
{
    for (int o = 0; o < 3; o++) fast_tensor_free(&g[o]);
}

/* (b) The library's NPU mode against the model on random cases: every S of CASE_S twice (48
 * cases; S = 16 .. 512, 128 and 384 and other non-powers of two), D in {16, 32, 64, 128}, B and N
 * in 1 .. 3, keep_prob 1 and 0.9 / 0.5 / 0.8 (the library draws the drop mask with an explicit
 * seed; the model takes the same bytes), every mask form (none, [B,1,S,S] padding with -10000,
 * random [B,1,S,S], [B,N,S,S], [1,1,S,S], [1,N,S,S], [B,1,1,S], [1,1,1,S]), ND and FRACTAL_NZ
 * tensors at random, scales 0.125, 1/sqrt(D) and 0.3. The backward runs where S is a multiple of
 * 64, on the library's own softmax_output and drop mask, given to both library and model, with
 * gradients of rank 2 or 4. Bounds: BOUNDS above, per case and over the run.
 *
 * FAS_NPU_SELF_CALIBRATE=<cases> replaces the library by the model with lane-wise cube sums and
 * exp +-1 ulp (and the test's own drop mask): the run that calibrated BOUNDS. */
static void test_library_vs_model(void **state)
{
    (void)state;
    const char *cal = getenv("FAS_NPU_SELF_CALIBRATE");
    int ncases = cal ? atoi(cal) : 2 * N_CASE_S;
    if (ncases < 1) ncases = 2 * N_CASE_S;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("library_vs_model", 20260311));
    comparison cmp;
    comparison_init(&cmp);
    npu_variant alt = {NPU_CUBE_LANES16, true, 0};
    int n_fwd = 0, n_bwd = 0;
    for (int i = 0; i < ncases; i++) {
        npu_case nc;
        random_npu_case(&nc, &r, i);
        attn_case *c = &nc.c;
        int64_t s = c->sq, d = c->d, np = c->b * c->n * s * s, no = c->b * s * c->n * d;
        fas_tensor out = fast_tensor_2d(FAS_DTYPE_FLOAT16, random_format(&r), c->b * s, c->n * d);
        fas_tensor probs = fast_tensor_4d(FAS_DTYPE_FLOAT16, random_format(&r), c->b, c->n, s, s);
        fas_tensor dmask = fast_tensor_4d(FAS_DTYPE_UINT8, random_format(&r), c->b, c->n, s, s);
        uint64_t seed = fast_rng_u64(&r);
        uint16_t *lp, *lc, *mp = alloc_u16(np), *mc = alloc_u16(no);
        uint8_t *keep;
        if (!cal) {
            fas_status st =
                lib_forward(c, FAS_PRECISION_NPU, FAS_IMPL_AUTO, 0, seed, &out, &probs, &dmask);
            if (st != FAS_OK) {
                print_npu_case(&nc, i);
                fail_msg("forward: %s: %s", fas_status_string(st), fas_last_error());
            }
            keep = fast_to_u8(&dmask);
            lp = nd_bits(&probs);
            lc = nd_bits(&out);
            if (c->keep_prob == 1.0)
                for (int64_t t = 0; t < np; t++) assert_int_equal(keep[t], 1);
        } else {
            keep = random_keep(c, &r);
            lp = alloc_u16(np);
            lc = alloc_u16(no);
            model_forward_case(c, c->keep_prob < 1 ? keep : NULL, lp, lc, &alt);
        }
        const uint8_t *mkeep = c->keep_prob < 1 ? keep : NULL;
        model_forward_case(c, mkeep, mp, mc, NULL);
        bool ok = comparison_add(&cmp, OUT_PROBS, lp, mp, np, s, true);
        ok = comparison_add(&cmp, OUT_CTX, lc, mc, no, d, true) && ok;
        n_fwd++;
        if (s % 64 == 0) {
            int rank = fast_rng_int(&r, 0, 1) ? 4 : 2;
            fas_tensor dout =
                fast_tensor_2d(FAS_DTYPE_FLOAT16, random_format(&r), c->b * s, c->n * d);
            fast_fill_uniform(&dout, &r, -1.0, 1.0);
            uint16_t *dob = nd_bits(&dout), *lg[3], *mg[3];
            fas_tensor g[3];
            grads_alloc(g, c, rank, FAS_DTYPE_FLOAT16, &r);
            for (int o = 0; o < 3; o++) mg[o] = alloc_u16(no);
            if (!cal) {
                fas_status st = lib_backward(c, FAS_PRECISION_NPU, FAS_IMPL_AUTO, 0, &dout, &probs,
                                             &dmask, &g[0], &g[1], &g[2]);
                if (st != FAS_OK) {
                    print_npu_case(&nc, i);
                    fail_msg("backward: %s: %s", fas_status_string(st), fas_last_error());
                }
                for (int o = 0; o < 3; o++) lg[o] = nd_bits(&g[o]);
            } else {
                for (int o = 0; o < 3; o++) lg[o] = alloc_u16(no);
                model_backward_case(c, dob, lp, mkeep, rank, lg[0], lg[1], lg[2], &alt);
            }
            model_backward_case(c, dob, lp, mkeep, rank, mg[0], mg[1], mg[2], NULL);
            for (int o = 0; o < 3; o++) {
                ok = comparison_add(&cmp, OUT_DQ + o, lg[o], mg[o], no, d, true) && ok;
                free(lg[o]);
                free(mg[o]);
            }
            free(dob);
            grads_free(g);
            fast_tensor_free(&dout);
            n_bwd++;
        }
        if (!ok) {
            print_npu_case(&nc, i);
            cmp.failed_cases++;
        }
        free(lp), free(lc), free(mp), free(mc), free(keep);
        fast_tensor_free(&out);
        fast_tensor_free(&probs);
        fast_tensor_free(&dmask);
        attn_case_free(c);
    }
    printf("  %d forward and %d backward cases, %d outside the per-case bounds%s\n", n_fwd, n_bwd,
           cmp.failed_cases,
           cal ? " (SELF-CALIBRATION: the model with lane-wise cube sums and exp +-1 ulp stands in "
                 "for the library)"
               : "");
    for (int o = 0; o < N_OUTS; o++) agreement_print(&cmp.total[o], cal ? "variant" : "library");
    printf("  lowest bit-identical share of one case:");
    for (int o = 0; o < N_OUTS; o++)
        printf(" %s %.4f %%", OUT_NAMES[o], 100 * cmp.least_case_share[o]);
    printf("\n");
    assert_int_equal(cmp.failed_cases, 0);
    assert_true(comparison_ok(&cmp));
}

/* ---- (c) the overflow the mode exists to show */

enum { OVF_S = 384, OVF_D = 16, OVF_ROW = 5 };

/* S = 384 (T = 24: blocks t = 2 mod 3 never reach the row max), B = N = 1, no mask, scale
 * 0.125, keep 1. q, k, v uniform in [-1, 1] (v in [0.25, 1], so no product with v is 0), except
 * q row OVF_ROW = (8, 0, ..., 0) and k[key][0] = 16: row OVF_ROW's logits are then exactly
 * X_j = h(h(8 k[j][0]) * 0.125) = k[j][0] in [-1, 1] (products by powers of two are exact), and
 * X_key = 16. Every other row stays within |X| < 4. */
static void overflow_case(npu_case *nc, fast_rng *r, int64_t key)
{
    memset(nc, 0, sizeof *nc);
    attn_case *c = &nc->c;
    c->b = c->n = 1;
    c->sq = c->sk = OVF_S;
    c->d = c->dv = OVF_D;
    c->mask_form = MASK_NONE;
    nc->form = MASK_NONE;
    c->scale = 0.125;
    c->keep_prob = 1.0;
    c->q = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 1, 1, OVF_S, OVF_D);
    c->k = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, 1, 1, OVF_S, OVF_D);
    c->v = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 1, 1, OVF_S, OVF_D);
    float *q = malloc(OVF_S * OVF_D * sizeof *q), *k = malloc(OVF_S * OVF_D * sizeof *k),
          *v = malloc(OVF_S * OVF_D * sizeof *v);
    assert_non_null(q);
    assert_non_null(k);
    assert_non_null(v);
    for (int i = 0; i < OVF_S * OVF_D; i++) {
        q[i] = (float)fast_rng_uniform(r, -1, 1);
        k[i] = (float)fast_rng_uniform(r, -1, 1);
        v[i] = (float)fast_rng_uniform(r, 0.25, 1);
    }
    for (int t = 0; t < OVF_D; t++) q[OVF_ROW * OVF_D + t] = t == 0 ? 8.0f : 0.0f;
    k[key * OVF_D] = 16.0f;
    fast_from_f32(&c->q, q);
    fast_from_f32(&c->k, k);
    fast_from_f32(&c->v, v);
    free(q), free(k), free(v);
}

/* Checks where P [S][S] and the context [S][D] (ND bits) are finite: when `overflow`, row OVF_ROW
 * of P holds +inf at `key` and its context row is not finite, every other row is finite;
 * otherwise everything is finite and P[OVF_ROW][key] > 0.99. With `who` set, p and ctx are first
 * filled by the library (precision as given); with who NULL they are the model's, as passed. */
static void check_overflow_run(const attn_case *c, int64_t key, fas_precision precision,
                               bool overflow, uint16_t *p, uint16_t *ctx, const char *who)
{
    int64_t ss = OVF_S * OVF_S, sd = OVF_S * OVF_D;
    fas_tensor out = fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, OVF_S, OVF_D);
    fas_tensor probs = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 1, 1, OVF_S, OVF_S);
    fas_tensor dmask = fast_tensor_4d(FAS_DTYPE_UINT8, FAS_FORMAT_ND, 1, 1, OVF_S, OVF_S);
    if (who) {
        fas_status st = lib_forward(c, precision, FAS_IMPL_AUTO, 0, 1, &out, &probs, &dmask);
        if (st != FAS_OK) fail_msg("%s: %s: %s", who, fas_status_string(st), fas_last_error());
        uint16_t *lp = nd_bits(&probs), *lc = nd_bits(&out);
        memcpy(p, lp, (size_t)ss * sizeof *p);
        memcpy(ctx, lc, (size_t)sd * sizeof *ctx);
        free(lp), free(lc);
    } else {
        who = "model";
    }
    int bad = 0;
    for (int64_t i = 0; i < OVF_S; i++) {
        bool hot = overflow && i == OVF_ROW;
        for (int64_t j = 0; j < OVF_S; j++) {
            uint16_t x = p[i * OVF_S + j];
            if (hot && j == key)
                bad += x != 0x7c00u;
            else
                bad += !isfinite(npu_half_value(x));
        }
        for (int64_t t = 0; t < OVF_D; t++)
            bad += isfinite(npu_half_value(ctx[i * OVF_D + t])) == hot;
    }
    if (!overflow) bad += !(npu_half_value(p[OVF_ROW * OVF_S + key]) > 0.99f);
    printf("  %-26s key %3lld (block %2lld, %s): P[%d][key] = %g, context[%d][0] = %g%s\n", who,
           (long long)key, (long long)(key / 16),
           ((npu_rowmax_mask(OVF_S / 16) >> (key / 16)) & 1) ? "takes part" : "left out", OVF_ROW,
           (double)npu_half_value(p[OVF_ROW * OVF_S + key]), OVF_ROW,
           (double)npu_half_value(ctx[OVF_ROW * OVF_D]), bad ? "  <-- WRONG" : "");
    assert_int_equal(bad, 0);
    fast_tensor_free(&out);
    fast_tensor_free(&probs);
    fast_tensor_free(&dmask);
}

enum { KEY_LEFT_OUT = 5 * 16 + 7, KEY_TAKES_PART = 3 * 16 + 7 };

/* The model alone: the overflow of docs/precision.md §3 step 4 and §4 (Y = 16 - m >= 15 > ln 65504,
 * so E = h(e^Y) = +inf, and P = h(inf * R) = +inf with R = h(1 / Z) > 0 since Z ~ e^16 < 2^25). */
static void test_overflow_model(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("overflow_model", 384));
    assert_false((npu_rowmax_mask(OVF_S / 16) >> (KEY_LEFT_OUT / 16)) & 1);
    assert_true((npu_rowmax_mask(OVF_S / 16) >> (KEY_TAKES_PART / 16)) & 1);
    int64_t keys[2] = {KEY_LEFT_OUT, KEY_TAKES_PART};
    for (int t = 0; t < 2; t++) {
        npu_case nc;
        overflow_case(&nc, &r, keys[t]);
        uint16_t *p = alloc_u16(OVF_S * OVF_S), *ctx = alloc_u16(OVF_S * OVF_D);
        model_forward_case(&nc.c, NULL, p, ctx, NULL);
        check_overflow_run(&nc.c, keys[t], FAS_PRECISION_NPU, t == 0, p, ctx, NULL);
        free(p), free(ctx);
        attn_case_free(&nc.c);
    }
}

/* (c) The library: with the large logit in a left-out block, NPU mode gives +inf in that row of
 * softmax_output and a non-finite context row, like the model (and within the comparison
 * bounds of the model everywhere, infinities in the same places); the default FP32 mode stays
 * finite; in a block that takes part, NPU mode stays finite too. */
static void test_overflow_library(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("overflow_library", 384));
    int64_t keys[2] = {KEY_LEFT_OUT, KEY_TAKES_PART};
    for (int t = 0; t < 2; t++) {
        npu_case nc;
        overflow_case(&nc, &r, keys[t]);
        uint16_t *mp = alloc_u16(OVF_S * OVF_S), *mc = alloc_u16(OVF_S * OVF_D);
        uint16_t *lp = alloc_u16(OVF_S * OVF_S), *lc = alloc_u16(OVF_S * OVF_D);
        model_forward_case(&nc.c, NULL, mp, mc, NULL);
        check_overflow_run(&nc.c, keys[t], FAS_PRECISION_NPU, t == 0, lp, lc, "library, NPU mode");
        comparison cmp;
        comparison_init(&cmp);
        bool ok = comparison_add(&cmp, OUT_PROBS, lp, mp, OVF_S * OVF_S, OVF_S, true);
        ok = comparison_add(&cmp, OUT_CTX, lc, mc, OVF_S * OVF_D, OVF_D, true) && ok;
        assert_true(ok);
        check_overflow_run(&nc.c, keys[t], FAS_PRECISION_FP32, false, lp, lc, "library, FP32 mode");
        free(mp), free(mc), free(lp), free(lc);
        attn_case_free(&nc.c);
    }
}

/* ---- (d) FP32 mode unchanged */

/* One forward (_ex and _fwd_ex) and backward of `c` with the given options (NULL allowed),
 * outputs in fixed formats; returns the concatenated output bytes. */
typedef struct all_outputs {
    fas_tensor ctx_only, ctx, probs, dmask, dq, dk, dv;
} all_outputs;

static void all_outputs_alloc(all_outputs *o, const attn_case *c)
{
    o->ctx_only =
        fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, c->b * c->sq, c->n * c->dv);
    o->ctx = fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, c->b * c->sq, c->n * c->dv);
    o->probs = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, c->b, c->n, c->sq, c->sk);
    o->dmask = fast_tensor_4d(FAS_DTYPE_UINT8, FAS_FORMAT_ND, c->b, c->n, c->sq, c->sk);
    o->dq = fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, c->b * c->sq, c->n * c->d);
    o->dk = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, c->b, c->n, c->sk, c->d);
    o->dv = fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, c->b * c->sk, c->n * c->dv);
}

static fas_tensor *all_outputs_list(all_outputs *o, int i)
{
    fas_tensor *list[7] = {&o->ctx_only, &o->ctx, &o->probs, &o->dmask, &o->dq, &o->dk, &o->dv};
    return list[i];
}

static void all_outputs_free(all_outputs *o)
{
    for (int i = 0; i < 7; i++) fast_tensor_free(all_outputs_list(o, i));
}

/* The backward reads grad_output `dout`, and the probs/dmask that this same run's _fwd wrote. */
static void run_all(const attn_case *c, const fas_tensor *dout, const fas_options *opt,
                    all_outputs *o)
{
    assert_int_equal(fused_attention_score_ex(&c->q, &c->k, &c->v, attn_mask_ptr(c), c->scale,
                                              c->keep_prob, false, false, false, false, false,
                                              false, &o->ctx_only, opt),
                     FAS_OK);
    assert_int_equal(fused_attention_score_fwd_ex(&c->q, &c->k, &c->v, attn_mask_ptr(c), c->scale,
                                                  c->keep_prob, false, false, false, false, false,
                                                  false, &o->ctx, &o->probs, &o->dmask, opt),
                     FAS_OK);
    assert_int_equal(fused_attention_score_grad_ex(dout, &o->probs, &c->q, &c->k, &c->v, &o->dmask,
                                                   c->scale, c->keep_prob, false, false, false,
                                                   false, &o->dq, &o->dk, &o->dv, opt),
                     FAS_OK);
}

static void assert_all_equal(all_outputs *a, all_outputs *b, const char *what)
{
    static const char *const names[7] = {"attention_score (_ex)",
                                         "attention_score",
                                         "softmax_output",
                                         "drop_mask",
                                         "query_dx",
                                         "key_dw",
                                         "value_dw"};
    for (int i = 0; i < 7; i++) {
        fas_tensor *x = all_outputs_list(a, i), *y = all_outputs_list(b, i);
        if (memcmp(x->data, y->data, fas_tensor_bytes(x)) != 0)
            fail_msg("%s: %s differs from the reference call", what, names[i]);
    }
}

/* (d) precision = FAS_PRECISION_FP32, and an options struct of the size before `precision` was
 * appended (whose `precision` bytes hold FAS_PRECISION_NPU, which must not be read), give
 * bit for bit the results of options NULL; with dropout (explicit seed), the same as options
 * filled by fas_options_init. One case inside the NPU domain and one outside it (Sq != Sk,
 * Dv != D, sizes not multiples of 16), both accepted in FP32 mode. */
static void test_fp32_mode_unchanged(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("fp32_mode_unchanged", 32));
    static const int64_t dims[2][4] = {{64, 64, 32, 32}, {40, 56, 24, 8}}; /* sq, sk, d, dv */
    for (int ci = 0; ci < 2; ci++) {
        for (int dropout = 0; dropout < 2; dropout++) {
            attn_case c;
            memset(&c, 0, sizeof c);
            c.b = 2;
            c.n = 2;
            c.sq = dims[ci][0];
            c.sk = dims[ci][1];
            c.d = dims[ci][2];
            c.dv = dims[ci][3];
            c.mask_form = MASK_B1SS;
            c.scale = 0.3;
            c.keep_prob = dropout ? 0.9 : 1.0;
            fas_format fmt[4] = {FAS_FORMAT_ND, FAS_FORMAT_FRACTAL_NZ, FAS_FORMAT_ND,
                                 FAS_FORMAT_ND};
            attn_case_alloc(&c, &r, FAS_DTYPE_FLOAT16, fmt, -2.0, 2.0, -3.0, 0.5);
            fas_tensor dout =
                fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, c.b * c.sq, c.n * c.dv);
            fast_fill_uniform(&dout, &r, -1.0, 1.0);

            fas_options base, fp32, old;
            fas_options_init(&base);
            base.has_seed = dropout != 0;
            base.seed = 77;
            fp32 = base;
            fp32.precision = FAS_PRECISION_FP32;
            old = base;
            old.precision = FAS_PRECISION_NPU; /* beyond struct_size: must be ignored */
            old.struct_size = offsetof(fas_options, precision);

            all_outputs ref, a, b;
            all_outputs_alloc(&ref, &c);
            all_outputs_alloc(&a, &c);
            all_outputs_alloc(&b, &c);
            run_all(&c, &dout, dropout ? &base : NULL, &ref);
            run_all(&c, &dout, &fp32, &a);
            run_all(&c, &dout, &old, &b);
            assert_all_equal(&a, &ref, "precision FAS_PRECISION_FP32");
            assert_all_equal(&b, &ref, "options of the size before `precision`");
            all_outputs_free(&ref);
            all_outputs_free(&a);
            all_outputs_free(&b);
            fast_tensor_free(&dout);
            attn_case_free(&c);
        }
    }
}

/* ---- (e) outside the NPU domain */

enum { API_EX, API_FWD, API_GRAD };
enum { T_NONE, T_Q, T_K, T_V, T_MASK, T_OUT, T_PROBS, T_DOUT, T_DQ, T_DK, T_DV };
enum { F_QT, F_KT, F_TA, F_TB, F_VT, F_DXT, F_NONE };

typedef struct domain_case {
    const char *what; /* the NPU constraint the call breaks */
    int api;
    int64_t sq, sk, d, dv;
    int odd_tensor; /* T_*: this tensor gets odd_dtype instead of FLOAT16 */
    fas_dtype odd_dtype;
    int flag; /* F_*: this transpose flag is true */
} domain_case;

/* Every tensor of a call, laid out as the flags require (B = 1, N = 2, keep_prob 0.9). */
typedef struct domain_world {
    fas_tensor q, k, v, mask, out, probs, dmask, dout, dq, dk, dv;
    bool flags[6];
} domain_world;

static fas_tensor *world_tensor(domain_world *w, int id)
{
    fas_tensor *list[] = {NULL,      &w->q,    &w->k,  &w->v,  &w->mask, &w->out,
                          &w->probs, &w->dout, &w->dq, &w->dk, &w->dv};
    return list[id];
}

static void domain_world_build(domain_world *w, const domain_case *dc, fast_rng *r)
{
    memset(w, 0, sizeof *w);
    if (dc->flag != F_NONE) w->flags[dc->flag] = true;
    int64_t b = 1, n = 2, sq = dc->sq, sk = dc->sk, d = dc->d, dv = dc->dv;
    bool grad = dc->api == API_GRAD;
#define DT(id) (dc->odd_tensor == (id) ? dc->odd_dtype : FAS_DTYPE_FLOAT16)
    w->q = w->flags[F_QT] ? fast_tensor_4d(DT(T_Q), FAS_FORMAT_ND, b, n, d, sq)
                          : fast_tensor_4d(DT(T_Q), FAS_FORMAT_ND, b, n, sq, d);
    w->k = w->flags[F_KT] ? fast_tensor_4d(DT(T_K), FAS_FORMAT_FRACTAL_NZ, b, n, d, sk)
                          : fast_tensor_4d(DT(T_K), FAS_FORMAT_FRACTAL_NZ, b, n, sk, d);
    bool vt = grad ? w->flags[F_VT] : w->flags[F_TB];
    w->v = vt ? fast_tensor_4d(DT(T_V), FAS_FORMAT_ND, b, n, dv, sk)
              : fast_tensor_4d(DT(T_V), FAS_FORMAT_ND, b, n, sk, dv);
    w->mask = fast_tensor_4d(DT(T_MASK), FAS_FORMAT_ND, b, 1, sq, sk);
    w->out = fast_tensor_2d(DT(T_OUT), FAS_FORMAT_FRACTAL_NZ, b * sq, n * dv);
    w->probs = fast_tensor_4d(DT(T_PROBS), FAS_FORMAT_ND, b, n, sq, sk);
    w->dmask = fast_tensor_4d(FAS_DTYPE_UINT8, FAS_FORMAT_FRACTAL_NZ, b, n, sq, sk);
    w->dout = w->flags[F_DXT] ? fast_tensor_2d(DT(T_DOUT), FAS_FORMAT_ND, n * dv, b * sq)
                              : fast_tensor_2d(DT(T_DOUT), FAS_FORMAT_ND, b * sq, n * dv);
    w->dq = fast_tensor_2d(DT(T_DQ), FAS_FORMAT_ND, b * sq, n * d);
    w->dk = fast_tensor_4d(DT(T_DK), FAS_FORMAT_FRACTAL_NZ, b, n, sk, d);
    w->dv = fast_tensor_2d(DT(T_DV), FAS_FORMAT_ND, b * sk, n * dv);
#undef DT
    fast_fill_uniform(&w->q, r, -1, 1);
    fast_fill_uniform(&w->k, r, -1, 1);
    fast_fill_uniform(&w->v, r, -1, 1);
    fast_fill_uniform(&w->mask, r, -2, 0);
    fast_fill_uniform(&w->probs, r, 0, 0.05);
    fast_fill_uniform(&w->dout, r, -1, 1);
    memset(w->dmask.data, 1, fas_tensor_bytes(&w->dmask));
}

static void domain_world_free(domain_world *w)
{
    for (int id = T_Q; id <= T_DV; id++) fast_tensor_free(world_tensor(w, id));
    fast_tensor_free(&w->dmask);
}

static fas_status domain_call(domain_world *w, int api, fas_precision precision)
{
    fas_options o = npu_options(precision, FAS_IMPL_AUTO, 0, 5);
    bool *f = w->flags;
    if (api == API_EX)
        return fused_attention_score_ex(&w->q, &w->k, &w->v, &w->mask, 0.125, 0.9, f[F_QT], f[F_KT],
                                        f[F_TA], f[F_TB], f[F_VT], f[F_DXT], &w->out, &o);
    if (api == API_FWD)
        return fused_attention_score_fwd_ex(&w->q, &w->k, &w->v, &w->mask, 0.125, 0.9, f[F_QT],
                                            f[F_KT], f[F_TA], f[F_TB], f[F_VT], f[F_DXT], &w->out,
                                            &w->probs, &w->dmask, &o);
    return fused_attention_score_grad_ex(&w->dout, &w->probs, &w->q, &w->k, &w->v, &w->dmask, 0.125,
                                         0.9, f[F_QT], f[F_KT], f[F_VT], f[F_DXT], &w->dq, &w->dk,
                                         &w->dv, &o);
}

/* The outputs a call may write. */
static int domain_outputs(domain_world *w, int api, fas_tensor *outs[3])
{
    if (api == API_EX) {
        outs[0] = &w->out;
        return 1;
    }
    if (api == API_FWD) {
        outs[0] = &w->out, outs[1] = &w->probs, outs[2] = &w->dmask;
        return 3;
    }
    outs[0] = &w->dq, outs[1] = &w->dk, outs[2] = &w->dv;
    return 3;
}

static bool mentions_npu(const char *msg)
{
    for (const char *p = msg; p[0] && p[1] && p[2]; p++)
        if ((p[0] | 0x20) == 'n' && (p[1] | 0x20) == 'p' && (p[2] | 0x20) == 'u') return true;
    return false;
}

/* (e) Each call below is valid in FP32 mode (checked first: FAS_OK) and breaks exactly one
 * constraint of the NPU domain; in NPU mode it must return FAS_ERR_UNSUPPORTED with a sentence
 * (non-empty, mentioning the NPU) and leave every output byte as it was (canary). The same world
 * with nothing broken is accepted in NPU mode (FAS_OK), for each entry point. */
static void test_out_of_domain(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("out_of_domain", 9));
/* clang-format off */
#define C(w, api, sq, sk, d, dv, t, dt, f) {w, api, sq, sk, d, dv, t, dt, f}
#define F16 FAS_DTYPE_FLOAT16
#define F32 FAS_DTYPE_FLOAT
#define BF16 FAS_DTYPE_BF16
    static const domain_case cases[] = {
        C("in the domain (forward, context only)", API_EX, 64, 64, 64, 64, T_NONE, F16, F_NONE),
        C("in the domain (forward)", API_FWD, 64, 64, 64, 64, T_NONE, F16, F_NONE),
        C("in the domain (backward)", API_GRAD, 64, 64, 64, 64, T_NONE, F16, F_NONE),
        C("query_layer FLOAT", API_FWD, 64, 64, 64, 64, T_Q, F32, F_NONE),
        C("key_layer BF16", API_FWD, 64, 64, 64, 64, T_K, BF16, F_NONE),
        C("value_layer FLOAT", API_FWD, 64, 64, 64, 64, T_V, F32, F_NONE),
        C("attention_mask FLOAT", API_FWD, 64, 64, 64, 64, T_MASK, F32, F_NONE),
        C("attention_score FLOAT", API_FWD, 64, 64, 64, 64, T_OUT, F32, F_NONE),
        C("softmax_output BF16", API_FWD, 64, 64, 64, 64, T_PROBS, BF16, F_NONE),
        C("Sq != Sk", API_FWD, 48, 64, 64, 64, T_NONE, F16, F_NONE),
        C("Dv != D", API_FWD, 64, 64, 64, 32, T_NONE, F16, F_NONE),
        C("S not a multiple of 16", API_FWD, 40, 40, 64, 64, T_NONE, F16, F_NONE),
        C("D not a multiple of 16", API_FWD, 64, 64, 24, 24, T_NONE, F16, F_NONE),
        C("query_transpose", API_FWD, 64, 64, 64, 64, T_NONE, F16, F_QT),
        C("key_transpose", API_FWD, 64, 64, 64, 64, T_NONE, F16, F_KT),
        C("bmm_score_transpose_a", API_FWD, 64, 64, 64, 64, T_NONE, F16, F_TA),
        C("bmm_score_transpose_b", API_FWD, 64, 64, 64, 64, T_NONE, F16, F_TB),
        C("value_transpose (forward)", API_FWD, 64, 64, 64, 64, T_NONE, F16, F_VT),
        C("dx_transpose (forward)", API_FWD, 64, 64, 64, 64, T_NONE, F16, F_DXT),
        C("query_layer BF16 (context only)", API_EX, 64, 64, 64, 64, T_Q, BF16, F_NONE),
        C("attention_score FLOAT (context only)", API_EX, 64, 64, 64, 64, T_OUT, F32, F_NONE),
        C("Sq != Sk (context only)", API_EX, 64, 32, 64, 64, T_NONE, F16, F_NONE),
        C("S not a multiple of 16 (context only)", API_EX, 72, 72, 64, 64, T_NONE, F16, F_NONE),
        C("key_transpose (context only)", API_EX, 64, 64, 64, 64, T_NONE, F16, F_KT),
        C("dx_transpose (context only)", API_EX, 64, 64, 64, 64, T_NONE, F16, F_DXT),
        C("grad_output FLOAT", API_GRAD, 64, 64, 64, 64, T_DOUT, F32, F_NONE),
        C("softmax_output FLOAT (backward)", API_GRAD, 64, 64, 64, 64, T_PROBS, F32, F_NONE),
        C("query_layer FLOAT (backward)", API_GRAD, 64, 64, 64, 64, T_Q, F32, F_NONE),
        C("key_layer BF16 (backward)", API_GRAD, 64, 64, 64, 64, T_K, BF16, F_NONE),
        C("value_layer FLOAT (backward)", API_GRAD, 64, 64, 64, 64, T_V, F32, F_NONE),
        C("query_dx FLOAT", API_GRAD, 64, 64, 64, 64, T_DQ, F32, F_NONE),
        C("key_dw BF16", API_GRAD, 64, 64, 64, 64, T_DK, BF16, F_NONE),
        C("value_dw FLOAT", API_GRAD, 64, 64, 64, 64, T_DV, F32, F_NONE),
        C("S = 48, not a multiple of 64 (backward)", API_GRAD, 48, 48, 64, 64, T_NONE, F16, F_NONE),
        C("S = 40 (backward)", API_GRAD, 40, 40, 64, 64, T_NONE, F16, F_NONE),
        C("D = 24 (backward)", API_GRAD, 64, 64, 24, 24, T_NONE, F16, F_NONE),
        C("Dv != D (backward)", API_GRAD, 64, 64, 64, 32, T_NONE, F16, F_NONE),
        C("Sq != Sk (backward)", API_GRAD, 64, 128, 64, 64, T_NONE, F16, F_NONE),
        C("query_transpose (backward)", API_GRAD, 64, 64, 64, 64, T_NONE, F16, F_QT),
        C("key_transpose (backward)", API_GRAD, 64, 64, 64, 64, T_NONE, F16, F_KT),
        C("value_transpose (backward)", API_GRAD, 64, 64, 64, 64, T_NONE, F16, F_VT),
        C("dx_transpose (backward)", API_GRAD, 64, 64, 64, 64, T_NONE, F16, F_DXT),
    };
#undef C
#undef F16
#undef F32
#undef BF16
    /* clang-format on */
    static const char *const api_names[3] = {"_ex", "_fwd_ex", "_grad_ex"};
    int failures = 0, n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++) {
        const domain_case *dc = &cases[i];
        bool inside = dc->odd_tensor == T_NONE && dc->flag == F_NONE && dc->sq == dc->sk &&
                      dc->d == dc->dv && dc->sq % (dc->api == API_GRAD ? 64 : 16) == 0 &&
                      dc->d % 16 == 0;
        domain_world w;
        domain_world_build(&w, dc, &r);
        fas_status st = domain_call(&w, dc->api, FAS_PRECISION_FP32);
        if (st != FAS_OK) {
            printf("  %s (%s): FP32 mode says %s: %s -- the case itself is wrong\n", dc->what,
                   api_names[dc->api], fas_status_string(st), fas_last_error());
            failures++;
            domain_world_free(&w);
            continue;
        }
        fas_tensor *outs[3];
        int nout = domain_outputs(&w, dc->api, outs);
        for (int o = 0; o < nout; o++) fast_canary_fill(outs[o]->data, fas_tensor_bytes(outs[o]));
        st = domain_call(&w, dc->api, FAS_PRECISION_NPU);
        const char *msg = fas_last_error();
        bool ok;
        if (inside) {
            ok = st == FAS_OK;
        } else {
            ok = st == FAS_ERR_UNSUPPORTED && msg && msg[0] && mentions_npu(msg);
            for (int o = 0; o < nout; o++)
                ok = ok && fast_canary_intact(outs[o]->data, fas_tensor_bytes(outs[o]));
        }
        printf("  %-42s %-9s NPU mode: %s \"%s\"%s\n", dc->what, api_names[dc->api],
               fas_status_string(st), msg ? msg : "(null)", ok ? "" : "  <-- WRONG");
        if (!ok) failures++;
        domain_world_free(&w);
    }
    assert_int_equal(failures, 0);
}

/* ---- (f) threads and implementations */

/* Does `impl` exist on this CPU? Probed with a small FP32-mode call. */
static bool impl_available(fas_impl impl)
{
    fast_rng r;
    fast_rng_seed(&r, 3);
    attn_case c;
    memset(&c, 0, sizeof c);
    c.b = c.n = 1;
    c.sq = c.sk = 16;
    c.d = c.dv = 16;
    c.mask_form = MASK_NONE;
    c.scale = 0.25;
    c.keep_prob = 1.0;
    fas_format nd[4] = {FAS_FORMAT_ND, FAS_FORMAT_ND, FAS_FORMAT_ND, FAS_FORMAT_ND};
    attn_case_alloc(&c, &r, FAS_DTYPE_FLOAT16, nd, -1, 1, 0, 0);
    fas_tensor out = fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 16, 16);
    fas_status st = lib_forward(&c, FAS_PRECISION_FP32, impl, 1, 0, &out, NULL, NULL);
    fast_tensor_free(&out);
    attn_case_free(&c);
    return st == FAS_OK;
}

/* (f) NPU mode gives the same bytes with 1 and 2 threads, and with FAS_IMPL_PORTABLE, AUTO,
 * AVX2 and AVX512 (the last two where this CPU has them; a line says when one is skipped):
 * forward outputs, drop mask and the three gradients. */
static void test_threads_and_impls(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("threads_and_impls", 12));
    npu_case nc;
    npu_case_alloc(&nc, &r, 2, 2, 192, 64, MASK_1NSS, 0.125, 0.9, 3.0);
    attn_case *c = &nc.c;
    fas_tensor dout =
        fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, c->b * c->sq, c->n * c->d);
    fast_fill_uniform(&dout, &r, -1, 1);
    static const struct {
        fas_impl impl;
        int threads;
        const char *name;
    } runs[] = {{FAS_IMPL_AUTO, 1, "auto, 1 thread"},
                {FAS_IMPL_AUTO, 2, "auto, 2 threads"},
                {FAS_IMPL_PORTABLE, 2, "portable"},
                {FAS_IMPL_AVX2, 2, "avx2"},
                {FAS_IMPL_AVX512, 2, "avx512"}};
    fas_tensor base[6];
    int compared = 0;
    for (size_t ri = 0; ri < sizeof runs / sizeof runs[0]; ri++) {
        if (runs[ri].impl != FAS_IMPL_AUTO && runs[ri].impl != FAS_IMPL_PORTABLE &&
            !impl_available(runs[ri].impl)) {
            printf("[ SKIPPED  ] %s: not available on this CPU (simd level %s)\n", runs[ri].name,
                   fas_simd_level());
            continue;
        }
        fas_tensor t[6];
        t[0] = fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, c->b * c->sq, c->n * c->d);
        t[1] = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, c->b, c->n, c->sq, c->sk);
        t[2] = fast_tensor_4d(FAS_DTYPE_UINT8, FAS_FORMAT_FRACTAL_NZ, c->b, c->n, c->sq, c->sk);
        grads_alloc(t + 3, c, 4, FAS_DTYPE_FLOAT16, &r);
        fas_status st = lib_forward(c, FAS_PRECISION_NPU, runs[ri].impl, runs[ri].threads, 99,
                                    &t[0], &t[1], &t[2]);
        if (st != FAS_OK)
            fail_msg("%s forward: %s: %s", runs[ri].name, fas_status_string(st), fas_last_error());
        st = lib_backward(c, FAS_PRECISION_NPU, runs[ri].impl, runs[ri].threads, &dout, &t[1],
                          &t[2], &t[3], &t[4], &t[5]);
        if (st != FAS_OK)
            fail_msg("%s backward: %s: %s", runs[ri].name, fas_status_string(st), fas_last_error());
        if (ri == 0) {
            memcpy(base, t, sizeof t);
            continue;
        }
        /* the gradients' formats are random per run: compare logical values */
        for (int o = 0; o < 6; o++) {
            bool same;
            if (o == 2) {
                uint8_t *x = fast_to_u8(&t[o]), *y = fast_to_u8(&base[o]);
                same = memcmp(x, y, (size_t)fast_tensor_numel(&t[o])) == 0;
                free(x), free(y);
            } else {
                uint16_t *x = nd_bits(&t[o]), *y = nd_bits(&base[o]);
                same = memcmp(x, y, (size_t)fast_tensor_numel(&t[o]) * 2) == 0;
                free(x), free(y);
            }
            if (!same) fail_msg("%s: output %d differs from auto, 1 thread", runs[ri].name, o);
        }
        printf("  %-16s bit-identical to auto, 1 thread\n", runs[ri].name);
        compared++;
        for (int o = 0; o < 6; o++) fast_tensor_free(&t[o]);
    }
    assert_true(compared >= 2);
    for (int o = 0; o < 6; o++) fast_tensor_free(&base[o]);
    fast_tensor_free(&dout);
    attn_case_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rowmax_table),          cmocka_unit_test(test_rowmax_table_library),
        cmocka_unit_test(test_rowmax_values),         cmocka_unit_test(test_row_sum_orders),
        cmocka_unit_test(test_model_fp16_rounding),   cmocka_unit_test(test_model_against_fp64),
        cmocka_unit_test(test_model_left_out_blocks), cmocka_unit_test(test_overflow_model),
        cmocka_unit_test(test_bounds_can_fail),       cmocka_unit_test(test_library_vs_model),
        cmocka_unit_test(test_overflow_library),      cmocka_unit_test(test_fp32_mode_unchanged),
        cmocka_unit_test(test_out_of_domain),         cmocka_unit_test(test_threads_and_impls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
