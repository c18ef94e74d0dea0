/* Static task split over threads: task t of ntasks runs on thread t * threads / ntasks, in
 * increasing order. Results never depend on the thread count because tasks are independent. */
#ifndef FASI_PARALLEL_H
#define FASI_PARALLEL_H

#include <stdint.h>

/* requested 0 = all online cores; the result is at least 1 (1 in a build without OpenMP). */
int fasi_resolve_threads(int requested);

typedef void (*fasi_task_fn)(void *ctx, int thread, int64_t task);

/* Run fn(ctx, thread, task) for task = 0 .. ntasks-1 on `threads` threads (thread in
 * 0..threads-1, each thread owning one contiguous range of tasks). */
void fasi_parallel_for(int threads, int64_t ntasks, fasi_task_fn fn, void *ctx);

#endif
