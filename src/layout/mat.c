/* Block loaders and storers over fasi_mat, and the whole-tensor conversion behind
 * fas_format_cast.
 *
 * Everything walks FRACTAL_NZ storage in units of 16-element runs (one row of one fractal,
 * contiguous in memory) or fractal slabs (consecutive rows of one fractal, rows 16 elements
 * apart). The block loaders and storers convert each slab piece they touch, and an ND block
 * whole, with one strided 2-D kernel-table call straight between storage and the fp32 panel (no
 * intermediate tile); every same-dtype move is a fixed-size copy the compiler inlines. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layout/layout.h"

#if defined(__SSE2__) && (defined(__x86_64__) || defined(_M_X64))
/* SSE2 is part of the x86-64 baseline ABI: it needs no per-file ISA flags and runs on every
 * CPU this build can run on. Used only for streaming stores and 4x4 transposes. */
#include <emmintrin.h>
#define FASI_HAVE_SSE2 1
#else
#define FASI_HAVE_SSE2 0
#endif

size_t fasi_dtype_size(fas_dtype dt)
{
    switch (dt) {
    case FAS_DTYPE_FLOAT: return 4;
    case FAS_DTYPE_FLOAT16:
    case FAS_DTYPE_BF16: return 2;
    case FAS_DTYPE_UINT8: return 1;
    }
    return 0;
}

void fasi_mat_init(fasi_mat *m, const fas_tensor *t)
{
    m->data = t->data;
    m->dtype = t->dtype;
    m->nz = t->format == FAS_FORMAT_FRACTAL_NZ;
    m->batch = 1;
    if (t->ndim == 0) {
        m->rows = 1;
        m->cols = 1;
    } else if (t->ndim == 1) {
        m->rows = t->dims[0];
        m->cols = 1;
    } else {
        for (int i = 0; i < t->ndim - 2; i++) m->batch *= t->dims[i];
        m->rows = t->dims[t->ndim - 2];
        m->cols = t->dims[t->ndim - 1];
    }
    /* not fasi_ceil16: a valid ND tensor may have a dim within 15 of INT64_MAX */
    m->m1 = m->rows / 16 + (m->rows % 16 != 0);
    m->n1 = m->cols / 16 + (m->cols % 16 != 0);
    m->mat_elems = m->nz ? m->m1 * m->n1 * 256 : m->rows * m->cols;
}

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

static void load_block_f32(const fasi_kernels *k, fas_dtype dt, const void *src, size_t lds,
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

static void store_block_f32(const fasi_kernels *k, fas_dtype dt, const float *src, size_t lds,
                            void *dst, size_t ldd, size_t rows, size_t cols)
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

/* out[i*ldo + s] = t[s*ldt + i] for s < ns, i < ni. */
static void transpose_f32(const float *t, int64_t ldt, int64_t ns, int64_t ni, float *out,
                          int64_t ldo)
{
    int64_t i0 = 0;
#if FASI_HAVE_SSE2
    const int64_t s4 = ns & ~(int64_t)3;
    for (; i0 + 4 <= ni; i0 += 4) {
        float *o = out + i0 * ldo;
        int64_t s = 0;
        for (; s < s4; s += 4) {
            const float *p = t + s * ldt + i0;
            __m128 a = _mm_loadu_ps(p), b = _mm_loadu_ps(p + ldt);
            __m128 c = _mm_loadu_ps(p + 2 * ldt), d = _mm_loadu_ps(p + 3 * ldt);
            _MM_TRANSPOSE4_PS(a, b, c, d);
            _mm_storeu_ps(o + s, a);
            _mm_storeu_ps(o + ldo + s, b);
            _mm_storeu_ps(o + 2 * ldo + s, c);
            _mm_storeu_ps(o + 3 * ldo + s, d);
        }
        for (; s < ns; s++)
            for (int64_t i = 0; i < 4; i++) o[i * ldo + s] = t[s * ldt + i0 + i];
    }
#endif
    for (int64_t i = i0; i < ni; i++)
        for (int64_t s = 0; s < ns; s++) out[i * ldo + s] = t[s * ldt + i];
}

/* ---- streaming stores ---------------------------------------------------------------------- */

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
#if FASI_HAVE_SSE2
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

static void fence_streams(bool stream)
{
#if FASI_HAVE_SSE2
    if (stream) _mm_sfence();
#else
    (void)stream;
#endif
}

/* n bytes from src to dst: the 16-byte aligned middle with streaming stores, the ends (and
 * everything in a build without SSE2) with ordinary ones. */
static void stream_copy(unsigned char *dst, const unsigned char *src, size_t n)
{
#if FASI_HAVE_SSE2
    size_t head = (16 - ((uintptr_t)dst & 15)) & 15;
    if (head > n) head = n;
    memcpy(dst, src, head);
    dst += head;
    src += head;
    n -= head;
    for (; n >= 16; n -= 16, dst += 16, src += 16)
        _mm_stream_si128((__m128i *)(void *)dst, _mm_loadu_si128((const __m128i *)(const void *)src));
#endif
    memcpy(dst, src, n);
}

/* Whether stores into m (elements of es bytes) bypass the cache: see FASI_STREAM_MIN_BYTES. NZ
 * stores stream whole fractal rows, which needs 16-byte aligned data; ND rows go through
 * stream_copy, which aligns itself. */
static bool stream_dest(const fasi_mat *m, size_t es)
{
    return FASI_HAVE_SSE2 && (!m->nz || ((uintptr_t)m->data & 15) == 0) &&
           (size_t)(m->batch * m->mat_elems) * es >= FASI_STREAM_MIN_BYTES;
}

/* ---- block loads and stores ----------------------------------------------------------------
 * An ND rectangle (not transposed) is one strided call: the matrix rows are m->cols elements
 * apart. NZ rectangles are walked strip by strip (16 stored rows), fractal by fractal inside a
 * strip: the piece of the rectangle that falls in one fractal is a slab of storage rows 16
 * elements apart, converted with one strided call straight to or from the block (into a
 * 16-column buffer first only when it must be transposed). Stores into a large tensor
 * (stream_dest: P, the drop mask and the outputs of the benchmark shapes) use streaming stores,
 * converted first into a 1 KiB stage that stays in L1: whole fractal rows in NZ, pieces of
 * rows in ND. The tensor is far bigger than the caches, and this saves reading every
 * destination line before it is overwritten. The caller's threads are joined before the
 * operator returns, and each storer ends with a store fence. */

void fasi_mat_load_f32(const fasi_kernels *k, const fasi_mat *m, int64_t b, bool trans, int64_t r0,
                       int64_t nr, int64_t c0, int64_t nc, float *dst, int64_t ldd)
{
    if (nr <= 0 || nc <= 0) return;
    const fas_dtype dt = m->dtype;
    if (!trans) {
        if (!m->nz) {
            load_block_f32(k, dt, elem_ptr(m, fasi_mat_index(m, b, r0, c0)), (size_t)m->cols, dst,
                           (size_t)ldd, (size_t)nr, (size_t)nc);
            return;
        }
        for (int64_t rs = r0 & ~(int64_t)15; rs < r0 + nr; rs += 16) {
            int64_t ra = max64(rs, r0), rb = min64(rs + 16, r0 + nr); /* stored rows */
            for (int64_t cs = c0 & ~(int64_t)15; cs < c0 + nc; cs += 16) {
                int64_t ca = max64(cs, c0), cb = min64(cs + 16, c0 + nc);
                /* (ra, ca) is at column ca - cs of its fractal row; the rows below are 16
                 * elements apart */
                load_block_f32(k, dt, elem_ptr(m, fasi_mat_index(m, b, ra, ca)), 16,
                               dst + (ra - r0) * ldd + (ca - c0), (size_t)ldd, (size_t)(rb - ra),
                               (size_t)(cb - ca));
            }
        }
        return;
    }

    /* Transposed: dst[i][j] = stored[c0 + j][r0 + i]. Stored rows c0.. map to dst columns,
     * stored columns r0.. to dst rows. Tiles of at most 16 stored rows by 16 (NZ: one fractal
     * slab) or 64 (ND) stored columns are converted into a buffer with one kernel call (fp32 is
     * read in place) and written out transposed. */
    enum { TW = 64 };
    float buf[16 * TW];
    const int64_t w = m->nz ? 16 : TW;
    for (int64_t ss = m->nz ? (c0 & ~(int64_t)15) : c0; ss < c0 + nc; ss += 16) {
        int64_t sa = max64(ss, c0), sb = min64(ss + 16, c0 + nc); /* stored rows [sa, sb) */
        for (int64_t ts = m->nz ? (r0 & ~(int64_t)15) : r0; ts < r0 + nr; ts += w) {
            int64_t ta = max64(ts, r0), tb = min64(ts + w, r0 + nr); /* stored cols [ta, tb) */
            const float *t;
            int64_t ldt;
            if (dt == FAS_DTYPE_FLOAT) {
                /* already fp32: transpose straight out of storage */
                t = (const float *)(const void *)elem_ptr(m, fasi_mat_index(m, b, sa, ta));
                ldt = m->nz ? 16 : m->cols;
            } else if (m->nz) {
                /* rows sa..sb of one fractal: one slab, full 16 columns */
                const unsigned char *slab = elem_ptr(m, fasi_mat_index(m, b, sa, ts));
                load_block_f32(k, dt, slab, 16, buf, 16, (size_t)(sb - sa), 16);
                t = buf + (ta - ts);
                ldt = 16;
            } else {
                load_block_f32(k, dt, elem_ptr(m, fasi_mat_index(m, b, sa, ta)), (size_t)m->cols,
                               buf, TW, (size_t)(sb - sa), (size_t)(tb - ta));
                t = buf;
                ldt = TW;
            }
            transpose_f32(t, ldt, sb - sa, tb - ta, dst + (ta - r0) * ldd + (sa - c0), ldd);
        }
    }
}

void fasi_mat_store_f32(const fasi_kernels *k, const fasi_mat *m, int64_t b, int64_t r0, int64_t nr,
                        int64_t c0, int64_t nc, const float *src, int64_t lds)
{
    if (nr <= 0 || nc <= 0) return;
    const fas_dtype dt = m->dtype;
    const size_t es = fasi_dtype_size(dt);
    const bool stream = stream_dest(m, es);
    _Alignas(64) unsigned char stage[256 * sizeof(float)];
    if (!m->nz) {
        unsigned char *d0 = elem_ptr(m, fasi_mat_index(m, b, r0, c0));
        if (!stream) {
            store_block_f32(k, dt, src, (size_t)lds, d0, (size_t)m->cols, (size_t)nr, (size_t)nc);
            return;
        }
        /* each row in pieces of 256 elements: converted in L1, then streamed out */
        for (int64_t i = 0; i < nr; i++) {
            unsigned char *d = d0 + (size_t)i * (size_t)m->cols * es;
            for (int64_t c = 0; c < nc; c += 256) {
                size_t len = (size_t)min64(nc - c, 256);
                store_block_f32(k, dt, src + i * lds + c, len, stage, len, 1, len);
                stream_copy(d + (size_t)c * es, stage, len * es);
            }
        }
        fence_streams(true);
        return;
    }
    for (int64_t rs = r0 & ~(int64_t)15; rs < r0 + nr; rs += 16) {
        int64_t ra = max64(rs, r0), rb = min64(rs + 16, r0 + nr);
        for (int64_t cs = c0 & ~(int64_t)15; cs < c0 + nc; cs += 16) {
            int64_t ca = max64(cs, c0), cb = min64(cs + 16, c0 + nc);
            const float *in = src + (ra - r0) * lds + (ca - c0);
            unsigned char *slab = elem_ptr(m, fasi_mat_index(m, b, ra, ca));
            if (stream && cb - ca == 16) {
                /* whole fractal rows are contiguous: convert them in L1, stream them out */
                store_block_f32(k, dt, in, (size_t)lds, stage, 16, (size_t)(rb - ra), 16);
                stream_copy(slab, stage, (size_t)(rb - ra) * 16 * es);
                continue;
            }
            /* padding columns of the fractal are left alone: only cb - ca columns are written */
            store_block_f32(k, dt, in, (size_t)lds, slab, 16, (size_t)(rb - ra),
                            (size_t)(cb - ca));
        }
    }
    fence_streams(stream);
}

void fasi_mat_load_u8(const fasi_mat *m, int64_t b, int64_t r0, int64_t nr, int64_t c0, int64_t nc,
                      uint8_t *dst, int64_t ldd)
{
    if (nr <= 0 || nc <= 0) return;
    const uint8_t *base = m->data;
    if (!m->nz) {
        for (int64_t i = 0; i < nr; i++)
            memcpy(dst + i * ldd, base + fasi_mat_index(m, b, r0 + i, c0), (size_t)nc);
        return;
    }
    for (int64_t rs = r0 & ~(int64_t)15; rs < r0 + nr; rs += 16) {
        int64_t ra = max64(rs, r0), rb = min64(rs + 16, r0 + nr);
        for (int64_t cs = c0 & ~(int64_t)15; cs < c0 + nc; cs += 16) {
            int64_t ca = max64(cs, c0), cb = min64(cs + 16, c0 + nc);
            const uint8_t *p = base + fasi_mat_index(m, b, ra, ca);
            uint8_t *out = dst + (ra - r0) * ldd + (ca - c0);
            if (cb - ca == 16) {
                for (int64_t r = ra; r < rb; r++, p += 16, out += ldd) memcpy(out, p, 16);
            } else {
                for (int64_t r = ra; r < rb; r++, p += 16, out += ldd)
                    memcpy(out, p, (size_t)(cb - ca));
            }
        }
    }
}

void fasi_mat_store_u8(const fasi_mat *m, int64_t b, int64_t r0, int64_t nr, int64_t c0, int64_t nc,
                       const uint8_t *src, int64_t lds)
{
    if (nr <= 0 || nc <= 0) return;
    uint8_t *base = m->data;
    const bool stream = stream_dest(m, 1);
    if (!m->nz) {
        for (int64_t i = 0; i < nr; i++) {
            uint8_t *d = base + fasi_mat_index(m, b, r0 + i, c0);
            if (stream)
                stream_copy(d, src + i * lds, (size_t)nc);
            else
                memcpy(d, src + i * lds, (size_t)nc);
        }
        fence_streams(stream);
        return;
    }
    for (int64_t rs = r0 & ~(int64_t)15; rs < r0 + nr; rs += 16) {
        int64_t ra = max64(rs, r0), rb = min64(rs + 16, r0 + nr);
        for (int64_t cs = c0 & ~(int64_t)15; cs < c0 + nc; cs += 16) {
            int64_t ca = max64(cs, c0), cb = min64(cs + 16, c0 + nc);
            uint8_t *p = base + fasi_mat_index(m, b, ra, ca);
            const uint8_t *in = src + (ra - r0) * lds + (ca - c0);
            if (cb - ca == 16) {
                for (int64_t r = ra; r < rb; r++, p += 16, in += lds) put16(p, in, 1, stream);
            } else {
                for (int64_t r = ra; r < rb; r++, p += 16, in += lds)
                    memcpy(p, in, (size_t)(cb - ca));
            }
        }
    }
    fence_streams(stream);
}

/* Only the last fractal row (padding rows) and the last fractal column (padding columns) of
 * each matrix can hold padding; nothing else is visited. */
void fasi_mat_zero_padding(const fasi_mat *m)
{
    if (!m->nz) return;
    const size_t es = fasi_dtype_size(m->dtype);
    const int64_t pad_rows = m->m1 * 16 - m->rows, pad_cols = m->n1 * 16 - m->cols;
    if (pad_rows == 0 && pad_cols == 0) return;
    for (int64_t b = 0; b < m->batch; b++) {
        if (pad_rows > 0) {
            for (int64_t cb = 0; cb < m->n1; cb++) {
                int64_t idx =
                    b * m->mat_elems + (cb * m->m1 + m->m1 - 1) * 256 + (16 - pad_rows) * 16;
                memset(elem_ptr(m, idx), 0, (size_t)(pad_rows * 16) * es);
            }
        }
        if (pad_cols > 0) {
            int64_t rows_here = 16;
            for (int64_t rb = 0; rb < m->m1; rb++) {
                if (rb == m->m1 - 1) rows_here = 16 - pad_rows;
                unsigned char *frac =
                    elem_ptr(m, b * m->mat_elems + ((m->n1 - 1) * m->m1 + rb) * 256);
                for (int64_t r = 0; r < rows_here; r++)
                    memset(frac + (size_t)(r * 16 + 16 - pad_cols) * es, 0, (size_t)pad_cols * es);
            }
        }
    }
}

double fasi_mat_get(const fasi_mat *m, int64_t b, int64_t r, int64_t c)
{
    int64_t idx = fasi_mat_index(m, b, r, c);
    switch (m->dtype) {
    case FAS_DTYPE_FLOAT16: return fasi_f16_to_f32(((const uint16_t *)m->data)[idx]);
    case FAS_DTYPE_BF16: return fasi_bf16_to_f32(((const uint16_t *)m->data)[idx]);
    case FAS_DTYPE_FLOAT: return ((const float *)m->data)[idx];
    case FAS_DTYPE_UINT8: return ((const uint8_t *)m->data)[idx];
    }
    return 0;
}

void fasi_mat_set(const fasi_mat *m, int64_t b, int64_t r, int64_t c, double v)
{
    int64_t idx = fasi_mat_index(m, b, r, c);
    switch (m->dtype) {
    case FAS_DTYPE_FLOAT16: ((uint16_t *)m->data)[idx] = fasi_f64_to_f16(v); break;
    case FAS_DTYPE_BF16: ((uint16_t *)m->data)[idx] = fasi_f64_to_bf16(v); break;
    case FAS_DTYPE_FLOAT: ((float *)m->data)[idx] = (float)v; break;
    case FAS_DTYPE_UINT8:
        ((uint8_t *)m->data)[idx] = (!(v > 0.0)) ? 0 : v >= 255.0 ? 255 : (uint8_t)lrint(v);
        break;
    }
}

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
#if FASI_HAVE_SSE2
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
    const bool stream = FASI_HAVE_SSE2 && (same || strip) && ((uintptr_t)dbase & 15) == 0 &&
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
