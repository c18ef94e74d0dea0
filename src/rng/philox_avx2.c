/* AVX2 dropout keep bytes: Philox4x32-10 on eight counters per vector.
 *
 * Lane l of every state vector is the block of group g + l (group = j >> 3), so one pass of
 * ten rounds yields the 64 keep bytes of columns 8g .. 8g + 63 (two 16-bit halves per word).
 * Two such passes are interleaved to hide the multiply latency. The result is bit-identical to
 * the portable dropout_bits for every input: same counter, key, word and half mapping
 * (rng/philox.h), same 64-bit wrap of offset + group, and the same comparison of each half with
 * the threshold. */
#include <immintrin.h>

#include "rng/philox.h"
#include "rng/philox_walk.h"

#define LANES 8
#define PASSES 2

typedef struct philox8 {
    __m256i c0, c1, c2, c3;
} philox8;

/* 32 x 32 -> 64-bit products of every lane of a with the broadcast constant m, as high and low
 * words. The low words are one vpmulld. _mm256_mul_epu32 only reads even lanes, so for the high
 * words the odd lanes are moved down, multiplied separately, and the two results merged. */
static inline void mulhilo8(__m256i a, __m256i m, __m256i *hi, __m256i *lo)
{
    __m256i even = _mm256_mul_epu32(a, m);
    __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
    *lo = _mm256_mullo_epi32(a, m);
}

static inline philox8 round8(philox8 s, __m256i m0, __m256i m1, __m256i k0, __m256i k1)
{
    __m256i hi0, lo0, hi1, lo1;
    mulhilo8(s.c0, m0, &hi0, &lo0);
    mulhilo8(s.c2, m1, &hi1, &lo1);
    philox8 r;
    r.c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, s.c1), k0);
    r.c1 = lo1;
    r.c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, s.c3), k1);
    r.c3 = lo0;
    return r;
}

/* Counters (offset + group + l) for l = 0..7 as 64-bit values split into low and high words;
 * a lane whose low word wrapped carries into its high word, and the high word wraps too. */
static inline void counters8(uint64_t base, __m256i *lo, __m256i *hi)
{
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i sign = _mm256_set1_epi32((int)0x80000000u);
    __m256i l = _mm256_add_epi32(_mm256_set1_epi32((int)(uint32_t)base), iota);
    __m256i wrapped = _mm256_cmpgt_epi32(_mm256_xor_si256(iota, sign), _mm256_xor_si256(l, sign));
    *lo = l;
    *hi = _mm256_sub_epi32(_mm256_set1_epi32((int)(uint32_t)(base >> 32)), wrapped);
}

/* keep bytes of columns 8 * group .. 8 * group + 64 * passes - 1 into out, 1 <= passes <= 2;
 * thr = threshold for 1 <= threshold <= 2^16 - 1. */
static inline __attribute__((always_inline)) void step(int passes, uint64_t offset, uint64_t group,
                                                       __m256i row_lo, __m256i row_hi,
                                                       const __m256i *rk0, const __m256i *rk1,
                                                       __m256i thr, uint8_t *out)
{
    const __m256i m0 = _mm256_set1_epi32((int)FASI_PHILOX_M0);
    const __m256i m1 = _mm256_set1_epi32((int)FASI_PHILOX_M1);
    philox8 s[PASSES];
    for (int p = 0; p < passes; p++) {
        counters8(offset + group + (uint64_t)(p * LANES), &s[p].c0, &s[p].c1);
        s[p].c2 = row_lo;
        s[p].c3 = row_hi;
    }
    for (int r = 0; r < 10; r++)
        for (int p = 0; p < passes; p++) s[p] = round8(s[p], m0, m1, rk0[r], rk1[r]);
    /* half < threshold as 32-bit signed comparisons (both sides below 2^16). Packing keeps
     * lanes in 128-bit halves: x holds, per half, the bytes of columns 0..3 (low and high halves
     * of words 0 and 1) as byte 4c + l' (l' = l mod 4), y those of columns 4..7; the shuffle
     * makes each lane's four bytes contiguous, and the 32-bit unpacks put y's after x's. */
    const __m256i low16 = _mm256_set1_epi32(0xffff);
    const __m256i transpose =
        _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 0, 4, 8, 12, 1, 5, 9,
                         13, 2, 6, 10, 14, 3, 7, 11, 15);
    const __m256i one = _mm256_set1_epi8(1);
    for (int p = 0; p < passes; p++) {
        const __m256i w[4] = {s[p].c0, s[p].c1, s[p].c2, s[p].c3};
        __m256i c[8];
        for (int i = 0; i < 4; i++) {
            c[2 * i] = _mm256_cmpgt_epi32(thr, _mm256_and_si256(w[i], low16));
            c[2 * i + 1] = _mm256_cmpgt_epi32(thr, _mm256_srli_epi32(w[i], 16));
        }
        __m256i x =
            _mm256_packs_epi16(_mm256_packs_epi32(c[0], c[1]), _mm256_packs_epi32(c[2], c[3]));
        __m256i y =
            _mm256_packs_epi16(_mm256_packs_epi32(c[4], c[5]), _mm256_packs_epi32(c[6], c[7]));
        x = _mm256_and_si256(_mm256_shuffle_epi8(x, transpose), one);
        y = _mm256_and_si256(_mm256_shuffle_epi8(y, transpose), one);
        __m256i lo = _mm256_unpacklo_epi32(x, y), hi = _mm256_unpackhi_epi32(x, y);
        _mm256_storeu_si256((__m256i *)(void *)(out + 8 * LANES * p),
                            _mm256_permute2x128_si256(lo, hi, 0x20));
        _mm256_storeu_si256((__m256i *)(void *)(out + 8 * LANES * p + 32),
                            _mm256_permute2x128_si256(lo, hi, 0x31));
    }
}

/* One row's Philox state for the walk (rng/philox_walk.h). */
typedef struct row_env {
    uint64_t offset;
    __m256i row_lo, row_hi, thr;
    __m256i rk0[10], rk1[10]; /* round keys */
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

static void dropout_bits_avx2(uint64_t seed, uint64_t offset, uint64_t row, uint64_t j0, size_t n,
                              uint64_t threshold, uint8_t *keep)
{
    row_env e;
    e.offset = offset;
    e.row_lo = _mm256_set1_epi32((int)(uint32_t)row);
    e.row_hi = _mm256_set1_epi32((int)(uint32_t)(row >> 32));
    e.thr = _mm256_set1_epi32((int)(uint32_t)threshold); /* the walk handles 0 and 2^16 */
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        e.rk0[r] = _mm256_set1_epi32((int)k0);
        e.rk1[r] = _mm256_set1_epi32((int)k1);
        k0 += FASI_PHILOX_W0;
        k1 += FASI_PHILOX_W1;
    }
    fasi_philox_walk(LANES, step_one, step_two, &e, threshold, j0, n, keep);
}

void fasi_register_philox_avx2(fasi_kernels *k) { k->dropout_bits = dropout_bits_avx2; }
