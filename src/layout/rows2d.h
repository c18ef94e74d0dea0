/* The 2-D conversion entries of kernels/isa.h, built from a 1-D row body.
 *
 * FASI_ROWS_2D(name, src_t, dst_t, row) defines
 *   static void name(const src_t *src, size_t lds, dst_t *dst, size_t ldd, size_t rows,
 *                    size_t cols)
 * which converts a single row or a dense rectangle (both pitches equal to cols) as one long row,
 * and anything else row by row. `row(src, dst, n)` must touch exactly n elements on each side;
 * declared FASI_ROW_INLINE it is inlined into the row loops, so no call is made per row. Rows of
 * 16 (an NZ fractal slab: the block loaders' common case) get their own loop with the length a
 * constant, where the inlined body folds to its bare 16-element step (measured on AVX2: the
 * generic loop made the NZ fp16 loader 25-45 % slower). Every level uses this one definition. */
#ifndef FASI_ROWS2D_H
#define FASI_ROWS2D_H

#include <stddef.h>

#if defined(__GNUC__)
#define FASI_ROW_INLINE static inline __attribute__((always_inline))
#else
#define FASI_ROW_INLINE static inline
#endif

#define FASI_ROWS_2D(name, src_t, dst_t, row)                                                      \
    static void name(const src_t *src, size_t lds, dst_t *dst, size_t ldd, size_t rows,            \
                     size_t cols)                                                                  \
    {                                                                                              \
        if (rows == 1 || (lds == cols && ldd == cols)) {                                           \
            row(src, dst, rows *cols);                                                             \
            return;                                                                                \
        }                                                                                          \
        if (cols == 16) {                                                                          \
            /* a constant length: the inlined body reduces to one unmasked 16-element step */      \
            for (size_t r = 0; r < rows; r++) row(src + r * lds, dst + r * ldd, 16);               \
            return;                                                                                \
        }                                                                                          \
        for (size_t r = 0; r < rows; r++) row(src + r * lds, dst + r * ldd, cols);                 \
    }

#endif
