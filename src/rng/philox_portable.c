/* Philox4x32-10 and the dropout keep decision (portable). */
#include <math.h>
#include <stdatomic.h>

#include "rng/philox.h"

void fasi_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)FASI_PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)FASI_PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
        k0 += FASI_PHILOX_W0;
        k1 += FASI_PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* Ties go to even. Built on floor() rather than nearbyint() so the result does not depend on
 * the caller's floating-point rounding mode. keep_prob * 2^16 is exact, and so is x - floor(x). */
uint64_t fasi_dropout_threshold(double keep_prob)
{
    double x = keep_prob * 65536.0;
    if (!(x > 0)) return 0; /* also NaN */
    if (x >= 65536.0) return 65536;
    double f = floor(x), frac = x - f;
    uint64_t t = (uint64_t)f;
    if (frac > 0.5 || (frac == 0.5 && (t & 1))) t++;
    return t;
}

static void philox_block(uint64_t seed, uint64_t offset, uint64_t row, uint64_t group,
                         uint32_t out[4])
{
    uint64_t c = offset + group;
    uint32_t ctr[4] = {(uint32_t)c, (uint32_t)(c >> 32), (uint32_t)row, (uint32_t)(row >> 32)};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    fasi_philox4x32_10(ctr, key, out);
}

/* The 16-bit half of a block that decides column j (j & 7 within its block). */
static inline uint32_t half_of(const uint32_t out[4], uint64_t j)
{
    uint32_t u = out[(j & 7) >> 1];
    return (j & 1) ? u >> 16 : u & 0xffffu;
}

bool fasi_dropout_keep(uint64_t seed, uint64_t offset, uint64_t row, uint64_t j, uint64_t threshold)
{
    uint32_t out[4];
    philox_block(seed, offset, row, j >> 3, out);
    return (uint64_t)half_of(out, j) < threshold;
}

static void dropout_bits(uint64_t seed, uint64_t offset, uint64_t row, uint64_t j0, size_t n,
                         uint64_t threshold, uint8_t *keep)
{
    uint32_t out[4];
    uint64_t group = j0 >> 3;
    size_t t = 0;
    unsigned c = (unsigned)(j0 & 7);
    while (t < n) {
        philox_block(seed, offset, row, group, out);
        for (; c < 8 && t < n; c++, t++) keep[t] = (uint64_t)half_of(out, c) < threshold;
        c = 0;
        group++;
    }
}

void fasi_register_philox_portable(fasi_kernels *k) { k->dropout_bits = dropout_bits; }

/* ---- process-wide generator
 * (seed, offset) is one pair: a draw racing fas_manual_seed must not mix the old seed with the
 * reset offset (that would repeat counters already used under the old seed), so both functions
 * hold a spinlock. The critical sections are a few loads and stores. */

#define FASI_DEFAULT_SEED 67280421310721ull

static atomic_flag gen_lock = ATOMIC_FLAG_INIT;
static uint64_t gen_seed = FASI_DEFAULT_SEED;
static uint64_t gen_offset = 0;

static void gen_acquire(void)
{
    while (atomic_flag_test_and_set_explicit(&gen_lock, memory_order_acquire)) {
    }
}

static void gen_release(void) { atomic_flag_clear_explicit(&gen_lock, memory_order_release); }

void fasi_generator_seed(uint64_t seed)
{
    gen_acquire();
    gen_seed = seed;
    gen_offset = 0;
    gen_release();
}

void fasi_generator_draw(uint64_t advance, uint64_t *seed, uint64_t *offset)
{
    gen_acquire();
    *seed = gen_seed;
    *offset = gen_offset;
    gen_offset += advance;
    gen_release();
}
