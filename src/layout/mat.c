/* FRACTAL_NZ / ND geometry of a tensor (fasi_mat), element access for the fp64 reference, and
 * zeroing of NZ padding. Block loaders and storers are in block_io.c, the fas_format_cast engine
 * in cast.c. */
#include <math.h>
#include <string.h>

#include "layout/rect.h"

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
