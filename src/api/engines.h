/* The matrix engine of a call (engine/engine.h): which engines this process can run, the choice
 * of FAS_GEMM_AUTO (the FAS_GEMM environment variable, else the rule of api/engines.c), and the
 * BLAS's description. */
#ifndef FASI_ENGINES_H
#define FASI_ENGINES_H

#include <stdbool.h>

#include "engine/engine.h"
#include "fused_attention.h"

/* The engine for a call's options->gemm. FAS_ERR_VALUE for a value outside fas_gemm, and for
 * AUTO while FAS_GEMM holds an unknown value; FAS_ERR_UNSUPPORTED for an engine this build or
 * CPU cannot run. The sentence names the option or the variable. */
fas_status fasi_resolve_engine(fas_gemm requested, const fasi_engine **out);

/* Whether this build and CPU (and OS, for AMX's tile state) can run engine g. */
bool fasi_engine_available(fas_gemm g);

/* Whether the BLAS chose kernels below this CPU's SIMD level (OpenBLAS's Prescott kernels on an
 * AVX-512 Xeon, say); then AUTO never takes it and fas_blas_info() says how to fix it. */
bool fasi_blas_below_cpu(void);

/* The fas_gemm value of an engine's name ("auto", "builtin", "blas", "amx", any case), as FAS_GEMM
 * and the tools spell it; false for anything else. */
bool fasi_gemm_from_name(const char *name, fas_gemm *out);

/* Test hook: FAS_GEMM is read again at the next AUTO call (after a test's setenv). */
void fasi_engines_reread_env(void);

#endif
