/* The fp64 oracle: docs/semantics.md §1, §3, §4 and §6 for one head (b, n), in plain loops over
 * row-major double arrays. Every other path is tested against these functions, so they favour
 * being obviously correct over being fast: no blocking, no SIMD, no BLAS, no allocation.
 *
 * Shared conventions of both functions:
 * - Arrays are row-major and dense: q [sq*d], k [sk*d] (K as stored [Sk, D], not K^T),
 *   v [sk*dv], probs [sq*sk], ctx / dout [sq*dv].
 * - keep is one byte per element of P (sq*sk), nonzero = kept; NULL means every element is
 *   kept. The dropped-out probabilities are Pd[i][j] = P[i][j] * G[i][j] with
 *   G = keep ? 1 / keep_prob : 0, a product as in docs/semantics.md §1 (and torch): a dropped NaN
 * stays NaN. The pipeline's dropout_apply row kernel computes the same product; §6's G likewise.
 * - Inputs and outputs must not overlap. */
#ifndef FASI_REFERENCE_H
#define FASI_REFERENCE_H

#include <stdbool.h>
#include <stdint.h>

/* Forward of one head.
 *   X = (Q . K^T) * scale + mask_rows        (mask_rows [sq*sk], already broadcast; NULL = 0)
 *   P = softmax of each row of X, subtracting the true row maximum; a row whose every element
 *       is -inf gives a row of zeros; a NaN anywhere in a row (or +inf, through inf - inf)
 *       makes that whole row NaN
 *   ctx = Pd . V, or Pd^T . V when transpose_a (then sq must equal sk)
 * probs receives P before dropout [sq*sk]; ctx receives the context [sq*dv]. */
void fasi_ref_forward_head(int64_t sq, int64_t sk, int64_t d, int64_t dv, const double *q,
                           const double *k, const double *v, const double *mask_rows, double scale,
                           const uint8_t *keep, double keep_prob, bool transpose_a, double *probs,
                           double *ctx);

/* Backward of one head (transpose_a false), with P = probs as the forward stored it:
 *   dV = Pd^T . dO,  dP = (dO . V^T) (.) G,  dX = P (.) (dP - rowsum(dP (.) P)),
 *   dA = scale * dX,  dQ = dA . K,  dK = dA^T . Q
 * Writes dq [sq*d], dk [sk*d], dv_out [sk*dv]. */
void fasi_ref_backward_head(int64_t sq, int64_t sk, int64_t d, int64_t dv, const double *dout,
                            const double *probs, const double *q, const double *k, const double *v,
                            const uint8_t *keep, double scale, double keep_prob, double *dq,
                            double *dk, double *dv_out);

#endif
