/* fas_bench internals shared by its translation units. The bench sees the library only through
 * its public header; its own baselines call cblas directly. */
#ifndef FAS_BENCH_H
#define FAS_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <fused_attention.h>

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
    int64_t mem_growth_kib; /* -1 when unavailable */
    bench_mem_method mem_method;
} bench_result;

/* ---- bench_sys.c ---------------------------------------------------------------------- */

/* fas_bench --cast: fas_format_cast throughput table; 0 on success. */
int bench_cast_report(int repeat);

double bench_now(void); /* CLOCK_MONOTONIC, seconds */
int bench_online_cores(void);
void bench_blas_single_thread(void);
/* Copies of the /proc/cpuinfo "model name" and the SIMD path the library is expected to pick. */
void bench_cpu_model(char *buf, size_t size);
const char *bench_expected_simd(char *why, size_t why_size);
void bench_blas_description(char *buf, size_t size);

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

/* Runs every mode in modes[0 .. nmodes-1] for one shape, filling results[]. Returns 0, or
 * prints a message to stderr and returns non-zero (library call failed, out of memory). */
int bench_run_case(const bench_config *cfg, const bench_shape *shape, const bench_mode *modes,
                   int nmodes, bench_result *results);

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

/* fp32 ND buffers and per-thread scratch for the floor and the naive pipeline of one mode;
 * the floor's inputs are filled here, outside any timed region. NULL when out of memory. */
bench_baseline *bench_baseline_create(const bench_config *cfg, const bench_shape *shape,
                                      bench_mode mode, double keep_prob, double scale,
                                      const bench_operands *ops);
void bench_baseline_destroy(bench_baseline *bl);
void bench_floor_run(bench_baseline *bl);
void bench_naive_run(bench_baseline *bl);

#endif
