/* AVX2 + F16C array conversions, bit-identical to fp16_portable.c for every input.
 *
 * fp16: vcvtph2ps / vcvtps2ph. Rounding comes from the immediate (round to nearest even), never
 * from MXCSR.RC. On x86 these instructions quiet a signalling NaN and keep its top payload bits,
 * and ignore MXCSR.DAZ/FTZ for this conversion, which is exactly the portable definition (checked
 * over all 2^32 floats and all 2^16 halves, with DAZ/FTZ both off and on).
 * bf16: integer arithmetic, the same formulas as fasi_f32_to_bf16 / fasi_bf16_to_f32.
 *
 * Every entry is 2-D (see isa.h), built by FASI_ROWS_2D (layout/rows2d.h) from an inlined 1-D
 * row body; a row of 16 elements (one row of an NZ fractal) is one pass of its 16-wide loop.
 *
 * Pointers need only the natural alignment of their element type. A row tail shorter than one
 * vector goes through a zero-padded stack block, so every element takes the same vector path and
 * nothing outside the rectangle is read or written. */
#include <immintrin.h>
#include <string.h>

#include "layout/layout.h"
#include "layout/rows2d.h"

FASI_ROW_INLINE void f16_to_f32_row(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i h0 = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
        __m128i h1 = _mm_loadu_si128((const __m128i *)(const void *)(src + i + 8));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h0));
        _mm256_storeu_ps(dst + i + 8, _mm256_cvtph_ps(h1));
    }
    for (; i < n; i += 8) {
        size_t m = n - i < 8 ? n - i : 8;
        uint16_t hb[8] = {0};
        float fb[8];
        memcpy(hb, src + i, m * sizeof *src);
        _mm256_storeu_ps(fb, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)hb)));
        memcpy(dst + i, fb, m * sizeof *dst);
    }
}

FASI_ROWS_2D(f16_to_f32_avx2, uint16_t, float, f16_to_f32_row)

FASI_ROW_INLINE void f32_to_f16_row(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i h0 = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
        __m128i h1 = _mm256_cvtps_ph(_mm256_loadu_ps(src + i + 8), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(void *)(dst + i), h0);
        _mm_storeu_si128((__m128i *)(void *)(dst + i + 8), h1);
    }
    for (; i < n; i += 8) {
        size_t m = n - i < 8 ? n - i : 8;
        float fb[8] = {0};
        uint16_t hb[8];
        memcpy(fb, src + i, m * sizeof *src);
        _mm_storeu_si128((__m128i *)(void *)hb,
                         _mm256_cvtps_ph(_mm256_loadu_ps(fb), _MM_FROUND_TO_NEAREST_INT));
        memcpy(dst + i, hb, m * sizeof *dst);
    }
}

FASI_ROWS_2D(f32_to_f16_avx2, float, uint16_t, f32_to_f16_row)

/* A NaN gets its quiet bit set, as in fasi_bf16_to_f32. */
static inline __m256 bf16x8_to_f32(__m128i b)
{
    __m256i u = _mm256_slli_epi32(_mm256_cvtepu16_epi32(b), 16);
    __m256i a = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
    __m256i nan = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7f800000));
    u = _mm256_or_si256(u, _mm256_and_si256(nan, _mm256_set1_epi32(0x00400000)));
    return _mm256_castsi256_ps(u);
}

FASI_ROW_INLINE void bf16_to_f32_row(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i b0 = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
        __m128i b1 = _mm_loadu_si128((const __m128i *)(const void *)(src + i + 8));
        _mm256_storeu_ps(dst + i, bf16x8_to_f32(b0));
        _mm256_storeu_ps(dst + i + 8, bf16x8_to_f32(b1));
    }
    for (; i < n; i += 8) {
        size_t m = n - i < 8 ? n - i : 8;
        uint16_t bb[8] = {0};
        float fb[8];
        memcpy(bb, src + i, m * sizeof *src);
        _mm256_storeu_ps(fb, bf16x8_to_f32(_mm_loadu_si128((const __m128i *)(const void *)bb)));
        memcpy(dst + i, fb, m * sizeof *dst);
    }
}

FASI_ROWS_2D(bf16_to_f32_avx2, uint16_t, float, bf16_to_f32_row)

/* 32-bit lanes holding the bf16 result in their high half: a NaN keeps its top bits with the
 * quiet bit (0x00400000) set; anything else gets u + 0x7fff + lsb (round to nearest even; the
 * carry may propagate into the exponent, reaching infinity exactly when RNE overflows). */
static inline __m256i f32x8_to_bf16_hi(__m256 x)
{
    __m256i u = _mm256_castps_si256(x);
    __m256i a = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
    __m256i nan = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7f800000));
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i rounded = _mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb);
    __m256i quiet = _mm256_or_si256(u, _mm256_set1_epi32(0x00400000));
    return _mm256_srli_epi32(_mm256_blendv_epi8(rounded, quiet, nan), 16);
}

/* Lanes are 0..0xffff after the shift, so the unsigned-saturating pack is exact; the permute
 * undoes the pack's per-128-bit-lane interleave. */
static inline __m256i f32x16_to_bf16(__m256 lo, __m256 hi)
{
    __m256i p = _mm256_packus_epi32(f32x8_to_bf16_hi(lo), f32x8_to_bf16_hi(hi));
    return _mm256_permute4x64_epi64(p, 0xd8);
}

FASI_ROW_INLINE void f32_to_bf16_row(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i b = f32x16_to_bf16(_mm256_loadu_ps(src + i), _mm256_loadu_ps(src + i + 8));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i), b);
    }
    if (i < n) {
        size_t m = n - i;
        float fb[16] = {0};
        uint16_t bb[16];
        memcpy(fb, src + i, m * sizeof *src);
        _mm256_storeu_si256((__m256i *)(void *)bb,
                            f32x16_to_bf16(_mm256_loadu_ps(fb), _mm256_loadu_ps(fb + 8)));
        memcpy(dst + i, bb, m * sizeof *dst);
    }
}

FASI_ROWS_2D(f32_to_bf16_avx2, float, uint16_t, f32_to_bf16_row)

void fasi_register_fp16_avx2(fasi_kernels *k)
{
    k->f16_to_f32 = f16_to_f32_avx2;
    k->f32_to_f16 = f32_to_f16_avx2;
    k->bf16_to_f32 = bf16_to_f32_avx2;
    k->f32_to_bf16 = f32_to_bf16_avx2;
}
