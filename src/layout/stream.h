/* Streaming (non-temporal) stores, private to the layout floor: block storers (block_io.c) and
 * the format_cast engine (cast.c) write large destinations through these. */
#ifndef FASI_STREAM_H
#define FASI_STREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "layout/layout.h"

/* The vector baseline of the target, which needs no per-file ISA flags and runs on every CPU
 * the build can run on: SSE2 on x86-64 (streaming stores and 4x4 transposes), Advanced SIMD
 * (NEON) on aarch64 (4x4 transposes only). Other targets use the plain C paths. */
#if defined(__SSE2__) && (defined(__x86_64__) || defined(_M_X64))
#include <emmintrin.h>
#define FASI_HAVE_SSE2 1
#else
#define FASI_HAVE_SSE2 0
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#define FASI_HAVE_ASIMD 1
#else
#define FASI_HAVE_ASIMD 0
#endif

/* Streaming stores exist only with SSE2. On aarch64 the same paths use ordinary stores: STNP
 * (a non-temporal pair) is only a hint whose benefit has not been measured on arm64 hardware,
 * and correctness does not depend on it; stream_dest() is false there, so no caller takes the
 * streaming branches. */
#define FASI_HAVE_STREAM FASI_HAVE_SSE2

#if defined(__GNUC__)
#define FASI_ALWAYS_INLINE static inline __attribute__((always_inline))
#define FASI_PREFETCH(p) __builtin_prefetch(p)
#else
#define FASI_ALWAYS_INLINE static inline
#define FASI_PREFETCH(p) ((void)0)
#endif

/* Streaming stores need 16-byte aligned destinations. Beyond FASI_STREAM_MIN_BYTES (layout.h)
 * of destination the result cannot stay cached for whoever reads it next, so bypassing the
 * cache costs nothing and saves a read of every destination line. */

/* Copy 16 elements of es bytes (es constant at every call site, so the copy is inlined), with a
 * streaming store when `stream`. */
FASI_ALWAYS_INLINE void put16(unsigned char *dst, const unsigned char *src, size_t es, bool stream)
{
#if FASI_HAVE_STREAM
    if (stream) {
        const __m128i *s = (const __m128i *)(const void *)src;
        __m128i *d = (__m128i *)(void *)dst;
        for (size_t i = 0; i < es; i++) _mm_stream_si128(d + i, _mm_loadu_si128(s + i));
        return;
    }
#else
    (void)stream;
#endif
    memcpy(dst, src, 16 * es);
}

static inline void fence_streams(bool stream)
{
#if FASI_HAVE_STREAM
    if (stream) _mm_sfence();
#else
    (void)stream;
#endif
}

/* n bytes from src to dst: the 16-byte aligned middle with streaming stores, the ends (and
 * everything in a build without streaming stores) with ordinary ones. */
static inline void stream_copy(unsigned char *dst, const unsigned char *src, size_t n)
{
#if FASI_HAVE_STREAM
    size_t head = (16 - ((uintptr_t)dst & 15)) & 15;
    if (head > n) head = n;
    memcpy(dst, src, head);
    dst += head;
    src += head;
    n -= head;
    for (; n >= 16; n -= 16, dst += 16, src += 16)
        _mm_stream_si128((__m128i *)(void *)dst,
                         _mm_loadu_si128((const __m128i *)(const void *)src));
#endif
    memcpy(dst, src, n);
}

/* Whether stores into m (elements of es bytes) bypass the cache: see FASI_STREAM_MIN_BYTES. NZ
 * stores stream whole fractal rows, which needs 16-byte aligned data; ND rows go through
 * stream_copy, which aligns itself. */
static inline bool stream_dest(const fasi_mat *m, size_t es)
{
    return FASI_HAVE_STREAM && (!m->nz || ((uintptr_t)m->data & 15) == 0) &&
           (size_t)(m->batch * m->mat_elems) * es >= FASI_STREAM_MIN_BYTES;
}
#endif
