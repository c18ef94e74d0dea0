/* Block loaders and storers over fasi_mat: the pipeline's only way in and out of the caller's
 * tensors. Rectangles of any supported tensor (ND or NZ; FLOAT, FLOAT16, BF16, UINT8) move to and
 * from fp32 (or byte) panels, each slab piece converted with one strided kernel-table call
 * straight between storage and the panel (no intermediate tile). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layout/rect.h"
#include "layout/stream.h"

/* o[i*ldo + s] = p[s*ldt + i] for s, i < 4: one 4x4 block in vector registers. */
#if FASI_HAVE_SSE2
#define FASI_TRANSPOSE4 1
static inline void transpose4(const float *p, int64_t ldt, float *o, int64_t ldo)
{
    __m128 a = _mm_loadu_ps(p), b = _mm_loadu_ps(p + ldt);
    __m128 c = _mm_loadu_ps(p + 2 * ldt), d = _mm_loadu_ps(p + 3 * ldt);
    _MM_TRANSPOSE4_PS(a, b, c, d);
    _mm_storeu_ps(o, a);
    _mm_storeu_ps(o + ldo, b);
    _mm_storeu_ps(o + 2 * ldo, c);
    _mm_storeu_ps(o + 3 * ldo, d);
}
#elif FASI_HAVE_ASIMD
#define FASI_TRANSPOSE4 1
static inline void transpose4(const float *p, int64_t ldt, float *o, int64_t ldo)
{
    float32x4_t a = vld1q_f32(p), b = vld1q_f32(p + ldt);
    float32x4_t c = vld1q_f32(p + 2 * ldt), d = vld1q_f32(p + 3 * ldt);
    /* rows interleaved in pairs (a0 b0 a2 b2 | a1 b1 a3 b3 | c0 d0 c2 d2 | c1 d1 c3 d3), then
     * the 64-bit halves of the pairs combined */
    float64x2_t ab0 = vreinterpretq_f64_f32(vtrn1q_f32(a, b));
    float64x2_t ab1 = vreinterpretq_f64_f32(vtrn2q_f32(a, b));
    float64x2_t cd0 = vreinterpretq_f64_f32(vtrn1q_f32(c, d));
    float64x2_t cd1 = vreinterpretq_f64_f32(vtrn2q_f32(c, d));
    vst1q_f32(o, vreinterpretq_f32_f64(vtrn1q_f64(ab0, cd0)));
    vst1q_f32(o + ldo, vreinterpretq_f32_f64(vtrn1q_f64(ab1, cd1)));
    vst1q_f32(o + 2 * ldo, vreinterpretq_f32_f64(vtrn2q_f64(ab0, cd0)));
    vst1q_f32(o + 3 * ldo, vreinterpretq_f32_f64(vtrn2q_f64(ab1, cd1)));
}
#else
#define FASI_TRANSPOSE4 0
#endif

/* out[i*ldo + s] = t[s*ldt + i] for s < ns, i < ni. */
static void transpose_f32(const float *t, int64_t ldt, int64_t ns, int64_t ni, float *out,
                          int64_t ldo)
{
    int64_t i0 = 0;
#if FASI_TRANSPOSE4
    const int64_t s4 = ns & ~(int64_t)3;
    for (; i0 + 4 <= ni; i0 += 4) {
        float *o = out + i0 * ldo;
        int64_t s = 0;
        for (; s < s4; s += 4) transpose4(t + s * ldt + i0, ldt, o + s, ldo);
        for (; s < ns; s++)
            for (int64_t i = 0; i < 4; i++) o[i * ldo + s] = t[s * ldt + i0 + i];
    }
#endif
    for (int64_t i = i0; i < ni; i++)
        for (int64_t s = 0; s < ns; s++) out[i * ldo + s] = t[s * ldt + i];
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
            store_block_f32(k, dt, in, (size_t)lds, slab, 16, (size_t)(rb - ra), (size_t)(cb - ca));
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

/* A rectangle of elements already in m's dtype (es bytes each), row pitch lds elements. */
FASI_ALWAYS_INLINE void store_same(const fasi_mat *m, int64_t b, int64_t r0, int64_t nr, int64_t c0,
                                   int64_t nc, const unsigned char *src, int64_t lds, size_t es)
{
    if (nr <= 0 || nc <= 0) return;
    unsigned char *base = m->data;
    const bool stream = stream_dest(m, es);
    const size_t pitch = (size_t)lds * es;
    if (!m->nz) {
        for (int64_t i = 0; i < nr; i++) {
            unsigned char *d = base + (size_t)fasi_mat_index(m, b, r0 + i, c0) * es;
            if (stream)
                stream_copy(d, src + (size_t)i * pitch, (size_t)nc * es);
            else
                memcpy(d, src + (size_t)i * pitch, (size_t)nc * es);
        }
        fence_streams(stream);
        return;
    }
    for (int64_t rs = r0 & ~(int64_t)15; rs < r0 + nr; rs += 16) {
        int64_t ra = max64(rs, r0), rb = min64(rs + 16, r0 + nr);
        for (int64_t cs = c0 & ~(int64_t)15; cs < c0 + nc; cs += 16) {
            int64_t ca = max64(cs, c0), cb = min64(cs + 16, c0 + nc);
            unsigned char *p = base + (size_t)fasi_mat_index(m, b, ra, ca) * es;
            const unsigned char *in = src + (size_t)(ra - r0) * pitch + (size_t)(ca - c0) * es;
            if (cb - ca == 16) {
                for (int64_t r = ra; r < rb; r++, p += 16 * es, in += pitch)
                    put16(p, in, es, stream);
            } else {
                for (int64_t r = ra; r < rb; r++, p += 16 * es, in += pitch)
                    memcpy(p, in, (size_t)(cb - ca) * es);
            }
        }
    }
    fence_streams(stream);
}

void fasi_mat_store_u8(const fasi_mat *m, int64_t b, int64_t r0, int64_t nr, int64_t c0, int64_t nc,
                       const uint8_t *src, int64_t lds)
{
    store_same(m, b, r0, nr, c0, nc, src, lds, 1);
}

void fasi_mat_store_u16(const fasi_mat *m, int64_t b, int64_t r0, int64_t nr, int64_t c0,
                        int64_t nc, const uint16_t *src, int64_t lds)
{
    store_same(m, b, r0, nr, c0, nc, (const unsigned char *)src, lds, 2);
}
