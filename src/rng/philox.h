/* Philox4x32-10 (Salmon et al., SC'11) and the dropout keep decision built on it.
 *
 * Keep decision for element (row, j) of the softmax matrix flattened to rows
 * row = (b*N + n)*Sq + i (of the whole tensor, for a sharded call: problem/problem.h):
 *   counter = (c0, c1, c2, c3) with c0 | c1 << 32 = offset + (j >> 3)   (64-bit, wrapping)
 *                               and c2 | c3 << 32 = row
 *   key     = (k0, k1) = (seed & 0xffffffff, seed >> 32)
 *   u       = philox4x32_10(counter, key)[(j & 7) >> 1]
 *   h       = j even ? u & 0xffff : u >> 16          (each 32-bit word gives two decisions)
 *   keep    = h < threshold,   threshold = keep_prob * 2^16 rounded half to even, 0 .. 2^16
 *             (independent of the floating-point rounding mode)
 * so P(keep) = threshold / 2^16, within 2^-17 of keep_prob, and the decision depends only on
 * (seed, offset, row, j): never on threads, blocking, layout or SIMD level. One Philox block
 * decides eight elements. A call consumes ceil(Sk / 8) counters per row, which is how far the
 * process-wide offset advances. */
#ifndef FASI_PHILOX_H
#define FASI_PHILOX_H

#include <stdbool.h>
#include <stdint.h>

#include "common/isa.h"

/* Philox4x32 round multipliers and key (Weyl) increments. */
#define FASI_PHILOX_M0 0xD2511F53u
#define FASI_PHILOX_M1 0xCD9E8D57u
#define FASI_PHILOX_W0 0x9E3779B9u
#define FASI_PHILOX_W1 0xBB67AE85u

void fasi_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* Elements decided by one Philox block (one counter). */
#define FASI_PHILOX_COLS 8

/* threshold for keep_prob in (0, 1]: round(keep_prob * 2^16), at most 2^16 */
uint64_t fasi_dropout_threshold(double keep_prob);

/* Scalar keep decision of one element, per the mapping above (the reference uses this). */
bool fasi_dropout_keep(uint64_t seed, uint64_t offset, uint64_t row, uint64_t j,
                       uint64_t threshold);

/* Process-wide generator: returns the current (seed, offset) and advances offset by `advance`
 * atomically. */
void fasi_generator_draw(uint64_t advance, uint64_t *seed, uint64_t *offset);
void fasi_generator_seed(uint64_t seed);

/* Kernel-table registration of dropout_bits, one per level (AVX2 and AVX-512 only where the
 * x86-64 SIMD files are compiled, NEON only on aarch64). */
void fasi_register_philox_portable(fasi_kernels *k);
void fasi_register_philox_avx2(fasi_kernels *k);
void fasi_register_philox_avx512(fasi_kernels *k);
void fasi_register_philox_neon(fasi_kernels *k);

#endif
