/* fuzz_descriptor: arbitrary fas_tensor descriptors (dtype, format, ndim and dims straight from
 * the input, huge and negative values included) through fas_tensor_bytes,
 * fas_attention_output_dims, fas_attention_grad_dims and fas_format_cast.
 *
 * Invariants (each violation traps):
 * - fas_tensor_bytes equals an independent oracle (0 for an invalid descriptor or a size above
 *   min(SIZE_MAX, INT64_MAX) bytes) and never disturbs fas_last_error();
 * - every status is in 0..10, and fas_last_error() is non-empty exactly when it is not FAS_OK;
 * - the dims helpers succeed exactly when the oracle finds q, k, v consistent (FAS_ERR_UNSUPPORTED
 *   when only a per-head size exceeds INT_MAX, FAS_ERR_VALUE when only out_rank is wrong),
 *   fill the dims the oracle predicts, leave data and format alone, and on failure leave every
 *   output descriptor byte unchanged;
 * - fas_format_cast between two descriptors (buffers of exactly fas_tensor_bytes() bytes when
 *   that is at most 64 KiB, a 1-byte buffer or NULL otherwise, or a destination overlapping the
 *   source) succeeds exactly when both are valid (fas_tensor_bytes > 0), non-NULL, of equal
 *   dims, UINT8 on both sides or neither, and not partially overlapping; on failure no byte of
 *   the destination changes; the source never changes; NZ padding of the result is zero. */
#include <limits.h>

#include "fuzz_util.h"

enum { CAST_LIMIT = 64 * 1024 };

/* ---- descriptor decoding ------------------------------------------------------------------ */

static int64_t read_dim(fz_reader *r)
{
    /* boundaries: zero, negative, fractal edges, the BLAS int range, int64 overflow of a
     * product or of NZ rounding, sqrt(2^63) */
    static const int64_t special[16] = {0,
                                        -1,
                                        16,
                                        17,
                                        15,
                                        32,
                                        1,
                                        65536,
                                        INT_MAX,
                                        (int64_t)INT_MAX + 1,
                                        INT64_C(1) << 32,
                                        INT64_C(1) << 40,
                                        INT64_MAX,
                                        INT64_MIN,
                                        INT64_MAX / 16 + 1,
                                        INT64_C(3037000500)};
    uint8_t b = fz_u8(r);
    if (b < 0x80) return 1 + b % 40;
    if (b < 0xc0) return special[(b - 0x80) % 16];
    return (int64_t)fz_u64(r);
}

static void read_fresh(fz_reader *r, fas_tensor *t)
{
    static const int dtypes[6] = {FAS_DTYPE_FLOAT16, FAS_DTYPE_FLOAT16, FAS_DTYPE_FLOAT,
                                  FAS_DTYPE_BF16,    FAS_DTYPE_UINT8,   2};
    static const int formats[6] = {
        FAS_FORMAT_ND, FAS_FORMAT_FRACTAL_NZ, FAS_FORMAT_ND, FAS_FORMAT_FRACTAL_NZ, 0, 3};
    uint8_t b = fz_u8(r);
    t->dtype = (fas_dtype)(b < 0xf0 ? dtypes[b % 6] : (int)fz_u32(r));
    b = fz_u8(r);
    t->format = (fas_format)(b < 0xf0 ? formats[b % 6] : (int)fz_u32(r));
    b = fz_u8(r);
    t->ndim = b < 0xf0 ? b % 11 - 1 : (int)fz_u32(r);
    int n = t->ndim < 0 ? 0 : t->ndim > FAS_MAX_DIMS ? FAS_MAX_DIMS : t->ndim;
    for (int i = 0; i < FAS_MAX_DIMS; i++)
        t->dims[i] = i < n ? read_dim(r) : INT64_C(0x7777777777777777);
}

/* mode: fresh, a copy of prev, prev's shape with a fresh dtype/format, or prev with one dim
 * replaced, so that consistent q/k/v and equal-dims cast pairs are common. */
static void read_desc(fz_reader *r, fas_tensor *t, const fas_tensor *prev)
{
    memset(t, 0, sizeof *t);
    uint8_t mode = prev ? fz_u8(r) % 4 : 0;
    if (mode == 0) {
        read_fresh(r, t);
        return;
    }
    *t = *prev;
    if (mode == 2) {
        fas_tensor f;
        read_fresh(r, &f);
        t->dtype = f.dtype;
        t->format = f.format;
    } else if (mode == 3) {
        uint8_t i = fz_u8(r);
        t->dims[i % FAS_MAX_DIMS] = read_dim(r);
        if (i & 0x80) { /* swap the last two dims (a transposed operand) */
            if (t->ndim >= 2 && t->ndim <= FAS_MAX_DIMS) {
                int64_t x = t->dims[t->ndim - 1];
                t->dims[t->ndim - 1] = t->dims[t->ndim - 2];
                t->dims[t->ndim - 2] = x;
            }
        }
    }
}

/* ---- oracles ------------------------------------------------------------------------------- */

static size_t dtype_size_of(const fas_tensor *t) { return fz_dtype_size(t->dtype); }

static bool format_ok(const fas_tensor *t)
{
    return t->format == FAS_FORMAT_ND || t->format == FAS_FORMAT_FRACTAL_NZ;
}

/* Storage bytes, or 0 when invalid or above min(SIZE_MAX, INT64_MAX). */
static uint64_t oracle_bytes(const fas_tensor *t)
{
    size_t es = dtype_size_of(t);
    if (!es || !format_ok(t) || t->ndim < 0 || t->ndim > FAS_MAX_DIMS) return 0;
    for (int i = 0; i < t->ndim; i++)
        if (t->dims[i] < 1) return 0;
    uint64_t rows = 1, cols = 1, total = es;
    if (t->ndim == 1) rows = (uint64_t)t->dims[0];
    if (t->ndim >= 2) {
        rows = (uint64_t)t->dims[t->ndim - 2];
        cols = (uint64_t)t->dims[t->ndim - 1];
    }
    if (t->format == FAS_FORMAT_FRACTAL_NZ) { /* < 2^63 + 16: no wrap in uint64_t */
        rows = (rows + 15) / 16 * 16;
        cols = (cols + 15) / 16 * 16;
    }
    if (__builtin_mul_overflow(total, rows, &total) || __builtin_mul_overflow(total, cols, &total))
        return 0;
    for (int i = 0; i < t->ndim - 2; i++)
        if (__builtin_mul_overflow(total, (uint64_t)t->dims[i], &total)) return 0;
    uint64_t limit = SIZE_MAX < INT64_MAX ? SIZE_MAX : INT64_MAX;
    return total <= limit ? total : 0;
}

static bool is_float(const fas_tensor *t)
{
    return t->dtype == FAS_DTYPE_FLOAT16 || t->dtype == FAS_DTYPE_FLOAT ||
           t->dtype == FAS_DTYPE_BF16;
}

typedef struct shape {
    int64_t b, n, sq, sk, d, dv;
} shape;

typedef enum verdict { V_OK, V_BAD, V_BLAS } verdict;

/* The operator's shape rules (fused_attention.h) for q, k, v. */
static verdict oracle_shape(const fas_tensor *q, const fas_tensor *k, const fas_tensor *v, bool qt,
                            bool kt, bool ta, bool vt, shape *s)
{
    const fas_tensor *in[3] = {q, k, v};
    for (int i = 0; i < 3; i++)
        if (!in[i] || !oracle_bytes(in[i]) || !is_float(in[i]) || in[i]->ndim != 4) return V_BAD;
    s->b = q->dims[0];
    s->n = q->dims[1];
    s->sq = qt ? q->dims[3] : q->dims[2];
    s->d = qt ? q->dims[2] : q->dims[3];
    s->sk = kt ? k->dims[3] : k->dims[2];
    s->dv = vt ? v->dims[2] : v->dims[3];
    if (k->dims[0] != s->b || k->dims[1] != s->n || (kt ? k->dims[2] : k->dims[3]) != s->d)
        return V_BAD;
    if (v->dims[0] != s->b || v->dims[1] != s->n || (vt ? v->dims[3] : v->dims[2]) != s->sk)
        return V_BAD;
    if (ta && s->sq != s->sk) return V_BAD;
    if (s->sq > INT_MAX || s->sk > INT_MAX || s->d > INT_MAX || s->dv > INT_MAX) return V_BLAS;
    return V_OK;
}

static void expect_dims(const fas_tensor *t, const fas_tensor *before, fas_dtype dt, int ndim,
                        const int64_t *dims, const char *what)
{
    FZ_CHECK(t->data == before->data && t->format == before->format, "%s: data or format changed",
             what);
    FZ_CHECK(t->dtype == dt && t->ndim == ndim, "%s: dtype %d ndim %d, expected %d and %d", what,
             (int)t->dtype, t->ndim, (int)dt, ndim);
    for (int i = 0; i < ndim; i++)
        FZ_CHECK(t->dims[i] == dims[i], "%s: dims[%d] is %lld, expected %lld", what, i,
                 (long long)t->dims[i], (long long)dims[i]);
}

/* ---- the harness --------------------------------------------------------------------------- */

static void check_dims_helpers(fz_reader *r, const fas_tensor *d)
{
    uint8_t fl = fz_u8(r), fl2 = fz_u8(r);
    bool qt = fl & 1, kt = fl & 2, ta = fl & 4, tb = fl & 8;
    const fas_tensor *q = (fl2 & 0x70) == 0x10 ? NULL : &d[0];
    const fas_tensor *k = (fl2 & 0x70) == 0x20 ? NULL : &d[1];
    const fas_tensor *v = (fl2 & 0x70) == 0x30 ? NULL : &d[2];

    fas_tensor outs[3], before[3];
    for (int i = 0; i < 3; i++) {
        memset(&outs[i], 0x5c, sizeof outs[i]);
        outs[i].data = (void *)&outs[i];
        outs[i].format = (fas_format)(i == 0 ? FAS_FORMAT_FRACTAL_NZ : 1234);
        before[i] = outs[i];
    }
    fas_tensor *o0 = (fl & 0x10) ? NULL : &outs[0], *o1 = (fl & 0x20) ? NULL : &outs[1],
               *o2 = (fl & 0x40) ? NULL : &outs[2];

    shape s;
    verdict want = oracle_shape(q, k, v, qt, kt, ta, tb, &s);
    fas_status st = fas_attention_output_dims(q, k, v, qt, kt, ta, tb, o0, o1, o2);
    fz_check_status(st, "fas_attention_output_dims");
    FZ_COUNT(st == FAS_OK     ? "output_dims ok"
             : want == V_BLAS ? "output_dims blas"
                              : "output_dims fail");
    FZ_CHECK((st == FAS_OK) == (want == V_OK), "fas_attention_output_dims returned %s, oracle %d",
             fas_status_string(st), (int)want);
    if (want == V_BLAS) FZ_CHECK(st == FAS_ERR_UNSUPPORTED, "expected FAS_ERR_UNSUPPORTED");
    if (st == FAS_OK) {
        int64_t od[2] = {s.b * s.sq, s.n * s.dv}, pd[4] = {s.b, s.n, s.sq, s.sk};
        if (o0) expect_dims(o0, &before[0], FAS_DTYPE_FLOAT16, 2, od, "attention_score");
        if (o1) expect_dims(o1, &before[1], FAS_DTYPE_FLOAT16, 4, pd, "softmax_output");
        if (o2) expect_dims(o2, &before[2], FAS_DTYPE_UINT8, 4, pd, "drop_mask");
    } else {
        FZ_CHECK(memcmp(outs, before, sizeof outs) == 0, "output descriptors changed on failure");
    }

    for (int i = 0; i < 3; i++) {
        memset(&outs[i], 0xc5, sizeof outs[i]);
        outs[i].data = NULL;
        outs[i].format = FAS_FORMAT_ND;
        before[i] = outs[i];
    }
    uint8_t rk = fz_u8(r);
    int out_rank = rk < 0x80 ? 2 : rk < 0xf0 ? 4 : (int)fz_u32(r);
    bool vt = fl & 0x80;
    want = oracle_shape(q, k, v, qt, kt, false, vt, &s);
    st = fas_attention_grad_dims(q, k, v, qt, kt, vt, out_rank, o0, o1, o2);
    fz_check_status(st, "fas_attention_grad_dims");
    FZ_COUNT(st == FAS_OK ? "grad_dims ok" : "grad_dims fail");
    bool rank_ok = out_rank == 2 || out_rank == 4;
    FZ_CHECK((st == FAS_OK) == (want == V_OK && rank_ok),
             "fas_attention_grad_dims returned %s, oracle %d, out_rank %d", fas_status_string(st),
             (int)want, out_rank);
    if (want == V_BLAS) FZ_CHECK(st == FAS_ERR_UNSUPPORTED, "expected FAS_ERR_UNSUPPORTED");
    if (want == V_OK && !rank_ok) FZ_CHECK(st == FAS_ERR_VALUE, "expected FAS_ERR_VALUE");
    if (st == FAS_OK) {
        int64_t q2[2] = {s.b * s.sq, s.n * s.d}, k2[2] = {s.b * s.sk, s.n * s.d},
                v2[2] = {s.b * s.sk, s.n * s.dv};
        int64_t q4[4] = {s.b, s.n, s.sq, s.d}, k4[4] = {s.b, s.n, s.sk, s.d},
                v4[4] = {s.b, s.n, s.sk, s.dv};
        bool two = out_rank == 2;
        if (o0) expect_dims(o0, &before[0], FAS_DTYPE_FLOAT16, out_rank, two ? q2 : q4, "query_dx");
        if (o1) expect_dims(o1, &before[1], FAS_DTYPE_FLOAT16, out_rank, two ? k2 : k4, "key_dw");
        if (o2) expect_dims(o2, &before[2], FAS_DTYPE_FLOAT16, out_rank, two ? v2 : v4, "value_dw");
    } else {
        FZ_CHECK(memcmp(outs, before, sizeof outs) == 0, "output descriptors changed on failure");
    }
}

static void check_cast(fz_reader *r, fas_tensor src, fas_tensor dst)
{
    uint8_t fl = fz_u8(r), off_sel = fz_u8(r);
    uint64_t sb = oracle_bytes(&src), db = oracle_bytes(&dst);
    bool src_small = sb > 0 && sb <= CAST_LIMIT, dst_small = db > 0 && db <= CAST_LIMIT;
    /* alias mode: dst starts off bytes into src's buffer (off a multiple of 4, < sb) */
    bool alias = (fl & 3) == 3 && src_small && dst_small;
    size_t off = alias ? (size_t)(off_sel * 4u) % (size_t)sb / 4 * 4 : 0;

    unsigned char *sbuf = NULL, *dbuf = NULL;
    size_t sbuf_len = 0, dbuf_len = 0;
    if (alias) {
        sbuf_len = (size_t)sb > off + (size_t)db ? (size_t)sb : off + (size_t)db;
        sbuf = malloc(sbuf_len);
        FZ_CHECK(sbuf != NULL, "out of memory");
        for (size_t i = 0; i < sbuf_len; i++) sbuf[i] = (unsigned char)(i * 37 + fl);
        src.data = sbuf;
        dst.data = sbuf + off;
    } else {
        sbuf_len = src_small ? (size_t)sb : 1;
        dbuf_len = dst_small ? (size_t)db : 1;
        bool src_null = (sb > CAST_LIMIT) || (fl & 4), dst_null = (db > CAST_LIMIT) || (fl & 8);
        if (!src_null) {
            sbuf = malloc(sbuf_len);
            FZ_CHECK(sbuf != NULL, "out of memory");
            for (size_t i = 0; i < sbuf_len; i++) sbuf[i] = (unsigned char)(i * 131 + off_sel);
        }
        if (!dst_null) {
            dbuf = malloc(dbuf_len);
            FZ_CHECK(dbuf != NULL, "out of memory");
            memset(dbuf, 0xa5, dbuf_len);
        }
        src.data = sbuf;
        dst.data = dbuf;
    }
    unsigned char *snap = malloc(sbuf_len + dbuf_len + 1);
    FZ_CHECK(snap != NULL, "out of memory");
    if (sbuf) memcpy(snap, sbuf, sbuf_len);
    if (dbuf) memcpy(snap + sbuf_len, dbuf, dbuf_len);

    bool same_dims = src.ndim == dst.ndim;
    for (int i = 0; same_dims && i < src.ndim && i < FAS_MAX_DIMS; i++)
        same_dims = src.dims[i] == dst.dims[i];
    bool identical =
        alias && off == 0 && same_dims && src.dtype == dst.dtype && src.format == dst.format;
    bool want_ok = sb > 0 && db > 0 && src.data && dst.data && same_dims &&
                   (src.dtype == FAS_DTYPE_UINT8) == (dst.dtype == FAS_DTYPE_UINT8) &&
                   (!alias || identical);

    fas_status st = fas_format_cast(&src, &dst);
    fz_check_status(st, "fas_format_cast");
    FZ_COUNT(st == FAS_OK ? (alias ? "cast ok alias" : "cast ok")
             : alias      ? "cast fail alias"
                          : "cast fail");
    if (sb > 0 && sb <= CAST_LIMIT) FZ_COUNT("cast small src");
    FZ_CHECK((st == FAS_OK) == want_ok,
             "fas_format_cast returned %s, expected %s (src bytes %llu, dst bytes %llu, alias %d "
             "off %zu)",
             fas_status_string(st), want_ok ? "FAS_OK" : "a failure", (unsigned long long)sb,
             (unsigned long long)db, (int)alias, off);
    if (alias && want_ok == false && sb > 0 && db > 0 && same_dims &&
        (src.dtype == FAS_DTYPE_UINT8) == (dst.dtype == FAS_DTYPE_UINT8))
        FZ_CHECK(st == FAS_ERR_ALIAS, "partial overlap returned %s", fas_status_string(st));
    if (st != FAS_OK || alias) {
        FZ_CHECK(!sbuf || memcmp(snap, sbuf, sbuf_len) == 0, "a buffer changed (status %s)",
                 fas_status_string(st));
        FZ_CHECK(!dbuf || memcmp(snap + sbuf_len, dbuf, dbuf_len) == 0,
                 "dst changed on failure (%s)", fas_status_string(st));
    } else {
        FZ_CHECK(memcmp(snap, sbuf, sbuf_len) == 0, "fas_format_cast changed its source");
        FZ_CHECK(fz_padding_is_zero(&dst), "NZ padding of dst is not zero");
    }
    free(snap);
    free(sbuf);
    free(dbuf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_reader rd = {data, size, 0, 0};
    fas_tensor d[5];
    for (int i = 0; i < 5; i++) read_desc(&rd, &d[i], i ? &d[i - 1] : NULL);

    /* fas_tensor_bytes is a query: exact against the oracle, and the last error survives it */
    fas_status st = fas_format_cast(NULL, NULL);
    FZ_CHECK(st == FAS_ERR_NULL_POINTER, "fas_format_cast(NULL, NULL) returned %s",
             fas_status_string(st));
    char err[512];
    snprintf(err, sizeof err, "%s", fas_last_error());
    FZ_CHECK(err[0] != '\0', "no error text after a failure");
    FZ_CHECK(fas_tensor_bytes(NULL) == 0, "fas_tensor_bytes(NULL) is not 0");
    for (int i = 0; i < 5; i++) {
        size_t got = fas_tensor_bytes(&d[i]);
        uint64_t want = oracle_bytes(&d[i]);
        FZ_CHECK(got == want,
                 "fas_tensor_bytes(descriptor %d: dtype %d format %d ndim %d) = %zu, oracle %llu",
                 i, (int)d[i].dtype, (int)d[i].format, d[i].ndim, got, (unsigned long long)want);
    }
    FZ_CHECK(strcmp(err, fas_last_error()) == 0, "fas_tensor_bytes changed fas_last_error()");

    uint32_t raw = fz_u32(&rd);
    FZ_CHECK(fas_status_string((fas_status)raw) != NULL, "fas_status_string returned NULL");

    check_dims_helpers(&rd, d);
    check_cast(&rd, d[3], d[4]);
    return 0;
}
