/* The fp64 oracle (see reference.h) and the two implementation entry points of
 * common/problem.h built on it. Single-threaded and independent of the SIMD kernel tables:
 * every element is read with fasi_heads_get / fasi_mat_get and written once, rounded from
 * double, with fasi_heads_set / fasi_mat_set. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "problem/problem.h"
#include "common/status.h"
#include "reference/reference.h"
#include "rng/philox.h"

/* ---- the per-head core ------------------------------------------------------------------ */

/* Pd[idx] (and G times anything): a select, so a dropped element is exactly zero. */
static double dropped(const double *probs, const uint8_t *keep, int64_t idx, double keep_prob)
{
    double g = (keep && !keep[idx]) ? 0.0 : 1.0 / keep_prob;
    return probs[idx] * g;
}

static void softmax_row(double *x, int64_t n)
{
    bool all_neg_inf = true;
    double max = -INFINITY;
    for (int64_t j = 0; j < n; j++) {
        if (x[j] != -INFINITY) all_neg_inf = false;
        if (x[j] > max) max = x[j];
    }
    /* A NaN in the row (or +inf, through inf - inf) makes the sum NaN, hence the whole row. */
    if (all_neg_inf) {
        /* docs/semantics.md §3: library policy, where torch would give 0/0 = NaN */
        for (int64_t j = 0; j < n; j++) x[j] = 0.0;
        return;
    }
    double sum = 0.0;
    for (int64_t j = 0; j < n; j++) {
        x[j] = exp(x[j] - max);
        sum += x[j];
    }
    for (int64_t j = 0; j < n; j++) x[j] /= sum;
}

void fasi_ref_forward_head(int64_t sq, int64_t sk, int64_t d, int64_t dv, const double *q,
                           const double *k, const double *v, const double *mask_rows, double scale,
                           const uint8_t *keep, double keep_prob, bool transpose_a, double *probs,
                           double *ctx)
{
    for (int64_t i = 0; i < sq; i++) {
        for (int64_t j = 0; j < sk; j++) {
            double a = 0.0;
            for (int64_t t = 0; t < d; t++) a += q[i * d + t] * k[j * d + t];
            double x = a * scale;
            if (mask_rows) x += mask_rows[i * sk + j];
            probs[i * sk + j] = x;
        }
        softmax_row(probs + i * sk, sk);
    }
    for (int64_t i = 0; i < sq; i++) {
        for (int64_t c = 0; c < dv; c++) {
            double s = 0.0;
            for (int64_t j = 0; j < sk; j++) {
                /* transpose_a: row i of Pd^T is column i of Pd (sq == sk) */
                int64_t idx = transpose_a ? j * sk + i : i * sk + j;
                s += dropped(probs, keep, idx, keep_prob) * v[j * dv + c];
            }
            ctx[i * dv + c] = s;
        }
    }
}

/* dP[i][j] = (dO . V^T)[i][j] (.) G[i][j] */
static double grad_probs(int64_t sk, int64_t dv, const double *dout, const double *v,
                         const uint8_t *keep, double keep_prob, int64_t i, int64_t j)
{
    double g = (keep && !keep[i * sk + j]) ? 0.0 : 1.0 / keep_prob;
    double s = 0.0;
    for (int64_t c = 0; c < dv; c++) s += dout[i * dv + c] * v[j * dv + c];
    return s * g;
}

void fasi_ref_backward_head(int64_t sq, int64_t sk, int64_t d, int64_t dv, const double *dout,
                            const double *probs, const double *q, const double *k, const double *v,
                            const uint8_t *keep, double scale, double keep_prob, double *dq,
                            double *dk, double *dv_out)
{
    for (int64_t t = 0; t < sq * d; t++) dq[t] = 0.0;
    for (int64_t t = 0; t < sk * d; t++) dk[t] = 0.0;
    for (int64_t t = 0; t < sk * dv; t++) dv_out[t] = 0.0;

    for (int64_t i = 0; i < sq; i++) {
        for (int64_t j = 0; j < sk; j++) {
            double pd = dropped(probs, keep, i * sk + j, keep_prob);
            for (int64_t c = 0; c < dv; c++) dv_out[j * dv + c] += pd * dout[i * dv + c];
        }
        double rowsum = 0.0;
        for (int64_t j = 0; j < sk; j++)
            rowsum += grad_probs(sk, dv, dout, v, keep, keep_prob, i, j) * probs[i * sk + j];
        for (int64_t j = 0; j < sk; j++) {
            double dp = grad_probs(sk, dv, dout, v, keep, keep_prob, i, j);
            double da = scale * (probs[i * sk + j] * (dp - rowsum));
            for (int64_t t = 0; t < d; t++) {
                dq[i * d + t] += da * k[j * d + t];
                dk[j * d + t] += da * q[i * d + t];
            }
        }
    }
}

/* ---- the entry points over validated problems -------------------------------------------- */

/* rows * cols elements of `size` bytes, or NULL when that does not fit in size_t. */
static void *alloc_array(int64_t rows, int64_t cols, size_t size)
{
    size_t r = (size_t)rows, c = (size_t)cols;
    if (rows <= 0 || cols <= 0 || c > SIZE_MAX / size || r > SIZE_MAX / size / c) return NULL;
    return malloc(r * c * size);
}

static void gather_head(const fasi_heads *h, int64_t b, int64_t n, int64_t rows, int64_t cols,
                        double *dst)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) dst[r * cols + c] = fasi_heads_get(h, b, n, r, c);
}

static void scatter_head(const fasi_heads *h, int64_t b, int64_t n, int64_t rows, int64_t cols,
                         const double *src)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) fasi_heads_set(h, b, n, r, c, src[r * cols + c]);
}

fas_status fasi_reference_forward(const fasi_fwd_problem *p)
{
    const int64_t sq = p->core.sq, sk = p->core.sk, d = p->core.d, dv = p->core.dv;
    double *q = alloc_array(sq, d, sizeof(double));
    double *k = alloc_array(sk, d, sizeof(double));
    double *v = alloc_array(sk, dv, sizeof(double));
    double *mask = p->mask.present ? alloc_array(sq, sk, sizeof(double)) : NULL;
    uint8_t *keep = alloc_array(sq, sk, 1);
    double *probs = alloc_array(sq, sk, sizeof(double));
    double *ctx = alloc_array(sq, dv, sizeof(double));
    fas_status st = FAS_OK;
    if (!q || !k || !v || (p->mask.present && !mask) || !keep || !probs || !ctx) {
        st = fasi_fail(FAS_ERR_NO_MEMORY,
                       "reference forward: cannot allocate fp64 scratch for one head "
                       "(Sq = %lld, Sk = %lld)",
                       (long long)sq, (long long)sk);
        goto done;
    }

    for (int64_t b = 0; b < p->core.b; b++) {
        for (int64_t n = 0; n < p->core.n; n++) {
            const int64_t bn = b * p->core.n + n;
            gather_head(&p->q, b, n, sq, d, q);
            gather_head(&p->k, b, n, sk, d, k);
            gather_head(&p->v, b, n, sk, dv, v);
            if (mask) {
                int64_t m = fasi_mask_matrix(&p->mask, b, n);
                for (int64_t i = 0; i < sq; i++) {
                    int64_t mr = p->mask.mask_rows > 1 ? i : 0;
                    for (int64_t j = 0; j < sk; j++)
                        mask[i * sk + j] = fasi_mat_get(&p->mask.mat, m, mr, j);
                }
            }
            for (int64_t i = 0; i < sq; i++) {
                for (int64_t j = 0; j < sk; j++) {
                    bool kept = true;
                    if (p->dropout == FASI_DROPOUT_GENERATE)
                        kept = fasi_dropout_keep(p->seed, p->offset, fasi_dropout_row(p, b, n, i),
                                                 (uint64_t)j, p->threshold);
                    else if (p->dropout == FASI_DROPOUT_INPUT)
                        kept = fasi_mat_get(&p->dmask, bn, i, j) != 0;
                    keep[i * sk + j] = kept ? 1 : 0;
                }
            }

            fasi_ref_forward_head(sq, sk, d, dv, q, k, v, mask, p->core.scale, keep,
                                  p->core.keep_prob, p->transpose_a, probs, ctx);

            scatter_head(&p->out, b, n, sq, dv, ctx);
            for (int64_t i = 0; i < sq; i++) {
                for (int64_t j = 0; j < sk; j++) {
                    if (p->has_probs) fasi_mat_set(&p->probs, bn, i, j, probs[i * sk + j]);
                    if (p->has_dmask && p->dropout != FASI_DROPOUT_INPUT)
                        fasi_mat_set(&p->dmask, bn, i, j, keep[i * sk + j]);
                }
            }
        }
    }
    fasi_mat_zero_padding(&p->out.mat);
    if (p->has_probs) fasi_mat_zero_padding(&p->probs);
    if (p->has_dmask && p->dropout != FASI_DROPOUT_INPUT) fasi_mat_zero_padding(&p->dmask);

done:
    free(q);
    free(k);
    free(v);
    free(mask);
    free(keep);
    free(probs);
    free(ctx);
    return st;
}

fas_status fasi_reference_backward(const fasi_bwd_problem *p)
{
    const int64_t sq = p->core.sq, sk = p->core.sk, d = p->core.d, dv = p->core.dv;
    double *dout = alloc_array(sq, dv, sizeof(double));
    double *probs = alloc_array(sq, sk, sizeof(double));
    double *q = alloc_array(sq, d, sizeof(double));
    double *k = alloc_array(sk, d, sizeof(double));
    double *v = alloc_array(sk, dv, sizeof(double));
    uint8_t *keep = p->has_dmask ? alloc_array(sq, sk, 1) : NULL;
    double *dq = alloc_array(sq, d, sizeof(double));
    double *dk = alloc_array(sk, d, sizeof(double));
    double *dvo = alloc_array(sk, dv, sizeof(double));
    fas_status st = FAS_OK;
    if (!dout || !probs || !q || !k || !v || (p->has_dmask && !keep) || !dq || !dk || !dvo) {
        st = fasi_fail(FAS_ERR_NO_MEMORY,
                       "reference backward: cannot allocate fp64 scratch for one head "
                       "(Sq = %lld, Sk = %lld)",
                       (long long)sq, (long long)sk);
        goto done;
    }

    for (int64_t b = 0; b < p->core.b; b++) {
        for (int64_t n = 0; n < p->core.n; n++) {
            const int64_t bn = b * p->core.n + n;
            gather_head(&p->dout, b, n, sq, dv, dout);
            gather_head(&p->q, b, n, sq, d, q);
            gather_head(&p->k, b, n, sk, d, k);
            gather_head(&p->v, b, n, sk, dv, v);
            for (int64_t i = 0; i < sq; i++) {
                for (int64_t j = 0; j < sk; j++) {
                    probs[i * sk + j] = fasi_mat_get(&p->probs, bn, i, j);
                    if (keep) keep[i * sk + j] = fasi_mat_get(&p->dmask, bn, i, j) != 0;
                }
            }

            fasi_ref_backward_head(sq, sk, d, dv, dout, probs, q, k, v, keep, p->core.scale,
                                   p->core.keep_prob, dq, dk, dvo);

            scatter_head(&p->dq, b, n, sq, d, dq);
            scatter_head(&p->dk, b, n, sk, d, dk);
            scatter_head(&p->dv_out, b, n, sk, dv, dvo);
        }
    }
    fasi_mat_zero_padding(&p->dq.mat);
    fasi_mat_zero_padding(&p->dk.mat);
    fasi_mat_zero_padding(&p->dv_out.mat);

done:
    free(dout);
    free(probs);
    free(q);
    free(k);
    free(v);
    free(keep);
    free(dq);
    free(dk);
    free(dvo);
    return st;
}
