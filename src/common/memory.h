/* Scratch memory: 64-byte aligned (cache line and AVX-512 vector), overflow-checked. */
#ifndef FASI_MEMORY_H
#define FASI_MEMORY_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* Round up to a multiple of 64 bytes; 0 on overflow. */
static inline size_t fasi_round64(size_t bytes)
{
    return bytes > SIZE_MAX - 63 ? 0 : (bytes + 63) & ~(size_t)63;
}

/* a * b * c bytes rounded to 64, or 0 on overflow. */
static inline size_t fasi_bytes3(int64_t a, int64_t b, size_t c)
{
    if (a < 0 || b < 0) return 0;
    if (b != 0 && (uint64_t)a > SIZE_MAX / (uint64_t)b) return 0;
    size_t ab = (size_t)a * (size_t)b;
    if (c != 0 && ab > SIZE_MAX / c) return 0;
    return fasi_round64(ab * c);
}

static inline void *fasi_alloc(size_t bytes)
{
    if (bytes == 0) return NULL;
    return aligned_alloc(64, fasi_round64(bytes));
}

static inline void fasi_free(void *p) { free(p); }

#endif
