/* The machine's fp32 FMA peak, measured in-process by fas_bench (bench_peak.c). */
#ifndef BENCH_PEAK_H
#define BENCH_PEAK_H

/* Per-level loops: `iters` rounds of 12 independent FMA chains; return the flops executed. */
double bench_peak_loop_avx2(long iters);
double bench_peak_loop_avx512(long iters);

/* Keeps a loop's result alive so that the compiler cannot drop the loop. */
void bench_peak_sink(float x);

typedef struct bench_peak {
    const char *level; /* "avx512", "avx2", or NULL when no level could be measured */
    double gflops;     /* best of the levels, all threads together */
    double gflops_avx2, gflops_avx512; /* 0 when the CPU or build lacks the level */
} bench_peak;

/* One short run (about 20 ms) of the best level's loop on `threads` threads: the peak at this
 * moment, for cases that take their share of it beside their own timings (a shared machine's
 * speed drifts). 0 when no level can be measured. */
double bench_peak_probe(int threads);

/* Measures every level this CPU and build run, on `threads` threads at once (best of a few
 * short runs); never starts OpenMP (fas_bench forks after this). */
bench_peak bench_measure_peak(int threads);

#endif
