/* Per-head addressing of 4-D [B, N, rows, cols] and merged 2-D [B*rows, N*cols] tensors. */
#include "problem/problem.h"

/* Matrix index and stored origin of head (b, n)'s logical element (r0, c0). */
static void locate(const fasi_heads *h, int64_t b, int64_t n, int64_t r0, int64_t c0, int64_t *mat,
                   int64_t *sr, int64_t *sc)
{
    int64_t r = r0, c = c0;
    if (h->merged) {
        *mat = 0;
        r = b * h->rows + r0;
        c = n * h->cols + c0;
    } else {
        *mat = b * h->heads + n;
    }
    *sr = h->trans ? c : r;
    *sc = h->trans ? r : c;
}

void fasi_heads_load_f32(const fasi_kernels *k, const fasi_heads *h, int64_t b, int64_t n,
                         int64_t r0, int64_t nr, int64_t c0, int64_t nc, float *dst, int64_t ldd)
{
    int64_t mat, sr, sc;
    locate(h, b, n, r0, c0, &mat, &sr, &sc);
    /* a transposed load takes the origin of the logical (untransposed) rectangle */
    if (h->trans)
        fasi_mat_load_f32(k, &h->mat, mat, true, sc, nr, sr, nc, dst, ldd);
    else
        fasi_mat_load_f32(k, &h->mat, mat, false, sr, nr, sc, nc, dst, ldd);
}

void fasi_heads_load_f32_t(const fasi_kernels *k, const fasi_heads *h, int64_t b, int64_t n,
                           int64_t r0, int64_t nr, int64_t c0, int64_t nc, float *dst, int64_t ldd)
{
    int64_t mat, sr, sc;
    locate(h, b, n, r0, c0, &mat, &sr, &sc);
    /* stored transposed: the logical columns are stored rows, so this is a plain load */
    if (h->trans)
        fasi_mat_load_f32(k, &h->mat, mat, false, sr, nc, sc, nr, dst, ldd);
    else
        fasi_mat_load_f32(k, &h->mat, mat, true, sc, nc, sr, nr, dst, ldd);
}

void fasi_heads_store_f32(const fasi_kernels *k, const fasi_heads *h, int64_t b, int64_t n,
                          int64_t r0, int64_t nr, int64_t c0, int64_t nc, const float *src,
                          int64_t lds)
{
    int64_t mat, sr, sc;
    locate(h, b, n, r0, c0, &mat, &sr, &sc);
    fasi_mat_store_f32(k, &h->mat, mat, sr, nr, sc, nc, src, lds);
}

double fasi_heads_get(const fasi_heads *h, int64_t b, int64_t n, int64_t r, int64_t c)
{
    int64_t mat, sr, sc;
    locate(h, b, n, r, c, &mat, &sr, &sc);
    return fasi_mat_get(&h->mat, mat, sr, sc);
}

void fasi_heads_set(const fasi_heads *h, int64_t b, int64_t n, int64_t r, int64_t c, double v)
{
    int64_t mat, sr, sc;
    locate(h, b, n, r, c, &mat, &sr, &sc);
    fasi_mat_set(&h->mat, mat, sr, sc, v);
}
