/* The floor that chooses a SIMD level: runtime CPU detection and the filled kernel tables. */
#ifndef FASI_DISPATCH_H
#define FASI_DISPATCH_H

#include "common/isa.h"

/* Best level this CPU and build support (cached; thread-safe). */
fasi_isa fasi_cpu_best_isa(void);

/* Table for a level; NULL if this build or CPU cannot run it. */
const fasi_kernels *fasi_kernels_for(fasi_isa isa);

#endif
