/* Test-side model of the NPU precision profile: see npu_model.h. Every step cites its number in
 * docs/precision.md. Plain scalar code; fp32 arithmetic must not be contracted into FMAs or
 * reassociated (the test targets build with -ffp-contract=off and never -ffast-math). */
#include "npu_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { LANES = 16 };

/* ---------------------------------------------------------------------------------------------
 * fp16
 * ------------------------------------------------------------------------------------------- */

/* Round to nearest even on the bits of the double: keep the 11 significant bits that fp16 has
 * at this magnitude (fewer in the subnormal range), look at the bits shifted out. A double holds
 * any fp32 exactly, so this one rounding is also h of an fp32 value. */
uint16_t npu_h_bits(double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    uint16_t sign = (uint16_t)((u >> 48) & 0x8000u);
    int e = (int)((u >> 52) & 0x7ff) - 1023; /* |x| in [2^e, 2^(e+1)) for normal doubles */
    uint64_t frac = u & 0xFFFFFFFFFFFFFull;
    if (e == 1024) return (uint16_t)(sign | (frac ? 0x7e00u : 0x7c00u)); /* NaN (quiet), inf */
    if (e < -25) return sign; /* below half the smallest subnormal 2^-24 (also double subnormals) */
    uint64_t m = frac | (1ull << 52); /* 53 significant bits */
    /* fp16 keeps 10 fraction bits for e >= -14; below, the quantum stays 2^-24 */
    int shift = e >= -14 ? 42 : 42 + (-14 - e); /* 42 .. 53 */
    uint64_t q = m >> shift, rem = m & ((1ull << shift) - 1), half = 1ull << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) q++;
    uint32_t bits;
    if (e >= -14) {
        /* q in [1024, 2048]; a carry to 2048 moves into the exponent field by the addition */
        if (e > 15) return (uint16_t)(sign | 0x7c00u);
        bits = ((uint32_t)(e + 15) << 10) + (uint32_t)(q - 1024);
        if (bits >= 0x7c00u) bits = 0x7c00u; /* rounded up past 65504: overflow */
    } else {
        bits = (uint32_t)q; /* 0 .. 1024; 1024 is 0x0400, the smallest normal */
    }
    return (uint16_t)(sign | bits);
}

float npu_half_value(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
    if (e == 0) {
        float v = (float)m * 0x1p-24f; /* exact: m < 2^10 */
        return sign ? -v : v;
    }
    if (e == 31)
        u = sign | 0x7f800000u | (m << 13); /* inf, or NaN with the payload moved up */
    else
        u = sign | ((e - 15 + 127) << 23) | (m << 13);
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* h of an fp32 on its bits, the fast path the model uses for every vector op; checked against
 * npu_h_bits by the tests. Normal range: rebias the exponent and round the 13 dropped bits to
 * nearest even by adding 0xfff plus the lowest kept bit (a carry runs into the exponent and, past
 * 65504, into the inf encoding). Below 2^-14: adding 0.5f, whose ulp is 2^-24, rounds |x| to a
 * multiple of 2^-24 in the FPU's round-to-nearest-even; its low bits are that multiple. */
uint16_t npu_h_bits_f32(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    u &= 0x7fffffffu;
    if (u >= 0x47800000u) /* |x| >= 2^16, inf or NaN */
        return (uint16_t)(sign | (u > 0x7f800000u ? 0x7e00u : 0x7c00u));
    if (u < 0x38800000u) { /* |x| < 2^-14 */
        float t = fabsf(x) + 0.5f;
        uint32_t tu;
        memcpy(&tu, &t, sizeof tu);
        return (uint16_t)(sign | (tu - 0x3f000000u));
    }
    u += 0xc8000fffu + ((u >> 13) & 1u); /* exponent - 112, plus the rounding increment */
    return (uint16_t)(sign | (u >> 13));
}

float npu_h(float x) { return npu_half_value(npu_h_bits_f32(x)); }

/* ---------------------------------------------------------------------------------------------
 * Row reductions. A row of T blocks is handled as a list L of T vectors of 16 lanes.
 * ------------------------------------------------------------------------------------------- */

/* Step 4. Ambiguity: the specification does not say how max treats NaN; here a NaN operand
 * gives NaN (no output depends on it: see npu_model.h). */
static float max_nan(float a, float b)
{
    if (isnan(a) || isnan(b)) return NAN;
    return b > a ? b : a;
}

/* The halving of step 4, followed on block indices: where[t] is the position in the current
 * list that original block t has been merged into, or -1 once it has been dropped. */
void npu_rowmax_participants(int64_t t_blocks, bool *used)
{
    int64_t *where = malloc((size_t)t_blocks * sizeof *where);
    if (!where) abort();
    for (int64_t t = 0; t < t_blocks; t++) where[t] = t;
    for (int64_t len = t_blocks; len > 1; len /= 2) {
        int64_t half = len / 2; /* L'[p] = max(L[p], L[p + half]) for p < half */
        for (int64_t t = 0; t < t_blocks; t++) {
            int64_t p = where[t];
            if (p < 0) continue;
            if (p >= 2 * half)
                where[t] = -1; /* the odd last entry of L: dropped */
            else if (p >= half)
                where[t] = p - half;
        }
    }
    for (int64_t t = 0; t < t_blocks; t++) used[t] = where[t] == 0;
    if (t_blocks % 2 == 1) used[t_blocks - 1] = true; /* folded in with one more max */
    free(where);
}

uint64_t npu_rowmax_mask(int64_t t_blocks)
{
    bool used[64];
    if (t_blocks < 1 || t_blocks > 64) return 0;
    npu_rowmax_participants(t_blocks, used);
    uint64_t m = 0;
    for (int64_t t = 0; t < t_blocks; t++)
        if (used[t]) m |= 1ull << t;
    return m;
}

/* The same reduction on values, written as the kernel does it (not through the participant
 * list, so that each can check the other). scratch: t_blocks * 16 floats. */
static float row_max_with(const float *x, int64_t t_blocks, float *L)
{
    memcpy(L, x, (size_t)(t_blocks * LANES) * sizeof *L);
    for (int64_t len = t_blocks; len > 1; len /= 2) {
        int64_t half = len / 2;
        for (int64_t t = 0; t < half; t++)
            for (int l = 0; l < LANES; l++)
                L[t * LANES + l] = max_nan(L[t * LANES + l], L[(t + half) * LANES + l]);
        /* when len is odd, L[len - 1] is not read: dropped */
    }
    if (t_blocks % 2 == 1)
        for (int l = 0; l < LANES; l++) L[l] = max_nan(L[l], x[(t_blocks - 1) * LANES + l]);
    float m = L[0];
    for (int l = 1; l < LANES; l++) m = max_nan(m, L[l]);
    return m;
}

/* Step 6 (fp32) and backward step 3 (fp16, round_each). Ambiguity: the specification states the
 * odd rule once; it is read as applying at every level whose length is odd (12 blocks: 12 -> 6
 * -> 3, then block 2 is added into block 0 before the last halving). The fp32 sum's lanes are
 * added left to right; the fp16 sum's lanes l + 8, + 4, + 2, + 1, as specified. */
static float row_sum_with(const float *x, int64_t t_blocks, float *L, bool round_each)
{
    memcpy(L, x, (size_t)(t_blocks * LANES) * sizeof *L);
    int64_t len = t_blocks;
    while (len > 1) {
        if (len % 2 == 1) {
            for (int l = 0; l < LANES; l++) {
                float s = L[l] + L[(len - 1) * LANES + l];
                L[l] = round_each ? npu_h(s) : s;
            }
            len -= 1;
        }
        int64_t half = len / 2;
        for (int64_t t = 0; t < half; t++)
            for (int l = 0; l < LANES; l++) {
                float s = L[t * LANES + l] + L[(t + half) * LANES + l];
                L[t * LANES + l] = round_each ? npu_h(s) : s;
            }
        len = half;
    }
    if (round_each) {
        for (int step = LANES / 2; step >= 1; step /= 2)
            for (int l = 0; l < step; l++) L[l] = npu_h(L[l] + L[l + step]);
        return L[0];
    }
    float z = L[0];
    for (int l = 1; l < LANES; l++) z += L[l];
    return z;
}

float npu_row_max(const float *x, int64_t t_blocks)
{
    float *L = malloc((size_t)(t_blocks * LANES) * sizeof *L);
    if (!L) abort();
    float m = row_max_with(x, t_blocks, L);
    free(L);
    return m;
}

float npu_row_sum_f32(const float *x, int64_t t_blocks)
{
    float *L = malloc((size_t)(t_blocks * LANES) * sizeof *L);
    if (!L) abort();
    float z = row_sum_with(x, t_blocks, L, false);
    free(L);
    return z;
}

float npu_row_sum_f16(const float *x, int64_t t_blocks)
{
    float *L = malloc((size_t)(t_blocks * LANES) * sizeof *L);
    if (!L) abort();
    float z = row_sum_with(x, t_blocks, L, true);
    free(L);
    return z;
}

/* ---------------------------------------------------------------------------------------------
 * Cube: out[i][j] = h(sum_t a[i][t] * b[j][t]) for a [m][kk], b [n][kk], both row-major with
 * the summed index fastest (callers transpose). The product of two fp16 values is exact in fp32
 * (11 + 11 significant bits, exponents far inside fp32's range), so only the order of the fp32
 * additions matters. Eight output columns are computed side by side to hide the adder's latency;
 * each keeps its own accumulator, so every element is summed in the order t = 0 .. kk-1.
 * keep_fp32 (a mutation) skips the final h.
 * ------------------------------------------------------------------------------------------- */

static float dot_lanes16(const float *a, const float *b, int64_t kk)
{
    float part[LANES] = {0};
    for (int64_t t = 0; t < kk; t++) part[t % LANES] += a[t] * b[t];
    for (int step = LANES / 2; step >= 1; step /= 2)
        for (int l = 0; l < step; l++) part[l] += part[l + step];
    return part[0];
}

static void cube(const float *a, const float *b, int64_t m, int64_t n, int64_t kk, float *out,
                 int order, bool keep_fp32)
{
    for (int64_t i = 0; i < m; i++) {
        const float *ar = a + i * kk;
        int64_t j = 0;
        if (order == NPU_CUBE_SEQUENTIAL) {
            for (; j + 8 <= n; j += 8) {
                const float *bj = b + j * kk;
                float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                for (int64_t t = 0; t < kk; t++)
                    for (int c = 0; c < 8; c++) acc[c] += ar[t] * bj[c * kk + t];
                for (int c = 0; c < 8; c++) out[i * n + j + c] = acc[c];
            }
            for (; j < n; j++) {
                float acc = 0;
                for (int64_t t = 0; t < kk; t++) acc += ar[t] * b[j * kk + t];
                out[i * n + j] = acc;
            }
        } else {
            for (; j < n; j++) out[i * n + j] = dot_lanes16(ar, b + j * kk, kk);
        }
        if (!keep_fp32)
            for (j = 0; j < n; j++) out[i * n + j] = npu_h(out[i * n + j]);
    }
}

static void transpose(const float *src, int64_t rows, int64_t cols, float *dst)
{
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) dst[j * rows + i] = src[i * cols + j];
}

static void to_values(const uint16_t *bits, int64_t n, float *out)
{
    for (int64_t i = 0; i < n; i++) out[i] = npu_half_value(bits[i]);
}

static void to_bits(const float *values, int64_t n, uint16_t *out)
{
    /* every value here is already an fp16 value, so this is exact */
    for (int64_t i = 0; i < n; i++) out[i] = npu_h_bits(values[i]);
}

/* A fixed hash of an element index (splitmix64 finaliser), for the exp jitter variant. */
static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static bool head_in_domain(const npu_head *hd, int64_t s_multiple)
{
    return hd->s >= s_multiple && hd->s % s_multiple == 0 && hd->d >= 16 && hd->d % 16 == 0 &&
           hd->keep_prob > 0.0 && hd->keep_prob <= 1.0;
}

/* G[i][j] = h(M * g) with g = h(1 / keep_prob) computed in double (step 8). */
static float keep_factor(const npu_head *hd, float g, int64_t idx)
{
    float mbyte = hd->keep ? (float)hd->keep[idx] : 1.0f;
    return npu_h(mbyte * g);
}

/* ---------------------------------------------------------------------------------------------
 * Forward
 * ------------------------------------------------------------------------------------------- */

npu_model_status npu_forward_head(const npu_head *hd, uint16_t *probs, uint16_t *ctx,
                                  const npu_variant *variant)
{
    static const npu_variant spec = {NPU_CUBE_SEQUENTIAL, false, 0};
    const npu_variant *var = variant ? variant : &spec;
    unsigned mut = var->mutations;
    if (!head_in_domain(hd, 16)) return NPU_MODEL_DOMAIN;
    int64_t s = hd->s, d = hd->d, nblk = s / LANES;
    size_t ss = (size_t)(s * s), sd = (size_t)(s * d);
    float *q = malloc(sd * sizeof *q), *k = malloc(sd * sizeof *k), *v = malloc(sd * sizeof *v);
    float *vt = malloc(sd * sizeof *vt), *a = malloc(ss * sizeof *a), *pd = malloc(ss * sizeof *pd);
    float *e32 = malloc((size_t)s * sizeof *e32), *e = malloc((size_t)s * sizeof *e);
    float *scratch = malloc((size_t)s * sizeof *scratch), *c = malloc(sd * sizeof *c);
    if (!q || !k || !v || !vt || !a || !pd || !e32 || !e || !scratch || !c) {
        free(q), free(k), free(v), free(vt), free(a);
        free(pd), free(e32), free(e), free(scratch), free(c);
        return NPU_MODEL_NO_MEMORY;
    }
    to_values(hd->q, (int64_t)sd, q);
    to_values(hd->k, (int64_t)sd, k);
    to_values(hd->v, (int64_t)sd, v);

    /* 1. A = h(q . k^T), cube */
    cube(q, k, s, s, d, a, var->cube_order, (mut & NPU_MUT_NO_H_SCORE) != 0);
    /* 2. sc = h(scale) */
    float sc =
        (mut & NPU_MUT_FP32_SCALE) ? (float)hd->scale : npu_half_value(npu_h_bits(hd->scale));
    /* 8. g = h(1 / keep_prob), the division in double */
    float g = npu_half_value(npu_h_bits(1.0 / hd->keep_prob));

    for (int64_t i = 0; i < s; i++) {
        float *x = a + i * s; /* X overwrites A row by row */
        /* 3. X = h(h(A * sc) + mask) */
        for (int64_t j = 0; j < s; j++) {
            float mval = hd->mask ? npu_half_value(hd->mask[i * s + j]) : 0.0f;
            x[j] = npu_h(npu_h(x[j] * sc) + mval);
        }
        /* 4. m by the block reduction; Y = h(X - m) */
        float m;
        if (mut & NPU_MUT_TRUE_MAX) {
            m = x[0];
            for (int64_t j = 1; j < s; j++) m = max_nan(m, x[j]);
        } else {
            m = row_max_with(x, nblk, scratch);
        }
        for (int64_t j = 0; j < s; j++) {
            float y = x[j] - m;
            if (!(mut & NPU_MUT_NO_H_Y)) y = npu_h(y);
            /* 5. E32 = exp(Y) in fp32, E = h(E32) */
            float ex = expf(y);
            if (var->exp_jitter) {
                uint64_t hsh = mix64((uint64_t)(i * s + j));
                if (hsh & 1) ex = nextafterf(ex, (hsh & 2) ? INFINITY : 0.0f);
            }
            e32[j] = ex;
            e[j] = npu_h(ex);
        }
        float *prow = pd + i * s;
        if (mut & NPU_MUT_FP32_SOFTMAX) {
            float z = row_sum_with(e32, nblk, scratch, false);
            for (int64_t j = 0; j < s; j++) prow[j] = npu_h(e32[j] / z);
        } else {
            /* 6. Z and R = h(1 / Z). Ambiguity: 1 / Z is the fp32 quotient, then h. */
            float z;
            if (s == 128 && !(mut & NPU_MUT_NO_S128_PATH)) {
                /* the trans_cube path: the cube sums the fp16 exps with fp32 accumulation */
                float acc = 0;
                for (int64_t j = 0; j < s; j++) acc += e[j];
                z = npu_h(acc);
            } else {
                z = row_sum_with(e32, nblk, scratch, false);
            }
            float r = npu_h(1.0f / z);
            /* 7. P = h(E * R) */
            for (int64_t j = 0; j < s; j++) prow[j] = npu_h(e[j] * r);
        }
        if (probs) to_bits(prow, s, probs + i * s);
        /* 8. dropout: G = h(M * g), Pd = h(G * P); keep_prob = 1 leaves P as it is */
        if (hd->keep_prob != 1.0) {
            for (int64_t j = 0; j < s; j++) {
                if (mut & NPU_MUT_FP32_DROPOUT) {
                    float mbyte = hd->keep ? (float)hd->keep[i * s + j] : 1.0f;
                    prow[j] = npu_h(prow[j] * mbyte / (float)hd->keep_prob);
                } else {
                    prow[j] = npu_h(keep_factor(hd, g, i * s + j) * prow[j]);
                }
            }
        }
    }
    /* 9. C = h(Pd . v), cube */
    if (ctx) {
        transpose(v, s, d, vt);
        cube(pd, vt, s, d, s, c, var->cube_order, false);
        to_bits(c, (int64_t)sd, ctx);
    }
    free(q), free(k), free(v), free(vt), free(a);
    free(pd), free(e32), free(e), free(scratch), free(c);
    return NPU_MODEL_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Backward
 * ------------------------------------------------------------------------------------------- */

npu_model_status npu_backward_head(const npu_head *hd, const uint16_t *dout, const uint16_t *probs,
                                   uint16_t *dq, uint16_t *dk, uint16_t *dv,
                                   const npu_variant *variant)
{
    static const npu_variant spec = {NPU_CUBE_SEQUENTIAL, false, 0};
    const npu_variant *var = variant ? variant : &spec;
    unsigned mut = var->mutations;
    if (!head_in_domain(hd, 64)) return NPU_MODEL_DOMAIN;
    int64_t s = hd->s, d = hd->d, nblk = s / LANES;
    size_t ss = (size_t)(s * s), sd = (size_t)(s * d);
    float *q = malloc(sd * sizeof *q), *k = malloc(sd * sizeof *k), *v = malloc(sd * sizeof *v);
    float *o = malloc(sd * sizeof *o), *ot = malloc(sd * sizeof *ot), *xt = malloc(sd * sizeof *xt);
    float *p = malloc(ss * sizeof *p), *gm = malloc(ss * sizeof *gm), *mt = malloc(ss * sizeof *mt);
    float *dp = malloc(ss * sizeof *dp), *res = malloc(sd * sizeof *res);
    float *row = malloc((size_t)s * sizeof *row), *scratch = malloc((size_t)s * sizeof *scratch);
    if (!q || !k || !v || !o || !ot || !xt || !p || !gm || !mt || !dp || !res || !row || !scratch) {
        free(q), free(k), free(v), free(o), free(ot), free(xt), free(p), free(gm), free(mt);
        free(dp), free(res), free(row), free(scratch);
        return NPU_MODEL_NO_MEMORY;
    }
    to_values(hd->q, (int64_t)sd, q);
    to_values(hd->k, (int64_t)sd, k);
    to_values(hd->v, (int64_t)sd, v);
    to_values(dout, (int64_t)sd, o);
    to_values(probs, (int64_t)ss, p);
    float sc = npu_half_value(npu_h_bits(hd->scale));
    float g = npu_half_value(npu_h_bits(1.0 / hd->keep_prob));

    /* 1. Pd = h(G * P); dV = h(Pd^T . dO), cube (summed over i) */
    for (int64_t i = 0; i < s; i++)
        for (int64_t j = 0; j < s; j++) {
            gm[i * s + j] = keep_factor(hd, g, i * s + j);
            mt[j * s + i] = npu_h(gm[i * s + j] * p[i * s + j]); /* Pd, transposed */
        }
    transpose(o, s, d, ot);
    cube(mt, ot, s, d, s, res, var->cube_order, false);
    to_bits(res, (int64_t)sd, dv);

    /* 2. dPd = h(dO . v^T), cube; dP = h(G * dPd) */
    cube(o, v, s, s, d, dp, var->cube_order, (mut & NPU_MUT_NO_H_DP) != 0);
    for (size_t t = 0; t < ss; t++) dp[t] = npu_h(gm[t] * dp[t]);

    /* 3. T = h(dP * P); Ps = h(P * sc); r = fp16 row sum of T; U = h(dP - r); dS = h(U * Ps) */
    for (int64_t i = 0; i < s; i++) {
        const float *dpr = dp + i * s, *pr = p + i * s;
        for (int64_t j = 0; j < s; j++) row[j] = npu_h(dpr[j] * pr[j]);
        float r;
        if (mut & NPU_MUT_FP32_BWD_ROWSUM) {
            float acc = 0;
            for (int64_t j = 0; j < s; j++) acc += row[j];
            r = npu_h(acc);
        } else {
            r = row_sum_with(row, nblk, scratch, true);
        }
        for (int64_t j = 0; j < s; j++) {
            float ds;
            if (mut & NPU_MUT_NO_H_DS_CHAIN)
                ds = npu_h((dpr[j] - r) * pr[j] * sc);
            else
                ds = npu_h(npu_h(dpr[j] - r) * npu_h(pr[j] * sc));
            mt[i * s + j] = ds; /* dS, reusing the Pd buffer */
        }
    }
    /* 4. dQ = h(dS . k), dK = h(dS^T . q), cubes */
    transpose(k, s, d, xt);
    cube(mt, xt, s, d, s, res, var->cube_order, false);
    to_bits(res, (int64_t)sd, dq);
    transpose(mt, s, s, dp); /* dS^T, reusing the dP buffer */
    transpose(q, s, d, xt);
    cube(dp, xt, s, d, s, res, var->cube_order, false);
    to_bits(res, (int64_t)sd, dk);

    free(q), free(k), free(v), free(o), free(ot), free(xt), free(p), free(gm), free(mt);
    free(dp), free(res), free(row), free(scratch);
    return NPU_MODEL_OK;
}
