/* The BLAS engine: every product is one cblas_sgemm of the linked BLAS on the pipeline's own
 * blocks (engine.h). Operands are plain fp32 matrices, read in place where the pipeline already
 * holds them (a row block of dO or Q) or loaded once per head, K^T as K itself (the sgemm reads
 * it transposed). The BLAS runs single-threaded inside the library's tasks (blas/blas.h), so its
 * result depends only on the BLAS, its core and the shapes, never on the thread count.
 *
 * An addend (the fp16 mask) is loaded into c first and the BLAS accumulates onto it (beta 1).
 * alpha 0 (a scale that is 0 in fp32) goes row by row through the thread's work: a BLAS may skip
 * its product when alpha is 0, which would lose the NaN of a 0 * NaN score that the other engines
 * keep. */
#include "blas/blas.h"
#include "engine/engine.h"

static size_t work_bytes(size_t m, size_t n, size_t k)
{
    (void)m;
    (void)k;
    return n * sizeof(float); /* one row of products, for alpha 0 */
}

static void gemm(const fasi_kernels *kern, void *work, size_t m, size_t n, size_t k, float alpha,
                 const float *a, size_t rsa, size_t csa, const fasi_operand *b, size_t t0,
                 size_t j0, float *c, size_t ldc, bool accumulate, const fasi_addend *add)
{
    /* A row-major (csa 1: m x k, row stride rsa) or transposed (stored k x m, row stride csa);
     * a single row or column has no stride to speak of, and cblas wants lda >= its width */
    const bool a_trans = csa != 1;
    size_t lda = a_trans ? csa : rsa;
    if (lda < (a_trans ? m : k)) lda = a_trans ? m : k;
    const int64_t ldb = (int64_t)b->ld;
    const float *bp = b->trans ? b->f32 + j0 * b->ld + t0 : b->f32 + t0 * b->ld + j0;
    if (add) fasi_addend_load(kern, add, m, n, c, ldc);
    const bool onto_c = add || accumulate;
    if (alpha != 0.0f) {
        fasi_sgemm(a_trans, b->trans, (int64_t)m, (int64_t)n, (int64_t)k, alpha, a, (int64_t)lda,
                   bp, ldb, onto_c ? 1.0f : 0.0f, c, (int64_t)ldc);
        return;
    }
    /* alpha 0: row by row through one row of work, so that every product is formed */
    float *acc = work;
    for (size_t i = 0; i < m; i++) {
        const float *ai = a_trans ? a + i : a + i * lda;
        fasi_sgemm(a_trans, b->trans, 1, (int64_t)n, (int64_t)k, 1.0f, ai, (int64_t)lda, bp, ldb,
                   0.0f, acc, (int64_t)n);
        float *ci = c + i * ldc;
        for (size_t j = 0; j < n; j++) ci[j] = onto_c ? 0.0f * acc[j] + ci[j] : 0.0f * acc[j];
    }
}

const fasi_engine fasi_engine_blas = {.id = FAS_GEMM_BLAS,
                                      .name = "blas",
                                      .panel = 0,
                                      .work_bytes = work_bytes,
                                      .call_begin = fasi_blas_enter,
                                      .call_end = fasi_blas_leave,
                                      .gemm = gemm};
