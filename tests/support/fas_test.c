#include "fas_test.h"

#include <math.h>
#include <string.h>

void fast_rng_seed(fast_rng *r, uint64_t seed) { r->state = seed; }

uint64_t fast_rng_u64(fast_rng *r)
{
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double fast_rng_uniform(fast_rng *r, double lo, double hi)
{
    double u = (double)(fast_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return lo + (hi - lo) * u;
}

int64_t fast_rng_int(fast_rng *r, int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t)(hi - lo) + 1u;
    return lo + (int64_t)(fast_rng_u64(r) % span);
}

uint64_t fast_test_seed(const char *test_name, uint64_t fallback)
{
    const char *env = getenv("FAS_TEST_SEED");
    uint64_t seed = fallback;
    if (env && *env) seed = strtoull(env, NULL, 0);
    printf("[ SEED     ] %s: FAS_TEST_SEED=%llu\n", test_name, (unsigned long long)seed);
    fflush(stdout);
    return seed;
}

fas_tensor fast_tensor_alloc(fas_dtype dtype, fas_format format, int ndim, const int64_t *dims)
{
    fas_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dtype;
    t.format = format;
    t.ndim = ndim;
    for (int i = 0; i < ndim; i++) t.dims[i] = dims[i];
    size_t bytes = fas_tensor_bytes(&t);
    assert_true(bytes > 0);
    t.data = calloc(1, bytes);
    assert_non_null(t.data);
    return t;
}

fas_tensor fast_tensor_4d(fas_dtype dtype, fas_format format, int64_t d0, int64_t d1, int64_t d2,
                          int64_t d3)
{
    int64_t dims[4] = {d0, d1, d2, d3};
    return fast_tensor_alloc(dtype, format, 4, dims);
}

fas_tensor fast_tensor_2d(fas_dtype dtype, fas_format format, int64_t d0, int64_t d1)
{
    int64_t dims[2] = {d0, d1};
    return fast_tensor_alloc(dtype, format, 2, dims);
}

void fast_tensor_free(fas_tensor *t)
{
    free(t->data);
    t->data = NULL;
}

int64_t fast_tensor_numel(const fas_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->dims[i];
    return n;
}

static fas_tensor nd_twin(const fas_tensor *t, fas_dtype dtype, void *data)
{
    fas_tensor nd = *t;
    nd.dtype = dtype;
    nd.format = FAS_FORMAT_ND;
    nd.data = data;
    return nd;
}

void fast_from_f32(fas_tensor *t, const float *values)
{
    fas_tensor src = nd_twin(t, FAS_DTYPE_FLOAT, (void *)values);
    assert_int_equal(fas_format_cast(&src, t), FAS_OK);
}

void fast_fill_uniform(fas_tensor *t, fast_rng *r, double lo, double hi)
{
    int64_t n = fast_tensor_numel(t);
    float *buf = malloc((size_t)n * sizeof *buf);
    assert_non_null(buf);
    for (int64_t i = 0; i < n; i++) buf[i] = (float)fast_rng_uniform(r, lo, hi);
    fast_from_f32(t, buf);
    free(buf);
}

float *fast_to_f32(const fas_tensor *t)
{
    int64_t n = fast_tensor_numel(t);
    float *buf = malloc((size_t)n * sizeof *buf);
    assert_non_null(buf);
    fas_tensor dst = nd_twin(t, FAS_DTYPE_FLOAT, buf);
    assert_int_equal(fas_format_cast(t, &dst), FAS_OK);
    return buf;
}

uint8_t *fast_to_u8(const fas_tensor *t)
{
    int64_t n = fast_tensor_numel(t);
    uint8_t *buf = malloc((size_t)n);
    assert_non_null(buf);
    fas_tensor dst = nd_twin(t, FAS_DTYPE_UINT8, buf);
    assert_int_equal(fas_format_cast(t, &dst), FAS_OK);
    return buf;
}

fast_geom fast_geom_of(int ndim, const int64_t *dims)
{
    fast_geom g = {1, 1, 1, 0, 0};
    if (ndim == 1) {
        g.m = dims[0];
    } else if (ndim >= 2) {
        for (int i = 0; i < ndim - 2; i++) g.batch *= dims[i];
        g.m = dims[ndim - 2];
        g.n = dims[ndim - 1];
    }
    g.m1 = (g.m + 15) / 16;
    g.n1 = (g.n + 15) / 16;
    return g;
}

int64_t fast_storage_index(const fast_geom *g, bool nz, int64_t beta, int64_t m, int64_t n)
{
    if (!nz) return (beta * g->m + m) * g->n + n;
    return beta * (g->n1 * g->m1 * 256) + ((n / 16) * g->m1 + m / 16) * 256 + (m % 16) * 16 +
           (n % 16);
}

int64_t fast_storage_elems(const fast_geom *g, bool nz)
{
    return nz ? g->batch * g->m1 * g->n1 * 256 : g->batch * g->m * g->n;
}

size_t fast_elem_size(fas_dtype dt)
{
    return dt == FAS_DTYPE_FLOAT ? 4 : dt == FAS_DTYPE_UINT8 ? 1 : 2;
}

uint32_t fast_get_bits(const void *p, fas_dtype dt, int64_t i)
{
    switch (fast_elem_size(dt)) {
    case 1: return ((const uint8_t *)p)[i];
    case 2: return ((const uint16_t *)p)[i];
    default: {
        uint32_t u;
        memcpy(&u, (const unsigned char *)p + 4 * i, 4);
        return u;
    }
    }
}

void fast_put_bits(void *p, fas_dtype dt, int64_t i, uint32_t v)
{
    switch (fast_elem_size(dt)) {
    case 1: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case 2: ((uint16_t *)p)[i] = (uint16_t)v; break;
    default: memcpy((unsigned char *)p + 4 * i, &v, 4); break;
    }
}

fast_close_stats fast_check_close(const char *what, const float *got, const double *ref, int64_t n,
                                  double rtol, double atol_frac)
{
    fast_close_stats s = {0, 0, -INFINITY, -1, 0};
    double ref_max = 0;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(ref[i]) && fabs(ref[i]) > ref_max) ref_max = fabs(ref[i]);
    double atol = atol_frac * ref_max;
    for (int64_t i = 0; i < n; i++) {
        double g = got[i], r = ref[i];
        double excess;
        if (isnan(r) || isnan(g)) {
            excess = (isnan(r) && isnan(g)) ? -1.0 : INFINITY;
        } else if (isinf(r) || isinf(g)) {
            excess = (g == r) ? -1.0 : INFINITY;
        } else {
            double err = fabs(g - r);
            double tol = atol + rtol * fabs(r);
            if (err > s.max_abs) s.max_abs = err;
            if (r != 0 && err / fabs(r) > s.max_rel) s.max_rel = err / fabs(r);
            excess = tol > 0 ? (err - tol) / tol : (err > 0 ? INFINITY : -1.0);
        }
        if (excess > 0) s.failures++;
        if (excess > s.worst_excess) {
            s.worst_excess = excess;
            s.worst_index = i;
        }
    }
    if (s.failures > 0) {
        printf("  %s: %lld of %lld elements outside |got-ref| <= %.3g + %.3g*|ref|; worst at "
               "[%lld]: got %.9g ref %.9g (max abs %.3g, max rel %.3g)\n",
               what, (long long)s.failures, (long long)n, atol, rtol, (long long)s.worst_index,
               (double)got[s.worst_index], ref[s.worst_index], s.max_abs, s.max_rel);
    }
    return s;
}

void fast_canary_fill(void *p, size_t bytes)
{
    unsigned char *c = p;
    for (size_t i = 0; i < bytes; i++) c[i] = (unsigned char)(0xA5 ^ (i * 31));
}

int fast_canary_intact(const void *p, size_t bytes)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < bytes; i++)
        if (c[i] != (unsigned char)(0xA5 ^ (i * 31))) return 0;
    return 1;
}
