/* AVX-512 dropout keep bytes: Philox4x32-10 on sixteen counters per vector.
 *
 * Lane l of every state vector is the block of group g + l (group = j >> 3), so one pass of
 * ten rounds yields the 128 keep bytes of columns 8g .. 8g + 127 (two 16-bit halves per word).
 * Two such passes are interleaved to hide the multiply latency. The result is bit-identical to
 * the portable dropout_bits for every input: same counter, key, word and half mapping
 * (rng/philox.h), same 64-bit wrap of offset + group, and the same comparison of each half with
 * the threshold. */
#include <immintrin.h>

#include "rng/philox.h"
#include "rng/philox_walk.h"

#define LANES 16
#define PASSES 2

#define XOR3 0x96 /* ternary-logic truth table of a ^ b ^ c */
#define OR3 0xFE  /* ... and of a | b | c */

typedef struct philox16 {
    __m512i c0, c1, c2, c3;
} philox16;

/* 32 x 32 -> 64-bit products of every lane of a with the broadcast constant m: _mm512_mul_epu32
 * only reads even lanes, so odd lanes are moved down, multiplied separately and merged back by
 * masked shuffles (even lanes: high word of the even product; odd lanes: low word of the odd). */
static inline void mulhilo16(__m512i a, __m512i m, __m512i *hi, __m512i *lo)
{
    __m512i even = _mm512_mul_epu32(a, m);
    __m512i odd = _mm512_mul_epu32(_mm512_shuffle_epi32(a, _MM_PERM_DDBB), m);
    *hi = _mm512_mask_shuffle_epi32(odd, (__mmask16)0x5555, even, _MM_PERM_DDBB);
    *lo = _mm512_mask_shuffle_epi32(even, (__mmask16)0xAAAA, odd, _MM_PERM_CCAA);
}

static inline philox16 round16(philox16 s, __m512i m0, __m512i m1, __m512i k0, __m512i k1)
{
    __m512i hi0, lo0, hi1, lo1;
    mulhilo16(s.c0, m0, &hi0, &lo0);
    mulhilo16(s.c2, m1, &hi1, &lo1);
    philox16 r;
    r.c0 = _mm512_ternarylogic_epi32(hi1, s.c1, k0, XOR3);
    r.c1 = lo1;
    r.c2 = _mm512_ternarylogic_epi32(hi0, s.c3, k1, XOR3);
    r.c3 = lo0;
    return r;
}

/* Counters (offset + group + l) for l = 0..15 as 64-bit values split into low and high words;
 * a lane whose low word wrapped carries into its high word, and the high word wraps too. */
static inline void counters16(uint64_t base, __m512i *lo, __m512i *hi)
{
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512i l = _mm512_add_epi32(_mm512_set1_epi32((int)(uint32_t)base), iota);
    __mmask16 wrapped = _mm512_cmplt_epu32_mask(l, iota);
    __m512i h = _mm512_set1_epi32((int)(uint32_t)(base >> 32));
    *lo = l;
    *hi = _mm512_mask_add_epi32(h, wrapped, h, _mm512_set1_epi32(1));
}

/* keep bytes of columns 8 * group .. 8 * group + 128 * passes - 1 into out, 1 <= passes <= 2;
 * thr = threshold for 1 <= threshold <= 2^16 - 1. */
static inline __attribute__((always_inline)) void step(int passes, uint64_t offset, uint64_t group,
                                                       __m512i row_lo, __m512i row_hi,
                                                       const __m512i *rk0, const __m512i *rk1,
                                                       __m512i thr, uint8_t *out)
{
    const __m512i m0 = _mm512_set1_epi32((int)FASI_PHILOX_M0);
    const __m512i m1 = _mm512_set1_epi32((int)FASI_PHILOX_M1);
    philox16 s[PASSES];
    for (int p = 0; p < passes; p++) {
        counters16(offset + group + (uint64_t)(p * LANES), &s[p].c0, &s[p].c1);
        s[p].c2 = row_lo;
        s[p].c3 = row_hi;
    }
    for (int r = 0; r < 10; r++)
        for (int p = 0; p < passes; p++) s[p] = round16(s[p], m0, m1, rk0[r], rk1[r]);
    /* Lane l of `a` is the little-endian word of the keep bytes of columns 0..3 of group g + l
     * (low and high halves of words 0 and 1), lane l of `b` that of columns 4..7; the two
     * permutes interleave them lane by lane into column order. */
    const __m512i low16 = _mm512_set1_epi32(0xffff);
    const __m512i lo_idx =
        _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi_idx =
        _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    for (int p = 0; p < passes; p++) {
        const __m512i w[4] = {s[p].c0, s[p].c1, s[p].c2, s[p].c3};
        __m512i bytes[2];
        for (int half = 0; half < 2; half++) {
            const __m512i u = w[2 * half], v = w[2 * half + 1];
            __m512i b0 = _mm512_maskz_mov_epi32(
                _mm512_cmplt_epu32_mask(_mm512_and_si512(u, low16), thr), _mm512_set1_epi32(0x1));
            __m512i b1 = _mm512_maskz_mov_epi32(
                _mm512_cmplt_epu32_mask(_mm512_srli_epi32(u, 16), thr), _mm512_set1_epi32(0x100));
            __m512i b2 =
                _mm512_maskz_mov_epi32(_mm512_cmplt_epu32_mask(_mm512_and_si512(v, low16), thr),
                                       _mm512_set1_epi32(0x10000));
            __m512i b3 =
                _mm512_maskz_mov_epi32(_mm512_cmplt_epu32_mask(_mm512_srli_epi32(v, 16), thr),
                                       _mm512_set1_epi32(0x1000000));
            bytes[half] = _mm512_ternarylogic_epi32(_mm512_or_si512(b0, b1), b2, b3, OR3);
        }
        _mm512_storeu_si512((void *)(out + 8 * LANES * p),
                            _mm512_permutex2var_epi32(bytes[0], lo_idx, bytes[1]));
        _mm512_storeu_si512((void *)(out + 8 * LANES * p + 64),
                            _mm512_permutex2var_epi32(bytes[0], hi_idx, bytes[1]));
    }
}

/* One row's Philox state for the walk (rng/philox_walk.h). */
typedef struct row_env {
    uint64_t offset;
    __m512i row_lo, row_hi, thr;
    __m512i rk0[10], rk1[10]; /* round keys */
} row_env;

static void step_one(const void *env, uint64_t group, uint8_t *out)
{
    const row_env *e = env;
    step(1, e->offset, group, e->row_lo, e->row_hi, e->rk0, e->rk1, e->thr, out);
}

static void step_two(const void *env, uint64_t group, uint8_t *out)
{
    const row_env *e = env;
    step(PASSES, e->offset, group, e->row_lo, e->row_hi, e->rk0, e->rk1, e->thr, out);
}

static void dropout_bits_avx512(uint64_t seed, uint64_t offset, uint64_t row, uint64_t j0, size_t n,
                                uint64_t threshold, uint8_t *keep)
{
    row_env e;
    e.offset = offset;
    e.row_lo = _mm512_set1_epi32((int)(uint32_t)row);
    e.row_hi = _mm512_set1_epi32((int)(uint32_t)(row >> 32));
    e.thr = _mm512_set1_epi32((int)(uint32_t)threshold); /* the walk handles 0 and 2^16 */
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        e.rk0[r] = _mm512_set1_epi32((int)k0);
        e.rk1[r] = _mm512_set1_epi32((int)k1);
        k0 += FASI_PHILOX_W0;
        k1 += FASI_PHILOX_W1;
    }
    fasi_philox_walk(LANES, step_one, step_two, &e, threshold, j0, n, keep);
}

void fasi_register_philox_avx512(fasi_kernels *k) { k->dropout_bits = dropout_bits_avx512; }
