/* Measure-then-carve scratch layout.
 *
 * A pipeline writes its scratch layout once, as a carve function that takes its pieces from an
 * arena in order. Run on a measuring arena (no memory) it only adds up the sizes; run on a block
 * of that size it hands out the pieces. Every piece starts 64-byte aligned (cache line, AVX-512
 * vector) when the block does. Sizes are overflow-checked: an arena that overflowed hands out
 * NULL and says so, and the caller reports FAS_ERR_NO_MEMORY. */
#ifndef FASI_ARENA_H
#define FASI_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/memory.h"

typedef struct fasi_arena {
    unsigned char *base; /* NULL while measuring */
    size_t used;         /* bytes handed out so far, each piece rounded up to 64 */
    bool overflow;
} fasi_arena;

/* An arena that measures (base NULL), or one that carves the block at mem. */
static inline fasi_arena fasi_arena_at(void *mem)
{
    fasi_arena a = {(unsigned char *)mem, 0, false};
    return a;
}

/* count elements of elem_size bytes (count >= 0); NULL while measuring or after overflow. */
static inline void *fasi_arena_take(fasi_arena *a, int64_t count, size_t elem_size)
{
    if (a->overflow || count < 0 || (elem_size != 0 && (uint64_t)count > SIZE_MAX / elem_size)) {
        a->overflow = true;
        return NULL;
    }
    size_t bytes = fasi_round64((size_t)count * elem_size);
    if ((bytes == 0 && count != 0) || a->used > SIZE_MAX - bytes) {
        a->overflow = true;
        return NULL;
    }
    void *p = a->base ? a->base + a->used : NULL;
    a->used += bytes;
    return p;
}

/* One block holding `copies` arenas of `per` bytes each (one per thread); NULL on overflow
 * or when the allocation fails. Free with fasi_free. */
static inline unsigned char *fasi_arena_alloc(size_t per, int copies)
{
    if (per == 0 || copies < 1 || (size_t)copies > SIZE_MAX / per) return NULL;
    return (unsigned char *)fasi_alloc(per * (size_t)copies);
}

#endif
