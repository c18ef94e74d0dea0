/* fas_options: read field by field up to the caller's struct_size, so that a caller compiled
 * against an older (shorter) fas_options keeps working; the seed of the process-wide generator. */
#include <stddef.h>
#include <string.h>

#include "api/dispatch.h"
#include "api/engines.h"
#include "api/options.h"
#include "common/status.h"
#include "pipeline/parallel.h"
#include "rng/philox.h"

void fas_manual_seed(uint64_t seed) { fasi_generator_seed(seed); }

#define HAS_FIELD(o, f) ((o)->struct_size >= offsetof(fas_options, f) + sizeof((o)->f))

fas_status fasi_resolve_options(const fas_options *o, fasi_options *r)
{
    memset(r, 0, sizeof *r);
    r->impl = FAS_IMPL_AUTO;
    r->precision = FAS_PRECISION_FP32;
    r->gemm = FAS_GEMM_AUTO;
    int requested = 0;
    if (o) {
        if (o->struct_size < offsetof(fas_options, num_threads) + sizeof o->num_threads)
            return fasi_fail(FAS_ERR_VALUE,
                             "options: struct_size is %zu; initialise with fas_options_init()",
                             o->struct_size);
        requested = o->num_threads;
        if (requested < 0)
            return fasi_fail(FAS_ERR_VALUE, "options: num_threads is %d, must be >= 0", requested);
        if (HAS_FIELD(o, has_seed)) r->has_seed = o->has_seed;
        if (HAS_FIELD(o, seed)) r->seed = o->seed;
        if (HAS_FIELD(o, offset)) r->offset = o->offset;
        if (HAS_FIELD(o, drop_mask_is_input)) r->drop_mask_is_input = o->drop_mask_is_input;
        if (HAS_FIELD(o, impl)) r->impl = o->impl;
        if (HAS_FIELD(o, precision)) r->precision = o->precision;
        if (HAS_FIELD(o, batch_offset)) r->batch_offset = o->batch_offset;
        if (HAS_FIELD(o, head_offset)) r->head_offset = o->head_offset;
        if (HAS_FIELD(o, global_num_heads)) r->global_num_heads = o->global_num_heads;
        if (HAS_FIELD(o, gemm)) r->gemm = o->gemm;
    }
    const struct {
        const char *name;
        int64_t value;
    } coords[3] = {{"batch_offset", r->batch_offset},
                   {"head_offset", r->head_offset},
                   {"global_num_heads", r->global_num_heads}};
    for (int i = 0; i < 3; i++)
        if (coords[i].value < 0)
            return fasi_fail(FAS_ERR_VALUE, "options: %s is %lld, must be >= 0", coords[i].name,
                             (long long)coords[i].value);
    if (r->precision != FAS_PRECISION_FP32 && r->precision != FAS_PRECISION_NPU)
        return fasi_fail(FAS_ERR_VALUE, "options: precision %d is not a fas_precision value",
                         (int)r->precision);
    r->threads = fasi_resolve_threads(requested);
    fasi_isa isa;
    switch (r->impl) {
    case FAS_IMPL_AUTO:
    case FAS_IMPL_REFERENCE: isa = fasi_cpu_best_isa(); break;
    case FAS_IMPL_PORTABLE: isa = FASI_ISA_PORTABLE; break;
    case FAS_IMPL_AVX2: isa = FASI_ISA_AVX2; break;
    case FAS_IMPL_AVX512: isa = FASI_ISA_AVX512; break;
    case FAS_IMPL_NEON: isa = FASI_ISA_NEON; break;
    default:
        return fasi_fail(FAS_ERR_VALUE, "options: impl %d is not a fas_impl value", (int)r->impl);
    }
    if (r->impl == FAS_IMPL_REFERENCE && r->precision == FAS_PRECISION_NPU)
        return fasi_fail(FAS_ERR_UNSUPPORTED,
                         "options: the fp64 reference (FAS_IMPL_REFERENCE) computes the exact "
                         "result and has no NPU precision mode; use FAS_IMPL_AUTO or a SIMD level");
    r->kern = fasi_kernels_for(isa);
    if (!r->kern)
        return fasi_fail(FAS_ERR_UNSUPPORTED,
                         "options: impl %d needs a SIMD level this build or CPU does not have",
                         (int)r->impl);
    return fasi_resolve_engine(r->gemm, &r->engine);
}
