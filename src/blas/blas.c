/* POSIX types: some cblas.h (BLIS) use pthread barriers, hidden by strict C11 otherwise. */
#define _POSIX_C_SOURCE 200809L

#include "blas/blas.h"

#include <pthread.h>
#include <stdio.h>

#include <cblas.h>

/* BLIS's cblas.h does not declare its own queries; these are its stable C entry points. */
#if FAS_HAVE_BLIS_THREADS
void bli_thread_set_num_threads(long n);
long bli_thread_get_num_threads(void);
#endif
#if FAS_HAVE_BLIS_INFO
const char *bli_info_get_version_str(void);
int bli_arch_query_id(void);
const char *bli_arch_string(int id);
#endif

void fasi_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                int64_t ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a, (int)lda, b,
                (int)ldb, beta, c, (int)ldc);
}

int fasi_blas_threads(void)
{
#if FAS_HAVE_OPENBLAS_THREADS
    return openblas_get_num_threads();
#elif FAS_HAVE_BLIS_THREADS
    return (int)bli_thread_get_num_threads();
#else
    return -1;
#endif
}

bool fasi_blas_set_threads(int n)
{
#if FAS_HAVE_OPENBLAS_THREADS
    openblas_set_num_threads(n);
    return true;
#elif FAS_HAVE_BLIS_THREADS
    bli_thread_set_num_threads(n);
    return true;
#else
    (void)n;
    return false;
#endif
}

/* Whether the library must hold the BLAS at one thread during its calls: a pool of its own
 * (OpenBLAS pthreads, BLIS). OpenBLAS's OpenMP build runs one thread inside a parallel region
 * by itself, and its setter would change the caller's OpenMP default: left alone. */
static bool owns_pool(void)
{
#if FAS_HAVE_OPENBLAS_THREADS
    return openblas_get_parallel() == 1;
#elif FAS_HAVE_BLIS_THREADS
    return true;
#else
    return false;
#endif
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int users;    /* calls inside enter/leave */
static int saved;    /* the host's thread count when the first of them entered */
static bool changed; /* whether enter set it */

void fasi_blas_enter(void)
{
    pthread_mutex_lock(&lock);
    if (users++ == 0) {
        changed = false;
        if (owns_pool()) {
            saved = fasi_blas_threads();
            if (saved != 1) changed = fasi_blas_set_threads(1);
        }
    }
    pthread_mutex_unlock(&lock);
}

void fasi_blas_leave(void)
{
    pthread_mutex_lock(&lock);
    if (--users == 0 && changed) {
        fasi_blas_set_threads(saved);
        changed = false;
    }
    pthread_mutex_unlock(&lock);
}

void fasi_blas_describe(char *buf, size_t size)
{
#if FAS_HAVE_OPENBLAS_CONFIG
    snprintf(buf, size, "%s", openblas_get_config());
#elif FAS_HAVE_BLIS_INFO
    snprintf(buf, size, "BLIS %s", bli_info_get_version_str());
#else
    snprintf(buf, size, "cblas (%s)", FAS_BLAS_VENDOR_NAME);
#endif
}

const char *fasi_blas_core(void)
{
#if FAS_HAVE_OPENBLAS_CONFIG
    return openblas_get_corename();
#elif FAS_HAVE_BLIS_INFO
    return bli_arch_string(bli_arch_query_id());
#else
    return NULL;
#endif
}
