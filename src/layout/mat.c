/* Block loaders and storers over fasi_mat. */
#include <string.h>

#include "layout/layout.h"

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
    m->m1 = fasi_ceil16(m->rows);
    m->n1 = fasi_ceil16(m->cols);
    m->mat_elems = m->nz ? m->m1 * m->n1 * 256 : m->rows * m->cols;
}

/* Elements of a stored row segment [c, c+len) that are contiguous in memory. */
static int64_t run_length(const fasi_mat *m, int64_t c, int64_t len)
{
    if (!m->nz) return len;
    int64_t to_edge = 16 - (c & 15);
    return len < to_edge ? len : to_edge;
}

static void load_run_f32(const fasi_kernels *k, const fasi_mat *m, int64_t idx, float *dst,
                         int64_t n)
{
    switch (m->dtype) {
    case FAS_DTYPE_FLOAT16: k->f16_to_f32((const uint16_t *)m->data + idx, dst, (size_t)n); break;
    case FAS_DTYPE_BF16: k->bf16_to_f32((const uint16_t *)m->data + idx, dst, (size_t)n); break;
    case FAS_DTYPE_FLOAT: memcpy(dst, (const float *)m->data + idx, (size_t)n * sizeof *dst); break;
    case FAS_DTYPE_UINT8:
        for (int64_t i = 0; i < n; i++) dst[i] = (float)((const uint8_t *)m->data)[idx + i];
        break;
    }
}

static void store_run_f32(const fasi_kernels *k, const fasi_mat *m, int64_t idx, const float *src,
                          int64_t n)
{
    switch (m->dtype) {
    case FAS_DTYPE_FLOAT16: k->f32_to_f16(src, (uint16_t *)m->data + idx, (size_t)n); break;
    case FAS_DTYPE_BF16: k->f32_to_bf16(src, (uint16_t *)m->data + idx, (size_t)n); break;
    case FAS_DTYPE_FLOAT: memcpy((float *)m->data + idx, src, (size_t)n * sizeof *src); break;
    case FAS_DTYPE_UINT8:
        for (int64_t i = 0; i < n; i++) ((uint8_t *)m->data)[idx + i] = (uint8_t)src[i];
        break;
    }
}

static float load_one_f32(const fasi_kernels *k, const fasi_mat *m, int64_t idx)
{
    float v;
    load_run_f32(k, m, idx, &v, 1);
    return v;
}

void fasi_mat_load_f32(const fasi_kernels *k, const fasi_mat *m, int64_t b, bool trans,
                       int64_t r0, int64_t nr, int64_t c0, int64_t nc, float *dst, int64_t ldd)
{
    if (!trans) {
        for (int64_t i = 0; i < nr; i++) {
            for (int64_t j = 0; j < nc;) {
                int64_t len = run_length(m, c0 + j, nc - j);
                load_run_f32(k, m, fasi_mat_index(m, b, r0 + i, c0 + j), dst + i * ldd + j, len);
                j += len;
            }
        }
        return;
    }
    /* Transposed: logical row i is stored column r0+i. Walk stored rows for contiguity. */
    float run[16];
    for (int64_t j = 0; j < nc; j++) {
        for (int64_t i = 0; i < nr;) {
            int64_t len = run_length(m, r0 + i, nr - i);
            if (len > 16) len = 16;
            load_run_f32(k, m, fasi_mat_index(m, b, c0 + j, r0 + i), run, len);
            for (int64_t t = 0; t < len; t++) dst[(i + t) * ldd + j] = run[t];
            i += len;
        }
    }
    (void)load_one_f32;
}

void fasi_mat_store_f32(const fasi_kernels *k, const fasi_mat *m, int64_t b, int64_t r0,
                        int64_t nr, int64_t c0, int64_t nc, const float *src, int64_t lds)
{
    for (int64_t i = 0; i < nr; i++) {
        for (int64_t j = 0; j < nc;) {
            int64_t len = run_length(m, c0 + j, nc - j);
            store_run_f32(k, m, fasi_mat_index(m, b, r0 + i, c0 + j), src + i * lds + j, len);
            j += len;
        }
    }
}

void fasi_mat_load_u8(const fasi_mat *m, int64_t b, int64_t r0, int64_t nr, int64_t c0,
                      int64_t nc, uint8_t *dst, int64_t ldd)
{
    const uint8_t *base = m->data;
    for (int64_t i = 0; i < nr; i++) {
        for (int64_t j = 0; j < nc;) {
            int64_t len = run_length(m, c0 + j, nc - j);
            memcpy(dst + i * ldd + j, base + fasi_mat_index(m, b, r0 + i, c0 + j), (size_t)len);
            j += len;
        }
    }
}

void fasi_mat_store_u8(const fasi_mat *m, int64_t b, int64_t r0, int64_t nr, int64_t c0,
                       int64_t nc, const uint8_t *src, int64_t lds)
{
    uint8_t *base = m->data;
    for (int64_t i = 0; i < nr; i++) {
        for (int64_t j = 0; j < nc;) {
            int64_t len = run_length(m, c0 + j, nc - j);
            memcpy(base + fasi_mat_index(m, b, r0 + i, c0 + j), src + i * lds + j, (size_t)len);
            j += len;
        }
    }
}

void fasi_mat_zero_padding(const fasi_mat *m)
{
    if (!m->nz) return;
    size_t es = fasi_dtype_size(m->dtype);
    unsigned char *base = m->data;
    int64_t pad_rows = m->m1 * 16 - m->rows, pad_cols = m->n1 * 16 - m->cols;
    for (int64_t b = 0; b < m->batch; b++) {
        for (int64_t cb = 0; cb < m->n1; cb++) {
            for (int64_t rb = 0; rb < m->m1; rb++) {
                unsigned char *frac =
                    base + (size_t)(b * m->mat_elems + (cb * m->m1 + rb) * 256) * es;
                bool last_col = cb == m->n1 - 1 && pad_cols > 0;
                bool last_row = rb == m->m1 - 1 && pad_rows > 0;
                if (!last_col && !last_row) continue;
                for (int64_t r = 0; r < 16; r++) {
                    if (last_row && r >= 16 - pad_rows) {
                        memset(frac + (size_t)(r * 16) * es, 0, 16 * es);
                    } else if (last_col) {
                        memset(frac + (size_t)(r * 16 + 16 - pad_cols) * es, 0,
                               (size_t)pad_cols * es);
                    }
                }
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
    case FAS_DTYPE_UINT8: ((uint8_t *)m->data)[idx] = (uint8_t)v; break;
    }
}

void fasi_mat_convert(const fasi_kernels *k, const fasi_mat *src, const fasi_mat *dst)
{
    enum { CHUNK = 256 };
    float buf[CHUNK];
    for (int64_t b = 0; b < src->batch; b++) {
        for (int64_t r = 0; r < src->rows; r++) {
            for (int64_t c = 0; c < src->cols; c += CHUNK) {
                int64_t n = src->cols - c < CHUNK ? src->cols - c : CHUNK;
                if (src->dtype == FAS_DTYPE_UINT8) {
                    uint8_t bytes[CHUNK];
                    fasi_mat_load_u8(src, b, r, 1, c, n, bytes, n);
                    fasi_mat_store_u8(dst, b, r, 1, c, n, bytes, n);
                } else {
                    fasi_mat_load_f32(k, src, b, false, r, 1, c, n, buf, n);
                    fasi_mat_store_f32(k, dst, b, r, 1, c, n, buf, n);
                }
            }
        }
    }
    fasi_mat_zero_padding(dst);
}
