/* The write floor of fas_bench: the time the library's own block storers take to write the
 * outputs a mode must write besides its GEMMs - for fwd_probs, P (rounded into the tensor's
 * dtype) and the drop mask - in the pipeline's blocking (one task per head and block of 128
 * query rows, each storing a 128 x Sk fp32 panel and its keep bytes) on the same threads with
 * the same scheduler. It calls the library's internal layer (src/layout, src/pipeline), so
 * fas_bench links the static library. */
#include <stdlib.h>
#include <string.h>

#include "api/dispatch.h"
#include "bench.h"
#include "layout/layout.h"
#include "pipeline/parallel.h"

enum { ROWS = 128 };

typedef struct write_job {
    const fasi_kernels *k;
    fasi_mat probs, dmask;
    int64_t heads, blocks, sq, sk;
    float *panel;  /* threads x ROWS x sk */
    uint8_t *keep; /* threads x ROWS x sk */
} write_job;

static void write_task(void *ctx, int thread, int64_t task)
{
    const write_job *j = ctx;
    const int64_t head = task / j->blocks, i0 = task % j->blocks * ROWS;
    const int64_t nr = j->sq - i0 < ROWS ? j->sq - i0 : ROWS;
    const float *panel = j->panel + (size_t)thread * ROWS * (size_t)j->sk;
    const uint8_t *keep = j->keep + (size_t)thread * ROWS * (size_t)j->sk;
    fasi_mat_store_f32(j->k, &j->probs, head, i0, nr, 0, j->sk, panel, j->sk);
    fasi_mat_store_u8(&j->dmask, head, i0, nr, 0, j->sk, keep, j->sk);
}

/* Returns an opaque job for bench_write_run, or NULL (out of memory). */
void *bench_write_create(const fas_tensor *probs, const fas_tensor *dmask, int threads)
{
    write_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->k = fasi_kernels_for(fasi_cpu_best_isa());
    fasi_mat_init(&j->probs, probs);
    fasi_mat_init(&j->dmask, dmask);
    j->heads = probs->dims[0] * probs->dims[1];
    j->sq = probs->dims[2];
    j->sk = probs->dims[3];
    j->blocks = (j->sq + ROWS - 1) / ROWS;
    size_t n = (size_t)threads * ROWS * (size_t)j->sk;
    j->panel = bench_alloc(n, sizeof *j->panel);
    j->keep = bench_alloc(n, 1);
    if (!j->panel || !j->keep) {
        bench_write_destroy(j);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        j->panel[i] = 1.0f / (float)j->sk; /* a probability, an ordinary fp16 value */
        j->keep[i] = (uint8_t)(i % 10 != 0);
    }
    return j;
}

void bench_write_run(void *job, int threads)
{
    write_job *j = job;
    int64_t ntasks = j->heads * j->blocks;
    fasi_parallel_for(threads, ntasks, fasi_parallel_grain(ntasks, threads, j->blocks), write_task,
                      j);
}

void bench_write_destroy(void *job)
{
    write_job *j = job;
    if (!j) return;
    bench_free(j->panel);
    bench_free(j->keep);
    free(j);
}
