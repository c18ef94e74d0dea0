/* The layout module's internal loaders and storers (fasi_mat_*) and the per-head addressing
 * built on them (fasi_heads_*), against element-wise expectations from the docs/semantics.md §7
 * index formula written out here, with the kernel table of every level available (table()). */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fas_test.h"

#include "api/dispatch.h"
#include "common/isa.h"
#include "layout/layout.h"
#include "problem/problem.h"

/* ---- independent model ------------------------------------------------------------------------
 */

static bool is_data(const fast_geom *g, int64_t idx)
{
    /* decode an NZ storage index back to (m, n) and test it against the matrix size */
    int64_t in_mat = idx % (g->m1 * g->n1 * 256);
    int64_t frac = in_mat / 256, within = in_mat % 256;
    int64_t nb = frac / g->m1, mb = frac % g->m1;
    int64_t m = mb * 16 + within / 16, n = nb * 16 + within % 16;
    return m < g->m && n < g->n;
}

/* Stored element -> fp32, via the public scalar converters. */
static float to_f32(fas_dtype dt, uint32_t bits)
{
    float f;
    switch (dt) {
    case FAS_DTYPE_FLOAT16: return fas_half_to_float((uint16_t)bits);
    case FAS_DTYPE_BF16: return fas_bf16_to_float((uint16_t)bits);
    case FAS_DTYPE_UINT8: return (float)bits;
    default: memcpy(&f, &bits, 4); return f;
    }
}

/* fp32 -> stored element bits (UINT8 only for integral 0..255 inputs). */
static uint32_t from_f32(fas_dtype dt, float x)
{
    uint32_t u;
    switch (dt) {
    case FAS_DTYPE_FLOAT16: return fas_float_to_half(x);
    case FAS_DTYPE_BF16: return fas_float_to_bf16(x);
    case FAS_DTYPE_UINT8: return (uint32_t)x;
    default: memcpy(&u, &x, 4); return u;
    }
}

/* ---- test tensors -----------------------------------------------------------------------------
 */

typedef struct tmat {
    fas_tensor t;
    fasi_mat m;
    fast_geom g;
    bool nz;
    int64_t elems;
} tmat;

static uint32_t random_bits(fast_rng *r, fas_dtype dt)
{
    uint64_t x = fast_rng_u64(r);
    return fast_elem_size(dt) == 1   ? (uint32_t)(x & 0xff)
           : fast_elem_size(dt) == 2 ? (uint32_t)(x & 0xffff)
                                     : (uint32_t)x;
}

/* Storage filled with random bits everywhere (padding included). */
static tmat tmat_make(fas_dtype dt, bool nz, int ndim, const int64_t *dims, fast_rng *r)
{
    tmat x;
    memset(&x, 0, sizeof x);
    x.t.dtype = dt;
    x.t.format = nz ? FAS_FORMAT_FRACTAL_NZ : FAS_FORMAT_ND;
    x.t.ndim = ndim;
    for (int i = 0; i < ndim; i++) x.t.dims[i] = dims[i];
    x.g = fast_geom_of(ndim, dims);
    x.nz = nz;
    x.elems = fast_storage_elems(&x.g, nz);
    assert_int_equal(fas_tensor_bytes(&x.t), (size_t)x.elems * fast_elem_size(dt));
    x.t.data = malloc((size_t)x.elems * fast_elem_size(dt));
    assert_non_null(x.t.data);
    for (int64_t i = 0; i < x.elems; i++) fast_put_bits(x.t.data, dt, i, random_bits(r, dt));
    fasi_mat_init(&x.m, &x.t);
    return x;
}

static void tmat_free(tmat *x) { free(x->t.data); }

/* The kernel table of the which-th level available here (cyclically; 0 is portable), so that
 * the random cases go through the strided conversion kernels of every level this CPU has:
 * portable, AVX2 and AVX-512 on x86-64, portable and NEON on aarch64. */
static const fasi_kernels *table(int which)
{
    const fasi_kernels *avail[FASI_ISA_COUNT];
    int n = 0;
    for (int i = 0; i < FASI_ISA_COUNT; i++)
        if (fasi_isa_available((fasi_isa)i)) avail[n++] = fasi_kernels_for((fasi_isa)i);
    assert_true(n >= 1 && avail[0] != NULL && avail[0]->isa == FASI_ISA_PORTABLE);
    const fasi_kernels *k = avail[which % n];
    assert_non_null(k);
    return k;
}

static const int64_t sizes[] = {1, 2, 15, 16, 17, 31, 32, 33, 40, 64, 70};
#define NSIZES ((int)(sizeof sizes / sizeof sizes[0]))
static const fas_dtype all_dtypes[] = {FAS_DTYPE_FLOAT16, FAS_DTYPE_FLOAT, FAS_DTYPE_BF16,
                                       FAS_DTYPE_UINT8};

/* A random [start, start+len) inside [0, n): sometimes the whole range, sometimes 16-aligned. */
static void random_range(fast_rng *r, int64_t n, int64_t *start, int64_t *len)
{
    int kind = (int)fast_rng_int(r, 0, 5);
    if (kind == 0) {
        *start = 0;
        *len = n;
        return;
    }
    *start = fast_rng_int(r, 0, n - 1);
    if (kind == 1) *start &= ~(int64_t)15;
    *len = fast_rng_int(r, 1, n - *start);
}

/* ---- geometry ---------------------------------------------------------------------------------
 */

static void test_mat_init(void **state)
{
    (void)state;
    struct {
        int ndim;
        int64_t dims[8];
        int64_t batch, rows, cols;
    } cases[] = {
        {0, {0}, 1, 1, 1},
        {1, {37}, 1, 37, 1},
        {2, {17, 33}, 1, 17, 33},
        {3, {4, 1, 16}, 4, 1, 16},
        {4, {2, 3, 31, 5}, 6, 31, 5},
        {8, {2, 1, 3, 1, 2, 1, 7, 9}, 12, 7, 9},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int nz = 0; nz < 2; nz++) {
            fas_tensor t;
            memset(&t, 0, sizeof t);
            t.dtype = FAS_DTYPE_FLOAT16;
            t.format = nz ? FAS_FORMAT_FRACTAL_NZ : FAS_FORMAT_ND;
            t.ndim = cases[i].ndim;
            memcpy(t.dims, cases[i].dims, sizeof t.dims);
            fasi_mat m;
            fasi_mat_init(&m, &t);
            assert_int_equal(m.batch, cases[i].batch);
            assert_int_equal(m.rows, cases[i].rows);
            assert_int_equal(m.cols, cases[i].cols);
            assert_int_equal(m.m1, (cases[i].rows + 15) / 16);
            assert_int_equal(m.n1, (cases[i].cols + 15) / 16);
            assert_int_equal(m.mat_elems, nz ? m.m1 * m.n1 * 256 : m.rows * m.cols);
            assert_int_equal(m.nz, nz);
            fast_geom g = fast_geom_of(t.ndim, t.dims);
            for (int64_t b = 0; b < g.batch; b++)
                for (int64_t r = 0; r < g.m; r++)
                    for (int64_t c = 0; c < g.n; c++)
                        assert_int_equal(fasi_mat_index(&m, b, r, c),
                                         fast_storage_index(&g, nz, b, r, c));
        }
    assert_int_equal(fasi_dtype_size(FAS_DTYPE_FLOAT), 4);
    assert_int_equal(fasi_dtype_size(FAS_DTYPE_FLOAT16), 2);
    assert_int_equal(fasi_dtype_size(FAS_DTYPE_BF16), 2);
    assert_int_equal(fasi_dtype_size(FAS_DTYPE_UINT8), 1);
    assert_int_equal(fasi_dtype_size((fas_dtype)3), 0);
}

/* ---- fasi_mat_load_f32 ------------------------------------------------------------------------
 */

/* One random load: every element of the rectangle against the stored element it names, and the
 * bytes of dst between and after the rectangle's rows untouched. */
static void one_load(fast_rng *r, const fasi_kernels *k, fas_dtype dt, bool nz, bool trans)
{
    int64_t dims[3] = {fast_rng_int(r, 1, 3), sizes[fast_rng_int(r, 0, NSIZES - 1)],
                       sizes[fast_rng_int(r, 0, NSIZES - 1)]};
    tmat x = tmat_make(dt, nz, 3, dims, r);
    int64_t b = fast_rng_int(r, 0, x.g.batch - 1);
    int64_t lrows = trans ? x.g.n : x.g.m, lcols = trans ? x.g.m : x.g.n;
    int64_t r0, nr, c0, nc;
    random_range(r, lrows, &r0, &nr);
    random_range(r, lcols, &c0, &nc);
    int64_t ldd = nc + fast_rng_int(r, 0, 3) * (int)fast_rng_int(r, 0, 1) + 1;
    size_t n = (size_t)(nr * ldd);
    float *dst = malloc(n * sizeof *dst), *ref = malloc(n * sizeof *ref);
    assert_true(dst && ref);
    fast_canary_fill(ref, n * sizeof *ref);
    memcpy(dst, ref, n * sizeof *dst);

    fasi_mat_load_f32(k, &x.m, b, trans, r0, nr, c0, nc, dst, ldd);

    for (int64_t i = 0; i < nr; i++)
        for (int64_t j = 0; j < ldd; j++) {
            uint32_t got = fast_f32_bits(dst[i * ldd + j]);
            uint32_t want;
            if (j < nc) {
                int64_t sr = trans ? c0 + j : r0 + i, sc = trans ? r0 + i : c0 + j;
                want = fast_f32_bits(to_f32(
                    dt, fast_get_bits(x.t.data, dt, fast_storage_index(&x.g, nz, b, sr, sc))));
            } else {
                want = fast_f32_bits(ref[i * ldd + j]);
            }
            if (got != want) {
                printf("  load dtype %d %s trans %d [%lld,%lld,%lld] b %lld rect r0 %lld nr %lld "
                       "c0 %lld nc %lld ldd %lld: dst[%lld][%lld] = 0x%08x, expected 0x%08x\n",
                       (int)dt, nz ? "NZ" : "ND", (int)trans, (long long)dims[0],
                       (long long)dims[1], (long long)dims[2], (long long)b, (long long)r0,
                       (long long)nr, (long long)c0, (long long)nc, (long long)ldd, (long long)i,
                       (long long)j, got, want);
                fail();
            }
        }
    free(dst);
    free(ref);
    tmat_free(&x);
}

static void test_load_f32(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("layout_load_f32", 0x1a7001));
    for (int it = 0; it < 3000; it++) {
        fas_dtype dt = all_dtypes[it % 4];
        bool nz = (it / 4) % 2, trans = (it / 8) % 2;
        one_load(&r, table(it / 16), dt, nz, trans);
    }
}

/* ---- fasi_mat_store_f32 -----------------------------------------------------------------------
 */

static float random_value(fast_rng *r, fas_dtype dt)
{
    if (dt == FAS_DTYPE_UINT8) return (float)fast_rng_int(r, 0, 255);
    int kind = (int)fast_rng_int(r, 0, 9);
    if (kind == 0) {
        /* any bit pattern: NaNs, infinities, subnormals, huge values */
        uint32_t u = (uint32_t)fast_rng_u64(r);
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    return (float)fast_rng_uniform(r, -70000.0, 70000.0) * (kind < 5 ? 1e-4f : 1.0f);
}

/* One random store: the rectangle holds the rounded values, every other storage element
 * (padding included) is unchanged. */
static void one_store(fast_rng *r, const fasi_kernels *k, fas_dtype dt, bool nz)
{
    int64_t dims[3] = {fast_rng_int(r, 1, 3), sizes[fast_rng_int(r, 0, NSIZES - 1)],
                       sizes[fast_rng_int(r, 0, NSIZES - 1)]};
    tmat x = tmat_make(dt, nz, 3, dims, r);
    size_t bytes = (size_t)x.elems * fast_elem_size(dt);
    unsigned char *orig = malloc(bytes);
    assert_non_null(orig);
    memcpy(orig, x.t.data, bytes);
    int64_t b = fast_rng_int(r, 0, x.g.batch - 1);
    int64_t r0, nr, c0, nc;
    random_range(r, x.g.m, &r0, &nr);
    random_range(r, x.g.n, &c0, &nc);
    int64_t lds = nc + fast_rng_int(r, 0, 4);
    float *src = malloc((size_t)(nr * lds) * sizeof *src);
    assert_non_null(src);
    for (int64_t i = 0; i < nr * lds; i++) src[i] = random_value(r, dt);

    fasi_mat_store_f32(k, &x.m, b, r0, nr, c0, nc, src, lds);

    for (int64_t i = 0; i < nr; i++)
        for (int64_t j = 0; j < nc; j++)
            fast_put_bits(orig, dt, fast_storage_index(&x.g, nz, b, r0 + i, c0 + j),
                          from_f32(dt, src[i * lds + j]));
    for (int64_t e = 0; e < x.elems; e++) {
        if (fast_get_bits(x.t.data, dt, e) != fast_get_bits(orig, dt, e)) {
            printf("  store dtype %d %s [%lld,%lld,%lld] b %lld rect r0 %lld nr %lld c0 %lld nc "
                   "%lld: storage[%lld] = 0x%x, expected 0x%x\n",
                   (int)dt, nz ? "NZ" : "ND", (long long)dims[0], (long long)dims[1],
                   (long long)dims[2], (long long)b, (long long)r0, (long long)nr, (long long)c0,
                   (long long)nc, (long long)e, (unsigned)fast_get_bits(x.t.data, dt, e),
                   (unsigned)fast_get_bits(orig, dt, e));
            fail();
        }
    }
    free(src);
    free(orig);
    tmat_free(&x);
}

static void test_store_f32(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("layout_store_f32", 0x1a7002));
    for (int it = 0; it < 2000; it++)
        one_store(&r, table(it / 8), all_dtypes[it % 4], (it / 4) % 2);
}

/* UINT8 stores from fp32 round to nearest and saturate; NaN gives 0. */
static void test_store_f32_u8_saturates(void **state)
{
    (void)state;
    uint8_t data[8];
    fas_tensor t = {data, FAS_DTYPE_UINT8, FAS_FORMAT_ND, 2, {1, 8}};
    fasi_mat m;
    fasi_mat_init(&m, &t);
    const float in[8] = {-1.0f, 0.4f, 0.6f, 1.0f, 254.6f, 255.0f, 1e9f, NAN};
    const uint8_t want[8] = {0, 0, 1, 1, 255, 255, 255, 0};
    fasi_mat_store_f32(table(0), &m, 0, 0, 1, 0, 8, in, 8);
    assert_memory_equal(data, want, 8);
}

/* Stores into NZ and ND tensors big enough for streaming stores (FASI_STREAM_MIN_BYTES): every
 * dtype through fasi_mat_store_f32 and bytes through fasi_mat_store_u8, rectangles with partial
 * fractal rows and columns (NZ) and rows at every byte alignment (ND), both kernel tables; the
 * storage must equal a model that applied the same stores element by element. */
static void test_streaming_stores(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("layout_stream", 0x1a7006));
    for (int kind = 0; kind < 8; kind++) {
        fas_dtype dt = all_dtypes[kind % 4];
        bool nz = kind < 4;
        size_t es = fast_elem_size(dt);
        /* batch 2 of rows x 1501 columns (1504 stored in NZ), just over the threshold */
        int64_t rows = (int64_t)(FASI_STREAM_MIN_BYTES / (2 * 1504 * es)) + 17;
        int64_t dims[3] = {2, rows, 1501};
        tmat x = tmat_make(dt, nz, 3, dims, &r);
        size_t bytes = (size_t)x.elems * es;
        assert_true(bytes >= FASI_STREAM_MIN_BYTES);
        unsigned char *model = malloc(bytes);
        assert_non_null(model);
        memcpy(model, x.t.data, bytes);
        for (int it = 0; it < 24; it++) {
            int64_t b = fast_rng_int(&r, 0, 1), r0, nr, c0, nc;
            random_range(&r, x.g.m, &r0, &nr);
            random_range(&r, x.g.n, &c0, &nc);
            if (nr > 300) nr = 300;
            if (nc > 300) nc = 300;
            int64_t ld = nc + fast_rng_int(&r, 0, 3);
            if (dt == FAS_DTYPE_UINT8 && it % 2) {
                uint8_t *buf = malloc((size_t)(nr * ld));
                assert_non_null(buf);
                for (int64_t i = 0; i < nr * ld; i++) buf[i] = (uint8_t)fast_rng_u64(&r);
                fasi_mat_store_u8(&x.m, b, r0, nr, c0, nc, buf, ld);
                for (int64_t i = 0; i < nr; i++)
                    for (int64_t j = 0; j < nc; j++)
                        model[fast_storage_index(&x.g, nz, b, r0 + i, c0 + j)] = buf[i * ld + j];
                free(buf);
                continue;
            }
            float *src = malloc((size_t)(nr * ld) * sizeof *src);
            assert_non_null(src);
            for (int64_t i = 0; i < nr * ld; i++) src[i] = random_value(&r, dt);
            fasi_mat_store_f32(table(it), &x.m, b, r0, nr, c0, nc, src, ld);
            for (int64_t i = 0; i < nr; i++)
                for (int64_t j = 0; j < nc; j++)
                    fast_put_bits(model, dt, fast_storage_index(&x.g, nz, b, r0 + i, c0 + j),
                                  from_f32(dt, src[i * ld + j]));
            free(src);
        }
        if (memcmp(model, x.t.data, bytes) != 0) {
            for (int64_t e = 0; e < x.elems; e++) {
                if (fast_get_bits(x.t.data, dt, e) != fast_get_bits(model, dt, e)) {
                    printf("  %s dtype %d: storage[%lld] = 0x%x, expected 0x%x\n", nz ? "NZ" : "ND",
                           (int)dt, (long long)e, (unsigned)fast_get_bits(x.t.data, dt, e),
                           (unsigned)fast_get_bits(model, dt, e));
                    break;
                }
            }
            fail();
        }
        free(model);
        tmat_free(&x);
    }
}

/* ---- byte loaders -----------------------------------------------------------------------------
 */

static void test_u8_rectangles(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("layout_u8", 0x1a7003));
    for (int it = 0; it < 2000; it++) {
        bool nz = it % 2;
        int64_t dims[3] = {fast_rng_int(&r, 1, 3), sizes[fast_rng_int(&r, 0, NSIZES - 1)],
                           sizes[fast_rng_int(&r, 0, NSIZES - 1)]};
        tmat x = tmat_make(FAS_DTYPE_UINT8, nz, 3, dims, &r);
        int64_t b = fast_rng_int(&r, 0, x.g.batch - 1);
        int64_t r0, nr, c0, nc;
        random_range(&r, x.g.m, &r0, &nr);
        random_range(&r, x.g.n, &c0, &nc);
        int64_t ld = nc + fast_rng_int(&r, 0, 5);
        uint8_t *buf = malloc((size_t)(nr * ld)), *ref = malloc((size_t)(nr * ld));
        uint8_t *orig = malloc((size_t)x.elems);
        assert_true(buf && ref && orig);
        const uint8_t *data = x.t.data;

        /* load */
        fast_canary_fill(ref, (size_t)(nr * ld));
        memcpy(buf, ref, (size_t)(nr * ld));
        fasi_mat_load_u8(&x.m, b, r0, nr, c0, nc, buf, ld);
        for (int64_t i = 0; i < nr; i++)
            for (int64_t j = 0; j < ld; j++) {
                uint8_t want = j < nc ? data[fast_storage_index(&x.g, nz, b, r0 + i, c0 + j)]
                                      : ref[i * ld + j];
                if (buf[i * ld + j] != want) {
                    printf("  load_u8 %s it %d: [%lld][%lld]\n", nz ? "NZ" : "ND", it, (long long)i,
                           (long long)j);
                    fail();
                }
            }
        /* store */
        for (int64_t i = 0; i < nr * ld; i++) buf[i] = (uint8_t)fast_rng_u64(&r);
        memcpy(orig, data, (size_t)x.elems);
        fasi_mat_store_u8(&x.m, b, r0, nr, c0, nc, buf, ld);
        for (int64_t i = 0; i < nr; i++)
            for (int64_t j = 0; j < nc; j++)
                orig[fast_storage_index(&x.g, nz, b, r0 + i, c0 + j)] = buf[i * ld + j];
        if (memcmp(orig, data, (size_t)x.elems) != 0) {
            printf("  store_u8 %s it %d: storage differs\n", nz ? "NZ" : "ND", it);
            fail();
        }
        free(buf);
        free(ref);
        free(orig);
        tmat_free(&x);
    }
}

/* ---- padding ----------------------------------------------------------------------------------
 */

static void test_zero_padding(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("layout_padding", 0x1a7004));
    for (int it = 0; it < 400; it++) {
        fas_dtype dt = all_dtypes[it % 4];
        bool nz = (it / 4) % 4 != 0;
        int ndim = (int)fast_rng_int(&r, 0, 4);
        int64_t dims[4];
        for (int i = 0; i < ndim; i++)
            dims[i] =
                i < ndim - 2 ? fast_rng_int(&r, 1, 3) : sizes[fast_rng_int(&r, 0, NSIZES - 1)];
        tmat x = tmat_make(dt, nz, ndim, dims, &r);
        size_t bytes = (size_t)x.elems * fast_elem_size(dt);
        unsigned char *orig = malloc(bytes);
        assert_non_null(orig);
        memcpy(orig, x.t.data, bytes);
        fasi_mat_zero_padding(&x.m);
        for (int64_t e = 0; e < x.elems; e++) {
            uint32_t want = (!nz || is_data(&x.g, e)) ? fast_get_bits(orig, dt, e) : 0;
            if (fast_get_bits(x.t.data, dt, e) != want) {
                printf("  zero_padding ndim %d it %d: element %lld\n", ndim, it, (long long)e);
                fail();
            }
        }
        free(orig);
        tmat_free(&x);
    }
}

/* ---- element access for the reference ---------------------------------------------------------
 */

static void test_get_set(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("layout_get_set", 0x1a7005));
    for (int it = 0; it < 200; it++) {
        fas_dtype dt = all_dtypes[it % 4];
        bool nz = (it / 4) % 2;
        int64_t dims[3] = {2, sizes[fast_rng_int(&r, 0, NSIZES - 1)],
                           sizes[fast_rng_int(&r, 0, NSIZES - 1)]};
        tmat x = tmat_make(dt, nz, 3, dims, &r);
        for (int rep = 0; rep < 20; rep++) {
            int64_t b = fast_rng_int(&r, 0, 1), i = fast_rng_int(&r, 0, x.g.m - 1),
                    j = fast_rng_int(&r, 0, x.g.n - 1);
            int64_t e = fast_storage_index(&x.g, nz, b, i, j);
            double got = fasi_mat_get(&x.m, b, i, j);
            float want = to_f32(dt, fast_get_bits(x.t.data, dt, e));
            assert_true((isnan(got) && isnan(want)) || got == (double)want);
            /* values exactly representable in fp32 round once, like the scalar converters */
            float v = dt == FAS_DTYPE_UINT8 ? (float)fast_rng_int(&r, 0, 255)
                                            : (float)fast_rng_uniform(&r, -1000.0, 1000.0);
            fasi_mat_set(&x.m, b, i, j, (double)v);
            assert_int_equal(fast_get_bits(x.t.data, dt, e), from_f32(dt, v));
        }
        tmat_free(&x);
    }
}

/* ---- per-head addressing (common/heads.c) -----------------------------------------------------
 */

/* Stored (matrix, row, col) of head (b, n) element (r, c), written out from problem.h's
 * description of the four layouts. */
static void head_locate(bool merged, bool trans, int64_t heads, int64_t rows, int64_t cols,
                        int64_t b, int64_t n, int64_t r, int64_t c, int64_t *mat, int64_t *sr,
                        int64_t *sc)
{
    if (merged) {
        *mat = 0;
        int64_t R = b * rows + r, C = n * cols + c;
        *sr = trans ? C : R;
        *sc = trans ? R : C;
    } else {
        *mat = b * heads + n;
        *sr = trans ? c : r;
        *sc = trans ? r : c;
    }
}

static void test_heads(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("layout_heads", 0x1a7006));
    for (int it = 0; it < 1200; it++) {
        fas_dtype dt = all_dtypes[it % 3]; /* float dtypes */
        bool nz = (it / 3) % 2, merged = (it / 6) % 2, trans = (it / 12) % 2;
        const fasi_kernels *k = table(it / 24);
        int64_t B = fast_rng_int(&r, 1, 3), N = fast_rng_int(&r, 1, 3);
        int64_t rows = sizes[fast_rng_int(&r, 0, NSIZES - 2)],
                cols = sizes[fast_rng_int(&r, 0, NSIZES - 2)];
        int64_t dims[4];
        int ndim;
        if (merged) {
            ndim = 2;
            dims[0] = trans ? N * cols : B * rows;
            dims[1] = trans ? B * rows : N * cols;
        } else {
            ndim = 4;
            dims[0] = B;
            dims[1] = N;
            dims[2] = trans ? cols : rows;
            dims[3] = trans ? rows : cols;
        }
        tmat x = tmat_make(dt, nz, ndim, dims, &r);
        fasi_heads h;
        memset(&h, 0, sizeof h);
        h.mat = x.m;
        h.merged = merged;
        h.trans = trans;
        h.heads = N;
        h.rows = rows;
        h.cols = cols;
        int64_t b = fast_rng_int(&r, 0, B - 1), n = fast_rng_int(&r, 0, N - 1);
        int64_t r0, nr, c0, nc;
        random_range(&r, rows, &r0, &nr);
        random_range(&r, cols, &c0, &nc);
        int64_t ld = nc + fast_rng_int(&r, 0, 3);

        /* load */
        float *buf = malloc((size_t)(nr * ld) * sizeof *buf);
        assert_non_null(buf);
        fasi_heads_load_f32(k, &h, b, n, r0, nr, c0, nc, buf, ld);
        for (int64_t i = 0; i < nr; i++)
            for (int64_t j = 0; j < nc; j++) {
                int64_t mat, sr, sc;
                head_locate(merged, trans, N, rows, cols, b, n, r0 + i, c0 + j, &mat, &sr, &sc);
                uint32_t want = fast_f32_bits(to_f32(
                    dt, fast_get_bits(x.t.data, dt, fast_storage_index(&x.g, nz, mat, sr, sc))));
                if (fast_f32_bits(buf[i * ld + j]) != want) {
                    printf("  heads load %s merged %d trans %d B %lld N %lld rows %lld cols %lld "
                           "head (%lld,%lld) rect %lld+%lld x %lld+%lld: [%lld][%lld]\n",
                           nz ? "NZ" : "ND", (int)merged, (int)trans, (long long)B, (long long)N,
                           (long long)rows, (long long)cols, (long long)b, (long long)n,
                           (long long)r0, (long long)nr, (long long)c0, (long long)nc, (long long)i,
                           (long long)j);
                    fail();
                }
                double g = fasi_heads_get(&h, b, n, r0 + i, c0 + j);
                float wf = to_f32(
                    dt, fast_get_bits(x.t.data, dt, fast_storage_index(&x.g, nz, mat, sr, sc)));
                assert_true((isnan(g) && isnan(wf)) || g == (double)wf);
            }

        /* store (untransposed layouts only, by contract) */
        if (!trans) {
            size_t bytes = (size_t)x.elems * fast_elem_size(dt);
            unsigned char *orig = malloc(bytes);
            assert_non_null(orig);
            memcpy(orig, x.t.data, bytes);
            for (int64_t i = 0; i < nr * ld; i++) buf[i] = random_value(&r, dt);
            fasi_heads_store_f32(k, &h, b, n, r0, nr, c0, nc, buf, ld);
            for (int64_t i = 0; i < nr; i++)
                for (int64_t j = 0; j < nc; j++) {
                    int64_t mat, sr, sc;
                    head_locate(merged, trans, N, rows, cols, b, n, r0 + i, c0 + j, &mat, &sr, &sc);
                    fast_put_bits(orig, dt, fast_storage_index(&x.g, nz, mat, sr, sc),
                                  from_f32(dt, buf[i * ld + j]));
                }
            if (memcmp(orig, x.t.data, bytes) != 0) {
                printf("  heads store %s merged %d: storage differs\n", nz ? "NZ" : "ND",
                       (int)merged);
                fail();
            }
            free(orig);
        }
        /* element set, transposed layouts included */
        {
            int64_t i = fast_rng_int(&r, 0, rows - 1), j = fast_rng_int(&r, 0, cols - 1), mat, sr,
                    sc;
            head_locate(merged, trans, N, rows, cols, b, n, i, j, &mat, &sr, &sc);
            fasi_heads_set(&h, b, n, i, j, 0.5);
            assert_int_equal(fast_get_bits(x.t.data, dt, fast_storage_index(&x.g, nz, mat, sr, sc)),
                             from_f32(dt, 0.5f));
        }
        free(buf);
        tmat_free(&x);
    }
}

/* ---- whole-tensor conversion with each kernel table ------------------------------------------ */

/* fasi_mat_convert is also reached through fas_format_cast (tests/test_format_cast.c), which
 * always uses the best table; here every available level's table gets the same element-wise
 * check. */
static void test_convert_tables(void **state)
{
    (void)state;
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("layout_convert", 0x1a7007));
    static const fas_dtype pairs[][2] = {
        {FAS_DTYPE_FLOAT, FAS_DTYPE_FLOAT16},   {FAS_DTYPE_FLOAT16, FAS_DTYPE_FLOAT},
        {FAS_DTYPE_FLOAT, FAS_DTYPE_BF16},      {FAS_DTYPE_BF16, FAS_DTYPE_FLOAT16},
        {FAS_DTYPE_FLOAT16, FAS_DTYPE_FLOAT16}, {FAS_DTYPE_UINT8, FAS_DTYPE_UINT8}};
    for (int it = 0; it < 240; it++) {
        const fasi_kernels *k = table(it);
        fas_dtype a = pairs[(it / 2) % 6][0], bdt = pairs[(it / 2) % 6][1];
        bool snz = (it / 12) % 2, dnz = (it / 24) % 2;
        int64_t dims[3] = {fast_rng_int(&r, 1, 2), sizes[fast_rng_int(&r, 0, NSIZES - 1)],
                           fast_rng_int(&r, 1, 300)};
        tmat s = tmat_make(a, snz, 3, dims, &r);
        tmat d = tmat_make(bdt, dnz, 3, dims, &r);
        fasi_mat_convert(k, &s.m, &d.m);
        for (int64_t e = 0; e < d.elems; e++) {
            if (dnz && !is_data(&d.g, e)) {
                assert_int_equal(fast_get_bits(d.t.data, bdt, e), 0);
            }
        }
        for (int64_t b = 0; b < s.g.batch; b++)
            for (int64_t i = 0; i < s.g.m; i++)
                for (int64_t j = 0; j < s.g.n; j++) {
                    uint32_t sb =
                        fast_get_bits(s.t.data, a, fast_storage_index(&s.g, snz, b, i, j));
                    uint32_t want = a == bdt ? sb : from_f32(bdt, to_f32(a, sb));
                    uint32_t got =
                        fast_get_bits(d.t.data, bdt, fast_storage_index(&d.g, dnz, b, i, j));
                    if (got != want) {
                        printf(
                            "  convert %d->%d %d->%d table %s (%lld,%lld,%lld): 0x%x want 0x%x\n",
                            (int)a, (int)bdt, (int)snz, (int)dnz, k->name, (long long)b,
                            (long long)i, (long long)j, got, want);
                        fail();
                    }
                }
        tmat_free(&s);
        tmat_free(&d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mat_init),
        cmocka_unit_test(test_load_f32),
        cmocka_unit_test(test_store_f32),
        cmocka_unit_test(test_store_f32_u8_saturates),
        cmocka_unit_test(test_streaming_stores),
        cmocka_unit_test(test_u8_rectangles),
        cmocka_unit_test(test_zero_padding),
        cmocka_unit_test(test_get_set),
        cmocka_unit_test(test_heads),
        cmocka_unit_test(test_convert_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
