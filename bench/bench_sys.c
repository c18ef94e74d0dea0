/* Clock, thread count, machine description and the peak-memory probe of fas_bench. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <cblas.h>

#if FAS_BENCH_OPENMP
#include <omp.h>
#endif

#include "bench.h"

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int bench_online_cores(void)
{
#if FAS_BENCH_OPENMP
    return omp_get_num_procs();
#else
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
#endif
}

/* The library runs cblas single-threaded inside its own tasks; the baselines do the same so
 * that the floor is the time of the same GEMMs under the same parallel scheme. */
void bench_blas_single_thread(void)
{
#if FAS_BENCH_OPENBLAS_THREADS
    openblas_set_num_threads(1);
#endif
}

/* The value after the colon of a /proc/cpuinfo line, without its newline. */
static const char *cpuinfo_value(char *line)
{
    char *colon = strchr(line, ':');
    if (!colon) return NULL;
    colon++;
    while (*colon == ' ' || *colon == '\t') colon++;
    colon[strcspn(colon, "\n")] = '\0';
    return colon;
}

/* x86 names its CPU in "model name"; arm64 kernels give only "CPU implementer" and "CPU part"
 * (and "model name" not at all, or as a generic string), which are reported instead. */
void bench_cpu_model(char *buf, size_t size)
{
    snprintf(buf, size, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[1024], implementer[32] = "", part[32] = "";
    bool named = false;
    while (fgets(line, sizeof line, f)) {
        const char *v = cpuinfo_value(line);
        if (!v) continue;
        if (!named && strncmp(line, "model name", 10) == 0) {
            snprintf(buf, size, "%s", v);
            named = true;
        } else if (!implementer[0] && strncmp(line, "CPU implementer", 15) == 0) {
            snprintf(implementer, sizeof implementer, "%s", v);
        } else if (!part[0] && strncmp(line, "CPU part", 8) == 0) {
            snprintf(part, sizeof part, "%s", v);
        }
    }
    fclose(f);
    if (!named && implementer[0])
        snprintf(buf, size, "CPU implementer %s, part %s", implementer, part[0] ? part : "?");
}

#if FAS_BENCH_LIB_X86_SIMD
static bool has_flag(const char *flags, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = flags; (p = strstr(p, name)) != NULL; p += len) {
        bool start = p == flags || p[-1] == ' ' || p[-1] == '\t' || p[-1] == ':';
        bool end = p[len] == '\0' || p[len] == ' ' || p[len] == '\n';
        if (start && end) return true;
    }
    return false;
}
#endif

/* The library does not export its dispatch decision. On x86-64 it picks AVX-512 with F, DQ, BW
 * and VL, else AVX2 with FMA and F16C, else portable C, in a build that compiled the x86
 * kernels; /proc/cpuinfo lists a flag only when the kernel also enabled its register state. On
 * aarch64 a build with the NEON kernels always uses them (NEON is baseline there). */
const char *bench_expected_simd(char *why, size_t why_size)
{
#if FAS_BENCH_LIB_NEON
    snprintf(why, why_size, "aarch64: NEON is part of the baseline");
    return "neon";
#elif !FAS_BENCH_LIB_X86_SIMD
    snprintf(why, why_size, "library built without SIMD kernels for this target");
    return "portable";
#else
    snprintf(why, why_size, "no /proc/cpuinfo flags");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return "unknown";
    static char line[16384];
    const char *result = "unknown";
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "flags", 5) != 0) continue;
        bool avx2 = has_flag(line, "avx") && has_flag(line, "avx2") && has_flag(line, "fma") &&
                    has_flag(line, "f16c");
        bool avx512 = has_flag(line, "avx512f") && has_flag(line, "avx512dq") &&
                      has_flag(line, "avx512bw") && has_flag(line, "avx512vl");
        if (avx2 && avx512) {
            result = "avx512";
            snprintf(why, why_size, "cpu flags avx512f avx512dq avx512bw avx512vl");
        } else if (avx2) {
            result = "avx2";
            snprintf(why, why_size, "cpu flags avx2 fma f16c%s",
                     has_flag(line, "avx512f") ? "; avx512 incomplete" : ", no avx512f");
        } else {
            result = "portable";
            snprintf(why, why_size, "cpu lacks avx2/fma/f16c");
        }
        break;
    }
    fclose(f);
    return result;
#endif
}

void bench_stderr_clear_line(void)
{
    if (isatty(STDERR_FILENO)) fputs("\r\033[K", stderr);
}

/* ---- peak resident memory ------------------------------------------------------------------
 * Each case runs in its own child process (see fas_bench.c), so earlier cases leave nothing in
 * the heap. Around one untimed fused call, after the warm-up calls:
 *   1. malloc_trim(0) returns free heap pages to the kernel, so scratch the call allocates is
 *      counted even when malloc reuses a chunk freed by the warm-up;
 *   2. writing "5" to /proc/self/clear_refs (Linux >= 4.0) resets VmHWM to the current RSS;
 *   3. growth = VmHWM after the call - VmRSS before it: the library's scratch, OpenMP stacks and
 *      anything else the call touched, not the caller-owned tensors (resident already).
 * If the reset is refused, the growth above the earlier peak is reported and marked as a lower
 * bound. */

static int64_t status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    int64_t value = -1;
    size_t len = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, len) == 0) {
            value = strtoll(line + len, NULL, 10);
            break;
        }
    }
    fclose(f);
    return value;
}

void bench_mem_begin(bench_mem_probe *probe)
{
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
    bool reset = false;
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        reset = fputs("5", f) >= 0;
        reset = (fclose(f) == 0) && reset;
    }
    int64_t rss = status_kib("VmRSS:"), hwm = status_kib("VmHWM:");
    if (rss < 0 || hwm < 0) {
        probe->method = BENCH_MEM_NONE;
        probe->base_kib = 0;
    } else if (reset) {
        probe->method = BENCH_MEM_RESET;
        probe->base_kib = rss;
    } else {
        probe->method = BENCH_MEM_LOWER_BOUND;
        probe->base_kib = hwm;
    }
}

int64_t bench_mem_end(const bench_mem_probe *probe)
{
    if (probe->method == BENCH_MEM_NONE) return -1;
    int64_t hwm = status_kib("VmHWM:");
    if (hwm < 0) return -1;
    return hwm > probe->base_kib ? hwm - probe->base_kib : 0;
}

/* ---- memory -------------------------------------------------------------------------------- */

void *bench_alloc(size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size) return NULL;
    size_t bytes = count * size;
    if (bytes > SIZE_MAX - 64) return NULL;
    bytes = (bytes + 63) / 64 * 64;
    if (bytes == 0) bytes = 64;
    void *p = aligned_alloc(64, bytes);
    /* touched now, so caller-owned tensors are resident before any measured call */
    if (p) memset(p, 0, bytes);
    return p;
}

void bench_free(void *p) { free(p); }
