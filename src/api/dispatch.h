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

/* Whether the CPU and OS can run the AMX engine's tiles (cached; thread-safe; changes nothing):
 * the CPU has AMX-TILE and AMX-BF16 (CPUID.(EAX=7,ECX=0):EDX bits 24 and 22) and the AVX-512
 * level, the OS can grant the tile data (Linux: ARCH_GET_XCOMP_SUPP) and enables the tile state
 * in XCR0 (bits 17 and 18), and a grant asked for before was not refused. False on other systems
 * and architectures. Says nothing about whether the build has the AMX code (FAS_HAVE_AMX). */
bool fasi_amx_usable(void);

/* Before the first use of the tiles: asks the OS, once per process, for the tile data
 * (arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA); Linux keeps the grant for the process's life).
 * True when the tiles can be used. */
bool fasi_amx_acquire(void);

/* Why fasi_amx_usable() (or fasi_amx_acquire()) is false, as the end of a sentence ("this CPU
 * has no AMX-BF16"); NULL when it is true. */
const char *fasi_amx_unusable_reason(void);

#endif
