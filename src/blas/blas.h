/* The only door to BLAS. Row-major single-precision GEMM, always single-threaded inside the
 * library's own tasks. */
#ifndef FASI_BLAS_H
#define FASI_BLAS_H

#include <stdbool.h>
#include <stdint.h>

/* C = alpha * op(A) * op(B) + beta * C, row-major; op(X) = X^T when trans_x. All dims and
 * leading dimensions must be <= INT32_MAX (checked by the API layer). */
void fasi_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                int64_t ldc);

/* Put the BLAS in single-threaded mode (once per process): the library parallelises over
 * heads and row blocks itself, and a threaded BLAS inside each task would oversubscribe. */
void fasi_blas_prepare(void);

#endif
