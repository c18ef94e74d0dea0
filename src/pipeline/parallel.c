#include "pipeline/parallel.h"

#if FAS_HAVE_OPENMP
#include <omp.h>
#endif

int fasi_resolve_threads(int requested)
{
#if FAS_HAVE_OPENMP
    if (requested <= 0) requested = omp_get_max_threads();
    return requested < 1 ? 1 : requested;
#else
    (void)requested;
    return 1;
#endif
}

static _Thread_local int last_team;

int fasi_parallel_last_team(void) { return last_team; }

void fasi_parallel_for(int threads, int64_t ntasks, int64_t grain, fasi_task_fn fn, void *ctx)
{
    if (grain < 1) grain = 1;
    const int64_t chunks = ntasks / grain + (ntasks % grain != 0);
    if (threads > chunks) threads = (int)(chunks > 0 ? chunks : 1);
#if FAS_HAVE_OPENMP
    if (threads > 1) {
        int team = 0;
#pragma omp parallel num_threads(threads)
        {
            int t = omp_get_thread_num();
            if (t == 0) team = omp_get_num_threads();
#pragma omp for schedule(dynamic, 1)
            for (int64_t c = 0; c < chunks; c++) {
                int64_t hi = (c + 1) * grain < ntasks ? (c + 1) * grain : ntasks;
                for (int64_t i = c * grain; i < hi; i++) fn(ctx, t, i);
            }
        }
        last_team = team;
        return;
    }
#endif
    last_team = 1;
    for (int64_t i = 0; i < ntasks; i++) fn(ctx, 0, i);
}

int64_t fasi_parallel_grain(int64_t ntasks, int threads, int64_t max_grain)
{
    int64_t grain = ntasks / ((int64_t)(threads > 1 ? threads : 1) * 16);
    if (grain > max_grain) grain = max_grain;
    return grain < 1 ? 1 : grain;
}
