/* NEON (aarch64 Advanced SIMD) array conversions, bit-identical to fp16_portable.c for every
 * input.
 *
 * fp16: FCVTL / FCVTN (vcvt_f32_f16 / vcvt_f16_f32 and their _high forms). What they compute
 * depends on FPCR; with the fields below at their defaults (as Linux starts every process) they
 * are exactly the portable definition, checked for all 2^16 halves and a sweep of all 2^32
 * floats by tests/test_fp16.c:
 *   - RMode (bits 23:22) = 0: narrowing rounds to nearest, ties to even, overflowing to inf from
 *     65520 on; widening is exact;
 *   - DN (bit 25) = 0: a NaN keeps its sign and its payload (the top 10 bits when narrowing,
 *     shifted to the top when widening) and gets the quiet bit, as F16C and the portable code;
 *   - AHP (bit 26) = 0: IEEE half precision, not the alternative format without inf and NaN;
 *   - AH (bit 1, FEAT_AFP) = 0: the standard handling of denormal inputs and NaNs.
 * FZ (bit 24) may be set: it flushes a denormal float input, which becomes a signed zero half
 * anyway (every denormal float is below 2^-25), and it never applies to the half side (the
 * conversions ignore FZ16). If any of those fields differs, the entries fall back to the
 * portable scalar conversions, so the result never depends on the caller's FPCR. FPCR is read
 * once per call.
 * bf16: integer arithmetic, the same formulas as fasi_f32_to_bf16 / fasi_bf16_to_f32.
 *
 * Every entry is 2-D (see isa.h), built by FASI_ROWS_2D (layout/rows2d.h) from an inlined 1-D
 * row body; a row of 16 elements (one row of an NZ fractal) is one pass of its 16-wide loop.
 *
 * Pointers need only the natural alignment of their element type. A row tail shorter than one
 * vector goes through a zero-padded stack block, so every element takes the same vector path and
 * nothing outside the rectangle is read or written. */
#include <arm_neon.h>
#include <string.h>

#include "layout/layout.h"
#include "layout/rows2d.h"

/* ---- FPCR ------------------------------------------------------------------------------------ */

#define FPCR_AH (1u << 1)
#define FPCR_RMODE (3u << 22)
#define FPCR_DN (1u << 25)
#define FPCR_AHP (1u << 26)
#define FPCR_CONVERSION_FIELDS (FPCR_AH | FPCR_RMODE | FPCR_DN | FPCR_AHP)

/* Whether FCVTL / FCVTN compute the portable definition under the current FPCR. */
static inline bool hardware_conversions_exact(void)
{
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    return (fpcr & FPCR_CONVERSION_FIELDS) == 0;
}

bool fasi_neon_fp16_hardware_exact(void) { return hardware_conversions_exact(); }

/* ---- fp16 -> fp32 ---------------------------------------------------------------------------- */

static inline float32x4_t f16x4_to_f32(uint16x4_t h)
{
    return vcvt_f32_f16(vreinterpret_f16_u16(h));
}

FASI_ROW_INLINE void f16_to_f32_row(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        uint16x8_t h0 = vld1q_u16(src + i), h1 = vld1q_u16(src + i + 8);
        vst1q_f32(dst + i, f16x4_to_f32(vget_low_u16(h0)));
        vst1q_f32(dst + i + 4, vcvt_high_f32_f16(vreinterpretq_f16_u16(h0)));
        vst1q_f32(dst + i + 8, f16x4_to_f32(vget_low_u16(h1)));
        vst1q_f32(dst + i + 12, vcvt_high_f32_f16(vreinterpretq_f16_u16(h1)));
    }
    for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, f16x4_to_f32(vld1_u16(src + i)));
    if (i < n) {
        size_t m = n - i;
        uint16_t hb[4] = {0};
        float fb[4];
        memcpy(hb, src + i, m * sizeof *src);
        vst1q_f32(fb, f16x4_to_f32(vld1_u16(hb)));
        memcpy(dst + i, fb, m * sizeof *dst);
    }
}

/* ---- fp32 -> fp16 ---------------------------------------------------------------------------- */

static inline uint16x8_t f32x8_to_f16(float32x4_t lo, float32x4_t hi)
{
    return vreinterpretq_u16_f16(vcvt_high_f16_f32(vcvt_f16_f32(lo), hi));
}

FASI_ROW_INLINE void f32_to_f16_row(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        vst1q_u16(dst + i, f32x8_to_f16(vld1q_f32(src + i), vld1q_f32(src + i + 4)));
        vst1q_u16(dst + i + 8, f32x8_to_f16(vld1q_f32(src + i + 8), vld1q_f32(src + i + 12)));
    }
    for (; i < n; i += 8) {
        size_t m = n - i < 8 ? n - i : 8;
        if (m == 8) {
            vst1q_u16(dst + i, f32x8_to_f16(vld1q_f32(src + i), vld1q_f32(src + i + 4)));
        } else {
            float fb[8] = {0};
            uint16_t hb[8];
            memcpy(fb, src + i, m * sizeof *src);
            vst1q_u16(hb, f32x8_to_f16(vld1q_f32(fb), vld1q_f32(fb + 4)));
            memcpy(dst + i, hb, m * sizeof *dst);
        }
    }
}

/* ---- bf16 -> fp32 ---------------------------------------------------------------------------- */

/* A NaN gets its quiet bit set, as in fasi_bf16_to_f32. */
static inline float32x4_t bf16_widened_to_f32(uint32x4_t u)
{
    uint32x4_t a = vandq_u32(u, vdupq_n_u32(0x7fffffffu));
    uint32x4_t nan = vcgtq_u32(a, vdupq_n_u32(0x7f800000u));
    return vreinterpretq_f32_u32(vorrq_u32(u, vandq_u32(nan, vdupq_n_u32(0x00400000u))));
}

static inline void bf16x8_to_f32(uint16x8_t b, float *dst)
{
    vst1q_f32(dst, bf16_widened_to_f32(vshll_n_u16(vget_low_u16(b), 16)));
    vst1q_f32(dst + 4, bf16_widened_to_f32(vshll_high_n_u16(b, 16)));
}

FASI_ROW_INLINE void bf16_to_f32_row(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        bf16x8_to_f32(vld1q_u16(src + i), dst + i);
        bf16x8_to_f32(vld1q_u16(src + i + 8), dst + i + 8);
    }
    for (; i < n; i += 8) {
        size_t m = n - i < 8 ? n - i : 8;
        if (m == 8) {
            bf16x8_to_f32(vld1q_u16(src + i), dst + i);
        } else {
            uint16_t bb[8] = {0};
            float fb[8];
            memcpy(bb, src + i, m * sizeof *src);
            bf16x8_to_f32(vld1q_u16(bb), fb);
            memcpy(dst + i, fb, m * sizeof *dst);
        }
    }
}

/* ---- fp32 -> bf16 ---------------------------------------------------------------------------- */

/* 32-bit lanes holding the bf16 result in their high half: a NaN keeps its top bits with the
 * quiet bit (0x00400000) set; anything else gets u + 0x7fff + lsb (round to nearest even; the
 * carry may propagate into the exponent, reaching infinity exactly when RNE overflows). */
static inline uint32x4_t f32x4_to_bf16_hi(float32x4_t x)
{
    uint32x4_t u = vreinterpretq_u32_f32(x);
    uint32x4_t a = vandq_u32(u, vdupq_n_u32(0x7fffffffu));
    uint32x4_t nan = vcgtq_u32(a, vdupq_n_u32(0x7f800000u));
    uint32x4_t lsb = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
    uint32x4_t rounded = vaddq_u32(vaddq_u32(u, vdupq_n_u32(0x7fffu)), lsb);
    uint32x4_t quiet = vorrq_u32(u, vdupq_n_u32(0x00400000u));
    return vbslq_u32(nan, quiet, rounded);
}

/* The high halves of the lanes of lo, then of hi (little endian: the odd 16-bit elements). */
static inline uint16x8_t f32x8_to_bf16(float32x4_t lo, float32x4_t hi)
{
    return vuzp2q_u16(vreinterpretq_u16_u32(f32x4_to_bf16_hi(lo)),
                      vreinterpretq_u16_u32(f32x4_to_bf16_hi(hi)));
}

FASI_ROW_INLINE void f32_to_bf16_row(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        vst1q_u16(dst + i, f32x8_to_bf16(vld1q_f32(src + i), vld1q_f32(src + i + 4)));
        vst1q_u16(dst + i + 8, f32x8_to_bf16(vld1q_f32(src + i + 8), vld1q_f32(src + i + 12)));
    }
    for (; i < n; i += 8) {
        size_t m = n - i < 8 ? n - i : 8;
        if (m == 8) {
            vst1q_u16(dst + i, f32x8_to_bf16(vld1q_f32(src + i), vld1q_f32(src + i + 4)));
        } else {
            float fb[8] = {0};
            uint16_t bb[8];
            memcpy(fb, src + i, m * sizeof *src);
            vst1q_u16(bb, f32x8_to_bf16(vld1q_f32(fb), vld1q_f32(fb + 4)));
            memcpy(dst + i, bb, m * sizeof *dst);
        }
    }
}

/* ---- the 2-D entries ------------------------------------------------------------------------ */

/* Portable scalar rows for a non-default FPCR (see the top of the file). */
FASI_ROW_INLINE void f16_to_f32_soft_row(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = fasi_f16_to_f32(src[i]);
}

FASI_ROW_INLINE void f32_to_f16_soft_row(const float *src, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = fasi_f32_to_f16(src[i]);
}

FASI_ROWS_2D(f16_to_f32_hw, uint16_t, float, f16_to_f32_row)
FASI_ROWS_2D(f32_to_f16_hw, float, uint16_t, f32_to_f16_row)
FASI_ROWS_2D(f16_to_f32_soft, uint16_t, float, f16_to_f32_soft_row)
FASI_ROWS_2D(f32_to_f16_soft, float, uint16_t, f32_to_f16_soft_row)
FASI_ROWS_2D(bf16_to_f32_neon, uint16_t, float, bf16_to_f32_row)
FASI_ROWS_2D(f32_to_bf16_neon, float, uint16_t, f32_to_bf16_row)

static void f16_to_f32_neon(const uint16_t *src, size_t lds, float *dst, size_t ldd, size_t rows,
                            size_t cols)
{
    if (hardware_conversions_exact())
        f16_to_f32_hw(src, lds, dst, ldd, rows, cols);
    else
        f16_to_f32_soft(src, lds, dst, ldd, rows, cols);
}

static void f32_to_f16_neon(const float *src, size_t lds, uint16_t *dst, size_t ldd, size_t rows,
                            size_t cols)
{
    if (hardware_conversions_exact())
        f32_to_f16_hw(src, lds, dst, ldd, rows, cols);
    else
        f32_to_f16_soft(src, lds, dst, ldd, rows, cols);
}

void fasi_register_fp16_neon(fasi_kernels *k)
{
    k->f16_to_f32 = f16_to_f32_neon;
    k->f32_to_f16 = f32_to_f16_neon;
    k->bf16_to_f32 = bf16_to_f32_neon;
    k->f32_to_bf16 = f32_to_bf16_neon;
}
