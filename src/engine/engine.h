/* The matrix engines: the one seam through which the pipelines run every product (docs/design.md
 * §6). A pipeline holds a `const fasi_engine *` and never knows which engine it is:
 *
 *   builtin (engine/builtin.c)  the kernel table's gemm: one fmaf chain per element, in order
 *   blas    (engine/blas.c)     cblas_sgemm of the linked BLAS, single-threaded per task
 *   amx     (engine/amx.c)      AMX-BF16 tiles with the exact bf16 split (x86-64)
 *
 * Every product has one form. For i < m, j < n, with A(i, t) = a[i*rsa + t*csa] (an fp32 block in
 * the pipeline's scratch, read in place: rsa = lda, csa = 1 row-major; rsa = 1, csa = lda for
 * the transpose of a row-major matrix) and B a packed operand (fasi_operand) read from row t0,
 * column j0:
 *   acc = sum over t < k of A(i, t) * B[t0 + t][j0 + j]
 *   c[i*ldc + j] = add      ? alpha * acc + add(i, j)     (an fp16 matrix, common/isa.h)
 *                : accumulate ? alpha * acc + c[i*ldc + j]
 *                :              alpha * acc
 * Products are always formed (0 * NaN is NaN; alpha = 0 still multiplies), so special values
 * propagate alike in every engine. How acc is summed is the engine's: the builtin engine runs
 * one fused multiply-add chain in increasing t (bit-identical on every machine); the others
 * sum exact or fp32 products in their own fixed order, within the accuracy contract
 * (docs/semantics.md §2, docs/precision.md). No engine's result depends on the thread count.
 * Nothing outside the m x n rectangle of c is written. */
#ifndef FASI_ENGINE_H
#define FASI_ENGINE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/isa.h"
#include "fused_attention.h"

/* A right operand B (k rows, n columns), packed once for one engine (per head, or per row
 * block), then read by any number of products at offsets (t0, j0).
 *
 * fp32 part, filled by the pipeline's packers (pipeline/pack.h, fasi_operand_from_f32):
 *   panel = e->panel > 0:  panels of `panel` columns, B[t][j] at
 *                          f32[(j / panel) * k * panel + t * panel + j % panel], padding columns
 *                          zero (kernels/gemm.h); ld and trans unused
 *   e->panel == 0:         one plain matrix: B[t][j] at f32[t * ld + j], or at f32[j * ld + t]
 *                          when trans (the stored matrix is B's transpose)
 * own: the engine's own format (e->own_bytes of scratch, filled by e->prepare from f32), or
 * NULL for an engine that reads the fp32 part. */
typedef struct fasi_operand {
    const float *f32;
    size_t ld;
    bool trans;
    void *own;
    size_t k, n;
} fasi_operand;

typedef struct fasi_engine {
    fas_gemm id;
    const char *name; /* "builtin", "blas", "amx" */
    /* Columns per panel of the fp32 packing: FASI_PANEL (kernels/gemm.h), or 0 for a plain
     * matrix. */
    size_t panel;
    /* Bytes of the engine's own copy of a k x n operand; NULL when it reads f32 itself. */
    size_t (*own_bytes)(size_t k, size_t n);
    /* Fill b->own from b->f32 (after every packing of b); NULL when own_bytes is NULL. */
    void (*prepare)(const fasi_kernels *kern, fasi_operand *b);
    /* Per-thread scratch (bytes) one m x n x k product needs; NULL: none. A pipeline reserves
     * the largest of its products' needs. */
    size_t (*work_bytes)(size_t m, size_t n, size_t k);
    /* Bracket one operator call, on its calling thread, around every thread's products; NULL:
     * nothing to do. (The BLAS engine holds a BLAS with its own thread pool at one thread.) */
    void (*call_begin)(void);
    void (*call_end)(void);
    /* The product above. work: this thread's work_bytes scratch. t0 and j0 are multiples of 16
     * (j0 a multiple of the panel width when panels are used); t0 + k <= b->k, j0 + n <= b->n. */
    void (*gemm)(const fasi_kernels *kern, void *work, size_t m, size_t n, size_t k, float alpha,
                 const float *a, size_t rsa, size_t csa, const fasi_operand *b, size_t t0,
                 size_t j0, float *c, size_t ldc, bool accumulate, const fasi_addend *add);
} fasi_engine;

/* The engines this build has (blas always; amx where the AMX files are compiled). Availability
 * on this CPU and the choice of AUTO are decided by the API floor (api/engines.c). */
extern const fasi_engine fasi_engine_builtin;
extern const fasi_engine fasi_engine_blas;
extern const fasi_engine fasi_engine_amx;

/* Floats of the fp32 part of a packed k x n operand for engine e. */
size_t fasi_operand_floats(const fasi_engine *e, size_t k, size_t n);

/* b = the k x n fp32 block M (M[t][j] = src[t*ld + j]) packed for e. A plain-matrix engine
 * (panel 0) reads src in place and `dst` is unused; otherwise M is packed into dst
 * (fasi_operand_floats). Then e->prepare fills own (own: e->own_bytes of scratch, or NULL). */
void fasi_operand_from_f32(const fasi_engine *e, const fasi_kernels *kern, const float *src,
                           size_t ld, size_t k, size_t n, float *dst, void *own, fasi_operand *b);

/* b->own from b->f32 when the engine has its own format (call after filling f32). */
static inline void fasi_operand_prepare(const fasi_engine *e, const fasi_kernels *kern,
                                        fasi_operand *b)
{
    if (e->prepare) e->prepare(kern, b);
}

static inline void fasi_engine_begin(const fasi_engine *e)
{
    if (e->call_begin) e->call_begin();
}

static inline void fasi_engine_end(const fasi_engine *e)
{
    if (e->call_end) e->call_end();
}

/* e->work_bytes(m, n, k), 0 when the engine needs none. */
static inline size_t fasi_engine_work(const fasi_engine *e, size_t m, size_t n, size_t k)
{
    return e->work_bytes ? e->work_bytes(m, n, k) : 0;
}

/* The fp16 addend block (m x n) as fp32 into c (row stride ldc): engines that cannot fuse the
 * addend into their product load it first and accumulate onto it. */
void fasi_addend_load(const fasi_kernels *kern, const fasi_addend *add, size_t m, size_t n,
                      float *c, size_t ldc);

#endif
