/* fas_bench: the performance instrument of fused-attention (docs/design.md §4).
 *
 * For each shape and mode it times the fused call (median and min over --repeat runs after
 * --warmup runs) on the matrix engine of --gemm and, in the same process and interleaved with
 * it, the bare products of that engine on the operator's shapes (the "GEMM floor",
 * bench_floor.c), a naive unfused fp32 pipeline on cblas (bench_baseline.c) and, for fwd_probs,
 * the write floor (bench_write.c). It also reports the peak resident memory growth of one fused
 * call.
 *
 * Every case runs in a child process of its own (fork), for two reasons: the memory probe needs
 * a heap that earlier cases have not grown (bench_sys.c), and the parent must never start
 * OpenMP, whose GNU runtime does not survive a fork once its thread pool exists. The child
 * sends progress and each mode's result through a pipe as they happen; the parent prints every
 * row as soon as it arrives and, when stderr is a terminal, a progress line on stderr that it
 * rewrites in place and erases before each row. --no-fork runs the cases in-process instead
 * (for debuggers), and the memory column may then miss scratch that reuses memory freed by
 * earlier cases. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/engines.h"
#include "bench.h"
#include "bench_peak.h"
#include "pipeline/parallel.h"

enum { MAX_SHAPES = 64 };

typedef enum out_style { OUT_TABLE, OUT_CSV, OUT_JSON } out_style;

typedef struct cli {
    bench_config cfg;
    bench_shape shapes[MAX_SHAPES];
    int nshapes;
    bench_mode modes[BENCH_MODE_COUNT];
    int nmodes;
    bool cast; /* --cast: layout throughput instead of the operator suite */
    out_style style;
    bool quick;
    bool fork_cases;
} cli;

typedef struct env_info {
    bench_peak peak;
    char cpu[256];
    char simd_why[160];
    const char *simd;
    const char *blas; /* fas_blas_info() */
} env_info;

static const bench_shape default_suite[] = {
    {24, 16, 512, 512, 64, 64}, /* the torch_npu example shape */
    {32, 12, 128, 128, 64, 64},
    {8, 12, 384, 384, 64, 64},
    {1, 16, 4096, 4096, 64, 64},
};

/* small and odd: Sq != Sk, Dv != D, sizes not multiples of 16 */
static const bench_shape quick_suite[] = {
    {2, 4, 128, 128, 64, 64},
    {1, 8, 256, 256, 64, 64},
    {2, 3, 100, 120, 40, 48},
};

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: fas_bench [options]\n"
        "\n"
        "Times fused_attention_score (fp16) against the bare products of its own matrix\n"
        "engine on the same shapes (the GEMM floor) and a naive unfused fp32 pipeline on\n"
        "cblas, in the same run.\n"
        "\n"
        "  --shape B,N,Sq,Sk,D[,Dv]  a case (repeatable; Dv defaults to D). Without --shape:\n"
        "                            24,16,512,512,64  32,12,128,128,64  8,12,384,384,64\n"
        "                            1,16,4096,4096,64\n"
        "  --quick                   small default suite for CI smoke tests:\n"
        "                            2,4,128,128,64  1,8,256,256,64  2,3,100,120,40,48\n"
        "  --mode M                  fwd | fwd_probs | grad | all, or a comma list (default all)\n"
        "                              fwd       fused_attention_score (no softmax output)\n"
        "                              fwd_probs fused_attention_score_fwd with softmax_output\n"
        "                                        and drop_mask\n"
        "                              grad      fused_attention_score_grad, 2-D outputs\n"
        "  --keep-prob P             dropout keep probability (default 1.0 for fwd, 0.9 for\n"
        "                            fwd_probs and grad)\n"
        "  --format nd|nz            layout of every tensor (default nz = FRACTAL_NZ)\n"
        "  --precision fp32|npu      fp32 stages (default) or the NPU precision mode, which\n"
        "                            needs Sq = Sk, Dv = D, multiples of 16 (64 for grad)\n"
        "  --gemm E                  matrix engine of the fused calls and of the floor:\n"
        "                            auto (default: the library's choice, FAS_GEMM when set),\n"
        "                            builtin, blas or amx\n"
        "  --threads T               threads, 0 = OpenMP's default (OMP_NUM_THREADS, else the\n"
        "                            CPUs of the affinity mask; default 0)\n"
        "  --repeat R                timed runs per measurement (default 5)\n"
        "  --warmup W                untimed runs first (default 1)\n"
        "  --cast                    instead: fas_format_cast ND<->NZ throughput (GB/s)\n"
        "  --csv                     one CSV row per case and mode (machine info on stderr)\n"
        "  --json                    a JSON array of objects (machine info also on stderr)\n"
        "  --no-fork                 run cases in this process (for debuggers)\n"
        "  --profile                 split each fused time by stage (matmul, softmax and\n"
        "                            dropout, packing and conversion, stores), from the\n"
        "                            library's stage counters, as shares of threads x time\n"
        "  --help                    this text\n");
}

static int parse_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_shape(const char *s, bench_shape *shape)
{
    long long v[6];
    int count = 0;
    const char *p = s;
    while (count < 6) {
        char *end;
        errno = 0;
        v[count] = strtoll(p, &end, 10);
        if (errno || end == p || v[count] < 1 || v[count] > (1ll << 31)) return -1;
        count++;
        if (*end == '\0') break;
        if (*end != ',') return -1;
        p = end + 1;
    }
    if (count < 5) return -1;
    if (count == 6 && strchr(p, ',') != NULL) return -1;
    shape->b = v[0];
    shape->n = v[1];
    shape->sq = v[2];
    shape->sk = v[3];
    shape->d = v[4];
    shape->dv = count == 6 ? v[5] : v[4];
    return 0;
}

static int parse_modes(const char *s, cli *c)
{
    bool want[BENCH_MODE_COUNT] = {false, false, false};
    char buf[64];
    if (strlen(s) >= sizeof buf) return -1;
    strcpy(buf, s);
    for (char *tok = buf, *next; tok; tok = next) {
        next = strchr(tok, ',');
        if (next) *next++ = '\0';
        if (strcmp(tok, "all") == 0)
            want[BENCH_FWD] = want[BENCH_FWD_PROBS] = want[BENCH_GRAD] = true;
        else if (strcmp(tok, "fwd") == 0)
            want[BENCH_FWD] = true;
        else if (strcmp(tok, "fwd_probs") == 0)
            want[BENCH_FWD_PROBS] = true;
        else if (strcmp(tok, "grad") == 0)
            want[BENCH_GRAD] = true;
        else
            return -1;
    }
    c->nmodes = 0;
    for (int m = 0; m < BENCH_MODE_COUNT; m++)
        if (want[m]) c->modes[c->nmodes++] = (bench_mode)m;
    return 0;
}

/* Returns 0 to run, 1 after --help, 2 on a usage error (message printed). */
static int parse_cli(int argc, char **argv, cli *c)
{
    memset(c, 0, sizeof *c);
    c->cfg.repeat = 5;
    c->cfg.warmup = 1;
    c->cfg.keep_prob = 1.0;
    c->cfg.format = FAS_FORMAT_FRACTAL_NZ;
    c->fork_cases = true;
    c->style = OUT_TABLE;
    parse_modes("all", c);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        long long v;
        bool takes = strcmp(a, "--shape") == 0 || strcmp(a, "--mode") == 0 ||
                     strcmp(a, "--keep-prob") == 0 || strcmp(a, "--format") == 0 ||
                     strcmp(a, "--precision") == 0 || strcmp(a, "--threads") == 0 ||
                     strcmp(a, "--repeat") == 0 || strcmp(a, "--warmup") == 0 ||
                     strcmp(a, "--gemm") == 0;
        if (takes && !val) {
            fprintf(stderr, "fas_bench: %s needs a value (see --help)\n", a);
            return 2;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        } else if (strcmp(a, "--shape") == 0) {
            if (c->nshapes == MAX_SHAPES) {
                fprintf(stderr, "fas_bench: at most %d --shape options\n", MAX_SHAPES);
                return 2;
            }
            if (parse_shape(val, &c->shapes[c->nshapes]) != 0) {
                fprintf(stderr,
                        "fas_bench: --shape '%s': expected B,N,Sq,Sk,D[,Dv], positive integers\n",
                        val);
                return 2;
            }
            c->nshapes++;
        } else if (strcmp(a, "--mode") == 0) {
            if (parse_modes(val, c) != 0) {
                fprintf(stderr, "fas_bench: --mode '%s': expected fwd, fwd_probs, grad or all\n",
                        val);
                return 2;
            }
        } else if (strcmp(a, "--keep-prob") == 0) {
            char *end;
            errno = 0;
            c->cfg.keep_prob = strtod(val, &end);
            if (errno || end == val || *end != '\0') {
                fprintf(stderr, "fas_bench: --keep-prob '%s' is not a number\n", val);
                return 2;
            }
            if (!(c->cfg.keep_prob > 0.0 && c->cfg.keep_prob <= 1.0)) {
                fprintf(stderr, "fas_bench: --keep-prob '%s': expected 0 < P <= 1\n", val);
                return 2;
            }
            c->cfg.keep_prob_given = true;
        } else if (strcmp(a, "--format") == 0) {
            if (strcmp(val, "nd") == 0)
                c->cfg.format = FAS_FORMAT_ND;
            else if (strcmp(val, "nz") == 0)
                c->cfg.format = FAS_FORMAT_FRACTAL_NZ;
            else {
                fprintf(stderr, "fas_bench: --format '%s': expected nd or nz\n", val);
                return 2;
            }
        } else if (strcmp(a, "--precision") == 0) {
            if (strcmp(val, "fp32") == 0)
                c->cfg.precision = FAS_PRECISION_FP32;
            else if (strcmp(val, "npu") == 0)
                c->cfg.precision = FAS_PRECISION_NPU;
            else {
                fprintf(stderr, "fas_bench: --precision '%s': expected fp32 or npu\n", val);
                return 2;
            }
        } else if (strcmp(a, "--gemm") == 0) {
            static const struct {
                const char *name;
                fas_gemm value;
            } engines[] = {{"auto", FAS_GEMM_AUTO},
                           {"builtin", FAS_GEMM_BUILTIN},
                           {"blas", FAS_GEMM_BLAS},
                           {"amx", FAS_GEMM_AMX}};
            size_t e = 0;
            while (e < sizeof engines / sizeof *engines && strcmp(val, engines[e].name) != 0) e++;
            if (e == sizeof engines / sizeof *engines) {
                fprintf(stderr,
                        "fas_bench: --gemm '%s' is not a matrix engine: expected auto, builtin, "
                        "blas or amx\n",
                        val);
                return 2;
            }
            c->cfg.gemm = engines[e].value;
        } else if (strcmp(a, "--threads") == 0) {
            if (parse_int(val, 0, 4096, &v) != 0) {
                fprintf(stderr, "fas_bench: --threads '%s': expected 0..4096\n", val);
                return 2;
            }
            c->cfg.threads_requested = (int)v;
        } else if (strcmp(a, "--repeat") == 0) {
            if (parse_int(val, 1, 1000000, &v) != 0) {
                fprintf(stderr, "fas_bench: --repeat '%s': expected a positive integer\n", val);
                return 2;
            }
            c->cfg.repeat = (int)v;
        } else if (strcmp(a, "--warmup") == 0) {
            if (parse_int(val, 0, 1000000, &v) != 0) {
                fprintf(stderr, "fas_bench: --warmup '%s': expected an integer >= 0\n", val);
                return 2;
            }
            c->cfg.warmup = (int)v;
        } else if (strcmp(a, "--cast") == 0) {
            c->cast = true;
        } else if (strcmp(a, "--csv") == 0) {
            c->style = OUT_CSV;
        } else if (strcmp(a, "--json") == 0) {
            c->style = OUT_JSON;
        } else if (strcmp(a, "--quick") == 0) {
            c->quick = true;
        } else if (strcmp(a, "--no-fork") == 0) {
            c->fork_cases = false;
        } else if (strcmp(a, "--profile") == 0) {
            c->cfg.profile = true;
        } else {
            fprintf(stderr, "fas_bench: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (takes) i++;
    }
    if (c->nshapes == 0) {
        const bench_shape *suite = c->quick ? quick_suite : default_suite;
        size_t n = c->quick ? sizeof quick_suite / sizeof quick_suite[0]
                            : sizeof default_suite / sizeof default_suite[0];
        for (size_t i = 0; i < n; i++) c->shapes[c->nshapes++] = suite[i];
    }
    c->cfg.threads = fasi_resolve_threads(c->cfg.threads_requested); /* the library's rule */
    return 0;
}

/* ---- output -------------------------------------------------------------------------------- */

static const char *format_name(fas_format f) { return f == FAS_FORMAT_ND ? "nd" : "nz"; }

static const char *precision_name(fas_precision p)
{
    return p == FAS_PRECISION_NPU ? "npu" : "fp32";
}

static void shape_label(const bench_shape *s, char *buf, size_t size)
{
    if (s->dv == s->d)
        snprintf(buf, size, "%lld,%lld,%lld,%lld,%lld", (long long)s->b, (long long)s->n,
                 (long long)s->sq, (long long)s->sk, (long long)s->d);
    else
        snprintf(buf, size, "%lld,%lld,%lld,%lld,%lld,%lld", (long long)s->b, (long long)s->n,
                 (long long)s->sq, (long long)s->sk, (long long)s->d, (long long)s->dv);
}

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static void
header_line(FILE *f, const char *prefix, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(f, "%s%-14s ", prefix, key);
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    va_end(ap);
}

static void print_header(FILE *f, const char *prefix, const cli *c, const env_info *env)
{
    const bench_config *cfg = &c->cfg;
    fprintf(f, "%sfas_bench: fused_attention_score on the CPU (fp16 tensors)\n", prefix);
    header_line(f, prefix, "library", "fused-attention %s", fas_version_string());
    header_line(f, prefix, "cpu", "%s (%d cores online)", env->cpu, bench_online_cores());
    header_line(f, prefix, "SIMD path", "%s (%s)", env->simd, env->simd_why);
    const char *gemm_env = getenv("FAS_GEMM");
    char why[128];
    if (cfg->gemm != FAS_GEMM_AUTO)
        snprintf(why, sizeof why, "--gemm %s", cfg->gemm_name);
    else if (gemm_env && *gemm_env)
        snprintf(why, sizeof why, "--gemm auto, FAS_GEMM=%.64s", gemm_env);
    else
        snprintf(why, sizeof why, "--gemm auto, FAS_GEMM unset: the library's rule");
    header_line(f, prefix, "gemm engine", "%s (%s), for the fused calls and the GEMM floor",
                cfg->gemm_name, why);
    header_line(f, prefix, "blas", "%s", env->blas);
    if (env->peak.level)
        header_line(f, prefix, "fma peak",
                    "%.1f GFLOP/s on %d thread(s) (avx2 %.1f, avx512 %.1f; 12 chains per thread)",
                    env->peak.gflops, cfg->threads, env->peak.gflops_avx2, env->peak.gflops_avx512);
    else
        header_line(f, prefix, "fma peak", "not measured (no AVX2 or AVX-512 level here)");
    const char *vars[] = {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                          "OMP_NUM_THREADS",   "OMP_PROC_BIND",    "OMP_PLACES",
                          "GOMP_CPU_AFFINITY"};
    char envs[1024] = "";
    size_t used = 0;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && used < sizeof envs)
            used += (size_t)snprintf(envs + used, sizeof envs - used, "%s%s=%s", used ? " " : "",
                                     vars[i], v);
    }
    header_line(f, prefix, "environment", "%s",
                used ? envs : "OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE, OMP_* not set");
    if (cfg->threads_requested == 0)
        header_line(f, prefix, "threads", "%d (--threads 0 = OpenMP's default)", cfg->threads);
    else
        header_line(f, prefix, "threads", "%d", cfg->threads);
    char keep[64];
    if (cfg->keep_prob_given)
        snprintf(keep, sizeof keep, "%g", cfg->keep_prob);
    else
        snprintf(keep, sizeof keep, "1 fwd, 0.9 fwd_probs/grad");
    header_line(f, prefix, "runs", "format %s, precision %s, warm-up %d, repeat %d, keep_prob %s",
                format_name(cfg->format), precision_name(cfg->precision), cfg->warmup, cfg->repeat,
                keep);
    header_line(f, prefix, "inputs",
                "uniform [-1,1) fp16; mask [B,1,Sq,Sk] 0 / -10000 on the last 10%% of keys; "
                "scale 1/sqrt(D)");
}

static void print_legend(FILE *f)
{
    fprintf(
        f,
        "\nmedian, min   wall time of one fused call over the repeats (CLOCK_MONOTONIC)\n"
        "GFLOP/s       2*B*N*Sq*Sk*(D+Dv) (x2 for grad) / median\n"
        "floor         median time of the GEMM floor: the products of the fused call's own\n"
        "              engine (gemm engine above) in the pipeline's shapes, blocks and tasks,\n"
        "              same threads, every operand packed beforehand (cblas_sgemm for blas)\n"
        "fused/floor   fused median / floor median: the time everything but the products takes\n"
        "              (1.00 = none)\n"
        "naive         median time of an unfused fp32 pipeline on cblas_sgemm (fp16->fp32, full\n"
        "              score matrix, one pass per step, permute, fp32->fp16)\n"
        "naive/fused   naive median / fused median: how many times faster the fused call is\n"
        "%%peak         GFLOP/s as a share of the fp32 FMA peak, probed (20 ms, best SIMD level, "
        "same\n"
        "              threads) after each repeat: the median probe of the case (a shared\n"
        "              machine's speed drifts; fma peak above is the start-of-run value)\n"
        "write         fwd_probs: median time of the library's own block storers writing P and\n"
        "              the drop mask in the pipeline's blocking, same threads (the write floor);\n"
        "              f/(fl+wr) = fused median / (floor median + write median)\n"
        "peak MiB      peak resident memory growth of one fused call (VmHWM, own process);\n"
        "              '>' marks a lower bound (peak could not be reset)\n"
        "note          'noisy' names each timing whose median exceeds its min by more than 20%%\n"
        "              (the machine was busy: repeat the case before trusting its ratios)\n");
}

static void print_table_head(void)
{
    printf("\n%-22s %-9s %-3s %5s %10s %10s %8s %6s %10s %11s %9s %9s %10s %11s %9s  %s\n",
           "shape B,N,Sq,Sk,D", "mode", "fmt", "keep", "median ms", "min ms", "GFLOP/s", "%peak",
           "floor ms", "fused/floor", "write ms", "f/(fl+wr)", "naive ms", "naive/fused",
           "peak MiB", "note");
}

static void mem_text(const bench_result *r, char *buf, size_t size)
{
    if (r->mem_growth_kib < 0 || r->mem_method == BENCH_MEM_NONE)
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%s%.1f", r->mem_method == BENCH_MEM_LOWER_BOUND ? ">" : "",
                 (double)r->mem_growth_kib / 1024.0);
}

static const char *mem_method_name(bench_mem_method m)
{
    return m == BENCH_MEM_RESET ? "reset" : m == BENCH_MEM_LOWER_BOUND ? "lower_bound" : "none";
}

/* A timing is noisy when its median exceeds its minimum by more than 20 %. */
static bool noisy(double median, double min) { return median > 1.2 * min; }

/* "noisy: fused, floor" listing the noisy timings of a row, or "". */
static void note_text(const bench_result *r, char *buf, size_t size)
{
    const struct {
        const char *name;
        double median, min;
    } t[] = {{"fused", r->fused_median, r->fused_min},
             {"floor", r->floor_median, r->floor_min},
             {"naive", r->naive_median, r->naive_min},
             {"write", r->write_median, r->write_min}};
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (noisy(t[i].median, t[i].min) && used < size)
            used += (size_t)snprintf(buf + used, size - used, "%s%s",
                                     used ? ", " : "noisy: ", t[i].name);
}

/* Columns computed from BLAS calls while the BLAS runs kernels below this CPU's level: the
 * floor when the engine is blas, the naive pipeline always (it calls cblas_sgemm). */
static bool floor_on_slow_blas(const bench_config *cfg)
{
    return cfg->blas_below_cpu && strcmp(cfg->gemm_name, "blas") == 0;
}
static bool naive_on_slow_blas(const bench_config *cfg) { return cfg->blas_below_cpu; }

/* "%.2f" of v, with a trailing '!' when marked. */
static void num_text(char *buf, size_t size, double v, bool mark)
{
    snprintf(buf, size, "%.2f%s", v, mark ? "!" : "");
}

static void print_table_row(const cli *c, const env_info *env, const bench_result *r)
{
    char label[96], mem[32], note[64], peak[16] = "-", write[16] = "-", ratio[16] = "-";
    char floor_ms[24], floor_ratio[24], naive_ms[24], naive_ratio[24];
    const bool mf = floor_on_slow_blas(&c->cfg), mn = naive_on_slow_blas(&c->cfg);
    shape_label(&r->shape, label, sizeof label);
    mem_text(r, mem, sizeof mem);
    note_text(r, note, sizeof note);
    (void)env;
    if (r->peak_gflops > 0)
        snprintf(peak, sizeof peak, "%.0f%%", 100.0 * r->gflop / r->fused_median / r->peak_gflops);
    if (r->write_median > 0) {
        snprintf(write, sizeof write, "%.2f", r->write_median * 1e3);
        num_text(ratio, sizeof ratio, r->fused_median / (r->floor_median + r->write_median), mf);
    }
    num_text(floor_ms, sizeof floor_ms, r->floor_median * 1e3, mf);
    num_text(floor_ratio, sizeof floor_ratio, r->fused_median / r->floor_median, mf);
    num_text(naive_ms, sizeof naive_ms, r->naive_median * 1e3, mn);
    num_text(naive_ratio, sizeof naive_ratio, r->naive_median / r->fused_median, mn);
    printf("%-22s %-9s %-3s %5.2f %10.2f %10.2f %8.1f %6s %10s %11s %9s %9s %10s %11s %9s  %s\n",
           label, bench_mode_name(r->mode), format_name(c->cfg.format), r->keep_prob,
           r->fused_median * 1e3, r->fused_min * 1e3, r->gflop / r->fused_median, peak, floor_ms,
           floor_ratio, write, ratio, naive_ms, naive_ratio, mem, note);
    if (c->cfg.profile) {
        double rest = 1.0;
        printf("    profile of %d thread(s) x fused time:", c->cfg.threads);
        for (int s = 0; s < FASI_PROF_COUNT; s++) {
            printf(" %s %.1f%%", fasi_profile_stage_name((fasi_prof_stage)s),
                   100.0 * r->prof_share[s]);
            rest -= r->prof_share[s];
        }
        printf(", other %.1f%%\n", 100.0 * rest);
    }
}

/* The footnote under the table when columns were marked with '!'. */
static void print_table_footnote(const cli *c)
{
    if (!naive_on_slow_blas(&c->cfg) && !floor_on_slow_blas(&c->cfg)) return;
    printf("! computed from BLAS calls while the BLAS runs kernels below this CPU's SIMD level "
           "(%s): too slow, not a fair baseline; see the blas line above for the fix\n",
           floor_on_slow_blas(&c->cfg) ? "the GEMM floor, as the engine is blas, and the naive "
                                         "pipeline"
                                       : "the naive pipeline");
}

static const char *csv_columns =
    "b,n,sq,sk,d,dv,mode,format,precision,threads,keep_prob,warmup,repeat,gflop,fused_median_ms,"
    "fused_min_ms,gflops,floor_median_ms,floor_min_ms,floor_gflops,fused_over_floor,"
    "naive_median_ms,naive_min_ms,naive_over_fused,peak_rss_growth_kib,peak_rss_method,"
    "write_median_ms,fused_over_floor_plus_write,fma_peak_gflops,share_of_peak,gemm,"
    "blas_below_cpu,profile_matmul,profile_softmax_dropout,profile_pack_convert,profile_stores";

/* The write floor's columns and the share of the FMA peak: empty where they do not apply. */
static void extra_fields(const env_info *env, const bench_result *r, char *buf, size_t size)
{
    char wr[32] = "", ratio[32] = "", peak[32] = "", share[32] = "";
    if (r->write_median > 0) {
        snprintf(wr, sizeof wr, "%.4f", r->write_median * 1e3);
        snprintf(ratio, sizeof ratio, "%.4f",
                 r->fused_median / (r->floor_median + r->write_median));
    }
    (void)env;
    if (r->peak_gflops > 0) {
        snprintf(peak, sizeof peak, "%.3f", r->peak_gflops);
        snprintf(share, sizeof share, "%.4f", r->gflop / r->fused_median / r->peak_gflops);
    }
    snprintf(buf, size, "%s,%s,%s,%s", wr, ratio, peak, share);
}

/* The --profile shares as CSV fields (empty without --profile). */
static void profile_fields(const cli *c, const bench_result *r, char *buf, size_t size)
{
    if (!c->cfg.profile) {
        snprintf(buf, size, ",,,");
        return;
    }
    snprintf(buf, size, "%.4f,%.4f,%.4f,%.4f", r->prof_share[0], r->prof_share[1], r->prof_share[2],
             r->prof_share[3]);
}

static void print_csv_row(const cli *c, const env_info *env, const bench_result *r)
{
    const bench_shape *s = &r->shape;
    char extra[160], prof[96];
    extra_fields(env, r, extra, sizeof extra);
    profile_fields(c, r, prof, sizeof prof);
    printf("%lld,%lld,%lld,%lld,%lld,%lld,%s,%s,%s,%d,%g,%d,%d,%.6f,%.4f,%.4f,%.3f,%.4f,%.4f,%.3f,"
           "%.4f,%.4f,%.4f,%.4f,%lld,%s,%s,%s,%s,%s\n",
           (long long)s->b, (long long)s->n, (long long)s->sq, (long long)s->sk, (long long)s->d,
           (long long)s->dv, bench_mode_name(r->mode), format_name(c->cfg.format),
           precision_name(c->cfg.precision), c->cfg.threads, r->keep_prob, c->cfg.warmup,
           c->cfg.repeat, r->gflop, r->fused_median * 1e3, r->fused_min * 1e3,
           r->gflop / r->fused_median, r->floor_median * 1e3, r->floor_min * 1e3,
           r->gflop / r->floor_median, r->fused_median / r->floor_median, r->naive_median * 1e3,
           r->naive_min * 1e3, r->naive_median / r->fused_median, (long long)r->mem_growth_kib,
           mem_method_name(r->mem_method), extra, c->cfg.gemm_name,
           c->cfg.blas_below_cpu ? "true" : "false", prof);
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void print_json_object(const cli *c, const env_info *env, const bench_result *r, bool first)
{
    const bench_shape *s = &r->shape;
    printf("%s  {\"b\": %lld, \"n\": %lld, \"sq\": %lld, \"sk\": %lld, \"d\": %lld, \"dv\": %lld, "
           "\"mode\": \"%s\", \"format\": \"%s\", \"precision\": \"%s\", \"threads\": %d, "
           "\"keep_prob\": %g, "
           "\"warmup\": %d, \"repeat\": %d, \"gflop\": %.6f,\n",
           first ? "" : ",\n", (long long)s->b, (long long)s->n, (long long)s->sq, (long long)s->sk,
           (long long)s->d, (long long)s->dv, bench_mode_name(r->mode), format_name(c->cfg.format),
           precision_name(c->cfg.precision), c->cfg.threads, r->keep_prob, c->cfg.warmup,
           c->cfg.repeat, r->gflop);
    printf("   \"fused_median_ms\": %.4f, \"fused_min_ms\": %.4f, \"gflops\": %.3f, "
           "\"floor_median_ms\": %.4f, \"floor_min_ms\": %.4f, \"floor_gflops\": %.3f, "
           "\"fused_over_floor\": %.4f,\n",
           r->fused_median * 1e3, r->fused_min * 1e3, r->gflop / r->fused_median,
           r->floor_median * 1e3, r->floor_min * 1e3, r->gflop / r->floor_median,
           r->fused_median / r->floor_median);
    printf("   \"naive_median_ms\": %.4f, \"naive_min_ms\": %.4f, \"naive_over_fused\": %.4f, "
           "\"peak_rss_growth_kib\": %lld, \"peak_rss_method\": \"%s\",\n",
           r->naive_median * 1e3, r->naive_min * 1e3, r->naive_median / r->fused_median,
           (long long)r->mem_growth_kib, mem_method_name(r->mem_method));
    if (r->write_median > 0)
        printf("   \"write_median_ms\": %.4f, \"fused_over_floor_plus_write\": %.4f,\n",
               r->write_median * 1e3, r->fused_median / (r->floor_median + r->write_median));
    if (r->peak_gflops > 0)
        printf("   \"fma_peak_gflops\": %.3f, \"share_of_peak\": %.4f,\n", r->peak_gflops,
               r->gflop / r->fused_median / r->peak_gflops);
    printf("   \"gemm\": ");
    json_string(c->cfg.gemm_name);
    printf(", \"blas_below_cpu\": %s,\n", c->cfg.blas_below_cpu ? "true" : "false");
    if (c->cfg.profile) {
        printf("   \"profile\": {");
        for (int st = 0; st < FASI_PROF_COUNT; st++)
            printf("%s\"%s\": %.4f", st ? ", " : "", fasi_profile_stage_name((fasi_prof_stage)st),
                   r->prof_share[st]);
        printf("},\n");
    }
    printf("   \"library_version\": ");
    json_string(fas_version_string());
    printf(", \"cpu\": ");
    json_string(env->cpu);
    printf(", \"simd\": ");
    json_string(env->simd);
    printf(", \"blas\": ");
    json_string(env->blas);
    printf("}");
}

/* ---- the printer: rows as they arrive, the progress line ----------------------------------- */

typedef struct printer {
    const cli *c;
    const env_info *env;
    int row;          /* rows printed so far */
    int rows;         /* rows of the whole run */
    int shape;        /* index of the case running */
    bool first;       /* no JSON object printed yet */
    bool progress_on; /* stderr is a terminal */
    bool line_shown;  /* a progress line is on stderr now */
} printer;

static const char *stage_name(bench_stage st)
{
    switch (st) {
    case BENCH_STAGE_FUSED: return "fused";
    case BENCH_STAGE_FLOOR: return "floor";
    case BENCH_STAGE_NAIVE: return "naive";
    case BENCH_STAGE_WRITE: return "write";
    default: return "?";
    }
}

static void progress_clear(printer *pr)
{
    if (!pr->line_shown) return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    pr->line_shown = false;
}

/* "case i/n B,N,Sq,Sk,D mode: stage S, repeat k/R" on stderr, rewritten in place; i counts the
 * rows (case and mode) of the run. */
static void on_progress(void *ctx, int mode_index, bench_stage stage, bool warmup, int run,
                        int runs)
{
    printer *pr = ctx;
    if (!pr->progress_on) return;
    char label[96], step[48];
    shape_label(&pr->c->shapes[pr->shape], label, sizeof label);
    if (!warmup)
        snprintf(step, sizeof step, "repeat %d/%d", run, runs);
    else if (run > 0)
        snprintf(step, sizeof step, "warm-up %d/%d", run, runs);
    else
        snprintf(step, sizeof step, "untimed run");
    fprintf(stderr, "\r\033[Kcase %d/%d %s %s: stage %s, %s", pr->row + 1, pr->rows, label,
            bench_mode_name(pr->c->modes[mode_index]), stage_name(stage), step);
    fflush(stderr);
    pr->line_shown = true;
}

static void on_result(void *ctx, int mode_index, const bench_result *r)
{
    printer *pr = ctx;
    (void)mode_index;
    progress_clear(pr);
    if (pr->c->style == OUT_TABLE)
        print_table_row(pr->c, pr->env, r);
    else if (pr->c->style == OUT_CSV)
        print_csv_row(pr->c, pr->env, r);
    else
        print_json_object(pr->c, pr->env, r, pr->first);
    pr->first = false;
    pr->row++;
    fflush(stdout);
}

/* ---- running a case ------------------------------------------------------------------------ */

static int write_all(int fd, const void *buf, size_t size)
{
    const char *p = buf;
    while (size) {
        ssize_t w = write(fd, p, size);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        size -= (size_t)w;
    }
    return 0;
}

/* 1 when size bytes were read, 0 at end of file before the first byte, -1 otherwise. */
static int read_all(int fd, void *buf, size_t size)
{
    char *p = buf;
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, p + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r == 0 && got == 0) return 0;
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 1;
}

/* What a case child sends through its pipe: fixed-size messages (under PIPE_BUF, so each write
 * is atomic), progress and results in the order they happen. */
typedef struct case_msg {
    int kind; /* MSG_PROGRESS, MSG_RESULT */
    int mode_index;
    int stage;
    int warmup;
    int run, runs;
    bench_result result;
} case_msg;
enum { MSG_PROGRESS = 1, MSG_RESULT = 2 };

typedef struct child_pipe {
    int fd;
    bool broken; /* a write failed: the parent is gone or the pipe is closed */
} child_pipe;

static void send_msg(child_pipe *cp, const case_msg *m)
{
    if (!cp->broken && write_all(cp->fd, m, sizeof *m) != 0) cp->broken = true;
}

static void child_progress(void *ctx, int mode_index, bench_stage stage, bool warmup, int run,
                           int runs)
{
    case_msg m;
    memset(&m, 0, sizeof m);
    m.kind = MSG_PROGRESS;
    m.mode_index = mode_index;
    m.stage = (int)stage;
    m.warmup = warmup;
    m.run = run;
    m.runs = runs;
    send_msg(ctx, &m);
}

static void child_result(void *ctx, int mode_index, const bench_result *r)
{
    case_msg m;
    memset(&m, 0, sizeof m);
    m.kind = MSG_RESULT;
    m.mode_index = mode_index;
    m.result = *r;
    send_msg(ctx, &m);
}

static int run_case(const cli *c, const bench_shape *shape, printer *pr)
{
    if (!c->fork_cases) {
        bench_sink sink = {on_progress, on_result, pr};
        int rc = bench_run_case(&c->cfg, shape, c->modes, c->nmodes, &sink);
        progress_clear(pr);
        return rc;
    }

    char label[96];
    shape_label(shape, label, sizeof label);
    int fds[2];
    if (pipe(fds) != 0) {
        perror("fas_bench: pipe");
        return 1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fas_bench: fork");
        close(fds[0]);
        close(fds[1]);
        return 1;
    }
    if (pid == 0) {
        close(fds[0]);
        child_pipe cp = {fds[1], false};
        bench_sink sink = {child_progress, child_result, &cp};
        int rc = bench_run_case(&c->cfg, shape, c->modes, c->nmodes, &sink);
        if (cp.broken) rc = 1;
        close(fds[1]);
        _exit(rc == 0 ? 0 : 1);
    }
    close(fds[1]);
    int results = 0, got;
    bool lost = false;
    case_msg m;
    while ((got = read_all(fds[0], &m, sizeof m)) == 1) {
        if (m.kind == MSG_PROGRESS && m.mode_index >= 0 && m.mode_index < c->nmodes) {
            on_progress(pr, m.mode_index, (bench_stage)m.stage, m.warmup != 0, m.run, m.runs);
        } else if (m.kind == MSG_RESULT && m.mode_index == results) {
            on_result(pr, m.mode_index, &m.result);
            results++;
        } else {
            lost = true;
            break;
        }
    }
    if (got < 0) lost = true;
    close(fds[0]);
    progress_clear(pr);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            perror("fas_bench: waitpid");
            return 1;
        }
    }
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "fas_bench: shape %s: benchmark process killed by signal %d\n", label,
                WTERMSIG(status));
        return 1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1; /* the child said why */
    if (lost || results != c->nmodes) {
        fprintf(stderr, "fas_bench: shape %s: results lost between processes\n", label);
        return 1;
    }
    return 0;
}

/* The engine of the run: refused here, before any output, when the library refuses it
 * (FAS_ERR_UNSUPPORTED: e.g. amx on a CPU without AMX; FAS_ERR_VALUE: FAS_GEMM holds an unknown
 * value while --gemm is auto). Also fills the fields of cfg that name it. */
static int resolve_engine(bench_config *cfg)
{
    const fasi_engine *e = NULL;
    fas_status st = fasi_resolve_engine(cfg->gemm, &e);
    if (st != FAS_OK) {
        static const char *const names[] = {"auto", "builtin", "blas", "amx"};
        fprintf(stderr, "fas_bench: --gemm %s: the library refuses the engine: %s: %s\n",
                names[cfg->gemm], fas_status_string(st), fas_last_error());
        return 1;
    }
    cfg->gemm_name = cfg->gemm == FAS_GEMM_AUTO ? fas_gemm_engine() : e->name;
    cfg->blas_below_cpu = fasi_blas_below_cpu();
    return 0;
}

int main(int argc, char **argv)
{
    cli c;
    int rc = parse_cli(argc, argv, &c);
    if (rc == 1) return 0;
    if (rc != 0) return 2;
    if (c.cast) return bench_cast_report(c.cfg.repeat);
    if (resolve_engine(&c.cfg) != 0) return 1;

    env_info env;
    bench_cpu_model(env.cpu, sizeof env.cpu);
    (void)bench_expected_simd(env.simd_why, sizeof env.simd_why);
    env.simd = fas_simd_level();
    env.blas = fas_blas_info();
    env.peak = bench_measure_peak(c.cfg.threads);

    double start = bench_now();
    if (c.style == OUT_TABLE) {
        print_header(stdout, "", &c, &env);
        print_table_head();
    } else {
        print_header(stderr, "# ", &c, &env);
        if (c.style == OUT_CSV) printf("%s\n", csv_columns);
        if (c.style == OUT_JSON) printf("[\n");
    }
    fflush(stdout);

    printer pr;
    memset(&pr, 0, sizeof pr);
    pr.c = &c;
    pr.env = &env;
    pr.rows = c.nshapes * c.nmodes;
    pr.first = true;
    pr.progress_on = isatty(STDERR_FILENO) != 0;
    for (int i = 0; i < c.nshapes; i++) {
        pr.shape = i;
        if (run_case(&c, &c.shapes[i], &pr) != 0) {
            if (c.style == OUT_JSON) printf("\n]\n");
            fflush(stdout);
            fprintf(stderr, "fas_bench: stopped after a failure\n");
            return 1;
        }
    }
    double elapsed = bench_now() - start;
    if (c.style == OUT_TABLE) {
        print_table_footnote(&c);
        print_legend(stdout);
        printf("\ntotal run time %.1f s\n", elapsed);
    } else {
        if (c.style == OUT_JSON) printf("\n]\n");
        if (naive_on_slow_blas(&c.cfg))
            fprintf(stderr,
                    "# blas_below_cpu: the BLAS runs kernels below this CPU's SIMD level; "
                    "columns from BLAS calls (naive%s) are not a fair baseline\n",
                    floor_on_slow_blas(&c.cfg) ? ", and floor as the engine is blas" : "");
        fprintf(stderr, "# total run time %.1f s\n", elapsed);
    }
    return 0;
}
