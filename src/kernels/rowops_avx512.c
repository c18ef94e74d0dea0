/* AVX-512 row kernels of the softmax / dropout passes.
 *
 * Same formulas and operation order as rowops_portable.c and rowops_avx2.c (mul and add kept
 * separate under -ffp-contract=off, except the multiply-adds exp_poly.h fuses, which use the FMA
 * intrinsics), so every kernel except row_max is
 * bit-identical to the portable one; row_max is equal in value. Sums follow the canonical
 * 32-way order of kernels/exp_poly.h: two 16-lane accumulators hold partial sums 0-15 and
 * 16-31. Tails use masked loads and stores, which never touch memory outside the row. */
#include <immintrin.h>
#include <math.h>

#include "kernels/exp_poly.h"
#include "kernels/rowops.h"

/* Lanes i < m set, for 0 <= m <= 16. */
static inline __mmask16 tail_mask(size_t m) { return (__mmask16)((1u << m) - 1u); }

/* fasi_exp on 16 lanes, step for step. */
static inline __m512 exp16(__m512 x)
{
    /* keep: lanes not below FASI_EXP_LOW (the ordered compare keeps NaN lanes). max(a, b) and
     * min(a, b) return b when either is NaN, so a NaN input passes through both clamps. */
    __mmask16 keep = (__mmask16)~_mm512_cmp_ps_mask(x, _mm512_set1_ps(FASI_EXP_LOW), _CMP_LT_OQ);
    __m512 xc = _mm512_max_ps(_mm512_set1_ps(FASI_EXP_LOW), x);
    xc = _mm512_min_ps(_mm512_set1_ps(FASI_EXP_HIGH), xc);
    __m512 t = _mm512_fmadd_ps(xc, _mm512_set1_ps(FASI_EXP_LOG2E), _mm512_set1_ps(FASI_EXP_ROUND));
    __m512 kf = _mm512_sub_ps(t, _mm512_set1_ps(FASI_EXP_ROUND));
    __m512 r = _mm512_fnmadd_ps(kf, _mm512_set1_ps(FASI_EXP_LN2_HI), xc);
    r = _mm512_fnmadd_ps(kf, _mm512_set1_ps(FASI_EXP_LN2_LO), r);
    __m512 q = _mm512_set1_ps(FASI_EXP_C4);
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(FASI_EXP_C3));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(FASI_EXP_C2));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(FASI_EXP_C1));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(FASI_EXP_C0));
    __m512 y = _mm512_add_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(_mm512_mul_ps(r, r), q, r));
    __m512 s = _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(127)), 23));
    return _mm512_maskz_mov_ps(keep, _mm512_mul_ps(y, s));
}

/* Canonical reduction of partial sums 0-15 (a0) and 16-31 (a1). */
static inline float reduce_lanes(__m512 a0, __m512 a1)
{
    __m512 b = _mm512_add_ps(a0, a1);
    __m256 c = _mm256_add_ps(_mm512_castps512_ps256(b), _mm512_extractf32x8_ps(b, 1));
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
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 m0 = ninf, m1 = ninf;
    __mmask16 bad = 0;
    size_t j = 0;
    for (; j + 32 <= n; j += 32) {
        __m512 v0 = _mm512_loadu_ps(x + j), v1 = _mm512_loadu_ps(x + j + 16);
        m0 = _mm512_max_ps(m0, v0);
        m1 = _mm512_max_ps(m1, v1);
        bad |= _mm512_cmp_ps_mask(v0, v1, _CMP_UNORD_Q);
    }
    for (; j < n; j += 16) {
        __mmask16 mask = n - j >= 16 ? (__mmask16)0xffff : tail_mask(n - j);
        __m512 v = _mm512_mask_loadu_ps(ninf, mask, x + j);
        m0 = _mm512_max_ps(m0, v);
        bad |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    }
    if (bad) return first_nan(x, n);
    __m512 m = _mm512_max_ps(m0, m1);
    __m256 c = _mm256_max_ps(_mm512_castps512_ps256(m), _mm512_extractf32x8_ps(m, 1));
    __m128 v = _mm_max_ps(_mm256_castps256_ps128(c), _mm256_extractf128_ps(c, 1));
    v = _mm_max_ps(v, _mm_movehl_ps(v, v));
    v = _mm_max_ss(v, _mm_shuffle_ps(v, v, 1));
    return _mm_cvtss_f32(v);
}

static inline __m512 exp_full(float *x, __m512 shift)
{
    __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x), shift));
    _mm512_storeu_ps(x, e);
    return e;
}

/* acc + exp(x[j..] - shift) for the 16 (or n - j, if fewer) elements at j, stored back; lanes
 * past the row keep acc unchanged (the same as adding +0). */
static inline __m512 exp_chunk(__m512 acc, float *x, size_t j, size_t n, __m512 shift)
{
    if (n - j >= 16) return _mm512_add_ps(acc, exp_full(x + j, shift));
    __mmask16 mask = tail_mask(n - j);
    __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, x + j), shift));
    _mm512_mask_storeu_ps(x + j, mask, e);
    return _mm512_mask_add_ps(acc, mask, acc, e);
}

static float exp_shift_sum(float *x, size_t n, float shift)
{
    const __m512 sh = _mm512_set1_ps(shift);
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    size_t j = 0;
    for (; j + 32 <= n; j += 32) {
        a0 = _mm512_add_ps(a0, exp_full(x + j, sh));
        a1 = _mm512_add_ps(a1, exp_full(x + j + 16, sh));
    }
    if (j < n) a0 = exp_chunk(a0, x, j, n, sh);
    if (j + 16 < n) a1 = exp_chunk(a1, x, j + 16, n, sh);
    return reduce_lanes(a0, a1);
}

static void scale(float *x, size_t n, float s)
{
    const __m512 vs = _mm512_set1_ps(s);
    size_t j = 0;
    for (; j + 16 <= n; j += 16) _mm512_storeu_ps(x + j, _mm512_mul_ps(_mm512_loadu_ps(x + j), vs));
    if (j < n) {
        __mmask16 mask = tail_mask(n - j);
        _mm512_mask_storeu_ps(x + j, mask, _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, x + j), vs));
    }
}

static void add(float *x, const float *y, size_t n)
{
    size_t j = 0;
    for (; j + 16 <= n; j += 16) {
        _mm512_storeu_ps(x + j, _mm512_add_ps(_mm512_loadu_ps(x + j), _mm512_loadu_ps(y + j)));
    }
    if (j < n) {
        __mmask16 mask = tail_mask(n - j);
        _mm512_mask_storeu_ps(
            x + j, mask,
            _mm512_add_ps(_mm512_maskz_loadu_ps(mask, x + j), _mm512_maskz_loadu_ps(mask, y + j)));
    }
}

static inline __m512 mul_full(const float *a, const float *b)
{
    return _mm512_mul_ps(_mm512_loadu_ps(a), _mm512_loadu_ps(b));
}

/* acc + a[j..] * b[j..] for the 16 (or fewer) elements at j; lanes past the row keep acc. */
static inline __m512 dot_chunk(__m512 acc, const float *a, const float *b, size_t j, size_t n)
{
    if (n - j >= 16) return _mm512_add_ps(acc, mul_full(a + j, b + j));
    __mmask16 mask = tail_mask(n - j);
    __m512 p =
        _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, a + j), _mm512_maskz_loadu_ps(mask, b + j));
    return _mm512_mask_add_ps(acc, mask, acc, p);
}

static float dot(const float *a, const float *b, size_t n)
{
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    size_t j = 0;
    for (; j + 32 <= n; j += 32) {
        a0 = _mm512_add_ps(a0, mul_full(a + j, b + j));
        a1 = _mm512_add_ps(a1, mul_full(a + j + 16, b + j + 16));
    }
    if (j < n) a0 = dot_chunk(a0, a, b, j, n);
    if (j + 16 < n) a1 = dot_chunk(a1, a, b, j + 16, n);
    return reduce_lanes(a0, a1);
}

static void dropout_apply(float *x, const uint8_t *keep, size_t n, float s)
{
    const __m512 vs = _mm512_set1_ps(s);
    size_t j = 0;
    for (; j + 16 <= n; j += 16) {
        __m128i k = _mm_loadu_si128((const __m128i *)(const void *)(keep + j));
        __mmask16 kept = _mm_test_epi8_mask(k, k);
        _mm512_storeu_ps(x + j,
                         _mm512_mul_ps(_mm512_loadu_ps(x + j), _mm512_maskz_mov_ps(kept, vs)));
    }
    if (j < n) {
        __mmask16 mask = tail_mask(n - j);
        __m128i k = _mm_maskz_loadu_epi8(mask, keep + j);
        __mmask16 kept = _mm_test_epi8_mask(k, k);
        _mm512_mask_storeu_ps(
            x + j, mask,
            _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, x + j), _mm512_maskz_mov_ps(kept, vs)));
    }
}

static void probs_dropout(float *x, const uint8_t *keep, size_t n, float inv, float s,
                          uint16_t *p16)
{
    const __m512 vinv = _mm512_set1_ps(inv), vs = _mm512_set1_ps(s);
    for (size_t j = 0; j < n; j += 16) {
        const __mmask16 m = n - j >= 16 ? (__mmask16)0xffff : tail_mask(n - j);
        __m512 p = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + j), vinv);
        if (p16)
            _mm256_mask_storeu_epi16(p16 + j, m, _mm512_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT));
        if (keep) {
            __m128i kb = _mm_maskz_loadu_epi8(m, keep + j);
            p = _mm512_mul_ps(p, _mm512_maskz_mov_ps(_mm_test_epi8_mask(kb, kb), vs));
        }
        _mm512_mask_storeu_ps(x + j, m, p);
    }
}

static void softmax_bwd(float *dp, const float *p, size_t n, float c, float s)
{
    const __m512 vc = _mm512_set1_ps(c), vs = _mm512_set1_ps(s);
    size_t j = 0;
    for (; j + 16 <= n; j += 16) {
        __m512 sp = _mm512_mul_ps(vs, _mm512_loadu_ps(p + j));
        _mm512_storeu_ps(dp + j, _mm512_mul_ps(sp, _mm512_sub_ps(_mm512_loadu_ps(dp + j), vc)));
    }
    if (j < n) {
        __mmask16 mask = tail_mask(n - j);
        __m512 sp = _mm512_mul_ps(vs, _mm512_maskz_loadu_ps(mask, p + j));
        __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(mask, dp + j), vc);
        _mm512_mask_storeu_ps(dp + j, mask, _mm512_mul_ps(sp, d));
    }
}

/* ---- NPU precision mode: each operation rounded to fp16 (h) as written in common/isa.h ----
 * h is one round trip through vcvtps2ph (round to nearest even from the immediate) and
 * vcvtph2ps, which the portable conversion reproduces bit for bit. Tails use masked loads and
 * stores. */

static inline __m512 h16(__m512 x)
{
    return _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}

static inline float h1(float x) { return _cvtsh_ss(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT)); }

/* The lanes of keep[j .. j+m) that are nonzero (m <= 16; lanes past m clear). */
static inline __mmask16 kept16(const uint8_t *keep, __mmask16 valid)
{
    __m128i k = _mm_maskz_loadu_epi8(valid, keep);
    return _mm_test_epi8_mask(k, k);
}

static void round_f16(float *x, size_t n)
{
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 m = n - j >= 16 ? (__mmask16)0xffff : tail_mask(n - j);
        _mm512_mask_storeu_ps(x + j, m, h16(_mm512_maskz_loadu_ps(m, x + j)));
    }
}

static void npu_logits(float *x, const float *mask, size_t n, float sc)
{
    const __m512 vsc = _mm512_set1_ps(sc);
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 m = n - j >= 16 ? (__mmask16)0xffff : tail_mask(n - j);
        __m512 add = mask ? _mm512_maskz_loadu_ps(m, mask + j) : _mm512_setzero_ps();
        __m512 v = h16(_mm512_mul_ps(h16(_mm512_maskz_loadu_ps(m, x + j)), vsc));
        _mm512_mask_storeu_ps(x + j, m, h16(_mm512_add_ps(v, add)));
    }
}

static void npu_exp(float *x, float *e32, size_t n, float mx)
{
    const __m512 vm = _mm512_set1_ps(mx);
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 m = n - j >= 16 ? (__mmask16)0xffff : tail_mask(n - j);
        __m512 e = exp16(h16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + j), vm)));
        _mm512_mask_storeu_ps(e32 + j, m, e);
        _mm512_mask_storeu_ps(x + j, m, h16(e));
    }
}

static void npu_scale(float *x, size_t n, float s)
{
    const __m512 vs = _mm512_set1_ps(s);
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 m = n - j >= 16 ? (__mmask16)0xffff : tail_mask(n - j);
        _mm512_mask_storeu_ps(x + j, m, h16(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + j), vs)));
    }
}

static void npu_dropout(float *x, const uint8_t *keep, size_t n, float g)
{
    const __m512 vg = _mm512_set1_ps(g);
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 m = n - j >= 16 ? (__mmask16)0xffff : tail_mask(n - j);
        __m512 gk = _mm512_maskz_mov_ps(kept16(keep + j, m), vg);
        _mm512_mask_storeu_ps(x + j, m, h16(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + j), gk)));
    }
}

static float npu_rowsum(const float *dp, const float *p, float *t, size_t n)
{
    for (size_t j = 0; j < n; j += 16)
        _mm512_storeu_ps(t + j,
                         h16(_mm512_mul_ps(_mm512_loadu_ps(dp + j), _mm512_loadu_ps(p + j))));
    for (size_t blocks = n / 16; blocks > 1; blocks /= 2) {
        if (blocks % 2) {
            blocks--;
            _mm512_storeu_ps(
                t, h16(_mm512_add_ps(_mm512_loadu_ps(t), _mm512_loadu_ps(t + blocks * 16))));
        }
        const size_t half = blocks / 2 * 16;
        for (size_t j = 0; j < half; j += 16)
            _mm512_storeu_ps(
                t + j, h16(_mm512_add_ps(_mm512_loadu_ps(t + j), _mm512_loadu_ps(t + j + half))));
    }
    for (size_t w = 8; w >= 1; w /= 2)
        for (size_t l = 0; l < w; l++) t[l] = h1(t[l] + t[l + w]);
    return t[0];
}

static void npu_softmax_bwd(float *dp, const float *p, size_t n, float r, float sc)
{
    const __m512 vr = _mm512_set1_ps(r), vsc = _mm512_set1_ps(sc);
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 m = n - j >= 16 ? (__mmask16)0xffff : tail_mask(n - j);
        __m512 u = h16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, dp + j), vr));
        __m512 ps = h16(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, p + j), vsc));
        _mm512_mask_storeu_ps(dp + j, m, h16(_mm512_mul_ps(u, ps)));
    }
}

void fasi_register_rowops_avx512(fasi_kernels *k)
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
