/* The floor that chooses a SIMD level: runtime CPU detection and the filled kernel tables. */
#ifndef FASI_DISPATCH_H
#define FASI_DISPATCH_H

#include <stdbool.h>

#include "common/isa.h"

/* Whether this build compiled the level and this CPU can run it (cached; thread-safe). Each
 * level is tested on its own: x86-64 levels and aarch64 levels are never compared. */
bool fasi_isa_available(fasi_isa isa);

/* Best available level: AVX-512, else AVX2, else NEON, else portable (cached; thread-safe). */
fasi_isa fasi_cpu_best_isa(void);

/* Table for a level; NULL unless fasi_isa_available(isa). */
const fasi_kernels *fasi_kernels_for(fasi_isa isa);

/* "portable", "avx2", "avx512", "neon" for every level value, whether or not it is available
 * (so that tests can name a level they skip); "unknown" for other values. */
const char *fasi_isa_name(fasi_isa isa);

#endif
