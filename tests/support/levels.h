/* SIMD levels in the tests: which architecture each level belongs to, the level this target
 * should pick, and visible skips that say why a level is not tested here. */
#ifndef FAST_LEVELS_H
#define FAST_LEVELS_H

#include <stdbool.h>

#include "fused_attention.h"
#include "common/isa.h"

/* The architecture this test binary was compiled for: "x86-64", "aarch64" or "other". */
const char *fast_build_arch(void);

/* Why a level cannot be tested in this process (a level of another architecture, a level this
 * build did not compile, or one the CPU lacks), or NULL if it can. */
const char *fast_level_absent_reason(fasi_isa isa);

/* The level's kernel table, or prints "  <level>: not tested: <reason>" and skips the cmocka
 * test (never a silent pass). */
const fasi_kernels *fast_level_or_skip(fasi_isa isa);

/* The level of a forced fas_impl (FAS_IMPL_PORTABLE, _AVX2, _AVX512, _NEON); -1 otherwise. */
int fast_isa_of_impl(fas_impl impl);

/* The level fas_simd_level() must name on this machine, found without the library's own CPU
 * detection (compiler builtins on x86-64; NEON is baseline on aarch64); *why says how. */
const char *fast_expected_simd_level(const char **why);

#endif
