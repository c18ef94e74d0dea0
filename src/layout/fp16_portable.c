/* Portable fp16 / bf16 conversions: the definition every SIMD path must match bit for bit.
 *
 * Finite values and infinities: IEEE 754 round to nearest, ties to even, with gradual underflow
 * (subnormal inputs and results are exact where representable, never flushed), independent of
 * the MXCSR / fenv rounding mode and of DAZ/FTZ.
 *
 * NaNs follow the x86 hardware convention (F16C vcvtph2ps / vcvtps2ph; verified on an AVX2 CPU
 * for all 2^16 halves and all 2^32 floats, with DAZ/FTZ off and on):
 *   - narrowing (float -> half, float -> bf16): the sign and the top payload bits are kept and
 *     the quiet bit is set: half = sign | 0x7e00 | (float payload >> 13),
 *     bf16 = (float bits >> 16) | 0x0040;
 *   - widening (half -> float, bf16 -> float): the sign and payload are kept (shifted to the top
 *     of the float payload) and the quiet bit is set, so a signalling NaN comes out quiet
 *     (vcvtph2ps does this; bf16 follows the same rule, as IEEE 754 prescribes for conversions).
 * Hence half -> float -> half returns h | 0x0200 for a NaN h and h otherwise, and likewise
 * bf16 -> float -> bf16 returns b | 0x0040 for a NaN b. */
#include <math.h>
#include <string.h>

#include "common/bits.h"
#include "layout/layout.h"
#include "layout/rows2d.h"

uint16_t fasi_f32_to_f16(float x)
{
    uint32_t u = fasi_float_to_bits(x);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) {
        /* NaN: quiet it and keep the top payload bits (as F16C does); inf stays inf */
        if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
        return (uint16_t)(sign | 0x7c00u);
    }
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to inf */
    if (a < 0x38800000u) {
        /* below 2^-14: the result is a half subnormal (or zero), in units of 2^-24 */
        uint32_t e = a >> 23;
        if (e < 102) return sign; /* < 2^-25 rounds to zero (2^-25 itself too: tie to even) */
        uint32_t m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14 .. 24 */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t h = (a - 0x38000000u) >> 13;
    uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

float fasi_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu;
    uint32_t m = h & 0x3ffu;
    uint32_t bits;
    if (e == 0) {
        if (m == 0) {
            bits = sign;
        } else {
            int32_t ex = 1;
            while (!(m & 0x400u)) {
                m <<= 1;
                ex--;
            }
            m &= 0x3ffu;
            bits = sign | ((uint32_t)(ex + 112) << 23) | (m << 13);
        }
    } else if (e == 31) {
        bits = sign | 0x7f800000u | (m << 13) | (m ? 0x400000u : 0u); /* NaN comes out quiet */
    } else {
        bits = sign | ((e + 112u) << 23) | (m << 13);
    }
    return fasi_bits_to_float(bits);
}

uint16_t fasi_f32_to_bf16(float x)
{
    uint32_t u = fasi_float_to_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float fasi_bf16_to_f32(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    if ((u & 0x7fffffffu) > 0x7f800000u) u |= 0x00400000u; /* NaN comes out quiet */
    return fasi_bits_to_float(u);
}

/* Round x to float with round-to-odd: the float nearest x toward zero, with its last bit set
 * when inexact. A second rounding of that float to a format with at most 22 significand bits
 * is then the correctly rounded result of x (the sticky bit survives). */
static float round_to_odd_f32(double x)
{
    float f = (float)x;
    if (isnan(x) || isinf(f) || (double)f == x) return f;
    if (fabs((double)f) > fabs(x)) f = nextafterf(f, 0.0f);
    return fasi_bits_to_float(fasi_float_to_bits(f) | 1u);
}

uint16_t fasi_f64_to_f16(double x) { return fasi_f32_to_f16(round_to_odd_f32(x)); }
uint16_t fasi_f64_to_bf16(double x) { return fasi_f32_to_bf16(round_to_odd_f32(x)); }

/* Row bodies over the scalar definitions; the 2-D entries come from FASI_ROWS_2D. */
FASI_ROW_INLINE void f16_to_f32_row(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = fasi_f16_to_f32(src[i]);
}

FASI_ROW_INLINE void f32_to_f16_row(const float *src, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = fasi_f32_to_f16(src[i]);
}

FASI_ROW_INLINE void bf16_to_f32_row(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = fasi_bf16_to_f32(src[i]);
}

FASI_ROW_INLINE void f32_to_bf16_row(const float *src, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = fasi_f32_to_bf16(src[i]);
}

FASI_ROWS_2D(f16_to_f32_2d, uint16_t, float, f16_to_f32_row)
FASI_ROWS_2D(f32_to_f16_2d, float, uint16_t, f32_to_f16_row)
FASI_ROWS_2D(bf16_to_f32_2d, uint16_t, float, bf16_to_f32_row)
FASI_ROWS_2D(f32_to_bf16_2d, float, uint16_t, f32_to_bf16_row)

void fasi_register_fp16_portable(fasi_kernels *k)
{
    k->f16_to_f32 = f16_to_f32_2d;
    k->f32_to_f16 = f32_to_f16_2d;
    k->bf16_to_f32 = bf16_to_f32_2d;
    k->f32_to_bf16 = f32_to_bf16_2d;
}
