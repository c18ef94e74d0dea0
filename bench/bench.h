/* fas_bench internals shared by its translation units. The bench calls the library through its
 * public header; its naive baseline calls cblas directly; the GEMM floor (bench_floor.c) and the
 * write floor (bench_write.c) run on the library's internal layers (src/engine, src/layout). */
#ifndef FAS_BENCH_H
#define FAS_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <fused_attention.h>

#include "common/profile.h"

typedef struct bench_shape {
    int64_t b, n, sq, sk, d, dv;
} bench_shape;

typedef enum bench_mode {
    BENCH_FWD = 0,       /* fused_attention_score (via _fwd_ex without probs / mask outputs) */
    BENCH_FWD_PROBS = 1, /* fused_attention_score_fwd_ex with softmax_output and drop_mask */
    BENCH_GRAD = 2,      /* fused_attention_score_grad_ex, 2-D gradient outputs */
    BENCH_MODE_COUNT = 3
} bench_mode;

/* How the peak-memory column was obtained. */
typedef enum bench_mem_method {
    BENCH_MEM_NONE = 0,       /* /proc/self/status unreadable: no value */
    BENCH_MEM_RESET = 1,      /* peak reset through /proc/self/clear_refs: exact growth */
    BENCH_MEM_LOWER_BOUND = 2 /* peak could not be reset: growth above the earlier peak only */
} bench_mem_method;

typedef struct bench_config {
    int threads_requested; /* --threads as given (0 = all cores), passed to the library */
    int threads;           /* resolved count used by the bench's own baselines */
    int repeat;
    int warmup;
    bool keep_prob_given;
    double keep_prob;
    fas_format format;
    fas_precision precision; /* --precision fp32 | npu */
    fas_gemm gemm;           /* --gemm: fas_options.gemm of the fused calls (AUTO: FAS_GEMM) */
    const char *gemm_name;   /* the engine those calls run: "builtin", "blas", "amx" */
    bool blas_below_cpu;     /* the BLAS runs kernels below this CPU's SIMD level */
    bool profile;            /* --profile: split the fused calls' time by stage */
} bench_config;

/* One row of output: one case in one mode. Times in seconds. */
typedef struct bench_result {
    bench_shape shape;
    bench_mode mode;
    double keep_prob;
    double gflop; /* work of the operator, 1e9 flop */
    double fused_median, fused_min;
    double floor_median, floor_min;
    double naive_median, naive_min;
    double write_median, write_min; /* the write floor (fwd_probs); 0 for other modes */
    double peak_gflops; /* median of the FMA peak probes interleaved with the repeats; 0: none */
    /* --profile: each stage's share (common/profile.h order: matmul, softmax and dropout,
     * packing and conversion, stores) of the timed fused calls' thread time, threads x wall;
     * what is left is scheduling, waiting and untimed glue. All 0 without --profile. */
    double prof_share[FASI_PROF_COUNT];
    int64_t mem_growth_kib; /* -1 when unavailable */
    bench_mem_method mem_method;
} bench_result;

/* What a case is doing, for the progress line (fas_bench.c). */
typedef enum bench_stage {
    BENCH_STAGE_FUSED = 0,
    BENCH_STAGE_FLOOR = 1,
    BENCH_STAGE_NAIVE = 2,
    BENCH_STAGE_WRITE = 3
} bench_stage;

/* Where a case reports: progress before each stage of each run, and each mode's result as soon
 * as it is complete. In a forked case (fas_bench.c) both go through the pipe to the parent,
 * which alone prints. */
typedef struct bench_sink {
    /* mode_index into the case's modes; run 1..runs; warmup: an untimed run */
    void (*progress)(void *ctx, int mode_index, bench_stage stage, bool warmup, int run, int runs);
    void (*result)(void *ctx, int mode_index, const bench_result *r);
    void *ctx;
} bench_sink;

/* ---- bench_sys.c ---------------------------------------------------------------------- */

/* fas_bench --cast: fas_format_cast throughput table; 0 on success. */
int bench_cast_report(int repeat);

double bench_now(void); /* CLOCK_MONOTONIC, seconds */
int bench_online_cores(void);
void bench_blas_single_thread(void);
/* Copies of the /proc/cpuinfo "model name" and the SIMD path the library is expected to pick. */
void bench_cpu_model(char *buf, size_t size);
const char *bench_expected_simd(char *why, size_t why_size);
/* Before an error message on stderr: erases the progress line when stderr is a terminal. */
void bench_stderr_clear_line(void);

/* Peak-memory probe around one call: begin() before, end() after. */
typedef struct bench_mem_probe {
    bench_mem_method method;
    int64_t base_kib;
} bench_mem_probe;
void bench_mem_begin(bench_mem_probe *probe);
int64_t bench_mem_end(const bench_mem_probe *probe);

/* Aligned, zero-initialised allocation; NULL on failure or size overflow. */
void *bench_alloc(size_t count, size_t size);
void bench_free(void *p);

/* ---- bench_run.c ---------------------------------------------------------------------- */

/* Runs every mode in modes[0 .. nmodes-1] for one shape, handing each result to sink->result as
 * soon as its mode ends. Returns 0, or prints a message to stderr and returns non-zero (library
 * call failed, engine refused, out of memory). */
int bench_run_case(const bench_config *cfg, const bench_shape *shape, const bench_mode *modes,
                   int nmodes, const bench_sink *sink);

const char *bench_mode_name(bench_mode mode);
double bench_default_keep_prob(const bench_config *cfg, bench_mode mode);

/* ---- bench_write.c ------------------------------------------------------------------- */

/* The write floor of fwd_probs: probs and dmask written by the library's block storers in the
 * pipeline's blocking on `threads` threads. create returns NULL when out of memory. */
void *bench_write_create(const fas_tensor *probs, const fas_tensor *dmask, int threads);
void bench_write_run(void *job, int threads);
void bench_write_destroy(void *job);

/* ---- bench_baseline.c ----------------------------------------------------------------- */

/* The operands of one case as the fused call sees them (fp16 / uint8, in cfg->format). The
 * baselines read the inputs and write the outputs of the same mode, so no extra output memory
 * is needed; the fused results are overwritten, which is harmless in a benchmark. */
typedef struct bench_operands {
    fas_tensor q, k, v, mask;     /* inputs */
    fas_tensor out, probs, dmask; /* forward outputs (probs, dmask also the backward inputs) */
    fas_tensor dout;              /* backward input */
    fas_tensor dq, dk, dv;        /* backward outputs */
} bench_operands;

typedef struct bench_baseline bench_baseline;

/* fp32 ND buffers and per-thread scratch for the naive pipeline of one mode; the fp32 copies
 * of the inputs (also the GEMM floor's) are filled here, outside any timed region. NULL when out
 * of memory. */
bench_baseline *bench_baseline_create(const bench_config *cfg, const bench_shape *shape,
                                      bench_mode mode, double keep_prob, double scale,
                                      const bench_operands *ops);
void bench_baseline_destroy(bench_baseline *bl);
void bench_naive_run(bench_baseline *bl);
/* The baseline's fp32 ND copies of the inputs, [heads, S, E] (dout: NULL unless grad). */
void bench_baseline_f32(const bench_baseline *bl, const float **q, const float **k, const float **v,
                        const float **dout);

/* ---- bench_floor.c -------------------------------------------------------------------- */

/* The GEMM floor: the products of the pipeline of `mode` on `engine` (engine/engine.h), same
 * shapes, blocking, tasks and threads, B operands packed once at creation (nothing packed while
 * timed). q, k, v, dout are fp32 [heads, S, E] (bench_baseline_f32) and must outlive the floor.
 * NULL when out of memory. */
struct fasi_engine;
typedef struct bench_floor bench_floor;
bench_floor *bench_floor_create(const bench_config *cfg, const bench_shape *shape, bench_mode mode,
                                double scale, const struct fasi_engine *engine, const float *q,
                                const float *k, const float *v, const float *dout);
void bench_floor_run(bench_floor *fl);
void bench_floor_destroy(bench_floor *fl);

/* Test hook (bench/test_bench_floor.c): the blocking and thread `thread`'s scratch after a run.
 * fwd: s = the last tile's scaled scores (rows x tile, row stride tile), c = the context rows
 * of its block; grad: s = the last block's dP (row stride Sk), p = the Pd every block reads,
 * dq = Sq x D (each block's rows), dk, dv = the head's sums over blocks. */
typedef struct bench_floor_view {
    int64_t rows, tile, blocks;
    int threads;
    const float *s, *p, *c, *dq, *dk, *dv;
} bench_floor_view;
void bench_floor_view_of(const bench_floor *fl, int thread, bench_floor_view *v);

#endif
