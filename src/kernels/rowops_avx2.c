/* AVX2 row kernels of the softmax / dropout passes.
 *
 * Same formulas and operation order as rowops_portable.c (mul and add kept separate, this file
 * compiled with -mfma but -ffp-contract=off, except the multiply-adds exp_poly.h fuses, which
 * use the FMA intrinsics where portable C calls fmaf), so every kernel
 * except row_max is bit-identical to the portable one; row_max is equal in value. Sums follow
 * the canonical 32-way order of kernels/exp_poly.h: four 8-lane accumulators hold partial sums
 * 0-7, 8-15, 16-23 and 24-31. Tails use masked loads and stores (which never touch memory
 * outside the row) or scalar code computing the same expression. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/exp_poly.h"
#include "kernels/rowops.h"

/* Lanes i < m set, for 0 <= m <= 8. */
static inline __m256i tail_mask(size_t m)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* fasi_exp on 8 lanes, step for step. */
static inline __m256 exp8(__m256 x)
{
    /* Ordered compare: a NaN lane is not `zero`. max(a, b) and min(a, b) return b when either
     * is NaN, so a NaN input passes through both clamps. */
    __m256 zero = _mm256_cmp_ps(x, _mm256_set1_ps(FASI_EXP_LOW), _CMP_LT_OQ);
    __m256 xc = _mm256_max_ps(_mm256_set1_ps(FASI_EXP_LOW), x);
    xc = _mm256_min_ps(_mm256_set1_ps(FASI_EXP_HIGH), xc);
    __m256 t = _mm256_fmadd_ps(xc, _mm256_set1_ps(FASI_EXP_LOG2E), _mm256_set1_ps(FASI_EXP_ROUND));
    __m256 kf = _mm256_sub_ps(t, _mm256_set1_ps(FASI_EXP_ROUND));
    __m256 r = _mm256_fnmadd_ps(kf, _mm256_set1_ps(FASI_EXP_LN2_HI), xc);
    r = _mm256_fnmadd_ps(kf, _mm256_set1_ps(FASI_EXP_LN2_LO), r);
    __m256 q = _mm256_set1_ps(FASI_EXP_C4);
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(FASI_EXP_C3));
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(FASI_EXP_C2));
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(FASI_EXP_C1));
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(FASI_EXP_C0));
    __m256 y = _mm256_add_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(_mm256_mul_ps(r, r), q, r));
    __m256 s = _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(127)), 23));
    return _mm256_andnot_ps(zero, _mm256_mul_ps(y, s));
}

/* Canonical reduction of partial sums 0-7 (a0), 8-15 (a1), 16-23 (a2), 24-31 (a3). */
static inline float reduce_lanes(__m256 a0, __m256 a1, __m256 a2, __m256 a3)
{
    __m256 c = _mm256_add_ps(_mm256_add_ps(a0, a2), _mm256_add_ps(a1, a3));
    __m128 v = _mm_add_ps(_mm256_castps256_ps128(c), _mm256_extractf128_ps(c, 1));
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    v = _mm_add_ss(v, _mm_shuffle_ps(v, v, 1));
    return _mm_cvtss_f32(v);
}

static float first_nan(const float *x, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        if (isnan(x[j])) return x[j];
    }
    return NAN;
}

static float row_max(const float *x, size_t n)
{
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
    __m256 bad = _mm256_setzero_ps();
    size_t j = 0;
    for (; j + 32 <= n; j += 32) {
        __m256 v0 = _mm256_loadu_ps(x + j), v1 = _mm256_loadu_ps(x + j + 8);
        __m256 v2 = _mm256_loadu_ps(x + j + 16), v3 = _mm256_loadu_ps(x + j + 24);
        m0 = _mm256_max_ps(m0, v0);
        m1 = _mm256_max_ps(m1, v1);
        m2 = _mm256_max_ps(m2, v2);
        m3 = _mm256_max_ps(m3, v3);
        bad = _mm256_or_ps(bad, _mm256_or_ps(_mm256_cmp_ps(v0, v1, _CMP_UNORD_Q),
                                             _mm256_cmp_ps(v2, v3, _CMP_UNORD_Q)));
    }
    for (; j < n; j += 8) {
        __m256 v;
        if (n - j >= 8) {
            v = _mm256_loadu_ps(x + j);
        } else {
            __m256i mask = tail_mask(n - j);
            v = _mm256_blendv_ps(ninf, _mm256_maskload_ps(x + j, mask), _mm256_castsi256_ps(mask));
        }
        m0 = _mm256_max_ps(m0, v);
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
    if (_mm256_movemask_ps(bad)) return first_nan(x, n);
    __m256 m = _mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3));
    __m128 v = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    v = _mm_max_ps(v, _mm_movehl_ps(v, v));
    v = _mm_max_ss(v, _mm_shuffle_ps(v, v, 1));
    return _mm_cvtss_f32(v);
}

/* exp(x[j..] - shift) for the 8 (or n - j, if fewer) elements at j, stored back; lanes past the
 * row are +0 in the returned vector. */
static inline __m256 exp_full(float *x, __m256 shift)
{
    __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x), shift));
    _mm256_storeu_ps(x, e);
    return e;
}

static inline __m256 exp_chunk(float *x, size_t j, size_t n, __m256 shift)
{
    if (n - j >= 8) return exp_full(x + j, shift);
    __m256i mask = tail_mask(n - j);
    __m256 e = exp8(_mm256_sub_ps(_mm256_maskload_ps(x + j, mask), shift));
    e = _mm256_and_ps(e, _mm256_castsi256_ps(mask));
    _mm256_maskstore_ps(x + j, mask, e);
    return e;
}

static float exp_shift_sum(float *x, size_t n, float shift)
{
    const __m256 sh = _mm256_set1_ps(shift);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t j = 0;
    for (; j + 32 <= n; j += 32) {
        a0 = _mm256_add_ps(a0, exp_full(x + j, sh));
        a1 = _mm256_add_ps(a1, exp_full(x + j + 8, sh));
        a2 = _mm256_add_ps(a2, exp_full(x + j + 16, sh));
        a3 = _mm256_add_ps(a3, exp_full(x + j + 24, sh));
    }
    if (j < n) a0 = _mm256_add_ps(a0, exp_chunk(x, j, n, sh));
    if (j + 8 < n) a1 = _mm256_add_ps(a1, exp_chunk(x, j + 8, n, sh));
    if (j + 16 < n) a2 = _mm256_add_ps(a2, exp_chunk(x, j + 16, n, sh));
    if (j + 24 < n) a3 = _mm256_add_ps(a3, exp_chunk(x, j + 24, n, sh));
    return reduce_lanes(a0, a1, a2, a3);
}

static void scale(float *x, size_t n, float s)
{
    const __m256 vs = _mm256_set1_ps(s);
    size_t j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), vs));
    for (; j < n; j++) x[j] *= s;
}

static void add(float *x, const float *y, size_t n)
{
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        _mm256_storeu_ps(x + j, _mm256_add_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(y + j)));
    }
    for (; j < n; j++) x[j] += y[j];
}

/* a[j..] * b[j..] for the 8 (or fewer) elements at j; lanes past the row are +0. */
static inline __m256 mul_full(const float *a, const float *b)
{
    return _mm256_mul_ps(_mm256_loadu_ps(a), _mm256_loadu_ps(b));
}

static inline __m256 mul_chunk(const float *a, const float *b, size_t j, size_t n)
{
    if (n - j >= 8) return mul_full(a + j, b + j);
    __m256i mask = tail_mask(n - j);
    return _mm256_mul_ps(_mm256_maskload_ps(a + j, mask), _mm256_maskload_ps(b + j, mask));
}

static float dot(const float *a, const float *b, size_t n)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t j = 0;
    for (; j + 32 <= n; j += 32) {
        a0 = _mm256_add_ps(a0, mul_full(a + j, b + j));
        a1 = _mm256_add_ps(a1, mul_full(a + j + 8, b + j + 8));
        a2 = _mm256_add_ps(a2, mul_full(a + j + 16, b + j + 16));
        a3 = _mm256_add_ps(a3, mul_full(a + j + 24, b + j + 24));
    }
    if (j < n) a0 = _mm256_add_ps(a0, mul_chunk(a, b, j, n));
    if (j + 8 < n) a1 = _mm256_add_ps(a1, mul_chunk(a, b, j + 8, n));
    if (j + 16 < n) a2 = _mm256_add_ps(a2, mul_chunk(a, b, j + 16, n));
    if (j + 24 < n) a3 = _mm256_add_ps(a3, mul_chunk(a, b, j + 24, n));
    return reduce_lanes(a0, a1, a2, a3);
}

static void dropout_apply(float *x, const uint8_t *keep, size_t n, float s)
{
    const __m256 vs = _mm256_set1_ps(s);
    const __m256i zero = _mm256_setzero_si256();
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256i k =
            _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(keep + j)));
        __m256 drop = _mm256_castsi256_ps(_mm256_cmpeq_epi32(k, zero));
        _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), _mm256_andnot_ps(drop, vs)));
    }
    for (; j < n; j++) x[j] = x[j] * (keep[j] ? s : 0.0f);
}

/* keep[j .. j+7] != 0 as a lane mask */
static inline __m256 kept_lanes(const uint8_t *keep)
{
    __m256i k = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)keep));
    return _mm256_castsi256_ps(
        _mm256_xor_si256(_mm256_cmpeq_epi32(k, _mm256_setzero_si256()), _mm256_set1_epi32(-1)));
}

static void probs_dropout(float *x, const uint8_t *keep, size_t n, float inv, float s,
                          uint16_t *p16)
{
    const __m256 vinv = _mm256_set1_ps(inv), vs = _mm256_set1_ps(s);
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 p = _mm256_mul_ps(_mm256_loadu_ps(x + j), vinv);
        if (p16)
            _mm_storeu_si128((__m128i *)(void *)(p16 + j),
                             _mm256_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT));
        if (keep) p = _mm256_mul_ps(p, _mm256_and_ps(kept_lanes(keep + j), vs));
        _mm256_storeu_ps(x + j, p);
    }
    for (; j < n; j++) {
        float p = x[j] * inv;
        if (p16) p16[j] = _cvtss_sh(p, _MM_FROUND_TO_NEAREST_INT);
        x[j] = keep ? p * (keep[j] ? s : 0.0f) : p;
    }
}

static void softmax_bwd(float *dp, const float *p, size_t n, float c, float s)
{
    const __m256 vc = _mm256_set1_ps(c), vs = _mm256_set1_ps(s);
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 sp = _mm256_mul_ps(vs, _mm256_loadu_ps(p + j));
        _mm256_storeu_ps(dp + j, _mm256_mul_ps(sp, _mm256_sub_ps(_mm256_loadu_ps(dp + j), vc)));
    }
    for (; j < n; j++) dp[j] = (s * p[j]) * (dp[j] - c);
}

/* ---- NPU precision mode: each operation rounded to fp16 (h) as written in common/isa.h ----
 * h is one F16C round trip (round to nearest even from the immediate, whatever MXCSR says),
 * which the portable conversion reproduces bit for bit. Row tails run the same vector body on
 * a zero-padded copy of the last elements, and only those elements are copied back. */

static inline __m256 h8(__m256 x)
{
    return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}

static inline float h1(float x) { return _cvtsh_ss(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT)); }

/* keep[0..7] as an all-ones/zero lane mask of the kept lanes */
static inline __m256 kept8(const uint8_t *keep)
{
    __m256i k = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)keep));
    return _mm256_castsi256_ps(
        _mm256_xor_si256(_mm256_cmpeq_epi32(k, _mm256_setzero_si256()), _mm256_set1_epi32(-1)));
}

static inline __m256 logits8(__m256 x, __m256 m, __m256 sc)
{
    return h8(_mm256_add_ps(h8(_mm256_mul_ps(h8(x), sc)), m));
}

static void round_f16(float *x, size_t n)
{
    size_t j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(x + j, h8(_mm256_loadu_ps(x + j)));
    if (j < n) {
        float b[8] = {0};
        memcpy(b, x + j, (n - j) * sizeof *b);
        _mm256_storeu_ps(b, h8(_mm256_loadu_ps(b)));
        memcpy(x + j, b, (n - j) * sizeof *b);
    }
}

static void npu_logits(float *x, const float *mask, size_t n, float sc)
{
    const __m256 vsc = _mm256_set1_ps(sc), zero = _mm256_setzero_ps();
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 m = mask ? _mm256_loadu_ps(mask + j) : zero;
        _mm256_storeu_ps(x + j, logits8(_mm256_loadu_ps(x + j), m, vsc));
    }
    if (j < n) {
        float b[8] = {0}, mb[8] = {0};
        memcpy(b, x + j, (n - j) * sizeof *b);
        if (mask) memcpy(mb, mask + j, (n - j) * sizeof *mb);
        _mm256_storeu_ps(b, logits8(_mm256_loadu_ps(b), _mm256_loadu_ps(mb), vsc));
        memcpy(x + j, b, (n - j) * sizeof *b);
    }
}

static void npu_exp(float *x, float *e32, size_t n, float m)
{
    const __m256 vm = _mm256_set1_ps(m);
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 e = exp8(h8(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm)));
        _mm256_storeu_ps(e32 + j, e);
        _mm256_storeu_ps(x + j, h8(e));
    }
    if (j < n) {
        float b[8] = {0}, eb[8];
        memcpy(b, x + j, (n - j) * sizeof *b);
        __m256 e = exp8(h8(_mm256_sub_ps(_mm256_loadu_ps(b), vm)));
        _mm256_storeu_ps(eb, e);
        _mm256_storeu_ps(b, h8(e));
        memcpy(e32 + j, eb, (n - j) * sizeof *eb);
        memcpy(x + j, b, (n - j) * sizeof *b);
    }
}

static void npu_scale(float *x, size_t n, float s)
{
    const __m256 vs = _mm256_set1_ps(s);
    size_t j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(x + j, h8(_mm256_mul_ps(_mm256_loadu_ps(x + j), vs)));
    if (j < n) {
        float b[8] = {0};
        memcpy(b, x + j, (n - j) * sizeof *b);
        _mm256_storeu_ps(b, h8(_mm256_mul_ps(_mm256_loadu_ps(b), vs)));
        memcpy(x + j, b, (n - j) * sizeof *b);
    }
}

static void npu_dropout(float *x, const uint8_t *keep, size_t n, float g)
{
    const __m256 vg = _mm256_set1_ps(g);
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 gk = _mm256_and_ps(kept8(keep + j), vg);
        _mm256_storeu_ps(x + j, h8(_mm256_mul_ps(_mm256_loadu_ps(x + j), gk)));
    }
    if (j < n) {
        float b[8] = {0};
        uint8_t kb[8] = {0};
        memcpy(b, x + j, (n - j) * sizeof *b);
        memcpy(kb, keep + j, n - j);
        __m256 gk = _mm256_and_ps(kept8(kb), vg);
        _mm256_storeu_ps(b, h8(_mm256_mul_ps(_mm256_loadu_ps(b), gk)));
        memcpy(x + j, b, (n - j) * sizeof *b);
    }
}

static float npu_rowsum(const float *dp, const float *p, float *t, size_t n)
{
    for (size_t j = 0; j < n; j += 8)
        _mm256_storeu_ps(t + j, h8(_mm256_mul_ps(_mm256_loadu_ps(dp + j), _mm256_loadu_ps(p + j))));
    for (size_t blocks = n / 16; blocks > 1; blocks /= 2) {
        if (blocks % 2) {
            blocks--;
            for (size_t l = 0; l < 16; l += 8)
                _mm256_storeu_ps(t + l, h8(_mm256_add_ps(_mm256_loadu_ps(t + l),
                                                         _mm256_loadu_ps(t + blocks * 16 + l))));
        }
        const size_t half = blocks / 2 * 16;
        for (size_t j = 0; j < half; j += 8)
            _mm256_storeu_ps(
                t + j, h8(_mm256_add_ps(_mm256_loadu_ps(t + j), _mm256_loadu_ps(t + j + half))));
    }
    for (size_t w = 8; w >= 1; w /= 2)
        for (size_t l = 0; l < w; l++) t[l] = h1(t[l] + t[l + w]);
    return t[0];
}

static inline __m256 softmax_bwd8(__m256 dp, __m256 p, __m256 r, __m256 sc)
{
    return h8(_mm256_mul_ps(h8(_mm256_sub_ps(dp, r)), h8(_mm256_mul_ps(p, sc))));
}

static void npu_softmax_bwd(float *dp, const float *p, size_t n, float r, float sc)
{
    const __m256 vr = _mm256_set1_ps(r), vsc = _mm256_set1_ps(sc);
    size_t j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(dp + j,
                         softmax_bwd8(_mm256_loadu_ps(dp + j), _mm256_loadu_ps(p + j), vr, vsc));
    if (j < n) {
        float b[8] = {0}, pb[8] = {0};
        memcpy(b, dp + j, (n - j) * sizeof *b);
        memcpy(pb, p + j, (n - j) * sizeof *pb);
        _mm256_storeu_ps(b, softmax_bwd8(_mm256_loadu_ps(b), _mm256_loadu_ps(pb), vr, vsc));
        memcpy(dp + j, b, (n - j) * sizeof *b);
    }
}

void fasi_register_rowops_avx2(fasi_kernels *k)
{
    k->row_max = row_max;
    k->exp_shift_sum = exp_shift_sum;
    k->scale = scale;
    k->add = add;
    k->dot = dot;
    k->dropout_apply = dropout_apply;
    k->softmax_bwd = softmax_bwd;
    k->probs_dropout = probs_dropout;
    k->round_f16 = round_f16;
    k->npu_logits = npu_logits;
    k->npu_exp = npu_exp;
    k->npu_scale = npu_scale;
    k->npu_dropout = npu_dropout;
    k->npu_rowsum = npu_rowsum;
    k->npu_softmax_bwd = npu_softmax_bwd;
}
