/* Stage counters of common/profile.h. */
#define _POSIX_C_SOURCE 200809L

#include "common/profile.h"

#include <stdatomic.h>
#include <time.h>

static atomic_bool enabled;
static _Atomic uint64_t counters[FASI_PROF_COUNT];

void fasi_profile_enable(bool on) { atomic_store_explicit(&enabled, on, memory_order_relaxed); }

void fasi_profile_reset(void)
{
    for (int s = 0; s < FASI_PROF_COUNT; s++)
        atomic_store_explicit(&counters[s], 0, memory_order_relaxed);
}

void fasi_profile_read(double seconds[FASI_PROF_COUNT])
{
    for (int s = 0; s < FASI_PROF_COUNT; s++)
        seconds[s] = (double)atomic_load_explicit(&counters[s], memory_order_relaxed) * 1e-9;
}

const char *fasi_profile_stage_name(fasi_prof_stage s)
{
    static const char *const names[FASI_PROF_COUNT] = {"matmul", "softmax+dropout", "pack+convert",
                                                       "stores"};
    return (int)s >= 0 && s < FASI_PROF_COUNT ? names[s] : "unknown";
}

uint64_t fasi_prof_start(void)
{
    if (!atomic_load_explicit(&enabled, memory_order_relaxed)) return 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + 1; /* never 0 */
}

void fasi_prof_stop(fasi_prof_stage s, uint64_t t0)
{
    if (!t0) return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + 1;
    atomic_fetch_add_explicit(&counters[s], now - t0, memory_order_relaxed);
}
