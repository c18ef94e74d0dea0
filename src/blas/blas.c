#include "blas/blas.h"

#include <pthread.h>

#include <cblas.h>

void fasi_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                int64_t ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a, (int)lda, b,
                (int)ldb, beta, c, (int)ldc);
}

static pthread_once_t prepare_once = PTHREAD_ONCE_INIT;

static void prepare(void)
{
#if FAS_HAVE_OPENBLAS_THREADS
    openblas_set_num_threads(1);
#endif
}

void fasi_blas_prepare(void) { pthread_once(&prepare_once, prepare); }
