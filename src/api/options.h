/* fas_options as the implementations need them: read up to the caller's struct_size, checked,
 * with the thread count and the kernel table resolved. */
#ifndef FASI_OPTIONS_H
#define FASI_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/isa.h"
#include "engine/engine.h"
#include "fused_attention.h"

typedef struct fasi_options {
    int threads; /* >= 1 */
    bool has_seed;
    uint64_t seed, offset;
    bool drop_mask_is_input;
    fas_impl impl;
    const fasi_kernels *kern;
    fas_gemm gemm;             /* as given */
    const fasi_engine *engine; /* resolved (the pipeline only) */
    fas_precision precision;
    int64_t batch_offset, head_offset, global_num_heads; /* as given; 0 heads = this call's N */
} fasi_options;

/* NULL means defaults. FAS_ERR_VALUE for a struct_size too small to hold num_threads, a
 * negative num_threads, an unknown impl, precision or gemm, an invalid FAS_GEMM;
 * FAS_ERR_UNSUPPORTED for a SIMD level or matrix engine this build or CPU lacks, and for the fp64
 * reference in the NPU precision mode. */
fas_status fasi_resolve_options(const fas_options *o, fasi_options *r);

#endif
