/* SIMD levels in the tests (levels.h). */
#include "levels.h"

#include <stdio.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "api/dispatch.h"

const char *fast_build_arch(void)
{
#if defined(__x86_64__) || defined(_M_X64)
    return "x86-64";
#elif defined(__aarch64__)
    return "aarch64";
#else
    return "other";
#endif
}

/* The architecture a level runs on; NULL for the portable level (any). */
static const char *level_arch(fasi_isa isa)
{
    switch (isa) {
    case FASI_ISA_AVX2:
    case FASI_ISA_AVX512: return "x86-64";
    case FASI_ISA_NEON: return "aarch64";
    default: return NULL;
    }
}

static bool level_compiled(fasi_isa isa)
{
    switch (isa) {
    case FASI_ISA_PORTABLE: return true;
    case FASI_ISA_AVX2:
    case FASI_ISA_AVX512: return FAS_HAVE_X86_SIMD != 0;
    case FASI_ISA_NEON: return FAS_HAVE_NEON != 0;
    default: return false;
    }
}

const char *fast_level_absent_reason(fasi_isa isa)
{
    static _Thread_local char why[160];
    const char *arch = level_arch(isa);
    if (arch && strcmp(arch, fast_build_arch()) != 0) {
        snprintf(why, sizeof why, "an %s level, and this build targets %s", arch,
                 fast_build_arch());
        return why;
    }
    if (!level_compiled(isa)) return "not compiled in this build (-DFAS_SIMD=OFF)";
    if (!fasi_isa_available(isa)) return "this CPU lacks it";
    return NULL;
}

const fasi_kernels *fast_level_or_skip(fasi_isa isa)
{
    const char *why = fast_level_absent_reason(isa);
    if (why) {
        printf("  %s: not tested: %s\n", fasi_isa_name(isa), why);
        fflush(stdout);
        skip();
    }
    const fasi_kernels *k = fasi_kernels_for(isa);
    assert_non_null(k);
    return k;
}

int fast_isa_of_impl(fas_impl impl)
{
    switch (impl) {
    case FAS_IMPL_PORTABLE: return FASI_ISA_PORTABLE;
    case FAS_IMPL_AVX2: return FASI_ISA_AVX2;
    case FAS_IMPL_AVX512: return FASI_ISA_AVX512;
    case FAS_IMPL_NEON: return FASI_ISA_NEON;
    default: return -1;
    }
}

const char *fast_expected_simd_level(const char **why)
{
#if defined(__x86_64__) && FAS_HAVE_X86_SIMD && defined(__GNUC__)
    /* libgcc's CPU model: CPUID plus the OS-enabled register state (XGETBV) */
    __builtin_cpu_init();
    bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                __builtin_cpu_supports("avx");
    bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    if (avx2 && avx512) {
        *why = "x86-64 build with the SIMD files; __builtin_cpu_supports: AVX2, FMA, AVX-512 "
               "F/BW/VL/DQ";
        return "avx512";
    }
    if (avx2) {
        *why = "x86-64 build with the SIMD files; __builtin_cpu_supports: AVX2, FMA, no full "
               "AVX-512";
        return "avx2";
    }
    *why = "x86-64 build with the SIMD files; __builtin_cpu_supports: no AVX2/FMA";
    return "portable";
#elif defined(__aarch64__) && FAS_HAVE_NEON
    *why = "aarch64 build with the NEON files; NEON is part of the aarch64 baseline";
    return "neon";
#else
    *why = "no SIMD level compiled for this target (-DFAS_SIMD=OFF or another architecture)";
    return "portable";
#endif
}
