/* NEON (aarch64 Advanced SIMD) dropout keep bytes: Philox4x32-10 on four counters per vector.
 *
 * Lane l of every state vector is the block of group g + l (group = j >> 3). A pass holds two
 * vectors, eight consecutive groups, so one pass of ten rounds yields the 64 keep bytes of
 * columns 8g .. 8g + 63 (two 16-bit halves per word); two passes are interleaved (four
 * independent vectors) to hide the multiply latency. The result is bit-identical to the portable
 * dropout_bits for every input: same counter, key, word and half mapping (rng/philox.h), same
 * 64-bit wrap of offset + group, and the same comparison of each half with the threshold
 * (keep_halves below, the only place that decides). */
#include <arm_neon.h>

#include "rng/philox.h"
#include "rng/philox_walk.h"

#define VEC 4                       /* counters per vector */
#define VECS_PER_PASS 2             /* vectors per pass */
#define LANES (VEC * VECS_PER_PASS) /* counters per pass, for the walk */
#define PASSES 2

typedef struct philox4 {
    uint32x4_t c0, c1, c2, c3;
} philox4;

/* 32 x 32 -> 64-bit products of every lane of a with the constant m, as high and low words:
 * two widening multiplies, then the even (low) and odd (high) 32-bit halves of the products. */
static inline void mulhilo4(uint32x4_t a, uint32_t m, uint32x4_t *hi, uint32x4_t *lo)
{
    uint32x4_t p0 = vreinterpretq_u32_u64(vmull_n_u32(vget_low_u32(a), m));
    uint32x4_t p1 = vreinterpretq_u32_u64(vmull_high_n_u32(a, m));
    *lo = vuzp1q_u32(p0, p1);
    *hi = vuzp2q_u32(p0, p1);
}

static inline philox4 round4(philox4 s, uint32x4_t k0, uint32x4_t k1)
{
    uint32x4_t hi0, lo0, hi1, lo1;
    mulhilo4(s.c0, FASI_PHILOX_M0, &hi0, &lo0);
    mulhilo4(s.c2, FASI_PHILOX_M1, &hi1, &lo1);
    philox4 r;
    r.c0 = veorq_u32(veorq_u32(hi1, s.c1), k0);
    r.c1 = lo1;
    r.c2 = veorq_u32(veorq_u32(hi0, s.c3), k1);
    r.c3 = lo0;
    return r;
}

/* Counters (base + l) for l = 0..3 as 64-bit values split into low and high words; a lane whose
 * low word wrapped carries into its high word, and the high word wraps too. */
static inline void counters4(uint64_t base, uint32x4_t *lo, uint32x4_t *hi)
{
    static const uint32_t iota_words[4] = {0, 1, 2, 3};
    const uint32x4_t iota = vld1q_u32(iota_words);
    uint32x4_t l = vaddq_u32(vdupq_n_u32((uint32_t)base), iota);
    uint32x4_t wrapped = vcltq_u32(l, iota); /* all ones (-1) where the low word wrapped */
    *lo = l;
    *hi = vsubq_u32(vdupq_n_u32((uint32_t)(base >> 32)), wrapped);
}

/* The keep decisions of the 16-bit halves of one word of eight counters (vectors a and b), as
 * byte pairs: pair l is (low half < threshold, high half < threshold) of counter l, because a
 * little-endian word is its low half, then its high half. */
static inline uint16x8_t keep_halves(uint32x4_t a, uint32x4_t b, uint16x8_t threshold)
{
    uint8x8_t ka = vmovn_u16(vcltq_u16(vreinterpretq_u16_u32(a), threshold));
    uint8x8_t kb = vmovn_u16(vcltq_u16(vreinterpretq_u16_u32(b), threshold));
    return vreinterpretq_u16_u8(vandq_u8(vcombine_u8(ka, kb), vdupq_n_u8(1)));
}

/* keep bytes of columns 8 * group .. 8 * group + 8 * LANES * passes - 1 into out,
 * 1 <= passes <= 2; 1 <= threshold <= 2^16 - 1. */
static inline __attribute__((always_inline)) void step(int passes, uint64_t offset, uint64_t group,
                                                       uint32x4_t row_lo, uint32x4_t row_hi,
                                                       const uint32_t *rk0, const uint32_t *rk1,
                                                       uint16x8_t threshold, uint8_t *out)
{
    philox4 s[PASSES * VECS_PER_PASS];
    const int vecs = passes * VECS_PER_PASS;
    for (int v = 0; v < vecs; v++) {
        counters4(offset + group + (uint64_t)(v * VEC), &s[v].c0, &s[v].c1);
        s[v].c2 = row_lo;
        s[v].c3 = row_hi;
    }
    for (int r = 0; r < 10; r++) {
        const uint32x4_t k0 = vdupq_n_u32(rk0[r]), k1 = vdupq_n_u32(rk1[r]);
        for (int v = 0; v < vecs; v++) s[v] = round4(s[v], k0, k1);
    }
    /* Word w of counter l (l = 0..7 over the pass's two vectors) gives columns 8l + 2w and
     * 8l + 2w + 1: a four-way interleaving store of byte pairs. */
    for (int p = 0; p < passes; p++) {
        const philox4 *a = &s[VECS_PER_PASS * p], *b = a + 1;
        uint16x8x4_t w;
        w.val[0] = keep_halves(a->c0, b->c0, threshold);
        w.val[1] = keep_halves(a->c1, b->c1, threshold);
        w.val[2] = keep_halves(a->c2, b->c2, threshold);
        w.val[3] = keep_halves(a->c3, b->c3, threshold);
        vst4q_u16((uint16_t *)(void *)(out + 8 * LANES * p), w);
    }
}

/* One row's Philox state for the walk (rng/philox_walk.h). */
typedef struct row_env {
    uint64_t offset;
    uint32x4_t row_lo, row_hi;
    uint16x8_t threshold;
    uint32_t rk0[10], rk1[10]; /* round keys */
} row_env;

static void step_one(const void *env, uint64_t group, uint8_t *out)
{
    const row_env *e = env;
    step(1, e->offset, group, e->row_lo, e->row_hi, e->rk0, e->rk1, e->threshold, out);
}

static void step_two(const void *env, uint64_t group, uint8_t *out)
{
    const row_env *e = env;
    step(PASSES, e->offset, group, e->row_lo, e->row_hi, e->rk0, e->rk1, e->threshold, out);
}

static void dropout_bits_neon(uint64_t seed, uint64_t offset, uint64_t row, uint64_t j0, size_t n,
                              uint64_t threshold, uint8_t *keep)
{
    row_env e;
    e.offset = offset;
    e.row_lo = vdupq_n_u32((uint32_t)row);
    e.row_hi = vdupq_n_u32((uint32_t)(row >> 32));
    e.threshold = vdupq_n_u16((uint16_t)threshold); /* the walk handles 0 and 2^16 itself */
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        e.rk0[r] = k0;
        e.rk1[r] = k1;
        k0 += FASI_PHILOX_W0;
        k1 += FASI_PHILOX_W1;
    }
    fasi_philox_walk(LANES, step_one, step_two, &e, threshold, j0, n, keep);
}

void fasi_register_philox_neon(fasi_kernels *k) { k->dropout_bits = dropout_bits_neon; }
