/* Philox4x32-10 and the dropout keep decision (portable). */
#include <math.h>
#include <stdatomic.h>

#include "kernels/isa.h"
#include "rng/philox.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void fasi_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

uint64_t fasi_dropout_threshold(double keep_prob)
{
    double t = nearbyint(keep_prob * 4294967296.0);
    if (!(t > 0)) return 0;
    if (t >= 4294967296.0) return 4294967296ull;
    return (uint64_t)t;
}

static void philox_block(uint64_t seed, uint64_t offset, uint64_t row, uint64_t group,
                         uint32_t out[4])
{
    uint64_t c = offset + group;
    uint32_t ctr[4] = {(uint32_t)c, (uint32_t)(c >> 32), (uint32_t)row, (uint32_t)(row >> 32)};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    fasi_philox4x32_10(ctr, key, out);
}

bool fasi_dropout_keep(uint64_t seed, uint64_t offset, uint64_t row, uint64_t j,
                       uint64_t threshold)
{
    uint32_t out[4];
    philox_block(seed, offset, row, j >> 2, out);
    return (uint64_t)out[j & 3] < threshold;
}

static void dropout_bits(uint64_t seed, uint64_t offset, uint64_t row, uint64_t j0, size_t n,
                         uint64_t threshold, uint8_t *keep)
{
    uint32_t out[4];
    uint64_t group = UINT64_MAX;
    for (size_t t = 0; t < n; t++) {
        uint64_t j = j0 + t;
        if ((j >> 2) != group) {
            group = j >> 2;
            philox_block(seed, offset, row, group, out);
        }
        keep[t] = (uint64_t)out[j & 3] < threshold;
    }
}

void fasi_register_philox_portable(fasi_kernels *k) { k->dropout_bits = dropout_bits; }

/* ---- process-wide generator: (seed, offset) advanced under a lock-free CAS loop */

#define FASI_DEFAULT_SEED 67280421310721ull

static _Atomic uint64_t gen_seed = FASI_DEFAULT_SEED;
static _Atomic uint64_t gen_offset = 0;

void fasi_generator_seed(uint64_t seed)
{
    atomic_store(&gen_seed, seed);
    atomic_store(&gen_offset, 0);
}

void fasi_generator_draw(uint64_t advance, uint64_t *seed, uint64_t *offset)
{
    *seed = atomic_load(&gen_seed);
    *offset = atomic_fetch_add(&gen_offset, advance);
}
