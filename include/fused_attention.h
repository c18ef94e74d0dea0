/*
 * fused_attention.h - the attention-score block of a Transformer, fused, on the CPU.
 *
 * Overview
 * --------
 * This library computes, for fp16 tensors in plain row-major (ND) or Ascend FRACTAL_NZ layout,
 * what torch_npu.npu_fused_attention_score computes on an Ascend NPU:
 *
 *     P       = softmax(scale * Q . K^T + mask)          per (batch b, head n)
 *     Pd      = P * M / keep_prob                        M: dropout keep mask (1 keep, 0 drop)
 *     context = Pd . V, permuted to [B*Sq, N*Dv]         row b*Sq+i, column n*Dv+d
 *
 * and its backward (dQ, dK, dV). Every stage computes in fp32 (the reference implementation in
 * fp64) and every output is rounded once, to nearest even, into its own dtype.
 *
 * Tensors are described by caller-owned fas_tensor structs: a data pointer, an ACL dtype id, an
 * ACL format id and the logical (ND) dims. The library never allocates or frees caller memory
 * and keeps no pointer after a call returns.
 *
 * Errors: every function that can fail returns a fas_status. On failure no output byte has been
 * written, and fas_last_error() returns one sentence naming the argument and the problem.
 *
 * Thread safety: every function may be called from any number of threads at once, on distinct
 * outputs. fas_last_error() is per thread. The only process-wide state is the dropout generator
 * (fas_manual_seed), whose offset advances atomically.
 *
 * Example (inference, no dropout; error handling shortened):
 *
 *     #include <fused_attention.h>
 *     // q, k, v: uint16_t fp16 buffers of B*N*S*D elements each, mask B*1*S*S, out B*S*N*D.
 *     fas_tensor tq = {q, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {B, N, S, D}};
 *     fas_tensor tk = {k, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {B, N, S, D}};
 *     fas_tensor tv = {v, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {B, N, S, D}};
 *     fas_tensor tm = {mask, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {B, 1, S, S}};
 *     fas_tensor to = {out, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 2, {B * S, N * D}};
 *     fas_status st = fused_attention_score(&tq, &tk, &tv, &tm, 0.125, 1.0,
 *                                           false, false, false, false, false, false, &to);
 *     if (st != FAS_OK) fprintf(stderr, "%s: %s\n", fas_status_string(st), fas_last_error());
 *
 * Copyright (c) 2026 the fused-attention authors. MIT licence (see LICENSE).
 */
#ifndef FUSED_ATTENTION_H
#define FUSED_ATTENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Export macro and version
 * ------------------------------------------------------------------------------------------- */

#if defined(FAS_STATIC_DEFINE)
#define FAS_API
#elif defined(_WIN32)
#ifdef FAS_BUILDING_LIBRARY
#define FAS_API __declspec(dllexport)
#else
#define FAS_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define FAS_API __attribute__((visibility("default")))
#else
#define FAS_API
#endif

#define FAS_VERSION_MAJOR 0
#define FAS_VERSION_MINOR 3
#define FAS_VERSION_PATCH 0

/* "MAJOR.MINOR.PATCH" of the library actually linked; static storage, never NULL. */
FAS_API const char *fas_version_string(void);

/* ---------------------------------------------------------------------------------------------
 * Status codes. Values are pinned and never renumbered.
 * ------------------------------------------------------------------------------------------- */

typedef enum fas_status {
    FAS_OK = 0,
    FAS_ERR_NULL_POINTER = 1, /* a required tensor, data pointer or output pointer is NULL */
    FAS_ERR_DTYPE = 2,        /* a dtype id is unknown or not allowed for that argument */
    FAS_ERR_FORMAT = 3,       /* a format id is unknown or not allowed for that argument */
    FAS_ERR_SHAPE = 4,        /* rank or dims are invalid, inconsistent, or overflow size_t */
    FAS_ERR_VALUE = 5,        /* a scalar argument (scale, keep_prob, options) is out of range */
    FAS_ERR_ALIAS = 6,        /* an output overlaps an input or another output */
    FAS_ERR_NO_MEMORY = 7,    /* scratch memory could not be allocated */
    FAS_ERR_WORKSPACE = 8,    /* reserved: a caller workspace is too small */
    FAS_ERR_UNSUPPORTED = 9,  /* valid request this build or CPU cannot serve (e.g. forced ISA) */
    FAS_ERR_INTERNAL = 10     /* a bug in the library; please report it */
} fas_status;

/* A short constant name for any value ("FAS_ERR_SHAPE"); "unknown status" for other values. */
FAS_API const char *fas_status_string(fas_status status);

/* The sentence describing the last failure on the calling thread, e.g.
 * "key_layer: dims[3] is 48 but query_layer's D (dims[3]) is 64". Empty string ("") if the last
 * call on this thread succeeded or none failed yet. The pointer stays valid until the next library
 * call on the same thread. */
FAS_API const char *fas_last_error(void);

/* ---------------------------------------------------------------------------------------------
 * Tensor descriptors. Dtype and format values are ACL's ids, so ACL users map them 1:1.
 * ------------------------------------------------------------------------------------------- */

typedef enum fas_dtype {
    FAS_DTYPE_FLOAT = 0,   /* IEEE binary32 */
    FAS_DTYPE_FLOAT16 = 1, /* IEEE binary16, stored as uint16_t */
    FAS_DTYPE_UINT8 = 4,   /* drop masks: 1 keep, 0 drop */
    FAS_DTYPE_BF16 = 27    /* bfloat16, stored as uint16_t */
} fas_dtype;

typedef enum fas_format {
    FAS_FORMAT_ND = 2, /* row-major, last dim fastest */
    /* Ascend FRACTAL_NZ: logical [..., M, N] is stored as [..., ceil(N/16), ceil(M/16), 16, 16];
     * element (beta, m, n) of batch matrix beta lives at
     *   beta*(N1*M1*256) + ((n/16)*M1 + m/16)*256 + (m%16)*16 + n%16,  N1 = ceil(N/16),
     *   M1 = ceil(M/16). A 1-D tensor [n] is the matrix [n, 1]; a 0-D tensor is [1, 1].
     * Padding is zero in every NZ tensor the library writes and never read in inputs. */
    FAS_FORMAT_FRACTAL_NZ = 29
} fas_format;

#define FAS_MAX_DIMS 8

/* A caller-owned view of a tensor. dims is the logical (ND) shape, outermost first; only the
 * first ndim entries are read. ndim may be 0 (a scalar). data must be suitably aligned for the
 * dtype. */
typedef struct fas_tensor {
    void *data;
    fas_dtype dtype;
    fas_format format;
    int ndim;
    int64_t dims[FAS_MAX_DIMS];
} fas_tensor;

/* Storage size in bytes of t, NZ padding included. Returns 0 when t is NULL, its dtype, format
 * or ndim is invalid, a dim is < 1, or the size does not fit in size_t or int64_t. data is not
 * read and may be NULL. */
FAS_API size_t fas_tensor_bytes(const fas_tensor *t);

/* Convert src into dst: ND <-> FRACTAL_NZ (any rank 0..8, rank rules as above) combined with
 * dtype conversion among FLOAT, FLOAT16 and BF16 (round to nearest even, NaN stays NaN), or a
 * plain copy of the same dtype (UINT8 included). dst->dims and dst->ndim must equal src's;
 * dst->data must hold fas_tensor_bytes(dst) bytes; NZ padding of dst is written as zero.
 * src and dst must not overlap unless they are the same buffer with identical descriptors.
 * Returns FAS_ERR_NULL_POINTER (src, dst or a data pointer NULL), FAS_ERR_DTYPE (unknown dtype,
 * or UINT8 to/from a float type), FAS_ERR_FORMAT (unknown format), FAS_ERR_SHAPE (ndim out of
 * 0..8, a dim < 1, dims differ, size overflow), FAS_ERR_ALIAS (partial overlap). */
FAS_API fas_status fas_format_cast(const fas_tensor *src, fas_tensor *dst);

/* Scalar conversions, round to nearest even; correct for subnormals, infinities and NaN (a NaN
 * stays a quiet NaN with its sign). Pure functions, thread-safe. */
FAS_API uint16_t fas_float_to_half(float x);
FAS_API float fas_half_to_float(uint16_t h);
FAS_API uint16_t fas_float_to_bf16(float x);
FAS_API float fas_bf16_to_float(uint16_t b);

/* ---------------------------------------------------------------------------------------------
 * Options for the _ex entry points
 * ------------------------------------------------------------------------------------------- */

typedef enum fas_impl {
    FAS_IMPL_AUTO = 0,      /* blocked fp32 pipeline with the best SIMD level of this CPU */
    FAS_IMPL_REFERENCE = 1, /* fp64 oracle: plain loops over logical indices; slow, obvious */
    FAS_IMPL_PORTABLE = 2,  /* blocked pipeline, portable C row kernels (no SIMD) */
    FAS_IMPL_AVX2 = 3,      /* blocked pipeline, AVX2+FMA+F16C; FAS_ERR_UNSUPPORTED if absent */
    FAS_IMPL_AVX512 = 4,    /* blocked pipeline, AVX-512F/BW/VL/DQ; FAS_ERR_UNSUPPORTED if absent */
    FAS_IMPL_NEON = 5       /* blocked pipeline, aarch64 NEON; FAS_ERR_UNSUPPORTED if absent */
} fas_impl;

/* Name of the SIMD level FAS_IMPL_AUTO uses on this CPU and build: "avx512", "avx2" (x86-64),
 * "neon" (aarch64) or "portable" (any other target, or a build with -DFAS_SIMD=OFF). Every
 * level gives bit-identical results. Static storage, never NULL. */
FAS_API const char *fas_simd_level(void);

/* The engine that computes the matrix products (Q.K^T, P.V and the backward's four), beside
 * the row passes that are always the library's own (docs/design.md §6):
 *   FAS_GEMM_BUILTIN  the library's register tiles: one chain of fused multiply-adds per output
 *                     element in a fixed order, so results are identical on every machine and
 *                     at every SIMD level;
 *   FAS_GEMM_BLAS     cblas_sgemm of the BLAS the library was built with (fas_blas_info()), run
 *                     single-threaded inside the library's own tasks; results are identical for
 *                     any thread count and across runs for a given BLAS and CPU core;
 *   FAS_GEMM_AMX      Intel AMX-BF16 tiles, each fp16 value split exactly into two bf16 terms
 *                     (x86-64 CPUs with AMX-BF16 under an OS that grants the tile state);
 *   FAS_GEMM_AUTO     the FAS_GEMM environment variable when it is set ("auto", "builtin",
 *                     "blas" or "amx", any case; read once per process), else the engine
 *                     measured fastest for this architecture (fas_gemm_engine()).
 * Every engine meets the same accuracy contract (docs/semantics.md §2) and draws identical
 * drop masks. An engine this build or CPU lacks is FAS_ERR_UNSUPPORTED; an unknown FAS_GEMM
 * value makes every FAS_GEMM_AUTO call fail with FAS_ERR_VALUE, writing nothing. */
typedef enum fas_gemm {
    FAS_GEMM_AUTO = 0,
    FAS_GEMM_BUILTIN = 1,
    FAS_GEMM_BLAS = 2,
    FAS_GEMM_AMX = 3
} fas_gemm;

/* The engine FAS_GEMM_AUTO resolves to in this process: "builtin", "blas" or "amx"; "invalid"
 * when FAS_GEMM holds an unknown value (fas_last_error() then says why). Static storage. */
FAS_API const char *fas_gemm_engine(void);

/* The BLAS this library was built against, as one line: vendor and version, and for OpenBLAS
 * the core its kernels were chosen for, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY
 * SkylakeX MAX_THREADS=64 (core SkylakeX)"; "cblas" when the vendor gives no description. A
 * warning follows when that core is below this CPU's SIMD level (OpenBLAS before 0.3.25 picks
 * its Prescott kernels on recent Intel CPUs: set OPENBLAS_CORETYPE, e.g. SkylakeX); AUTO then
 * never chooses the BLAS engine. Static storage, never NULL. */
FAS_API const char *fas_blas_info(void);

/* Where the computation rounds. FAS_PRECISION_FP32 (the default): every stage in fp32 (the
 * reference in fp64), each output rounded once. FAS_PRECISION_NPU: a model of the Ascend
 * kernels, which round to fp16 after almost every step and whose row maximum leaves some
 * 16-column blocks out when S / 16 is not a power of two (docs/precision.md): the result a
 * verifier should expect from the NPU, overflows to inf/NaN included. The NPU mode serves the
 * NPU's domain only: FLOAT16 tensors (the drop mask UINT8), Sq == Sk, Dv == D, S and D
 * multiples of 16, S a multiple of 64 for the backward, all six flags false, FAS_IMPL_AUTO or
 * a SIMD level; anything else is FAS_ERR_UNSUPPORTED with a sentence naming the constraint. */
typedef enum fas_precision { FAS_PRECISION_FP32 = 0, FAS_PRECISION_NPU = 1 } fas_precision;

/* Fill with fas_options_init() before setting fields. struct_size lets the library read options
 * built against an older, shorter version of this struct; new fields are only ever appended.
 *
 * num_threads 0 uses as many threads as OpenMP would for a parallel region started here
 * (omp_get_max_threads(): OMP_NUM_THREADS if set, else the CPUs of the process's affinity mask,
 * so `taskset` and OMP_NUM_THREADS=1 both apply); a build without OpenMP always runs on the
 * calling thread. Results are bitwise identical for every thread count. */
typedef struct fas_options {
    size_t struct_size;      /* sizeof(fas_options) as the caller compiled it */
    int num_threads;         /* 0 = OpenMP's default (see below); >= 1 exact count */
    bool has_seed;           /* true: use seed/offset below instead of the process-wide generator */
    uint64_t seed;           /* Philox key for dropout */
    uint64_t offset;         /* Philox counter offset for dropout */
    bool drop_mask_is_input; /* _fwd only: read drop_mask as given instead of generating it */
    fas_impl impl;           /* implementation choice, default FAS_IMPL_AUTO */
    fas_precision precision; /* default FAS_PRECISION_FP32; see fas_precision (since 0.2) */
    /* Sharded calls (since 0.2): this call computes heads head_offset .. head_offset + N - 1 of
     * batches batch_offset .. batch_offset + B - 1 of a whole tensor of global_num_heads heads
     * (0 = this call's N). Only the dropout bits depend on them: element (b, n, i, j) draws the
     * keep decision of element (batch_offset + b, head_offset + n, i, j) of the whole tensor, so
     * shards run anywhere reproduce the unsharded call bit for bit when they share the seed and
     * offset (pass both explicitly: has_seed). All 0 is an unsharded call. Negative values, or
     * head_offset + N > global_num_heads, are FAS_ERR_VALUE. */
    int64_t batch_offset;
    int64_t head_offset;
    int64_t global_num_heads;
    fas_gemm gemm; /* matrix engine, default FAS_GEMM_AUTO; see fas_gemm (since 0.3) */
} fas_options;

/* Defaults: every field zero (num_threads 0, no seed, generated mask, FAS_IMPL_AUTO,
 * FAS_PRECISION_FP32, FAS_GEMM_AUTO). Inline so
 * that struct_size is the size the caller was compiled with. */
static inline void fas_options_init(fas_options *options)
{
    if (options) {
        memset(options, 0, sizeof *options);
        options->struct_size = sizeof *options;
        options->impl = FAS_IMPL_AUTO;
    }
}

/* Seed the process-wide dropout generator and reset its offset to 0. Every call that draws
 * dropout bits without an explicit seed (keep_prob < 1, mask not given as input) uses the
 * current (seed, offset) and advances the offset atomically by ceil(Sk / 8), so concurrent and
 * successive calls never reuse random bits. Before any call the seed is 67280421310721. */
FAS_API void fas_manual_seed(uint64_t seed);

/* ---------------------------------------------------------------------------------------------
 * The operator
 *
 * Shapes (B batch, N heads, Sq query length, Sk key length, D head dim, Dv value head dim):
 *   query_layer     [B, N, Sq, D]   ([B, N, D, Sq] if query_transpose)
 *   key_layer       [B, N, Sk, D]   ([B, N, D, Sk] if key_transpose)
 *   value_layer     [B, N, Sk, Dv]  ([B, N, Dv, Sk] if bmm_score_transpose_b)
 *   attention_mask  [B|1, N|1, Sq, Sk] or [B|1, 1, 1, Sk] (key padding), or NULL for none
 *   attention_score [B*Sq, N*Dv]    (2-D) row b*Sq+i, column n*Dv+d
 *   softmax_output  [B, N, Sq, Sk]  P before dropout
 *   drop_mask       [B, N, Sq, Sk]  UINT8, 1 kept / 0 dropped; in FRACTAL_NZ its bytes follow
 *                                   the NPU's DropOutGenMask order
 * bmm_score_transpose_a computes context = Pd^T . V and requires Sq == Sk. value_transpose and
 * dx_transpose describe the backward's inputs and are ignored by the forward (as on the NPU).
 *
 * Float tensors may be FLOAT16 (the NPU's dtype), BF16 or FLOAT, each independently, in ND or
 * FRACTAL_NZ. scale is any finite number with |scale| <= FLT_MAX (the pipeline applies it in
 * fp32); keep_prob is the probability of keeping an element,
 * 0 < keep_prob <= 1 (1 = no dropout: the RNG is skipped, the mask is all ones).
 *
 * Special values follow IEEE arithmetic as torch does with an fp32 softmax, with one documented
 * exception: a softmax row whose logits are all -inf (from the mask, or from the data) gives a
 * zero row of probabilities instead of 0/0 = NaN, and its context row is 0 . V (zero when V is
 * finite). Otherwise a NaN or +inf logit makes its whole row NaN (a NaN in query row i poisons
 * row i; in key row j, every row of the head; in the mask, its row in every head it broadcasts
 * to); a NaN in value row j makes that context column NaN even where P[i][j] is 0 (0 * NaN);
 * dropout multiplies (P * M / keep_prob), so a dropped NaN stays NaN. Finite masks, even -65504
 * on every key, never produce NaN. The backward propagates NaN the same way through its
 * products. FRACTAL_NZ padding is never read, so NaN there has no effect. Every implementation
 * and both forward variants (with and without softmax_output) give NaN in the same places.
 *
 * Returns FAS_OK, or before writing anything: FAS_ERR_NULL_POINTER (a required tensor or its
 * data is NULL), FAS_ERR_DTYPE, FAS_ERR_FORMAT, FAS_ERR_SHAPE (rank, dims, flag/shape mismatch,
 * size overflow), FAS_ERR_VALUE (scale not finite, keep_prob outside (0, 1], bad options),
 * FAS_ERR_ALIAS (an output overlaps an input or another output; inputs may share memory),
 * FAS_ERR_UNSUPPORTED (forced ISA or matrix engine not available, or a per-head size Sq, Sk, D or
 * Dv above INT_MAX, the BLAS int range); during the call FAS_ERR_NO_MEMORY (scratch is allocated
 * before any output is written, so outputs are then untouched).
 * ------------------------------------------------------------------------------------------- */

FAS_API fas_status fused_attention_score(const fas_tensor *query_layer, const fas_tensor *key_layer,
                                         const fas_tensor *value_layer,
                                         const fas_tensor *attention_mask, double scale,
                                         double keep_prob, bool query_transpose, bool key_transpose,
                                         bool bmm_score_transpose_a, bool bmm_score_transpose_b,
                                         bool value_transpose, bool dx_transpose,
                                         fas_tensor *attention_score);

/* fused_attention_score with options (NULL = defaults). */
FAS_API fas_status fused_attention_score_ex(
    const fas_tensor *query_layer, const fas_tensor *key_layer, const fas_tensor *value_layer,
    const fas_tensor *attention_mask, double scale, double keep_prob, bool query_transpose,
    bool key_transpose, bool bmm_score_transpose_a, bool bmm_score_transpose_b,
    bool value_transpose, bool dx_transpose, fas_tensor *attention_score,
    const fas_options *options);

/* As fused_attention_score, and also writes softmax_output and drop_mask (each may be NULL). */
FAS_API fas_status fused_attention_score_fwd(
    const fas_tensor *query_layer, const fas_tensor *key_layer, const fas_tensor *value_layer,
    const fas_tensor *attention_mask, double scale, double keep_prob, bool query_transpose,
    bool key_transpose, bool bmm_score_transpose_a, bool bmm_score_transpose_b,
    bool value_transpose, bool dx_transpose, fas_tensor *attention_score,
    fas_tensor *softmax_output, fas_tensor *drop_mask);

/* _fwd with options (NULL = defaults). With options->drop_mask_is_input, drop_mask is read (it
 * must then be non-NULL when keep_prob < 1) and nothing is drawn from the generator. */
FAS_API fas_status fused_attention_score_fwd_ex(
    const fas_tensor *query_layer, const fas_tensor *key_layer, const fas_tensor *value_layer,
    const fas_tensor *attention_mask, double scale, double keep_prob, bool query_transpose,
    bool key_transpose, bool bmm_score_transpose_a, bool bmm_score_transpose_b,
    bool value_transpose, bool dx_transpose, fas_tensor *attention_score,
    fas_tensor *softmax_output, fas_tensor *drop_mask, const fas_options *options);

/* Backward. grad_output has attention_score's shape [B*Sq, N*Dv] ([N*Dv, B*Sq] if
 * dx_transpose); softmax_output and drop_mask are what _fwd wrote (drop_mask may be NULL only
 * when keep_prob == 1). value_layer is [B, N, Sk, Dv] ([B, N, Dv, Sk] if value_transpose);
 * query_transpose and key_transpose as in the forward. Each gradient output is FLOAT16, BF16 or
 * FLOAT, ND or NZ, and its rank picks its layout: 2-D [B*S, N*D] (rows b*S+s, columns n*D+d,
 * torch_npu's _grad layout) or 4-D [B, N, S, D]. query_dx has Sq rows and D columns per head,
 * key_dw Sk and D, value_dw Sk and Dv. Statuses as for the forward. */
FAS_API fas_status fused_attention_score_grad(
    const fas_tensor *grad_output, const fas_tensor *softmax_output, const fas_tensor *query_layer,
    const fas_tensor *key_layer, const fas_tensor *value_layer, const fas_tensor *drop_mask,
    double scale, double keep_prob, bool query_transpose, bool key_transpose, bool value_transpose,
    bool dx_transpose, fas_tensor *query_dx, fas_tensor *key_dw, fas_tensor *value_dw);

FAS_API fas_status fused_attention_score_grad_ex(
    const fas_tensor *grad_output, const fas_tensor *softmax_output, const fas_tensor *query_layer,
    const fas_tensor *key_layer, const fas_tensor *value_layer, const fas_tensor *drop_mask,
    double scale, double keep_prob, bool query_transpose, bool key_transpose, bool value_transpose,
    bool dx_transpose, fas_tensor *query_dx, fas_tensor *key_dw, fas_tensor *value_dw,
    const fas_options *options);

/* Fill ndim, dims and dtype of the forward's outputs from the inputs' dims and the flags:
 * attention_score 2-D FLOAT16, softmax_output 4-D FLOAT16, drop_mask 4-D UINT8. data and format
 * are left as they are; any output pointer may be NULL. The inputs' data pointers are not read
 * and may be NULL. Validates the input descriptors and dims as the operator does (statuses
 * likewise) and writes nothing on failure. */
FAS_API fas_status fas_attention_output_dims(const fas_tensor *query_layer,
                                             const fas_tensor *key_layer,
                                             const fas_tensor *value_layer, bool query_transpose,
                                             bool key_transpose, bool bmm_score_transpose_a,
                                             bool bmm_score_transpose_b,
                                             fas_tensor *attention_score,
                                             fas_tensor *softmax_output, fas_tensor *drop_mask);

/* Fill ndim, dims and dtype (FLOAT16) of the backward's outputs; out_rank 2 gives the torch_npu
 * _grad layout [B*S, N*D], 4 gives [B, N, S, D]. Any output pointer may be NULL; the inputs'
 * data pointers are not read. FAS_ERR_VALUE if out_rank is not 2 or 4; other statuses as for
 * fas_attention_output_dims. */
FAS_API fas_status fas_attention_grad_dims(const fas_tensor *query_layer,
                                           const fas_tensor *key_layer,
                                           const fas_tensor *value_layer, bool query_transpose,
                                           bool key_transpose, bool value_transpose, int out_rank,
                                           fas_tensor *query_dx, fas_tensor *key_dw,
                                           fas_tensor *value_dw);

#ifdef __cplusplus
}
#endif

#endif /* FUSED_ATTENTION_H */
