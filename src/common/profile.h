/* Where a call's time goes, by stage (fas_bench --profile; docs/design.md §4). Off unless a
 * program turns it on (fasi_profile_enable: the bench only); then each instrumented region adds
 * its wall time, on the thread that ran it, to its stage's counter, so the stages sum to the
 * threads' busy time. Off, a region costs one relaxed atomic load. */
#ifndef FASI_PROFILE_H
#define FASI_PROFILE_H

#include <stdbool.h>
#include <stdint.h>

typedef enum fasi_prof_stage {
    FASI_PROF_MATMUL,  /* the matrix engine's products (the mask added in the first) */
    FASI_PROF_SOFTMAX, /* row passes: max, exp and sum, normalisation, dropout, keep bits */
    FASI_PROF_PACK,    /* loading and converting inputs, packing operands for the engine */
    FASI_PROF_STORE,   /* rounding and storing outputs (context, P, drop mask, gradients) */
    FASI_PROF_COUNT
} fasi_prof_stage;

void fasi_profile_enable(bool on);
void fasi_profile_reset(void);
/* Seconds per stage since the last reset, summed over threads. */
void fasi_profile_read(double seconds[FASI_PROF_COUNT]);
const char *fasi_profile_stage_name(fasi_prof_stage s);

/* A region's start: a timestamp in ns, or 0 when profiling is off. */
uint64_t fasi_prof_start(void);
/* Adds the time since t0 to stage s (nothing when t0 is 0). */
void fasi_prof_stop(fasi_prof_stage s, uint64_t t0);

/* Runs `stmt` as one region of stage s. */
#define FASI_PROF(s, stmt)                                                                         \
    do {                                                                                           \
        const uint64_t fasi_prof_t0_ = fasi_prof_start();                                          \
        stmt;                                                                                      \
        fasi_prof_stop((s), fasi_prof_t0_);                                                        \
    } while (0)

#endif
