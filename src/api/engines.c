/* The matrix engines this process can run, the one FAS_GEMM_AUTO chooses, and what the BLAS says
 * about itself (api/engines.h, docs/design.md §6).
 *
 * AUTO: the FAS_GEMM environment variable when set (read once, like ONEDNN_MAX_CPU_ISA), else
 * the engine measured fastest for the architecture (README, "Matrix engines"): AMX where it runs,
 * else the builtin tiles on x86-64, else the BLAS unless its kernels are below the CPU's level.
 * The rule depends on the build and the CPU only, never on a timing taken in the process, so two
 * runs on one machine always take the same engine and give the same bits. */
#include "api/engines.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/dispatch.h"
#include "blas/blas.h"
#include "common/status.h"

/* ---- the BLAS and the CPU ----------------------------------------------------------------- */

/* The SIMD level the kernels of a BLAS core name need, as far as the name tells: x86-64 cores of
 * OpenBLAS (openblas_get_corename) and BLIS (bli_arch_string). Unknown names are not judged. */
static int core_level(const char *core)
{
    static const char *const avx512[] = {"skylakex", "cooperlake", "sapphirerapids", "skx", "knl",
                                         "zen4",     "zen5"};
    static const char *const avx2[] = {"haswell", "zen", "zen2", "zen3", "excavator"};
    static const char *const older[] = {"prescott",     "core2",      "penryn",      "dunnington",
                                        "nehalem",      "atom",       "sandybridge", "barcelona",
                                        "bulldozer",    "piledriver", "steamroller", "opteron",
                                        "opteron_sse3", "athlon",     "katmai",      "coppermine",
                                        "northwood",    "banias",     "generic",     "bobcat"};
    char name[32];
    size_t i = 0;
    for (; core[i] && i + 1 < sizeof name; i++) name[i] = (char)tolower((unsigned char)core[i]);
    name[i] = '\0';
    for (size_t j = 0; j < sizeof avx512 / sizeof *avx512; j++)
        if (strcmp(name, avx512[j]) == 0) return FASI_ISA_AVX512;
    for (size_t j = 0; j < sizeof avx2 / sizeof *avx2; j++)
        if (strcmp(name, avx2[j]) == 0) return FASI_ISA_AVX2;
    for (size_t j = 0; j < sizeof older / sizeof *older; j++)
        if (strcmp(name, older[j]) == 0) return FASI_ISA_PORTABLE;
    return -1;
}

/* x86-64 levels in capability order (the fasi_isa values are not one: api/dispatch.c) */
static int x86_rank(int isa) { return isa == FASI_ISA_AVX512 ? 2 : isa == FASI_ISA_AVX2 ? 1 : 0; }

/* How a user makes the BLAS take this CPU's kernels. OpenBLAS's DYNAMIC_ARCH builds carry every
 * core and take OPENBLAS_CORETYPE; a BLIS build carries only the configurations it was built for
 * (forcing another one with BLIS_ARCH_TYPE aborts the process at its first product). */
static const char *fix_hint(const char *desc, fasi_isa cpu)
{
    const bool avx512 = cpu == FASI_ISA_AVX512;
    if (strncmp(desc, "OpenBLAS", 8) == 0)
        return avx512 ? "set OPENBLAS_CORETYPE=SkylakeX" : "set OPENBLAS_CORETYPE=Haswell";
    if (strncmp(desc, "BLIS", 4) == 0)
        return "use a BLIS built with this CPU's configuration (this build lacks it)";
    return "make the BLAS choose the kernels of this CPU";
}

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static char blas_info[512];
static bool blas_below;

static void read_blas(void)
{
    char desc[320];
    fasi_blas_describe(desc, sizeof desc);
    const char *core = fasi_blas_core();
    const fasi_isa cpu = fasi_cpu_best_isa();
    const int level = core ? core_level(core) : -1;
    blas_below = (cpu == FASI_ISA_AVX2 || cpu == FASI_ISA_AVX512) && level >= 0 &&
                 x86_rank(level) < x86_rank(cpu);
    int len = snprintf(blas_info, sizeof blas_info, "%s", desc);
    if (core && len >= 0 && (size_t)len < sizeof blas_info)
        len += snprintf(blas_info + len, sizeof blas_info - (size_t)len, " (core %s)", core);
    if (blas_below && len >= 0 && (size_t)len < sizeof blas_info)
        snprintf(blas_info + len, sizeof blas_info - (size_t)len,
                 "; WARNING: these kernels are below this CPU's level (%s), so the BLAS engine "
                 "runs far below its speed; %s",
                 fasi_isa_name(cpu), fix_hint(desc, cpu));
}

bool fasi_blas_below_cpu(void)
{
    pthread_once(&blas_once, read_blas);
    return blas_below;
}

const char *fas_blas_info(void)
{
    pthread_once(&blas_once, read_blas);
    return blas_info;
}

/* ---- availability ------------------------------------------------------------------------- */

bool fasi_engine_available(fas_gemm g)
{
    switch (g) {
    case FAS_GEMM_BUILTIN:
    case FAS_GEMM_BLAS: return true;
    case FAS_GEMM_AMX: return FAS_HAVE_AMX && fasi_amx_usable();
    default: return false;
    }
}

static const fasi_engine *engine_of(fas_gemm g)
{
    return g == FAS_GEMM_BLAS  ? &fasi_engine_blas
           : g == FAS_GEMM_AMX ? &fasi_engine_amx
                               : &fasi_engine_builtin;
}

static fas_gemm auto_rule(void)
{
    if (fasi_engine_available(FAS_GEMM_AMX)) return FAS_GEMM_AMX;
#if defined(__x86_64__) || defined(_M_X64)
    return FAS_GEMM_BUILTIN;
#else
    return fasi_blas_below_cpu() ? FAS_GEMM_BUILTIN : FAS_GEMM_BLAS;
#endif
}

/* ---- FAS_GEMM ----------------------------------------------------------------------------- */

enum { ENV_UNREAD = -2, ENV_INVALID = -1 }; /* else a fas_gemm value (AUTO: unset or "auto") */
static _Atomic int env_choice = ENV_UNREAD;
static char env_text[64]; /* the invalid value, for the error sentence */

bool fasi_gemm_from_name(const char *name, fas_gemm *out)
{
    static const struct {
        const char *name;
        fas_gemm value;
    } names[] = {{"auto", FAS_GEMM_AUTO},
                 {"builtin", FAS_GEMM_BUILTIN},
                 {"blas", FAS_GEMM_BLAS},
                 {"amx", FAS_GEMM_AMX}};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        size_t n = strlen(names[i].name), j = 0;
        while (j < n && name[j] && tolower((unsigned char)name[j]) == names[i].name[j]) j++;
        if (j == n && name[j] == '\0') {
            *out = names[i].value;
            return true;
        }
    }
    return false;
}

static int read_env(void)
{
    const char *v = getenv("FAS_GEMM");
    fas_gemm g;
    if (!v || !*v) return FAS_GEMM_AUTO;
    if (fasi_gemm_from_name(v, &g)) return (int)g;
    snprintf(env_text, sizeof env_text, "%s", v);
    return ENV_INVALID;
}

static int env_engine(void)
{
    int v = atomic_load_explicit(&env_choice, memory_order_acquire);
    if (v == ENV_UNREAD) {
        static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
        pthread_mutex_lock(&lock);
        v = atomic_load_explicit(&env_choice, memory_order_relaxed);
        if (v == ENV_UNREAD) {
            v = read_env();
            atomic_store_explicit(&env_choice, v, memory_order_release);
        }
        pthread_mutex_unlock(&lock);
    }
    return v;
}

void fasi_engines_reread_env(void)
{
    atomic_store_explicit(&env_choice, ENV_UNREAD, memory_order_release);
}

static fas_status invalid_env(void)
{
    return fasi_fail(FAS_ERR_VALUE,
                     "FAS_GEMM: \"%s\" is not a matrix engine; use auto, builtin, blas or amx "
                     "(or unset it)",
                     env_text);
}

/* acquire: the AMX engine's first use asks the OS for the tile state (api/dispatch.h); a query
 * (fas_gemm_engine) does not. */
static fas_status resolve(fas_gemm requested, bool acquire, const fasi_engine **out)
{
    fas_gemm g = requested;
    const char *from = "options: gemm";
    if (g == FAS_GEMM_AUTO) {
        int v = env_engine();
        if (v == ENV_INVALID) return invalid_env();
        g = (fas_gemm)v;
        from = "FAS_GEMM";
        if (g == FAS_GEMM_AUTO) g = auto_rule();
    }
    switch (g) {
    case FAS_GEMM_BUILTIN:
    case FAS_GEMM_BLAS: *out = engine_of(g); return FAS_OK;
    case FAS_GEMM_AMX:
        if (!FAS_HAVE_AMX)
            return fasi_fail(FAS_ERR_UNSUPPORTED,
                             "%s: the AMX engine cannot run: this build of the library has no AMX "
                             "code (an x86-64 compiler with -mamx-tile -mamx-bf16 and FAS_SIMD=ON "
                             "build it)",
                             from);
        if (!(acquire ? fasi_amx_acquire() : fasi_amx_usable()))
            return fasi_fail(FAS_ERR_UNSUPPORTED, "%s: the AMX engine cannot run: %s", from,
                             fasi_amx_unusable_reason());
        *out = engine_of(g);
        return FAS_OK;
    default: return fasi_fail(FAS_ERR_VALUE, "options: gemm %d is not a fas_gemm value", (int)g);
    }
}

fas_status fasi_resolve_engine(fas_gemm requested, const fasi_engine **out)
{
    return resolve(requested, true, out);
}

const char *fas_gemm_engine(void)
{
    fasi_clear_error();
    const fasi_engine *e = NULL;
    if (resolve(FAS_GEMM_AUTO, false, &e) != FAS_OK) return "invalid";
    return e->name;
}
