/* Runtime CPU detection and the per-level kernel tables. */
#include <stdatomic.h>

#include "api/dispatch.h"
#include "kernels/gemm.h"
#include "kernels/rowops.h"
#include "layout/layout.h"
#include "rng/philox.h"

#if FAS_HAVE_X86_SIMD
#include <cpuid.h>

static uint64_t read_xcr0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static fasi_isa detect_isa(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return FASI_ISA_PORTABLE;
    bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12),
         f16c = c & (1u << 29);
    if (!(osxsave && avx && fma && f16c)) return FASI_ISA_PORTABLE;
    uint64_t xcr0 = read_xcr0();
    if ((xcr0 & 0x6) != 0x6) return FASI_ISA_PORTABLE; /* SSE and AVX state enabled by the OS */
    if (__get_cpuid_max(0, NULL) < 7) return FASI_ISA_PORTABLE;
    __cpuid_count(7, 0, a, b, c, d);
    bool avx2 = b & (1u << 5);
    if (!avx2) return FASI_ISA_PORTABLE;
    bool avx512 = (b & (1u << 16)) && (b & (1u << 17)) && (b & (1u << 30)) && (b & (1u << 31));
    if (avx512 && (xcr0 & 0xe6) == 0xe6) return FASI_ISA_AVX512; /* opmask and ZMM state */
    return FASI_ISA_AVX2;
}
#else
static fasi_isa detect_isa(void) { return FASI_ISA_PORTABLE; }
#endif

static _Atomic int cached_isa = -1;

fasi_isa fasi_cpu_best_isa(void)
{
    int v = atomic_load_explicit(&cached_isa, memory_order_acquire);
    if (v < 0) {
        v = (int)detect_isa();
        atomic_store_explicit(&cached_isa, v, memory_order_release);
    }
    return (fasi_isa)v;
}

static fasi_kernels tables[FASI_ISA_COUNT];
static _Atomic int tables_ready = 0;

/* Building the tables is idempotent and writes the same values every time, but concurrent first
 * calls must not read a half-built table, hence the spin on a small state machine. */
static void build_tables(void)
{
    int expected = 0;
    if (atomic_compare_exchange_strong(&tables_ready, &expected, 1)) {
        fasi_kernels *k = &tables[FASI_ISA_PORTABLE];
        k->isa = FASI_ISA_PORTABLE;
        k->name = "portable";
        fasi_register_fp16_portable(k);
        fasi_register_rowops_portable(k);
        fasi_register_gemm_portable(k);
        fasi_register_philox_portable(k);
#if FAS_HAVE_X86_SIMD
        tables[FASI_ISA_AVX2] = *k;
        k = &tables[FASI_ISA_AVX2];
        k->isa = FASI_ISA_AVX2;
        k->name = "avx2";
        fasi_register_fp16_avx2(k);
        fasi_register_rowops_avx2(k);
        fasi_register_gemm_avx2(k);
        fasi_register_philox_avx2(k);
        tables[FASI_ISA_AVX512] = *k;
        k = &tables[FASI_ISA_AVX512];
        k->isa = FASI_ISA_AVX512;
        k->name = "avx512";
        fasi_register_fp16_avx512(k);
        fasi_register_rowops_avx512(k);
        fasi_register_gemm_avx512(k);
        fasi_register_philox_avx512(k);
#endif
        atomic_store_explicit(&tables_ready, 2, memory_order_release);
    }
    while (atomic_load_explicit(&tables_ready, memory_order_acquire) != 2) {
    }
}

const fasi_kernels *fasi_kernels_for(fasi_isa isa)
{
    if ((int)isa < 0 || isa >= FASI_ISA_COUNT || isa > fasi_cpu_best_isa()) return NULL;
    build_tables();
    return &tables[isa];
}

const char *fas_simd_level(void)
{
    const fasi_kernels *k = fasi_kernels_for(fasi_cpu_best_isa());
    return k ? k->name : "portable";
}
