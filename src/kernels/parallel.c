#include "kernels/parallel.h"

#if FAS_HAVE_OPENMP
#include <omp.h>
#endif

int fasi_resolve_threads(int requested)
{
#if FAS_HAVE_OPENMP
    if (requested <= 0) requested = omp_get_num_procs();
    return requested < 1 ? 1 : requested;
#else
    (void)requested;
    return 1;
#endif
}

void fasi_parallel_for(int threads, int64_t ntasks, fasi_task_fn fn, void *ctx)
{
    if (threads > ntasks) threads = (int)(ntasks > 0 ? ntasks : 1);
#if FAS_HAVE_OPENMP
    if (threads > 1) {
#pragma omp parallel num_threads(threads)
        {
            int t = omp_get_thread_num();
            int nt = omp_get_num_threads();
            int64_t lo = ntasks * t / nt, hi = ntasks * (t + 1) / nt;
            for (int64_t i = lo; i < hi; i++) fn(ctx, t, i);
        }
        return;
    }
#endif
    for (int64_t i = 0; i < ntasks; i++) fn(ctx, 0, i);
}
