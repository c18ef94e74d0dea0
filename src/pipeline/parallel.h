/* Task scheduling over threads. Tasks are handed out in chunks of `grain` consecutive tasks,
 * dynamically: a thread that finishes its chunk takes the next unclaimed one, so a thread slowed
 * by another process (shared machines) does not hold the others back. Results never depend on
 * the thread count or on which thread runs a task, because tasks are independent and each
 * thread's scratch is only a cache of task-independent data (e.g. one head's K, V panels). */
#ifndef FASI_PARALLEL_H
#define FASI_PARALLEL_H

#include <stdint.h>

/* requested 0 = what OpenMP would use for a parallel region here (omp_get_max_threads(): honours
 * OMP_NUM_THREADS and the affinity mask the process was started with); >= 1 that exact count.
 * The result is at least 1, and 1 in a build without OpenMP. */
int fasi_resolve_threads(int requested);

typedef void (*fasi_task_fn)(void *ctx, int thread, int64_t task);

/* Run fn(ctx, thread, task) for task = 0 .. ntasks-1 on `threads` threads (thread in
 * 0..threads-1). Each chunk [c * grain, (c + 1) * grain) runs on one thread in increasing task
 * order; grain >= 1. */
void fasi_parallel_for(int threads, int64_t ntasks, int64_t grain, fasi_task_fn fn, void *ctx);

/* Test hook: how many threads the last fasi_parallel_for called from this thread ran with (the
 * team size seen inside the parallel region; 1 for a serial run, 0 before any call). */
int fasi_parallel_last_team(void);

/* A grain for fasi_parallel_for: as large as max_grain (>= 1; e.g. one head's tasks, which
 * share unpacked panels) allows, but small enough for 16 chunks per thread, so that a few large
 * heads still spread over every thread and the last chunks even out; at least 1. */
int64_t fasi_parallel_grain(int64_t ntasks, int threads, int64_t max_grain);

#endif
