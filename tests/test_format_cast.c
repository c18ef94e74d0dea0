/* fas_format_cast and fas_tensor_bytes: every NZ element against the docs/semantics.md §7 index
 * formula (written out independently below), padding zero, round trips, dtype conversions
 * against the scalar converters, large tensors that take the streaming paths at every
 * destination alignment, and every invalid descriptor. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fas_test.h"

/* ---- independent model of the layouts -------------------------------------------------------- */

/* The expected result of converting one element, from the public scalar converters. */
static uint32_t convert_bits(fas_dtype from, fas_dtype to, uint32_t bits)
{
    if (from == to) return bits;
    float f;
    if (from == FAS_DTYPE_FLOAT16)
        f = fas_half_to_float((uint16_t)bits);
    else if (from == FAS_DTYPE_BF16)
        f = fas_bf16_to_float((uint16_t)bits);
    else
        memcpy(&f, &bits, 4);
    if (to == FAS_DTYPE_FLOAT16) return fas_float_to_half(f);
    if (to == FAS_DTYPE_BF16) return fas_float_to_bf16(f);
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Random element bits: any pattern (NaNs, infinities, subnormals included) most of the time. */
static uint32_t random_bits(fast_rng *r, fas_dtype dt)
{
    uint64_t x = fast_rng_u64(r);
    switch (fast_elem_size(dt)) {
    case 1: return (uint32_t)(x & 0xff);
    case 2: return (uint32_t)(x & 0xffff);
    default: return (uint32_t)x;
    }
}

static fas_tensor desc(void *data, fas_dtype dt, fas_format f, int ndim, const int64_t *dims)
{
    fas_tensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.dtype = dt;
    t.format = f;
    t.ndim = ndim;
    for (int i = 0; i < ndim && i < FAS_MAX_DIMS; i++) t.dims[i] = dims[i];
    return t;
}

static void garbage_fill(void *p, size_t bytes, fast_rng *r)
{
    unsigned char *c = p;
    for (size_t i = 0; i < bytes; i++) c[i] = (unsigned char)(fast_rng_u64(r) | 0x11);
}

/* Expected storage of a tensor of format f, dtype `to`, holding the logical values of an ND
 * buffer of dtype `from`; padding zero. */
static void *expected_storage(const void *nd, fas_dtype from, fas_dtype to, fas_format f,
                              const fast_geom *g)
{
    int64_t n = fast_storage_elems(g, f == FAS_FORMAT_FRACTAL_NZ);
    void *e = calloc((size_t)n, fast_elem_size(to));
    assert_non_null(e);
    for (int64_t b = 0; b < g->batch; b++)
        for (int64_t m = 0; m < g->m; m++)
            for (int64_t c = 0; c < g->n; c++) {
                int64_t si = fast_storage_index(g, false, b, m, c);
                int64_t di = f == FAS_FORMAT_FRACTAL_NZ ? fast_storage_index(g, true, b, m, c) : si;
                fast_put_bits(e, to, di, convert_bits(from, to, fast_get_bits(nd, from, si)));
            }
    return e;
}

/* Compare storages element by element; print the first mismatch with its position. */
static void assert_storage_equal(const char *what, const void *got, const void *want, fas_dtype dt,
                                 int64_t n)
{
    if (memcmp(got, want, (size_t)n * fast_elem_size(dt)) == 0) return;
    for (int64_t i = 0; i < n; i++) {
        if (fast_get_bits(got, dt, i) != fast_get_bits(want, dt, i)) {
            printf("  %s: storage element %lld is 0x%x, expected 0x%x\n", what, (long long)i,
                   (unsigned)fast_get_bits(got, dt, i), (unsigned)fast_get_bits(want, dt, i));
            break;
        }
    }
    fail();
}

/* ---- shapes ---------------------------------------------------------------------------------- */

typedef struct shape {
    int ndim;
    int64_t dims[8];
} shape;

static const shape shapes[] = {
    {0, {0}},
    {1, {1}},
    {1, {15}},
    {1, {16}},
    {1, {17}},
    {1, {33}},
    {2, {1, 1}},
    {2, {1, 17}},
    {2, {17, 1}},
    {2, {15, 15}},
    {2, {16, 16}},
    {2, {17, 33}},
    {2, {31, 32}},
    {2, {32, 31}},
    {2, {33, 17}},
    {2, {16, 48}},
    {2, {5, 300}},
    {2, {300, 5}},
    {3, {2, 16, 1}},
    {3, {3, 1, 16}},
    {3, {2, 17, 31}},
    {4, {3, 5, 31, 47}},
    {4, {1, 1, 1, 1}},
    {5, {2, 1, 3, 16, 17}},
    {6, {1, 2, 1, 2, 15, 33}},
    {7, {2, 1, 2, 1, 2, 31, 16}},
    {8, {2, 3, 1, 2, 1, 2, 17, 15}},
    {8, {1, 1, 1, 1, 1, 1, 1, 1}},
};
#define NSHAPES (sizeof shapes / sizeof shapes[0])

typedef struct dtype_pair {
    fas_dtype a, b;
} dtype_pair;

static const dtype_pair pairs[] = {
    {FAS_DTYPE_FLOAT16, FAS_DTYPE_FLOAT16}, {FAS_DTYPE_FLOAT, FAS_DTYPE_FLOAT},
    {FAS_DTYPE_BF16, FAS_DTYPE_BF16},       {FAS_DTYPE_UINT8, FAS_DTYPE_UINT8},
    {FAS_DTYPE_FLOAT, FAS_DTYPE_FLOAT16},   {FAS_DTYPE_FLOAT16, FAS_DTYPE_FLOAT},
    {FAS_DTYPE_FLOAT, FAS_DTYPE_BF16},      {FAS_DTYPE_BF16, FAS_DTYPE_FLOAT},
    {FAS_DTYPE_FLOAT16, FAS_DTYPE_BF16},    {FAS_DTYPE_BF16, FAS_DTYPE_FLOAT16},
};
#define NPAIRS (sizeof pairs / sizeof pairs[0])

/* One shape, one dtype pair: ND(a) -> NZ(b) -> ND(a), NZ(b) -> NZ(a), ND(a) -> ND(b), each
 * destination prefilled with garbage and checked in full (data and padding). */
static void check_shape_pair(const shape *s, fas_dtype a, fas_dtype b, fast_rng *rng)
{
    fast_geom g = fast_geom_of(s->ndim, s->dims);
    int64_t n_nd = fast_storage_elems(&g, false), n_nz = fast_storage_elems(&g, true);

    void *nd_a = malloc((size_t)n_nd * fast_elem_size(a));
    void *nz_b = malloc((size_t)n_nz * fast_elem_size(b));
    void *nz_a = malloc((size_t)n_nz * fast_elem_size(a));
    void *back = malloc((size_t)n_nd * fast_elem_size(a));
    void *nd_b = malloc((size_t)n_nd * fast_elem_size(b));
    assert_true(nd_a && nz_b && nz_a && back && nd_b);
    for (int64_t i = 0; i < n_nd; i++) fast_put_bits(nd_a, a, i, random_bits(rng, a));

    fas_tensor t_nd_a = desc(nd_a, a, FAS_FORMAT_ND, s->ndim, s->dims);
    fas_tensor t_nz_b = desc(nz_b, b, FAS_FORMAT_FRACTAL_NZ, s->ndim, s->dims);
    fas_tensor t_nz_a = desc(nz_a, a, FAS_FORMAT_FRACTAL_NZ, s->ndim, s->dims);
    fas_tensor t_back = desc(back, a, FAS_FORMAT_ND, s->ndim, s->dims);
    fas_tensor t_nd_b = desc(nd_b, b, FAS_FORMAT_ND, s->ndim, s->dims);
    assert_int_equal(fas_tensor_bytes(&t_nz_b), (size_t)n_nz * fast_elem_size(b));
    assert_int_equal(fas_tensor_bytes(&t_nd_a), (size_t)n_nd * fast_elem_size(a));

    /* ND(a) -> NZ(b) */
    garbage_fill(nz_b, (size_t)n_nz * fast_elem_size(b), rng);
    assert_int_equal(fas_format_cast(&t_nd_a, &t_nz_b), FAS_OK);
    assert_string_equal(fas_last_error(), "");
    void *want_nz_b = expected_storage(nd_a, a, b, FAS_FORMAT_FRACTAL_NZ, &g);
    assert_storage_equal("ND->NZ", nz_b, want_nz_b, b, n_nz);

    /* NZ(b) -> ND(a), with garbage in the source padding (never read as data) */
    garbage_fill(nz_b, (size_t)n_nz * fast_elem_size(b), rng);
    for (int64_t bt = 0; bt < g.batch; bt++)
        for (int64_t m = 0; m < g.m; m++)
            for (int64_t c = 0; c < g.n; c++) {
                int64_t i = fast_storage_index(&g, true, bt, m, c);
                fast_put_bits(nz_b, b, i, fast_get_bits(want_nz_b, b, i));
            }
    garbage_fill(back, (size_t)n_nd * fast_elem_size(a), rng);
    assert_int_equal(fas_format_cast(&t_nz_b, &t_back), FAS_OK);
    void *mid = expected_storage(nd_a, a, b, FAS_FORMAT_ND, &g);
    void *want_back = expected_storage(mid, b, a, FAS_FORMAT_ND, &g);
    assert_storage_equal("NZ->ND", back, want_back, a, n_nd);
    if (a == b) assert_memory_equal(back, nd_a, (size_t)n_nd * fast_elem_size(a));

    /* NZ(b) -> NZ(a): the source still has garbage padding; the destination's must be zero */
    garbage_fill(nz_a, (size_t)n_nz * fast_elem_size(a), rng);
    assert_int_equal(fas_format_cast(&t_nz_b, &t_nz_a), FAS_OK);
    void *want_nz_a = expected_storage(mid, b, a, FAS_FORMAT_FRACTAL_NZ, &g);
    assert_storage_equal("NZ->NZ", nz_a, want_nz_a, a, n_nz);

    /* ND(a) -> ND(b) */
    garbage_fill(nd_b, (size_t)n_nd * fast_elem_size(b), rng);
    assert_int_equal(fas_format_cast(&t_nd_a, &t_nd_b), FAS_OK);
    assert_storage_equal("ND->ND", nd_b, mid, b, n_nd);

    free(want_nz_a);
    free(want_back);
    free(mid);
    free(want_nz_b);
    free(nd_a);
    free(nz_b);
    free(nz_a);
    free(back);
    free(nd_b);
}

static void test_all_shapes_all_dtypes(void **state)
{
    (void)state;
    fast_rng rng;
    fast_rng_seed(&rng, fast_test_seed("format_cast_shapes", 0x5eed0001));
    for (size_t p = 0; p < NPAIRS; p++)
        for (size_t i = 0; i < NSHAPES; i++)
            check_shape_pair(&shapes[i], pairs[p].a, pairs[p].b, &rng);
}

/* Rows wider than the staging strips of the dtype-changing paths take their blocked
 * fallback. */
static void test_wide_rows(void **state)
{
    (void)state;
    fast_rng rng;
    fast_rng_seed(&rng, fast_test_seed("format_cast_wide", 0x5eed0004));
    shape s = {3, {2, 33, 8200}};
    check_shape_pair(&s, FAS_DTYPE_FLOAT16, FAS_DTYPE_FLOAT, &rng);
    check_shape_pair(&s, FAS_DTYPE_FLOAT, FAS_DTYPE_FLOAT16, &rng);
    shape t = {2, {3, 20000}};
    check_shape_pair(&t, FAS_DTYPE_BF16, FAS_DTYPE_FLOAT, &rng);
    check_shape_pair(&t, FAS_DTYPE_FLOAT, FAS_DTYPE_BF16, &rng);
}

/* Sizes around the 16-element fractal edge in both matrix dims, rank 2 and 3. */
static void test_edge_sizes(void **state)
{
    (void)state;
    fast_rng rng;
    fast_rng_seed(&rng, fast_test_seed("format_cast_edges", 0x5eed0002));
    static const int64_t sizes[] = {1, 2, 8, 15, 16, 17, 31, 32, 33, 47, 48, 49};
    const size_t ns = sizeof sizes / sizeof sizes[0];
    for (size_t i = 0; i < ns; i++)
        for (size_t j = 0; j < ns; j++) {
            shape s = {3, {2, sizes[i], sizes[j]}};
            check_shape_pair(&s, FAS_DTYPE_FLOAT16, FAS_DTYPE_FLOAT16, &rng);
            if ((i + j) % 3 == 0) check_shape_pair(&s, FAS_DTYPE_FLOAT, FAS_DTYPE_FLOAT16, &rng);
            if ((i + j) % 3 == 1) check_shape_pair(&s, FAS_DTYPE_UINT8, FAS_DTYPE_UINT8, &rng);
            if ((i + j) % 3 == 2) check_shape_pair(&s, FAS_DTYPE_BF16, FAS_DTYPE_FLOAT, &rng);
        }
}

/* Destinations of 8 MiB and more take the streaming-store paths, whose behaviour depends on the
 * destination address modulo 64 and on the row pitch: every 16-byte offset, row pitches that
 * are and are not multiples of 16 and 64 bytes, and unaligned pointers. */
static void check_large(fas_dtype a, fas_dtype b, int64_t batch, int64_t m, int64_t n,
                        size_t offset_nd, size_t offset_nz, fast_rng *rng)
{
    int64_t dims[3] = {batch, m, n};
    fast_geom g = fast_geom_of(3, dims);
    int64_t n_nd = fast_storage_elems(&g, false), n_nz = fast_storage_elems(&g, true);
    unsigned char *nd_buf = malloc((size_t)n_nd * fast_elem_size(a) + 64 + offset_nd);
    unsigned char *nz_buf = malloc((size_t)n_nz * fast_elem_size(b) + 64 + offset_nz);
    unsigned char *back_buf = malloc((size_t)n_nd * fast_elem_size(a) + 64 + offset_nd);
    assert_true(nd_buf && nz_buf && back_buf);
    /* 64-byte aligned base, then the requested offset */
    void *nd = nd_buf + ((64 - ((uintptr_t)nd_buf & 63)) & 63) + offset_nd;
    void *nz = nz_buf + ((64 - ((uintptr_t)nz_buf & 63)) & 63) + offset_nz;
    void *back = back_buf + ((64 - ((uintptr_t)back_buf & 63)) & 63) + offset_nd;
    for (int64_t i = 0; i < n_nd; i++) fast_put_bits(nd, a, i, random_bits(rng, a));
    memset(nz, 0x5a, (size_t)n_nz * fast_elem_size(b));
    memset(back, 0x5a, (size_t)n_nd * fast_elem_size(a));

    fas_tensor t_nd = desc(nd, a, FAS_FORMAT_ND, 3, dims);
    fas_tensor t_nz = desc(nz, b, FAS_FORMAT_FRACTAL_NZ, 3, dims);
    fas_tensor t_back = desc(back, a, FAS_FORMAT_ND, 3, dims);
    assert_int_equal(fas_format_cast(&t_nd, &t_nz), FAS_OK);
    void *want = expected_storage(nd, a, b, FAS_FORMAT_FRACTAL_NZ, &g);
    assert_storage_equal("large ND->NZ", nz, want, b, n_nz);
    assert_int_equal(fas_format_cast(&t_nz, &t_back), FAS_OK);
    void *mid = expected_storage(nd, a, b, FAS_FORMAT_ND, &g);
    void *want_back = expected_storage(mid, b, a, FAS_FORMAT_ND, &g);
    assert_storage_equal("large NZ->ND", back, want_back, a, n_nd);
    free(want_back);
    free(mid);
    free(want);
    free(nd_buf);
    free(nz_buf);
    free(back_buf);
}

static void test_large_streaming(void **state)
{
    (void)state;
    fast_rng rng;
    fast_rng_seed(&rng, fast_test_seed("format_cast_large", 0x5eed0003));
    /* fp16, pitch 2992 bytes (16-byte multiple, 48 mod 64), every pair of 16-byte offsets */
    for (size_t o = 0; o < 64; o += 16)
        check_large(FAS_DTYPE_FLOAT16, FAS_DTYPE_FLOAT16, 3, 1000, 1496, o, (o + 16) % 64, &rng);
    /* fp16, pitch 2056 bytes (8 mod 16: no aligned rows), columns not a multiple of 16 */
    check_large(FAS_DTYPE_FLOAT16, FAS_DTYPE_FLOAT16, 2, 1030, 1028, 0, 0, &rng);
    /* fp16, 2-byte aligned pointers only */
    check_large(FAS_DTYPE_FLOAT16, FAS_DTYPE_FLOAT16, 2, 1001, 2056, 2, 6, &rng);
    /* fp16, rows not a multiple of 16 and a partial last fractal column of 8 */
    check_large(FAS_DTYPE_FLOAT16, FAS_DTYPE_FLOAT16, 3, 999, 1448, 16, 32, &rng);
    /* bytes and fp32 */
    check_large(FAS_DTYPE_UINT8, FAS_DTYPE_UINT8, 2, 2047, 2064, 48, 16, &rng);
    check_large(FAS_DTYPE_UINT8, FAS_DTYPE_UINT8, 2, 2048, 2071, 1, 3, &rng);
    check_large(FAS_DTYPE_FLOAT, FAS_DTYPE_FLOAT, 2, 1024, 1044, 32, 16, &rng);
    /* dtype changes on the large paths */
    check_large(FAS_DTYPE_FLOAT, FAS_DTYPE_FLOAT16, 2, 1000, 1100, 16, 0, &rng);
    check_large(FAS_DTYPE_BF16, FAS_DTYPE_FLOAT, 1, 1500, 1500, 0, 48, &rng);
}

/* A known matrix, written out by hand: logical [2, 17, 18] fp32 with value 1000*b + 100*... is
 * too big to list; instead check a handful of named positions of [17, 18] directly. */
static void test_named_positions(void **state)
{
    (void)state;
    int64_t dims[2] = {17, 18};
    float nd[17 * 18];
    for (int i = 0; i < 17 * 18; i++) nd[i] = (float)(i + 1);
    float nz[2 * 2 * 256];
    memset(nz, 0xff, sizeof nz);
    fas_tensor s = desc(nd, FAS_DTYPE_FLOAT, FAS_FORMAT_ND, 2, dims);
    fas_tensor d = desc(nz, FAS_DTYPE_FLOAT, FAS_FORMAT_FRACTAL_NZ, 2, dims);
    assert_int_equal(fas_tensor_bytes(&d), sizeof nz);
    assert_int_equal(fas_format_cast(&s, &d), FAS_OK);
    /* M1 = 2, N1 = 2: fractal order (n-block 0, m-block 0), (0, 1), (1, 0), (1, 1) */
    assert_true(nz[0] == 1.0f);                  /* (0, 0) */
    assert_true(nz[1] == 2.0f);                  /* (0, 1) */
    assert_true(nz[15] == 16.0f);                /* (0, 15) */
    assert_true(nz[16] == 19.0f);                /* (1, 0) */
    assert_true(nz[256] == 16 * 18 + 1.0f);      /* (16, 0): second fractal of column 0 */
    assert_true(nz[257] == 16 * 18 + 2.0f);      /* (16, 1) */
    assert_true(nz[256 + 16] == 0.0f);           /* (17, 0) is padding */
    assert_true(nz[512] == 17.0f);               /* (0, 16): first fractal of column 1 */
    assert_true(nz[513] == 18.0f);               /* (0, 17) */
    assert_true(nz[514] == 0.0f);                /* (0, 18) is padding */
    assert_true(nz[768] == 16 * 18 + 17.0f);     /* (16, 16) */
    assert_true(nz[768 + 1] == 16 * 18 + 18.0f); /* (16, 17) */
    assert_true(nz[768 + 2] == 0.0f);            /* padding */
    assert_true(nz[1023] == 0.0f);               /* padding */

    /* 1-D [20] is the column [20, 1]; 0-D is [1, 1] */
    float v[20], vz[512];
    for (int i = 0; i < 20; i++) v[i] = (float)(i + 1);
    int64_t d1[1] = {20};
    memset(vz, 0xff, sizeof vz);
    s = desc(v, FAS_DTYPE_FLOAT, FAS_FORMAT_ND, 1, d1);
    d = desc(vz, FAS_DTYPE_FLOAT, FAS_FORMAT_FRACTAL_NZ, 1, d1);
    assert_int_equal(fas_tensor_bytes(&d), sizeof vz);
    assert_int_equal(fas_format_cast(&s, &d), FAS_OK);
    for (int i = 0; i < 512; i++) {
        float want = 0.0f;
        if (i < 256 && i % 16 == 0) want = (float)(i / 16 + 1);
        if (i >= 256 && i % 16 == 0 && (i - 256) / 16 < 4) want = (float)(16 + (i - 256) / 16 + 1);
        assert_true(vz[i] == want);
    }
    float x = 3.5f, xz[256];
    memset(xz, 0xff, sizeof xz);
    s = desc(&x, FAS_DTYPE_FLOAT, FAS_FORMAT_ND, 0, NULL);
    d = desc(xz, FAS_DTYPE_FLOAT, FAS_FORMAT_FRACTAL_NZ, 0, NULL);
    assert_int_equal(fas_tensor_bytes(&d), sizeof xz);
    assert_int_equal(fas_format_cast(&s, &d), FAS_OK);
    assert_true(xz[0] == 3.5f);
    for (int i = 1; i < 256; i++) assert_true(xz[i] == 0.0f);
}

/* Special values through the dtype-changing paths: NaN stays NaN (quiet, sign kept), rounding
 * to nearest even, overflow to infinity, subnormals. */
static void test_special_values(void **state)
{
    (void)state;
    static const uint32_t f32_bits[] = {
        0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00001u,
        0x7f800001u, 0xff812345u, 0x477fe000u, 0x477ff000u, 0x477fefffu, 0x33800000u,
        0x33800001u, 0x33000000u, 0x38800000u, 0x387fc000u, 0x3f800000u, 0x3f801000u,
        0x3f803000u, 0x3f808000u, 0x3f818000u, 0x7f7fffffu, 0x00000001u, 0x3fffffffu};
    enum { NV = sizeof f32_bits / sizeof f32_bits[0] };
    int64_t dims[2] = {NV, 1};
    uint32_t src[NV];
    memcpy(src, f32_bits, sizeof src);
    static const fas_dtype targets[] = {FAS_DTYPE_FLOAT16, FAS_DTYPE_BF16};
    for (int t = 0; t < 2; t++) {
        for (int f = 0; f < 2; f++) {
            fas_format fmt = f ? FAS_FORMAT_FRACTAL_NZ : FAS_FORMAT_ND;
            uint16_t dst[2 * 256];
            fas_tensor s = desc(src, FAS_DTYPE_FLOAT, FAS_FORMAT_ND, 2, dims);
            fas_tensor d = desc(dst, targets[t], fmt, 2, dims);
            assert_int_equal(fas_format_cast(&s, &d), FAS_OK);
            for (int i = 0; i < NV; i++) {
                float x;
                memcpy(&x, &f32_bits[i], 4);
                uint16_t want =
                    targets[t] == FAS_DTYPE_FLOAT16 ? fas_float_to_half(x) : fas_float_to_bf16(x);
                uint16_t got = dst[f ? (i / 16) * 256 + (i % 16) * 16 : i];
                if (got != want)
                    printf("  value 0x%08x: got 0x%04x want 0x%04x\n", f32_bits[i], got, want);
                assert_int_equal(got, want);
            }
        }
    }
    /* a few fixed expectations of the scalar converters themselves */
    assert_int_equal(fas_float_to_half(1.0f), 0x3c00);
    assert_int_equal(fas_float_to_half(65520.0f), 0x7c00);
    assert_int_equal(fas_float_to_half(65519.0f), 0x7bff);
    assert_int_equal(fas_float_to_bf16(1.0f), 0x3f80);
    assert_true((fas_float_to_half(-NAN) & 0xfe00) == 0xfe00);
}

/* ---- invalid descriptors -------------------------------------------------------------------- */

enum { BUF_BYTES = 4096 };

typedef struct cast_case {
    unsigned char src_buf[BUF_BYTES];
    unsigned char dst_buf[BUF_BYTES];
    fas_tensor src, dst;
} cast_case;

/* A valid baseline: fp16 ND [4, 20] -> fp16 NZ [4, 20]. */
static void baseline(cast_case *c)
{
    int64_t dims[2] = {4, 20};
    for (int i = 0; i < BUF_BYTES; i++) c->src_buf[i] = (unsigned char)(i * 7);
    fast_canary_fill(c->dst_buf, BUF_BYTES);
    c->src = desc(c->src_buf, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 2, dims);
    c->dst = desc(c->dst_buf, FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, 2, dims);
}

static bool contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

/* The call fails with `want`, names `who`, and leaves both buffers untouched. */
static void expect_fail(cast_case *c, const fas_tensor *src, fas_tensor *dst, fas_status want,
                        const char *who, const char *label)
{
    unsigned char src_copy[BUF_BYTES];
    memcpy(src_copy, c->src_buf, BUF_BYTES);
    fas_status st = fas_format_cast(src, dst);
    const char *msg = fas_last_error();
    if (st != want || !contains(msg, who))
        printf("  case '%s': status %s, message \"%s\"\n", label, fas_status_string(st), msg);
    assert_int_equal(st, want);
    assert_true(msg != NULL && msg[0] != '\0');
    assert_true(contains(msg, who));
    assert_true(fast_canary_intact(c->dst_buf, BUF_BYTES));
    assert_memory_equal(src_copy, c->src_buf, BUF_BYTES);
}

static void test_invalid_descriptors(void **state)
{
    (void)state;
    cast_case c;

    /* the baseline itself succeeds and clears the error */
    baseline(&c);
    assert_int_equal(fas_format_cast(&c.src, &c.dst), FAS_OK);
    assert_string_equal(fas_last_error(), "");

    baseline(&c);
    expect_fail(&c, NULL, &c.dst, FAS_ERR_NULL_POINTER, "src", "src NULL");
    baseline(&c);
    expect_fail(&c, &c.src, NULL, FAS_ERR_NULL_POINTER, "dst", "dst NULL");
    baseline(&c);
    c.src.data = NULL;
    expect_fail(&c, &c.src, &c.dst, FAS_ERR_NULL_POINTER, "src", "src data NULL");
    baseline(&c);
    c.dst.data = NULL;
    assert_int_equal(fas_format_cast(&c.src, &c.dst), FAS_ERR_NULL_POINTER);
    assert_true(contains(fas_last_error(), "dst"));

    /* ndim outside 0..8, on either side */
    static const int bad_ndim[] = {-1, 9, 100, -1000};
    for (int i = 0; i < 4; i++) {
        baseline(&c);
        c.src.ndim = bad_ndim[i];
        expect_fail(&c, &c.src, &c.dst, FAS_ERR_SHAPE, "src", "src ndim");
        baseline(&c);
        c.dst.ndim = bad_ndim[i];
        expect_fail(&c, &c.src, &c.dst, FAS_ERR_SHAPE, "dst", "dst ndim");
    }
    /* zero and negative dims, in every position used */
    static const int64_t bad_dim[] = {0, -1, -16, INT64_MIN};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 2; k++) {
            baseline(&c);
            c.src.dims[k] = bad_dim[i];
            c.dst.dims[k] = bad_dim[i];
            expect_fail(&c, &c.src, &c.dst, FAS_ERR_SHAPE, "src", "src dim");
            baseline(&c);
            c.dst.dims[k] = bad_dim[i];
            expect_fail(&c, &c.src, &c.dst, FAS_ERR_SHAPE, "dst", "dst dim");
        }
    /* unknown dtype and format ids */
    static const int bad_dtype[] = {-1, 2, 3, 5, 26, 28, 99};
    for (int i = 0; i < 7; i++) {
        baseline(&c);
        c.src.dtype = (fas_dtype)bad_dtype[i];
        expect_fail(&c, &c.src, &c.dst, FAS_ERR_DTYPE, "src", "src dtype");
        baseline(&c);
        c.dst.dtype = (fas_dtype)bad_dtype[i];
        expect_fail(&c, &c.src, &c.dst, FAS_ERR_DTYPE, "dst", "dst dtype");
    }
    static const int bad_format[] = {-1, 0, 1, 3, 4, 28, 30, 99};
    for (int i = 0; i < 8; i++) {
        baseline(&c);
        c.src.format = (fas_format)bad_format[i];
        expect_fail(&c, &c.src, &c.dst, FAS_ERR_FORMAT, "src", "src format");
        baseline(&c);
        c.dst.format = (fas_format)bad_format[i];
        expect_fail(&c, &c.src, &c.dst, FAS_ERR_FORMAT, "dst", "dst format");
    }
    /* mismatched rank or dims (the same element count does not make them equal) */
    baseline(&c);
    c.dst.ndim = 3;
    c.dst.dims[0] = 1;
    c.dst.dims[1] = 4;
    c.dst.dims[2] = 20;
    expect_fail(&c, &c.src, &c.dst, FAS_ERR_SHAPE, "dst", "ndim mismatch");
    baseline(&c);
    c.dst.dims[0] = 20;
    c.dst.dims[1] = 4;
    expect_fail(&c, &c.src, &c.dst, FAS_ERR_SHAPE, "dst", "dims mismatch");
    baseline(&c);
    c.dst.dims[1] = 21;
    expect_fail(&c, &c.src, &c.dst, FAS_ERR_SHAPE, "dst", "last dim mismatch");
    /* UINT8 to or from any float dtype */
    static const fas_dtype floats[] = {FAS_DTYPE_FLOAT, FAS_DTYPE_FLOAT16, FAS_DTYPE_BF16};
    for (int i = 0; i < 3; i++) {
        baseline(&c);
        c.src.dtype = FAS_DTYPE_UINT8;
        c.dst.dtype = floats[i];
        expect_fail(&c, &c.src, &c.dst, FAS_ERR_DTYPE, "dst", "u8 -> float");
        baseline(&c);
        c.src.dtype = floats[i];
        c.dst.dtype = FAS_DTYPE_UINT8;
        expect_fail(&c, &c.src, &c.dst, FAS_ERR_DTYPE, "dst", "float -> u8");
    }
    /* byte sizes that overflow int64 or size_t, without undefined behaviour on the way */
    static const int64_t huge[][3] = {
        {2, (int64_t)1 << 40, (int64_t)1 << 40}, {2, INT64_MAX, 1}, {2, 1, INT64_MAX},
        {2, INT64_MAX - 3, INT64_MAX - 3},       {1, INT64_MAX, 0}, {1, INT64_MAX - 14, 0},
        {2, (int64_t)1 << 31, (int64_t)1 << 31},
    };
    for (int i = 0; i < 7; i++) {
        for (int side = 0; side < 2; side++) {
            baseline(&c);
            c.src.ndim = c.dst.ndim = (int)huge[i][0];
            c.src.dims[0] = c.dst.dims[0] = huge[i][1];
            c.src.dims[1] = c.dst.dims[1] = huge[i][2];
            c.src.format = side ? FAS_FORMAT_FRACTAL_NZ : FAS_FORMAT_ND;
            c.src.dtype = FAS_DTYPE_FLOAT;
            expect_fail(&c, &c.src, &c.dst, FAS_ERR_SHAPE, "src", "huge");
        }
    }
    /* 8-D whose batch product overflows */
    baseline(&c);
    c.src.ndim = c.dst.ndim = 8;
    for (int k = 0; k < 8; k++) c.src.dims[k] = c.dst.dims[k] = (int64_t)1 << 9;
    expect_fail(&c, &c.src, &c.dst, FAS_ERR_SHAPE, "src", "8-D overflow");
}

/* Source and destination sharing bytes: only the identical descriptor on the same buffer is
 * allowed (a no-op); every other overlap is FAS_ERR_ALIAS with nothing written. */
static void test_aliasing(void **state)
{
    (void)state;
    enum { N = 8192 };
    static unsigned char buf[N], ref[N];
    fast_canary_fill(ref, N);
    int64_t dims[2] = {20, 20}; /* ND fp16: 800 bytes; NZ fp16: 2048 bytes */

    /* (ND offset, NZ offset) pairs that all overlap; each tried in both directions */
    static const size_t offs[][2] = {{0, 0}, {0, 2}, {0, 798}, {2046, 0}, {100, 0}, {1000, 600}};
    for (int i = 0; i < 6; i++)
        for (int dir = 0; dir < 2; dir++) {
            memcpy(buf, ref, N);
            fas_tensor nd = desc(buf + offs[i][0], FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 2, dims);
            fas_tensor nz =
                desc(buf + offs[i][1], FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, 2, dims);
            fas_status st = dir ? fas_format_cast(&nz, &nd) : fas_format_cast(&nd, &nz);
            assert_int_equal(st, FAS_ERR_ALIAS);
            assert_true(contains(fas_last_error(), "dst"));
            assert_memory_equal(buf, ref, N);
        }
    fas_tensor a = desc(buf, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 2, dims);
    /* same buffer, same format, different dtype: overlapping and not identical */
    memcpy(buf, ref, N);
    fas_tensor b = desc(buf, FAS_DTYPE_BF16, FAS_FORMAT_ND, 2, dims);
    assert_int_equal(fas_format_cast(&a, &b), FAS_ERR_ALIAS);
    assert_memory_equal(buf, ref, N);
    /* ND dst 2 bytes after a same-size ND src */
    b = desc(buf + 2, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 2, dims);
    assert_int_equal(fas_format_cast(&a, &b), FAS_ERR_ALIAS);
    assert_memory_equal(buf, ref, N);

    /* one shared byte, at either end (UINT8 allows byte offsets) */
    int64_t bdims[1] = {400};
    for (int dir = 0; dir < 2; dir++) {
        memcpy(buf, ref, N);
        fas_tensor lo = desc(buf, FAS_DTYPE_UINT8, FAS_FORMAT_ND, 1, bdims);
        fas_tensor hi = desc(buf + 399, FAS_DTYPE_UINT8, FAS_FORMAT_ND, 1, bdims);
        assert_int_equal(dir ? fas_format_cast(&hi, &lo) : fas_format_cast(&lo, &hi),
                         FAS_ERR_ALIAS);
        assert_memory_equal(buf, ref, N);
        hi.data = buf + 400;
        assert_int_equal(dir ? fas_format_cast(&hi, &lo) : fas_format_cast(&lo, &hi), FAS_OK);
    }

    /* adjacent, not overlapping: fine, and nothing outside dst is written */
    memcpy(buf, ref, N);
    b = desc(buf + 800, FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, 2, dims);
    assert_int_equal(fas_format_cast(&a, &b), FAS_OK);
    assert_memory_equal(buf, ref, 800);
    assert_memory_equal(buf + 2848, ref + 2848, N - 2848);

    /* identical descriptors on the same buffer: a no-op success */
    for (int f = 0; f < 2; f++) {
        memcpy(buf, ref, N);
        a.format = f ? FAS_FORMAT_FRACTAL_NZ : FAS_FORMAT_ND;
        b = a;
        assert_int_equal(fas_format_cast(&a, &b), FAS_OK);
        assert_string_equal(fas_last_error(), "");
        assert_memory_equal(buf, ref, N);
    }
    /* the same descriptor pointer passed twice */
    memcpy(buf, ref, N);
    assert_int_equal(fas_format_cast(&a, &a), FAS_OK);
    assert_memory_equal(buf, ref, N);
}

/* ---- fas_tensor_bytes ------------------------------------------------------------------------ */

static size_t bytes_of(fas_dtype dt, fas_format f, int ndim, const int64_t *dims)
{
    fas_tensor t = desc(NULL, dt, f, ndim, dims);
    return fas_tensor_bytes(&t);
}

static void test_tensor_bytes(void **state)
{
    (void)state;
    const fas_format ND = FAS_FORMAT_ND, NZ = FAS_FORMAT_FRACTAL_NZ;
    int64_t d[8] = {3, 5, 17, 33, 1, 1, 1, 1};

    assert_int_equal(fas_tensor_bytes(NULL), 0);
    /* valid: ND is elements * size; NZ pads each matrix to whole fractals */
    assert_int_equal(bytes_of(FAS_DTYPE_FLOAT, ND, 2, d), 60);
    assert_int_equal(bytes_of(FAS_DTYPE_FLOAT16, NZ, 2, d), 512);
    assert_int_equal(bytes_of(FAS_DTYPE_UINT8, ND, 4, d), 3 * 5 * 17 * 33);
    assert_int_equal(bytes_of(FAS_DTYPE_BF16, NZ, 4, d), 15 * 2 * 3 * 256 * 2);
    assert_int_equal(bytes_of(FAS_DTYPE_FLOAT, NZ, 4, d), 15 * 2 * 3 * 256 * 4);
    assert_int_equal(bytes_of(FAS_DTYPE_FLOAT16, ND, 0, d), 2);
    assert_int_equal(bytes_of(FAS_DTYPE_FLOAT16, NZ, 0, d), 512);
    assert_int_equal(bytes_of(FAS_DTYPE_UINT8, NZ, 1, (int64_t[]){17}), 512);
    assert_int_equal(bytes_of(FAS_DTYPE_UINT8, ND, 1, (int64_t[]){17}), 17);
    assert_int_equal(bytes_of(FAS_DTYPE_FLOAT, NZ, 1, (int64_t[]){16}), 1024);
    assert_int_equal(bytes_of(FAS_DTYPE_FLOAT16, NZ, 2, (int64_t[]){16, 16}), 512);
    assert_int_equal(bytes_of(FAS_DTYPE_FLOAT16, NZ, 2, (int64_t[]){16, 17}), 1024);
    assert_int_equal(bytes_of(FAS_DTYPE_FLOAT16, NZ, 8, d), 3 * 5 * 17 * 33 * 256 * 2);
    assert_int_equal(bytes_of(FAS_DTYPE_FLOAT16, ND, 8, d), 3 * 5 * 17 * 33 * 2);
    /* near the limits: 2^60 bytes fits, 2^63 does not fit in int64_t, 2^64 not in size_t */
    int64_t big[2] = {(int64_t)1 << 30, (int64_t)1 << 30};
    if (sizeof(size_t) >= 8) {
        assert_true(bytes_of(FAS_DTYPE_UINT8, ND, 2, big) == (size_t)1 << 60);
        assert_true(bytes_of(FAS_DTYPE_FLOAT, ND, 2, big) == (size_t)1 << 62);
        assert_true(bytes_of(FAS_DTYPE_FLOAT, NZ, 2, big) == (size_t)1 << 62);
    }
    big[0] = (int64_t)1 << 31;
    big[1] = (int64_t)1 << 32;
    assert_int_equal(bytes_of(FAS_DTYPE_UINT8, ND, 2, big), 0);
    big[1] = (int64_t)1 << 31;
    assert_int_equal(bytes_of(FAS_DTYPE_FLOAT16, ND, 2, big), 0);
    if (sizeof(size_t) >= 8) assert_true(bytes_of(FAS_DTYPE_UINT8, ND, 2, big) == (size_t)1 << 62);

    /* invalid: each returns 0, data NULL or not */
    int64_t ok[2] = {4, 4};
    assert_int_equal(bytes_of((fas_dtype)3, ND, 2, ok), 0);
    assert_int_equal(bytes_of((fas_dtype)-1, ND, 2, ok), 0);
    assert_int_equal(bytes_of((fas_dtype)99, NZ, 2, ok), 0);
    assert_int_equal(bytes_of(FAS_DTYPE_FLOAT, (fas_format)0, 2, ok), 0);
    assert_int_equal(bytes_of(FAS_DTYPE_FLOAT, (fas_format)3, 2, ok), 0);
    assert_int_equal(bytes_of(FAS_DTYPE_FLOAT, (fas_format)-1, 2, ok), 0);
    assert_int_equal(bytes_of(FAS_DTYPE_FLOAT, ND, -1, ok), 0);
    assert_int_equal(bytes_of(FAS_DTYPE_FLOAT, ND, 9, d), 0);
    assert_int_equal(bytes_of(FAS_DTYPE_FLOAT, NZ, 9, d), 0);
    assert_int_equal(bytes_of(FAS_DTYPE_FLOAT, ND, 2, (int64_t[]){0, 4}), 0);
    assert_int_equal(bytes_of(FAS_DTYPE_FLOAT, NZ, 2, (int64_t[]){4, 0}), 0);
    assert_int_equal(bytes_of(FAS_DTYPE_FLOAT, ND, 2, (int64_t[]){-4, 4}), 0);
    assert_int_equal(bytes_of(FAS_DTYPE_FLOAT, NZ, 1, (int64_t[]){-1}), 0);
    assert_int_equal(bytes_of(FAS_DTYPE_FLOAT, ND, 3, (int64_t[]){2, 2, INT64_MIN}), 0);
    assert_int_equal(
        bytes_of(FAS_DTYPE_FLOAT16, ND, 2, (int64_t[]){(int64_t)1 << 40, (int64_t)1 << 40}), 0);
    assert_int_equal(bytes_of(FAS_DTYPE_UINT8, NZ, 1, (int64_t[]){INT64_MAX}), 0);
    if (sizeof(size_t) >= 8)
        assert_true(bytes_of(FAS_DTYPE_UINT8, ND, 1, (int64_t[]){INT64_MAX}) == (size_t)INT64_MAX);
    assert_int_equal(bytes_of(FAS_DTYPE_UINT8, NZ, 2, (int64_t[]){INT64_MAX - 1, 1}), 0);
    assert_int_equal(bytes_of(FAS_DTYPE_UINT8, NZ, 2, (int64_t[]){1, INT64_MAX - 7}), 0);
    assert_int_equal(bytes_of(FAS_DTYPE_FLOAT16, ND, 1, (int64_t[]){INT64_MAX}), 0);
    int64_t eight[8];
    for (int k = 0; k < 8; k++) eight[k] = (int64_t)1 << 8;
    assert_int_equal(bytes_of(FAS_DTYPE_UINT8, ND, 8, eight), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_named_positions),     cmocka_unit_test(test_all_shapes_all_dtypes),
        cmocka_unit_test(test_edge_sizes),          cmocka_unit_test(test_wide_rows),
        cmocka_unit_test(test_special_values),      cmocka_unit_test(test_large_streaming),
        cmocka_unit_test(test_invalid_descriptors), cmocka_unit_test(test_aliasing),
        cmocka_unit_test(test_tensor_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
