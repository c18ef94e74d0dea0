/* Shared helpers for the cmocka tests: a seeded RNG, fp16 buffers, tensor construction and an
 * allclose check that reports the worst element. */
#ifndef FAS_TEST_H
#define FAS_TEST_H

#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fused_attention.h"

/* ---- a float's bit pattern and back */
static inline uint32_t fast_f32_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static inline float fast_bits_f32(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* ---- deterministic random numbers (splitmix64); tests print the seed they start from */
typedef struct fast_rng {
    uint64_t state;
} fast_rng;

void fast_rng_seed(fast_rng *r, uint64_t seed);
uint64_t fast_rng_u64(fast_rng *r);
double fast_rng_uniform(fast_rng *r, double lo, double hi); /* [lo, hi) */
int64_t fast_rng_int(fast_rng *r, int64_t lo, int64_t hi);  /* [lo, hi] inclusive */

/* Seed for a test run: $FAS_TEST_SEED if set, else `fallback`; printed once to stdout. */
uint64_t fast_test_seed(const char *test_name, uint64_t fallback);

/* ---- tensors owned by the test (data from calloc, freed by fast_tensor_free) */
fas_tensor fast_tensor_alloc(fas_dtype dtype, fas_format format, int ndim, const int64_t *dims);
fas_tensor fast_tensor_4d(fas_dtype dtype, fas_format format, int64_t d0, int64_t d1, int64_t d2,
                          int64_t d3);
fas_tensor fast_tensor_2d(fas_dtype dtype, fas_format format, int64_t d0, int64_t d1);
void fast_tensor_free(fas_tensor *t);
int64_t fast_tensor_numel(const fas_tensor *t); /* logical elements */

/* Fill a float tensor (any dtype/format) with uniform values in [lo, hi), via an ND fp32 buffer
 * and fas_format_cast. */
void fast_fill_uniform(fas_tensor *t, fast_rng *r, double lo, double hi);
/* Logical (ND, row-major) fp32 copy of a float tensor; caller frees. */
float *fast_to_f32(const fas_tensor *t);
/* Logical ND byte copy of a UINT8 tensor; caller frees. */
uint8_t *fast_to_u8(const fas_tensor *t);
/* Set a float tensor from a logical fp32 array. */
void fast_from_f32(fas_tensor *t, const float *values);

/* ---- raw elements: bytes per element (FLOAT 4, UINT8 1, FLOAT16/BF16 2) and the bit pattern
 * of element i of a buffer of that dtype, read or written */
size_t fast_elem_size(fas_dtype dt);
uint32_t fast_get_bits(const void *p, fas_dtype dt, int64_t i);
void fast_put_bits(void *p, fas_dtype dt, int64_t i, uint32_t v);

/* ---- the test's own model of the layouts (docs/semantics.md §7), independent of src/layout:
 * a descriptor as batch matrices of m x n (rank rules: [n] is [n, 1], a scalar [1, 1]) */
typedef struct fast_geom {
    int64_t batch, m, n, m1, n1; /* m1, n1: fractal rows and columns, ceil(m/16), ceil(n/16) */
} fast_geom;

fast_geom fast_geom_of(int ndim, const int64_t *dims);
/* element (beta, m, n): beta*(N1*M1*256) + ((n/16)*M1 + m/16)*256 + (m%16)*16 + n%16 for NZ,
 * row-major for ND */
int64_t fast_storage_index(const fast_geom *g, bool nz, int64_t beta, int64_t m, int64_t n);
int64_t fast_storage_elems(const fast_geom *g, bool nz); /* NZ padding included */

/* ---- comparisons */
typedef struct fast_close_stats {
    double max_abs;      /* max |got - ref| */
    double max_rel;      /* max |got - ref| / |ref| over |ref| > 0 */
    double worst_excess; /* max (|got-ref| - tol) / tol; <= 0 means every element passed */
    int64_t worst_index;
    int64_t failures;
} fast_close_stats;

/* Accuracy contract of docs/semantics.md §2: |got - ref| <= atol + rtol*|ref| with
 * atol = atol_frac * max|ref|. NaN in both at the same place counts as equal. Returns the
 * statistics; on failure prints `what`, the worst index and both values. */
fast_close_stats fast_check_close(const char *what, const float *got, const double *ref, int64_t n,
                                  double rtol, double atol_frac);

#define FAST_RTOL (1.0 / 512.0)
#define FAST_ATOL_FRAC (1.0 / 4096.0)

/* cmocka assertion wrapper: fails the test when any element misses the contract. */
#define fast_assert_close(what, got, ref, n)                                                       \
    do {                                                                                           \
        fast_close_stats s_ =                                                                      \
            fast_check_close((what), (got), (ref), (n), FAST_RTOL, FAST_ATOL_FRAC);                \
        assert_int_equal(s_.failures, 0);                                                          \
    } while (0)

/* Fill `bytes` bytes at p with a recognisable canary, and check it is intact. */
void fast_canary_fill(void *p, size_t bytes);
int fast_canary_intact(const void *p, size_t bytes);

#endif
