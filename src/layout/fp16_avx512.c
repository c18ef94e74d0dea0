/* AVX-512 array conversions, bit-identical to fp16_portable.c for every input.
 *
 * fp16: the 512-bit forms of vcvtph2ps / vcvtps2ph (AVX512F), with the same semantics as the
 * F16C forms used by fp16_avx2.c: rounding from the immediate (nearest even), signalling NaNs
 * quieted with their top payload bits kept, MXCSR.DAZ/FTZ not applied.
 * bf16: integer arithmetic, the same formulas as fasi_f32_to_bf16 / fasi_bf16_to_f32.
 * AVX512_BF16's vcvtneps2bf16 is deliberately not used: it flushes denormals to zero, which the
 * portable definition does not.
 *
 * Every entry is 2-D (see isa.h), built by FASI_ROWS_2D (layout/rows2d.h) from an inlined 1-D
 * row body; a row of 16 elements (one row of an NZ fractal) is one full-mask 16-lane step.
 *
 * Row tails use masked loads and stores; masked-off lanes are never accessed, so nothing outside
 * the rectangle is read or written. Pointers need only the natural alignment of their element
 * type. */
#include <immintrin.h>

#include "layout/layout.h"
#include "layout/rows2d.h"

static inline __mmask16 tail_mask(size_t m) { return (__mmask16)((1u << m) - 1u); }

FASI_ROW_INLINE void f16_to_f32_row(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i h0 = _mm256_loadu_si256((const __m256i *)(const void *)(src + i));
        __m256i h1 = _mm256_loadu_si256((const __m256i *)(const void *)(src + i + 16));
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(h0));
        _mm512_storeu_ps(dst + i + 16, _mm512_cvtph_ps(h1));
    }
    for (; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i < 16 ? n - i : 16);
        __m256i h = _mm256_maskz_loadu_epi16(k, src + i);
        _mm512_mask_storeu_ps(dst + i, k, _mm512_cvtph_ps(h));
    }
}

FASI_ROWS_2D(f16_to_f32_avx512, uint16_t, float, f16_to_f32_row)

FASI_ROW_INLINE void f32_to_f16_row(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i h0 = _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
        __m256i h1 = _mm512_cvtps_ph(_mm512_loadu_ps(src + i + 16), _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_si256((__m256i *)(void *)(dst + i), h0);
        _mm256_storeu_si256((__m256i *)(void *)(dst + i + 16), h1);
    }
    for (; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i < 16 ? n - i : 16);
        __m512 x = _mm512_maskz_loadu_ps(k, src + i);
        _mm256_mask_storeu_epi16(dst + i, k, _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
    }
}

FASI_ROWS_2D(f32_to_f16_avx512, float, uint16_t, f32_to_f16_row)

/* A NaN gets its quiet bit set, as in fasi_bf16_to_f32. */
static inline __m512 bf16x16_to_f32(__m256i b)
{
    __m512i u = _mm512_slli_epi32(_mm512_cvtepu16_epi32(b), 16);
    __m512i a = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
    __mmask16 nan = _mm512_cmpgt_epi32_mask(a, _mm512_set1_epi32(0x7f800000));
    u = _mm512_mask_or_epi32(u, nan, u, _mm512_set1_epi32(0x00400000));
    return _mm512_castsi512_ps(u);
}

FASI_ROW_INLINE void bf16_to_f32_row(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i b0 = _mm256_loadu_si256((const __m256i *)(const void *)(src + i));
        __m256i b1 = _mm256_loadu_si256((const __m256i *)(const void *)(src + i + 16));
        _mm512_storeu_ps(dst + i, bf16x16_to_f32(b0));
        _mm512_storeu_ps(dst + i + 16, bf16x16_to_f32(b1));
    }
    for (; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i < 16 ? n - i : 16);
        _mm512_mask_storeu_ps(dst + i, k, bf16x16_to_f32(_mm256_maskz_loadu_epi16(k, src + i)));
    }
}

FASI_ROWS_2D(bf16_to_f32_avx512, uint16_t, float, bf16_to_f32_row)

/* 32-bit lanes holding the bf16 result in their low half: a NaN keeps its top bits with the
 * quiet bit (0x00400000) set; anything else gets u + 0x7fff + lsb (round to nearest even; the
 * carry may propagate into the exponent, reaching infinity exactly when RNE overflows). */
static inline __m512i f32x16_to_bf16_lanes(__m512 x)
{
    __m512i u = _mm512_castps_si512(x);
    __m512i a = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
    __mmask16 nan = _mm512_cmpgt_epi32_mask(a, _mm512_set1_epi32(0x7f800000));
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i v = _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb);
    v = _mm512_mask_or_epi32(v, nan, u, _mm512_set1_epi32(0x00400000));
    return _mm512_srli_epi32(v, 16);
}

FASI_ROW_INLINE void f32_to_bf16_row(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i v = f32x16_to_bf16_lanes(_mm512_loadu_ps(src + i));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i), _mm512_cvtepi32_epi16(v));
    }
    if (i < n) {
        __mmask16 k = tail_mask(n - i);
        __m512i v = f32x16_to_bf16_lanes(_mm512_maskz_loadu_ps(k, src + i));
        _mm512_mask_cvtepi32_storeu_epi16(dst + i, k, v);
    }
}

FASI_ROWS_2D(f32_to_bf16_avx512, float, uint16_t, f32_to_bf16_row)

void fasi_register_fp16_avx512(fasi_kernels *k)
{
    k->f16_to_f32 = f16_to_f32_avx512;
    k->f32_to_f16 = f32_to_f16_avx512;
    k->bf16_to_f32 = bf16_to_f32_avx512;
    k->f32_to_bf16 = f32_to_bf16_avx512;
}
