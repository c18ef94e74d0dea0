/* The walk along one softmax row shared by the SIMD dropout_bits (philox_avx2.c,
 * philox_avx512.c): which Philox steps to run and where their bytes go. */
#ifndef FASI_PHILOX_WALK_H
#define FASI_PHILOX_WALK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Writes the keep bytes of columns 8 * group .. 8 * group + 8 * lanes * passes - 1 to out, for
 * the level's row state env; one function per pass count (1 or 2), so that each inlines a
 * specialised step. */
typedef void (*fasi_philox_step)(const void *env, uint64_t group, uint8_t *out);

#if defined(__GNUC__)
#define FASI_WALK_INLINE static inline __attribute__((always_inline))
#else
#define FASI_WALK_INLINE static inline
#endif

/* Keep bytes of columns j0 .. j0 + n - 1 into keep, for vectors of `lanes` counters (at most
 * 16). Thresholds 0 and 2^16 compare every half the same way and need no Philox output. Whole
 * two-pass steps from a group boundary go straight to keep; an unaligned start (j0 % 8 != 0)
 * or a short tail is computed into a stack buffer and the needed part copied. */
FASI_WALK_INLINE void fasi_philox_walk(size_t lanes, fasi_philox_step one, fasi_philox_step two,
                                       const void *env, uint64_t threshold, uint64_t j0, size_t n,
                                       uint8_t *keep)
{
    if (n == 0) return;
    if (threshold == 0 || threshold >= 65536) {
        memset(keep, threshold != 0, n);
        return;
    }
    const size_t full = 16 * lanes; /* bytes of a two-pass step */
    uint8_t tmp[16 * 16];
    uint64_t group = j0 >> 3;
    size_t skip = (size_t)(j0 & 7);
    while (n > 0) {
        if (skip == 0 && n >= full) {
            two(env, group, keep);
            keep += full;
            n -= full;
        } else {
            size_t take;
            if (skip + n <= full / 2) {
                one(env, group, tmp);
                take = full / 2 - skip;
            } else {
                two(env, group, tmp);
                take = full - skip;
            }
            if (take > n) take = n;
            memcpy(keep, tmp + skip, take);
            keep += take;
            n -= take;
            skip = 0;
        }
        group += 2 * lanes;
    }
}

#endif
