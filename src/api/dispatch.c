/* Runtime CPU detection and the per-level kernel tables.
 *
 * Which levels can run is a set, found once per process: a level is in it when this build
 * compiled its files and the CPU (and the OS, for register state) supports it, each level by its
 * own explicit test below. Levels of different architectures are never compared: a forced level
 * is served exactly when it is in the set, and the best level is the first member of the set in
 * `preference`. */
#if defined(__linux__)
#define _GNU_SOURCE /* syscall() */
#endif
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "api/dispatch.h"
#include "kernels/gemm.h"
#include "kernels/rowops.h"
#include "layout/layout.h"
#include "rng/philox.h"

#if FAS_HAVE_X86_SIMD
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#endif

#define LEVEL_BIT(isa) (1u << (unsigned)(isa))

/* ---- the levels this build has --------------------------------------------------------------
 * A level's table starts as a copy of its base's table (built first: the base's value is lower)
 * and its files' registration functions override the entries they implement. The registration
 * functions are NULL for a level this build did not compile. */
typedef void (*register_fn)(fasi_kernels *k);

typedef struct level_desc {
    const char *name;
    fasi_isa base;
    register_fn fp16, rowops, gemm, philox;
} level_desc;

#if FAS_HAVE_X86_SIMD
#define X86_FN(f) f
#else
#define X86_FN(f) NULL
#endif
#if FAS_HAVE_NEON
#define NEON_FN(f) f
#else
#define NEON_FN(f) NULL
#endif

static const level_desc levels[FASI_ISA_COUNT] = {
    [FASI_ISA_PORTABLE] = {"portable", FASI_ISA_PORTABLE, fasi_register_fp16_portable,
                           fasi_register_rowops_portable, fasi_register_gemm_portable,
                           fasi_register_philox_portable},
    [FASI_ISA_AVX2] = {"avx2", FASI_ISA_PORTABLE, X86_FN(fasi_register_fp16_avx2),
                       X86_FN(fasi_register_rowops_avx2), X86_FN(fasi_register_gemm_avx2),
                       X86_FN(fasi_register_philox_avx2)},
    [FASI_ISA_AVX512] = {"avx512", FASI_ISA_AVX2, X86_FN(fasi_register_fp16_avx512),
                         X86_FN(fasi_register_rowops_avx512), X86_FN(fasi_register_gemm_avx512),
                         X86_FN(fasi_register_philox_avx512)},
    [FASI_ISA_NEON] = {"neon", FASI_ISA_PORTABLE, NEON_FN(fasi_register_fp16_neon),
                       NEON_FN(fasi_register_rowops_neon), NEON_FN(fasi_register_gemm_neon),
                       NEON_FN(fasi_register_philox_neon)},
};

/* Best first. A future level goes before the level it extends (SVE before NEON). */
static const fasi_isa preference[] = {FASI_ISA_AVX512, FASI_ISA_AVX2, FASI_ISA_NEON,
                                      FASI_ISA_PORTABLE};

static bool compiled(fasi_isa isa) { return levels[isa].rowops != NULL; }

const char *fasi_isa_name(fasi_isa isa)
{
    if ((int)isa < 0 || isa >= FASI_ISA_COUNT) return "unknown";
    return levels[isa].name;
}

/* ---- CPU detection, one explicit test per level ---------------------------------------------- */

#if FAS_HAVE_X86_SIMD
static uint64_t read_xcr0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* AVX2 needs AVX, FMA, F16C and AVX2 with OS-enabled SSE and YMM state (XCR0); AVX-512 needs F,
 * DQ, BW and VL with opmask and ZMM state as well, and AVX2 (its base). */
static unsigned detect_x86(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12),
         f16c = c & (1u << 29);
    if (!(osxsave && avx && fma && f16c)) return 0;
    uint64_t xcr0 = read_xcr0();
    if ((xcr0 & 0x6) != 0x6) return 0;
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    bool avx2 = b & (1u << 5);
    if (!avx2) return 0;
    unsigned set = LEVEL_BIT(FASI_ISA_AVX2);
    bool avx512 = (b & (1u << 16)) && (b & (1u << 17)) && (b & (1u << 30)) && (b & (1u << 31));
    if (avx512 && (xcr0 & 0xe6) == 0xe6) set |= LEVEL_BIT(FASI_ISA_AVX512);
    return set;
}
#endif

#if FAS_HAVE_NEON
/* NEON (Advanced SIMD) belongs to the aarch64 baseline the library is compiled for, so every CPU
 * that runs this code has it. Optional extensions get their run-time test here: an SVE level
 * would be added when getauxval(AT_HWCAP) & HWCAP_SVE (<sys/auxv.h>, Linux), and would also
 * have to fix the vector length its canonical sum order assumes. */
static unsigned detect_aarch64(void) { return LEVEL_BIT(FASI_ISA_NEON); }
#endif

static unsigned detect_levels(void)
{
    unsigned set = LEVEL_BIT(FASI_ISA_PORTABLE);
#if FAS_HAVE_X86_SIMD
    set |= detect_x86();
#endif
#if FAS_HAVE_NEON
    set |= detect_aarch64();
#endif
    for (int i = 0; i < FASI_ISA_COUNT; i++)
        if (!compiled((fasi_isa)i)) set &= ~LEVEL_BIT(i);
    return set;
}

static _Atomic int cached_levels = -1;

static unsigned available_levels(void)
{
    int v = atomic_load_explicit(&cached_levels, memory_order_acquire);
    if (v < 0) {
        v = (int)detect_levels();
        atomic_store_explicit(&cached_levels, v, memory_order_release);
    }
    return (unsigned)v;
}

bool fasi_isa_available(fasi_isa isa)
{
    if ((int)isa < 0 || isa >= FASI_ISA_COUNT) return false;
    return (available_levels() & LEVEL_BIT(isa)) != 0;
}

fasi_isa fasi_cpu_best_isa(void)
{
    for (size_t i = 0; i < sizeof preference / sizeof preference[0]; i++)
        if (fasi_isa_available(preference[i])) return preference[i];
    return FASI_ISA_PORTABLE;
}

/* ---- the tables --------------------------------------------------------------------------- */

static fasi_kernels tables[FASI_ISA_COUNT];
static _Atomic int tables_ready = 0;

/* Building the tables is idempotent and writes the same values every time, but concurrent first
 * calls must not read a half-built table, hence the spin on a small state machine. Only the
 * levels this CPU runs are built: a level's registration function is compiled with that level's
 * instruction set like the rest of its file, and the compiler may use it there (gcc stores a
 * table's adjacent pointers with one 512-bit store in the AVX-512 file), so calling it on a CPU
 * without the level would fault. A level's base is always available where the level is. */
static void build_tables(void)
{
    int expected = 0;
    if (atomic_compare_exchange_strong(&tables_ready, &expected, 1)) {
        for (int i = 0; i < FASI_ISA_COUNT; i++) {
            const level_desc *l = &levels[i];
            if (!fasi_isa_available((fasi_isa)i)) continue;
            fasi_kernels *k = &tables[i];
            if (i != FASI_ISA_PORTABLE) *k = tables[l->base];
            k->isa = (fasi_isa)i;
            k->name = l->name;
            l->fp16(k);
            l->rowops(k);
            if (l->gemm) l->gemm(k); /* a level without its own gemm keeps its base's */
            l->philox(k);
        }
        atomic_store_explicit(&tables_ready, 2, memory_order_release);
    }
    while (atomic_load_explicit(&tables_ready, memory_order_acquire) != 2) {
    }
}

const fasi_kernels *fasi_kernels_for(fasi_isa isa)
{
    if (!fasi_isa_available(isa)) return NULL;
    build_tables();
    return &tables[isa];
}

const char *fas_simd_level(void) { return fasi_isa_name(fasi_cpu_best_isa()); }

/* ---- AMX (the AMX engine's tiles; not a kernel-table level) ---------------------------------- */

static pthread_once_t amx_once = PTHREAD_ONCE_INIT, amx_grant_once = PTHREAD_ONCE_INIT;
static const char *amx_reason;  /* why the CPU or OS cannot run AMX; NULL: they can */
static const char *grant_error; /* why the OS refused this process the tile state */
static char amx_reason_text[160];

/* Whether the CPU and the OS can run the AMX engine, found without changing anything: CPUID,
 * the tile state the OS enables (XCR0) and, on Linux, the features it can grant
 * (ARCH_GET_XCOMP_SUPP, a query). */
static void detect_amx(void)
{
#if FAS_HAVE_X86_SIMD
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) < 7) {
        amx_reason = "this CPU has no AMX-BF16 (no CPUID leaf 7)";
        return;
    }
    __cpuid_count(7, 0, a, b, c, d);
    if (!(d & (1u << 24)) || !(d & (1u << 22))) {
        amx_reason = "this CPU has no AMX-TILE and AMX-BF16";
        return;
    }
    if (!fasi_isa_available(FASI_ISA_AVX512)) {
        amx_reason = "the AVX-512 level, which the AMX engine's conversions use, is not "
                     "available on this CPU and OS";
        return;
    }
#if defined(__linux__)
    unsigned long supported = 0;
    if (syscall(SYS_arch_prctl, 0x1021 /* ARCH_GET_XCOMP_SUPP */, &supported) != 0 ||
        !(supported & (1ul << 18))) {
        amx_reason = "this kernel cannot grant the AMX tile data (ARCH_GET_XCOMP_SUPP)";
        return;
    }
#else
    amx_reason = "the library asks for the AMX tile state on Linux only, and this OS is not Linux";
    return;
#endif
    if ((read_xcr0() & (3ull << 17)) != (3ull << 17)) {
        amx_reason = "the OS does not enable the AMX tile state (XCR0 bits 17 and 18)";
        return;
    }
    amx_reason = NULL;
#else
    (void)amx_reason_text;
    amx_reason = "AMX-BF16 is an x86-64 instruction set, and this build has no x86-64 SIMD code";
#endif
}

/* The one change the AMX engine makes to the process, on its first use: Linux grants the tile
 * data per process (ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA; signal frames then have room
 * for it), and the grant cannot be returned. Nothing asks for it until a call runs on AMX. */
static void grant_amx(void)
{
#if FAS_HAVE_X86_SIMD && defined(__linux__)
    if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18) != 0) {
        snprintf(amx_reason_text, sizeof amx_reason_text,
                 "the OS refused this process the AMX tile state (arch_prctl "
                 "ARCH_REQ_XCOMP_PERM: %s)",
                 strerror(errno));
        grant_error = amx_reason_text;
    }
#endif
}

bool fasi_amx_usable(void)
{
    pthread_once(&amx_once, detect_amx);
    return amx_reason == NULL && grant_error == NULL;
}

bool fasi_amx_acquire(void)
{
    if (!fasi_amx_usable()) return false;
    pthread_once(&amx_grant_once, grant_amx);
    return grant_error == NULL;
}

const char *fasi_amx_unusable_reason(void)
{
    pthread_once(&amx_once, detect_amx);
    return amx_reason ? amx_reason : grant_error;
}
