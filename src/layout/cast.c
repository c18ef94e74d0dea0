/* The whole-tensor conversion behind fas_format_cast: ND <-> FRACTAL_NZ combined with dtype
 * conversion, or a flat copy when both sides share a format. */
#include <stdlib.h>
#include <string.h>

#include "layout/rect.h"
#include "layout/stream.h"

/* ---- whole-tensor conversion ----------------------------------------------------------------
 *
 * Same-dtype ND <-> NZ moves bytes directly, one 16-element run at a time, strip by strip
 * (16 matrix rows): ND -> NZ writes every fractal of the strip whole and in order while the 16
 * source rows are read front to back; NZ -> ND reads the fractals of the strip in order and
 * writes groups of fractals side by side so that each destination row write covers a whole
 * 64-byte line. Large destinations are written with non-temporal stores (no read-for-ownership,
 * no eviction of the source) and strips further on are prefetched, which keeps both sides
 * streaming at close to memcpy speed. Dtype-changing conversions convert through the kernel
 * table into a staging strip in the destination dtype and reuse the same run movers on it. */

static const unsigned char zero64[64];

/* An ND block of nr <= 16 rows and w columns (row pitch lds elements) into the consecutive
 * fractals frac, frac + frac_step, ... of one strip, each written whole (padding as zero).
 * next: the 16 rows after the block (NULL if none) to prefetch, with their count. */
FASI_ALWAYS_INLINE void block_to_nz(const unsigned char *src, int64_t lds, int64_t nr, int64_t w,
                                    unsigned char *frac, size_t frac_step, size_t es, bool stream,
                                    const unsigned char *next, int64_t next_rows)
{
    const size_t pitch = (size_t)lds * es, run = 16 * es;
    const int64_t line_cols = (int64_t)(64 / es); /* columns per 64-byte source line */
    int64_t c = 0;
    for (; c + 16 <= w; c += 16, frac += frac_step) {
        const unsigned char *sp = src + (size_t)c * es;
        if (next && c % line_cols == 0)
            for (int64_t r = 0; r < next_rows; r++) FASI_PREFETCH(next + r * pitch + c * es);
        int64_t r = 0;
        for (; r < nr; r++) put16(frac + r * run, sp + r * pitch, es, stream);
        for (; r < 16; r++) put16(frac + r * run, zero64, es, stream);
    }
    if (c < w) {
        const size_t wb = (size_t)(w - c) * es;
        const unsigned char *sp = src + (size_t)c * es;
        int64_t r = 0;
        for (; r < nr; r++) {
            memcpy(frac + r * run, sp + r * pitch, wb);
            memset(frac + r * run + wb, 0, run - wb);
        }
        memset(frac + r * run, 0, (size_t)(16 - r) * run);
    }
}

/* Rows [0, nr) and columns [0, w) of the consecutive fractals frac, frac + frac_step, ... of
 * a strip into an ND block with row pitch ldd elements. nr may exceed 16 when consecutive strips
 * of one matrix are moved together: the fractals below one another are adjacent in memory, so
 * row r of a fractal column is always at r * 16 elements from its top. Padding is never read.
 * Fractals are taken in groups whose runs fill a 64-byte destination line together. The bytes
 * [pf_off, pf_off + pf_len) after each fractal's start (strips further down) are prefetched. */
FASI_ALWAYS_INLINE void nz_to_block(const unsigned char *frac, size_t frac_step, int64_t nr,
                                    int64_t w, unsigned char *dst, int64_t ldd, size_t es,
                                    bool stream, size_t pf_off, size_t pf_len)
{
    const size_t pitch = (size_t)ldd * es, run = 16 * es;
    const int64_t group = (int64_t)(4 / es); /* fractals per 64-byte destination line */
    int64_t c = 0;
    for (; c + 16 * group <= w; c += 16 * group, frac += (size_t)group * frac_step) {
        for (int64_t g = 0; g < group; g++)
            for (size_t l = 0; l < pf_len; l += 64)
                FASI_PREFETCH(frac + (size_t)g * frac_step + pf_off + l);
        unsigned char *dp = dst + (size_t)c * es;
        for (int64_t r = 0; r < nr; r++, dp += pitch)
            for (int64_t g = 0; g < group; g++)
                put16(dp + (size_t)g * run, frac + (size_t)g * frac_step + r * run, es, stream);
    }
    for (; c + 16 <= w; c += 16, frac += frac_step) {
        unsigned char *dp = dst + (size_t)c * es;
        for (int64_t r = 0; r < nr; r++, dp += pitch) put16(dp, frac + r * run, es, stream);
    }
    if (c < w) {
        const size_t wb = (size_t)(w - c) * es;
        unsigned char *dp = dst + (size_t)c * es;
        for (int64_t r = 0; r < nr; r++, dp += pitch) memcpy(dp, frac + r * run, wb);
    }
}

/* Rows moved by one call of nz_to_rows_stream at most: a few strips, so that each fractal
 * column is read as one longer run. */
enum { GROUP_ROWS = 64 };

/* The streaming form of nz_to_block for whole rows (w = cols), nr <= GROUP_ROWS: destination
 * rows must start 16-byte aligned and w * es must be a multiple of 16. A streaming store only
 * combines into a full-line write when the four 16-byte pieces of a 64-byte line are stored
 * back to back, so each destination row is cut at its own line boundaries and every line is
 * assembled from the 16-byte pieces of the (up to three) fractal runs it overlaps; the few
 * pieces before a row's first boundary and after its last full line use ordinary stores. */
FASI_ALWAYS_INLINE void nz_to_rows_stream(const unsigned char *frac, size_t frac_step, int64_t nr,
                                          int64_t w, unsigned char *dst, int64_t ldd, size_t es,
                                          size_t pf_off, size_t pf_len)
{
#if FASI_HAVE_STREAM
    const size_t pitch = (size_t)ldd * es, run = 16 * es;
    const int64_t pieces = w * (int64_t)es / 16; /* 16-byte pieces per row; piece k is in
                                                    fractal k / es at byte (k % es) * 16 */
    const int64_t n1 = fasi_ceil16(w);
    int64_t head[GROUP_ROWS];
    for (int64_t r = 0; r < nr; r++) {
        int64_t h = (int64_t)((64 - ((uintptr_t)(dst + r * pitch) & 63)) & 63) / 16;
        head[r] = h < pieces ? h : pieces;
    }
#define FASI_PIECE(r, k)                                                                           \
    (frac + (size_t)((k) / (int64_t)es) * frac_step + (size_t)(r)*run +                            \
     (size_t)((k) % (int64_t)es) * 16)
    const int64_t lines = pieces / 4; /* an upper bound of full lines in any row */
    const int64_t frac_per_line = (int64_t)(4 / es);
    for (int64_t line = 0; line < lines + 1; line++) {
        const int64_t f1 = min64(n1, (line + 1) * frac_per_line);
        for (int64_t f = line * frac_per_line; f < f1; f++)
            for (size_t l = 0; l < pf_len; l += 64)
                FASI_PREFETCH(frac + (size_t)f * frac_step + pf_off + l);
        for (int64_t r = 0; r < nr; r++) {
            const int64_t k0 = head[r] + 4 * line;
            if (k0 + 4 > pieces) continue;
            __m128i *d = (__m128i *)(void *)(dst + r * pitch + (size_t)k0 * 16);
            for (int64_t q = 0; q < 4; q++)
                _mm_stream_si128(
                    d + q, _mm_loadu_si128((const __m128i *)(const void *)FASI_PIECE(r, k0 + q)));
        }
    }
    for (int64_t r = 0; r < nr; r++) {
        unsigned char *drow = dst + r * pitch;
        for (int64_t k = 0; k < head[r]; k++) memcpy(drow + k * 16, FASI_PIECE(r, k), 16);
        for (int64_t k = head[r] + (pieces - head[r]) / 4 * 4; k < pieces; k++)
            memcpy(drow + k * 16, FASI_PIECE(r, k), 16);
    }
#undef FASI_PIECE
#else
    nz_to_block(frac, frac_step, nr, w, dst, ldd, es, false, pf_off, pf_len);
#endif
}

/* Instantiations with the element size and the store kind as constants. */
static void block_to_nz_any(const unsigned char *src, int64_t lds, int64_t nr, int64_t w,
                            unsigned char *frac, size_t frac_step, size_t es, bool stream,
                            const unsigned char *next, int64_t next_rows)
{
#define FASI_B2NZ(ES, ST) block_to_nz(src, lds, nr, w, frac, frac_step, ES, ST, next, next_rows)
    if (stream) {
        if (es == 2)
            FASI_B2NZ(2, true);
        else if (es == 4)
            FASI_B2NZ(4, true);
        else
            FASI_B2NZ(1, true);
    } else {
        if (es == 2)
            FASI_B2NZ(2, false);
        else if (es == 4)
            FASI_B2NZ(4, false);
        else
            FASI_B2NZ(1, false);
    }
#undef FASI_B2NZ
}

static void nz_to_block_any(const unsigned char *frac, size_t frac_step, int64_t nr, int64_t w,
                            unsigned char *dst, int64_t ldd, size_t es, bool stream, size_t pf_off,
                            size_t pf_len)
{
#define FASI_NZ2B(ES, ST) nz_to_block(frac, frac_step, nr, w, dst, ldd, ES, ST, pf_off, pf_len)
    if (stream) {
        if (es == 2)
            nz_to_rows_stream(frac, frac_step, nr, w, dst, ldd, 2, pf_off, pf_len);
        else if (es == 4)
            nz_to_rows_stream(frac, frac_step, nr, w, dst, ldd, 4, pf_off, pf_len);
        else
            nz_to_rows_stream(frac, frac_step, nr, w, dst, ldd, 1, pf_off, pf_len);
    } else {
        if (es == 2)
            FASI_NZ2B(2, false);
        else if (es == 4)
            FASI_NZ2B(4, false);
        else
            FASI_NZ2B(1, false);
    }
#undef FASI_NZ2B
}

/* n elements from dtype `from` to dtype `to` (distinct float dtypes) through the kernel
 * table (single-row calls of the 2-D entries). */
static void convert_run(const fasi_kernels *k, fas_dtype from, fas_dtype to, const void *src,
                        void *dst, size_t n)
{
    if (from == FAS_DTYPE_FLOAT) {
        store_block_f32(k, to, src, n, dst, n, 1, n);
        return;
    }
    if (to == FAS_DTYPE_FLOAT) {
        load_block_f32(k, from, src, n, dst, n, 1, n);
        return;
    }
    /* FLOAT16 <-> BF16: through fp32, which holds every value of both exactly */
    enum { CHUNK = 512 };
    float tmp[CHUNK];
    const uint16_t *s = src;
    uint16_t *d = dst;
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t len = n - i < CHUNK ? n - i : CHUNK;
        load_block_f32(k, from, s + i, len, tmp, len, 1, len);
        store_block_f32(k, to, tmp, len, d + i, len, 1, len);
    }
}

/* Dtype-changing ND <-> NZ convert a whole strip at a time into a heap staging strip in the
 * destination dtype (one kernel call per source row or fractal, each source read front to back)
 * and then move it with the same-dtype run movers, streaming stores included. Strips wider than
 * STRIP_MAX_BYTES, or a failed allocation, fall back to blocks of 16 rows by STAGE_W columns in
 * a stack buffer small enough to stay in L1. */
enum { STAGE_W = 256 };
#define FASI_STRIP_MAX_BYTES ((size_t)512 << 10)

/* Strips moved per pass by the streaming NZ -> ND paths. */
enum { NZ_STRIPS = 4 };
_Static_assert(NZ_STRIPS * 16 <= GROUP_ROWS, "a streaming pass must fit nz_to_rows_stream");

static unsigned char *strip_alloc(const fasi_mat *m, size_t es, int64_t strips)
{
    /* one extra fractal column covers the padded pitch of convert_nd_to_nz */
    size_t bytes = (size_t)(m->n1 + 1) * (size_t)strips * 256 * es;
    return bytes <= (size_t)strips * FASI_STRIP_MAX_BYTES ? malloc(bytes) : NULL;
}

static void convert_nd_to_nz(const fasi_kernels *k, const fasi_mat *s, const fasi_mat *d)
{
    const size_t ses = fasi_dtype_size(s->dtype), des = fasi_dtype_size(d->dtype);
    const bool same = s->dtype == d->dtype;
    const unsigned char *sbase = s->data;
    unsigned char *dbase = d->data;
    const int64_t rows = s->rows, cols = s->cols, m1 = d->m1, all_rows = s->batch * rows;
    const size_t frac_step = (size_t)(m1 * 256) * des;
    const bool stream = stream_dest(d, des);
    unsigned char *strip = same ? NULL : strip_alloc(d, des, 1);
    /* a pitch 16 elements longer than the row keeps the 16 rows off one cache set */
    const int64_t ldw = cols + 16;
    _Alignas(64) unsigned char stage[16 * STAGE_W * 4];
    for (int64_t b = 0; b < s->batch; b++) {
        for (int64_t rb = 0; rb < m1; rb++) {
            const int64_t row0 = b * rows + rb * 16, nr = min64(16, rows - rb * 16);
            const unsigned char *srow = sbase + (size_t)(row0 * cols) * ses;
            unsigned char *frac = dbase + (size_t)(b * d->mat_elems + rb * 256) * des;
            if (same) {
                const int64_t next_rows = min64(16, all_rows - row0 - nr);
                block_to_nz_any(srow, cols, nr, cols, frac, frac_step, des, stream,
                                next_rows > 0 ? srow + (size_t)(nr * cols) * ses : NULL, next_rows);
                continue;
            }
            if (strip) {
                for (int64_t r = 0; r < nr; r++)
                    convert_run(k, s->dtype, d->dtype, srow + (size_t)(r * cols) * ses,
                                strip + (size_t)(r * ldw) * des, (size_t)cols);
                block_to_nz_any(strip, ldw, nr, cols, frac, frac_step, des, stream, NULL, 0);
                continue;
            }
            for (int64_t c0 = 0; c0 < cols; c0 += STAGE_W, frac += (STAGE_W / 16) * frac_step) {
                const int64_t w = min64(STAGE_W, cols - c0);
                for (int64_t r = 0; r < nr; r++)
                    convert_run(k, s->dtype, d->dtype, srow + (size_t)(r * cols + c0) * ses,
                                stage + (size_t)(r * STAGE_W) * des, (size_t)w);
                block_to_nz_any(stage, STAGE_W, nr, w, frac, frac_step, des, stream, NULL, 0);
            }
        }
    }
    fence_streams(stream);
    free(strip);
}

static void convert_nz_to_nd(const fasi_kernels *k, const fasi_mat *s, const fasi_mat *d)
{
    const size_t ses = fasi_dtype_size(s->dtype), des = fasi_dtype_size(d->dtype);
    const bool same = s->dtype == d->dtype;
    const unsigned char *sbase = s->data;
    unsigned char *dbase = d->data;
    const int64_t rows = s->rows, cols = s->cols, m1 = s->m1;
    const size_t frac_step = (size_t)(m1 * 256) * ses, fbytes = 256 * ses;
    unsigned char *strip = same ? NULL : strip_alloc(s, des, NZ_STRIPS);
    /* converted fractal columns (NZ_STRIPS fractals each) lie back to back in the strip */
    const size_t strip_step = (size_t)NZ_STRIPS * 256 * des;
    /* every destination row must start 16-byte aligned as well */
    const bool stream = FASI_HAVE_STREAM && (same || strip) && ((uintptr_t)dbase & 15) == 0 &&
                        (((size_t)cols * des) & 15) == 0 &&
                        (size_t)(d->batch * d->mat_elems) * des >= FASI_STREAM_MIN_BYTES;
    _Alignas(64) unsigned char stage[16 * STAGE_W * 4];
    for (int64_t b = 0; b < s->batch; b++) {
        /* streaming passes take NZ_STRIPS strips at once (longer runs down each fractal
         * column) and prefetch the next pass's fractals */
        const int64_t step = stream ? NZ_STRIPS : 1;
        for (int64_t rb = 0; rb < m1; rb += step) {
            const int64_t g = min64(step, m1 - rb), nr = min64(16 * g, rows - rb * 16);
            unsigned char *drow = dbase + (size_t)((b * rows + rb * 16) * cols) * des;
            const unsigned char *frac = sbase + (size_t)(b * s->mat_elems + rb * 256) * ses;
            const size_t pf_off = (size_t)g * fbytes,
                         pf_len = (size_t)min64(step, m1 - rb - g) * fbytes;
            if (same) {
                nz_to_block_any(frac, frac_step, nr, cols, drow, cols, des, stream, pf_off, pf_len);
                continue;
            }
            if (strip) {
                for (int64_t cb = 0; cb < s->n1; cb++) {
                    const unsigned char *f = frac + (size_t)cb * frac_step;
                    for (size_t l = 0; l < pf_len; l += 64) FASI_PREFETCH(f + pf_off + l);
                    convert_run(k, s->dtype, d->dtype, f, strip + (size_t)cb * strip_step,
                                (size_t)(g * 256));
                }
                nz_to_block_any(strip, strip_step, nr, cols, drow, cols, des, stream, 0, 0);
                continue;
            }
            for (int64_t c0 = 0; c0 < cols; c0 += STAGE_W, frac += (STAGE_W / 16) * frac_step) {
                const int64_t w = min64(STAGE_W, cols - c0);
                nz_to_block_any(frac, frac_step, nr, w, stage, STAGE_W, ses, false, pf_off, pf_len);
                for (int64_t r = 0; r < nr; r++)
                    convert_run(k, s->dtype, d->dtype, stage + (size_t)(r * STAGE_W) * ses,
                                drow + (size_t)(r * cols + c0) * des, (size_t)w);
            }
        }
    }
    fence_streams(stream);
    free(strip);
}

/* Same format on both sides: the storage orders coincide, so the whole storage (NZ padding
 * included, zeroed afterwards) moves as one run. */
static void convert_flat(const fasi_kernels *k, const fasi_mat *s, const fasi_mat *d)
{
    const size_t total = (size_t)(s->batch * s->mat_elems);
    const size_t ses = fasi_dtype_size(s->dtype), des = fasi_dtype_size(d->dtype);
    if (s->dtype == d->dtype) {
        memcpy(d->data, s->data, total * ses);
    } else {
        /* chunks keep each kernel call's working set in cache */
        enum { CHUNK = 1 << 14 };
        const unsigned char *sp = s->data;
        unsigned char *dp = d->data;
        for (size_t i = 0; i < total; i += CHUNK)
            convert_run(k, s->dtype, d->dtype, sp + i * ses, dp + i * des,
                        total - i < CHUNK ? total - i : CHUNK);
    }
    fasi_mat_zero_padding(d);
}

void fasi_mat_convert(const fasi_kernels *k, const fasi_mat *src, const fasi_mat *dst)
{
    if (src->nz == dst->nz)
        convert_flat(k, src, dst);
    else if (dst->nz)
        convert_nd_to_nz(k, src, dst);
    else
        convert_nz_to_nd(k, src, dst);
}
