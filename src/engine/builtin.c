/* The builtin engine: the kernel table's gemm and gemm_add (common/isa.h), fp32 operands packed
 * in panels of FASI_PANEL columns. One chain of fused multiply-adds per element in increasing t
 * at every SIMD level, so its results are the same on every machine. */
#include "engine/engine.h"
#include "kernels/gemm.h"

static void gemm(const fasi_kernels *kern, void *work, size_t m, size_t n, size_t k, float alpha,
                 const float *a, size_t rsa, size_t csa, const fasi_operand *b, size_t t0,
                 size_t j0, float *c, size_t ldc, bool accumulate, const fasi_addend *add)
{
    (void)work;
    const size_t stride = b->k * FASI_PANEL;
    const float *bp = b->f32 + j0 / FASI_PANEL * stride + t0 * FASI_PANEL;
    if (add)
        kern->gemm_add(m, n, k, alpha, a, rsa, csa, bp, stride, c, ldc, add);
    else
        kern->gemm(m, n, k, alpha, a, rsa, csa, bp, stride, c, ldc, accumulate);
}

const fasi_engine fasi_engine_builtin = {
    .id = FAS_GEMM_BUILTIN, .name = "builtin", .panel = FASI_PANEL, .gemm = gemm};
