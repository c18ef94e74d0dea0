/* The machine's fp32 FMA peak: each SIMD level's loop (peak_avx2.c, peak_avx512.c) on every
 * thread at once, timed like the GEMM floor, best of five short runs. Threads are plain POSIX
 * threads: the parent process of fas_bench must not start OpenMP before it forks. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <string.h>

#include "bench.h"
#include "bench_peak.h"

static volatile float sink;

void bench_peak_sink(float x) { sink = x; }

typedef double (*peak_loop)(long iters);

typedef struct peak_job {
    peak_loop loop;
    long iters;
    pthread_barrier_t *start;
    double flops;
} peak_job;

static void *peak_thread(void *arg)
{
    peak_job *j = arg;
    pthread_barrier_wait(j->start);
    j->flops = j->loop(j->iters);
    return NULL;
}

/* GFLOP/s of `loop` on `threads` threads together: best of `runs` runs of about `seconds`. */
static double measure_runs(peak_loop loop, int threads, int runs, double seconds)
{
    enum { MAX_THREADS = 256 };
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    /* size a run from a short single-thread probe */
    long iters = 1 << 14;
    double t0 = bench_now();
    loop(iters);
    double probe = bench_now() - t0;
    if (probe > 0) iters = (long)((double)iters * seconds / probe) + 1;
    double best = 0;
    for (int run = 0; run < runs; run++) {
        pthread_t tid[MAX_THREADS];
        peak_job jobs[MAX_THREADS];
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
        int started = 0;
        for (int t = 0; t < threads; t++) {
            jobs[t] = (peak_job){loop, iters, &start, 0};
            if (pthread_create(&tid[t], NULL, peak_thread, &jobs[t]) != 0) break;
            started++;
        }
        if (started < threads) {
            /* cannot start the team: release the ones waiting and give up */
            pthread_barrier_destroy(&start);
            return 0;
        }
        pthread_barrier_wait(&start);
        double begin = bench_now();
        double flops = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            flops += jobs[t].flops;
        }
        double gflops = flops / (bench_now() - begin) * 1e-9;
        if (gflops > best) best = gflops;
        pthread_barrier_destroy(&start);
    }
    return best;
}

static double measure(peak_loop loop, int threads) { return measure_runs(loop, threads, 5, 0.04); }

/* The best level's loop, or NULL. */
static peak_loop best_loop(void)
{
#if FAS_BENCH_LIB_X86_SIMD
    const char *level = fas_simd_level();
    if (strcmp(level, "avx512") == 0) return bench_peak_loop_avx512;
    if (strcmp(level, "avx2") == 0) return bench_peak_loop_avx2;
#endif
    return NULL;
}

double bench_peak_probe(int threads)
{
    peak_loop loop = best_loop();
    return loop ? measure_runs(loop, threads, 1, 0.02) : 0.0;
}

bench_peak bench_measure_peak(int threads)
{
    bench_peak p;
    memset(&p, 0, sizeof p);
#if FAS_BENCH_LIB_X86_SIMD
    const char *level = fas_simd_level(); /* the library's own CPU detection */
    if (strcmp(level, "avx2") == 0 || strcmp(level, "avx512") == 0)
        p.gflops_avx2 = measure(bench_peak_loop_avx2, threads);
    if (strcmp(level, "avx512") == 0) p.gflops_avx512 = measure(bench_peak_loop_avx512, threads);
#else
    (void)threads;
    (void)measure;
#endif
    if (p.gflops_avx2 > 0) {
        p.level = "avx2";
        p.gflops = p.gflops_avx2;
    }
    if (p.gflops_avx512 > p.gflops) {
        p.level = "avx512";
        p.gflops = p.gflops_avx512;
    }
    return p;
}
