/* The only door to BLAS: the row-major sgemm of the BLAS engine (engine/blas.c), the thread
 * policy around the library's calls, and what the BLAS says about itself. */
#ifndef FASI_BLAS_H
#define FASI_BLAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* C = alpha * op(A) * op(B) + beta * C, row-major; op(X) = X^T when trans_x. All dims and
 * leading dimensions must be <= INT32_MAX (checked by the API layer). */
void fasi_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                int64_t ldc);

/* Bracket every call that runs BLAS products (from any thread; calls may overlap). While at
 * least one such call runs, a BLAS with its own thread pool (OpenBLAS's pthreads build, BLIS)
 * is set to one thread, because the library runs the products inside its own tasks; when the
 * last one leaves, the thread count the host had is restored. Nothing is changed for a BLAS
 * whose threads the library cannot set, or that runs OpenMP (it is single-threaded inside the
 * library's parallel regions by itself). */
void fasi_blas_enter(void);
void fasi_blas_leave(void);

/* The BLAS's thread count as the host sees it (for tests); -1 when the BLAS does not say. */
int fasi_blas_threads(void);
/* Set it as a host would (for tests); false when the BLAS cannot. */
bool fasi_blas_set_threads(int n);

/* One line about the linked BLAS: vendor, version and configuration as it reports them, e.g.
 * "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64", or "BLIS 0.9.0", or
 * "cblas (<vendor named at build time>)". */
void fasi_blas_describe(char *buf, size_t size);

/* The CPU core the BLAS chose its kernels for ("SkylakeX", "Prescott", "skx", "neoversen1"...),
 * or NULL when it does not say. */
const char *fasi_blas_core(void);

#endif
