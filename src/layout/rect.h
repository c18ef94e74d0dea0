/* Helpers private to the layout floor (mat.c, block_io.c, cast.c): storage addressing and
 * rectangles between any dtype and fp32 through the kernel table. */
#ifndef FASI_RECT_H
#define FASI_RECT_H

#include <math.h>
#include <string.h>

#include "layout/layout.h"

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Byte address of storage element idx. */
static inline unsigned char *elem_ptr(const fasi_mat *m, int64_t idx)
{
    return (unsigned char *)m->data + (size_t)idx * fasi_dtype_size(m->dtype);
}

/* Saturating, round-to-nearest conversion into a byte (NaN gives 0): only 0 and 1 are
 * meaningful in UINT8 tensors, but no float input may invoke undefined behaviour. */
static inline uint8_t f32_to_u8(float x)
{
    if (!(x > 0.0f)) return 0;
    if (x >= 255.0f) return 255;
    return (uint8_t)lrintf(x);
}

/* ---- rectangles between any dtype and fp32 ------------------------------------------------
 * rows x cols elements; row r of the source at src + r*lds, of the destination at dst + r*ldd
 * (pitches in elements of each side's type). Only the rectangles are read and written. */

static inline void load_block_f32(const fasi_kernels *k, fas_dtype dt, const void *src, size_t lds,
                                  float *dst, size_t ldd, size_t rows, size_t cols)
{
    switch (dt) {
    case FAS_DTYPE_FLOAT16: k->f16_to_f32(src, lds, dst, ldd, rows, cols); break;
    case FAS_DTYPE_BF16: k->bf16_to_f32(src, lds, dst, ldd, rows, cols); break;
    case FAS_DTYPE_FLOAT: {
        const float *s = src;
        /* a constant size for the common full fractal row, so the copy is inlined */
        if (cols == 16)
            for (size_t r = 0; r < rows; r++) memcpy(dst + r * ldd, s + r * lds, 64);
        else
            for (size_t r = 0; r < rows; r++)
                memcpy(dst + r * ldd, s + r * lds, cols * sizeof *dst);
        break;
    }
    case FAS_DTYPE_UINT8: {
        const uint8_t *s = src;
        for (size_t r = 0; r < rows; r++)
            for (size_t i = 0; i < cols; i++) dst[r * ldd + i] = (float)s[r * lds + i];
        break;
    }
    }
}

static inline void store_block_f32(const fasi_kernels *k, fas_dtype dt, const float *src,
                                   size_t lds, void *dst, size_t ldd, size_t rows, size_t cols)
{
    switch (dt) {
    case FAS_DTYPE_FLOAT16: k->f32_to_f16(src, lds, dst, ldd, rows, cols); break;
    case FAS_DTYPE_BF16: k->f32_to_bf16(src, lds, dst, ldd, rows, cols); break;
    case FAS_DTYPE_FLOAT: {
        float *d = dst;
        if (cols == 16)
            for (size_t r = 0; r < rows; r++) memcpy(d + r * ldd, src + r * lds, 64);
        else
            for (size_t r = 0; r < rows; r++) memcpy(d + r * ldd, src + r * lds, cols * sizeof *d);
        break;
    }
    case FAS_DTYPE_UINT8: {
        uint8_t *d = dst;
        for (size_t r = 0; r < rows; r++)
            for (size_t i = 0; i < cols; i++) d[r * ldd + i] = f32_to_u8(src[r * lds + i]);
        break;
    }
    }
}

#endif
