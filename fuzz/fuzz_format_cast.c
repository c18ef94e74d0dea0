/* fuzz_format_cast: chains of fas_format_cast on tiny tensors, checked element by element
 * against an oracle built from the IEEE definitions and the FRACTAL_NZ formula.
 *
 * Input: rank (0..5), dims (1..40, leading dims shrunk so that at most 4096 elements), source
 * dtype, 1..4 steps (each: destination dtype and format, plus flags), then element bit
 * patterns (any, NaN and infinities included; continued pseudo-randomly when the input is
 * short, see fz_stream16).
 *
 * Checked per step: status FAS_OK and an empty fas_last_error(); the destination has exactly
 * fas_tensor_bytes() bytes (ASan catches any write past it) and zero NZ padding; each logical
 * element equals the oracle: a same-dtype step is the identity (bit for bit for FLOAT and
 * UINT8; NaNs compare as NaN of the same sign for FLOAT16 and BF16), a widening step is exact, a
 * narrowing step rounds to nearest even, and a NaN crossing dtypes stays a quiet NaN with its sign.
 * So ND->NZ->ND round trips reproduce the ND bytes and FLOAT16->FLOAT->FLOAT16 is the identity up
 * to NaN quieting. A step may first scribble over its source's NZ padding, which must never be
 * read. Side steps: the identical-descriptor no-op, a partially overlapping destination
 * (FAS_ERR_ALIAS, nothing written), and a UINT8 <-> float cast (FAS_ERR_DTYPE, nothing written).
 * The scalar conversion functions are checked against the same oracle on every element. */
#include "fuzz_util.h"

enum { MAX_ELEMS = 4096 };

static const fas_dtype FLOAT_TYPES[3] = {FAS_DTYPE_FLOAT16, FAS_DTYPE_BF16, FAS_DTYPE_FLOAT};

/* Oracle: bits of value-bits `bits` of dtype `from` converted to dtype `to`. */
FZ_NO_COVERAGE static uint32_t convert_bits(fas_dtype from, fas_dtype to, uint32_t bits)
{
    if (from == to) return bits;
    return fz_value_bits(to, fz_bits_value(from, bits));
}

FZ_NO_COVERAGE static bool is_nan_bits(fas_dtype dt, uint32_t bits)
{
    switch ((int)dt) {
    case FAS_DTYPE_FLOAT16: return fz_half_is_nan((uint16_t)bits);
    case FAS_DTYPE_BF16: return fz_bf16_is_nan((uint16_t)bits);
    case FAS_DTYPE_FLOAT: return (bits & 0x7f800000u) == 0x7f800000u && (bits & 0x7fffffu);
    default: return false;
    }
}

static uint32_t sign_bit(fas_dtype dt) { return dt == FAS_DTYPE_FLOAT ? 0x80000000u : 0x8000u; }

static uint32_t quiet_bit(fas_dtype dt)
{
    return dt == FAS_DTYPE_FLOAT ? 0x400000u : dt == FAS_DTYPE_FLOAT16 ? 0x200u : 0x40u;
}

/* got must match want. exact: bit for bit even for NaN; quiet: a NaN must be quiet. */
FZ_NO_COVERAGE static void expect_element(fas_dtype dt, uint32_t want, uint32_t got, bool exact,
                                          bool quiet, int step, int64_t idx)
{
    if (exact || !is_nan_bits(dt, want)) {
        FZ_CHECK(got == want, "step %d dtype %d element %lld: got 0x%x, expected 0x%x", step,
                 (int)dt, (long long)idx, got, want);
        return;
    }
    FZ_CHECK(is_nan_bits(dt, got) && (got & sign_bit(dt)) == (want & sign_bit(dt)),
             "step %d dtype %d element %lld: got 0x%x, expected a NaN of sign of 0x%x", step,
             (int)dt, (long long)idx, got, want);
    if (quiet)
        FZ_CHECK(got & quiet_bit(dt), "step %d dtype %d element %lld: NaN 0x%x is not quiet", step,
                 (int)dt, (long long)idx, got);
}

/* The scalar API against the oracle, for one element value. */
FZ_NO_COVERAGE static void check_scalars(fas_dtype dt, uint32_t bits)
{
    if (dt == FAS_DTYPE_FLOAT16) {
        float f = fas_half_to_float((uint16_t)bits);
        double want = fz_half_to_double((uint16_t)bits);
        bool same_sign = !signbit(f) == !(bits & 0x8000);
        FZ_CHECK(same_sign && (isnan(want) ? isnan(f) : (double)f == want),
                 "fas_half_to_float(0x%04x) = %a", bits, (double)f);
    } else if (dt == FAS_DTYPE_BF16) {
        float f = fas_bf16_to_float((uint16_t)bits);
        double want = fz_bf16_to_double((uint16_t)bits);
        bool same_sign = !signbit(f) == !(bits & 0x8000);
        FZ_CHECK(same_sign && (isnan(want) ? isnan(f) : (double)f == want),
                 "fas_bf16_to_float(0x%04x) = %a", bits, (double)f);
    } else if (dt == FAS_DTYPE_FLOAT) {
        float x = fz_f32_bits(bits);
        expect_element(FAS_DTYPE_FLOAT16, fz_double_to_half(x), fas_float_to_half(x), false, true,
                       -1, 0);
        expect_element(FAS_DTYPE_BF16, fz_double_to_bf16(x), fas_float_to_bf16(x), false, true, -1,
                       0);
    }
}

/* Element e (row-major logical order) of the source from the element data. */
FZ_NO_COVERAGE static void fill_source(const fas_tensor *t, const fz_geom *g, uint32_t *want,
                                       int64_t elems, fz_reader *data)
{
    for (int64_t e = 0; e < elems; e++) {
        uint32_t bits = fz_stream16(data);
        if (g->es == 4) bits |= (uint32_t)fz_stream16(data) << 16;
        if (g->es == 1) bits &= 0xff;
        want[e] = bits;
        fz_set_bits(t, g, e / (g->rows * g->cols), e / g->cols % g->rows, e % g->cols, bits);
        check_scalars(t->dtype, bits);
    }
}

/* dst (dtype dst->dtype) against the oracle applied to want (dtype from); want becomes dst. */
FZ_NO_COVERAGE static void verify_step(const fas_tensor *dst, const fz_geom *gd, fas_dtype from,
                                       uint32_t *want, int64_t elems, int step)
{
    fas_dtype to = dst->dtype;
    bool changes = to != from;
    for (int64_t e = 0; e < elems; e++) {
        int64_t b = e / (gd->rows * gd->cols), r = e / gd->cols % gd->rows, c = e % gd->cols;
        uint32_t w = convert_bits(from, to, want[e]);
        uint32_t got = fz_get_bits(dst, gd, b, r, c);
        bool bitwise = !changes && (to == FAS_DTYPE_FLOAT || to == FAS_DTYPE_UINT8);
        expect_element(to, w, got, bitwise, changes, step, e);
        want[e] = got; /* a checked NaN's payload must survive later same-dtype copies */
        if (changes) check_scalars(to, got);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_reader rd = {data, size, 0, 0};
    int ndim = fz_u8(&rd) % 6;
    int64_t dims[FAS_MAX_DIMS];
    for (int i = 0; i < ndim; i++) dims[i] = 1 + fz_u8(&rd) % 40;
    /* the last two dims make at most 1600 elements; shrink leading dims to stay <= MAX_ELEMS */
    int64_t elems = 1;
    for (int i = ndim - 2; i < ndim; i++)
        if (i >= 0) elems *= dims[i];
    for (int i = 0; i < ndim - 2; i++) {
        while (elems * dims[i] > MAX_ELEMS) dims[i] = (dims[i] + 1) / 2;
        elems *= dims[i];
    }

    uint8_t src_sel = fz_u8(&rd);
    fas_dtype dtype = (src_sel & 3) == 3 ? FAS_DTYPE_UINT8 : FLOAT_TYPES[src_sel & 3];
    fas_format format = (src_sel & 4) ? FAS_FORMAT_FRACTAL_NZ : FAS_FORMAT_ND;
    int steps = 1 + (src_sel >> 3) % 4;
    uint8_t step_sel[4], step_flags[4];
    for (int s = 0; s < steps; s++) {
        step_sel[s] = fz_u8(&rd);
        step_flags[s] = fz_u8(&rd);
    }

    fas_tensor cur = fz_tensor_new(dtype, format, ndim, dims, 0xff);
    fz_geom g = fz_geom_of(&cur);
    FZ_CHECK(g.batch * g.rows * g.cols == elems, "element count");
    uint32_t *want = malloc((size_t)elems * sizeof *want);
    FZ_CHECK(want != NULL, "out of memory");
    /* element data: the rest of the input, then its pseudo-random continuation */
    fz_reader elem_data = {data + rd.pos, size - rd.pos, 0, 0};
    fill_source(&cur, &g, want, elems, &elem_data);

    for (int s = 0; s < steps; s++) {
        uint8_t sel = step_sel[s], fl = step_flags[s];
        fas_dtype to = dtype == FAS_DTYPE_UINT8 ? FAS_DTYPE_UINT8 : FLOAT_TYPES[sel % 3];
        fas_format fto = (sel & 4) ? FAS_FORMAT_FRACTAL_NZ : FAS_FORMAT_ND;

        if (fl & 1) fz_scribble_padding(&cur, (unsigned char)(fl | 0x80));

        if ((fl & 6) == 2) {
            /* identical descriptors on one buffer: a no-op that succeeds */
            void *snap = fz_snapshot(&cur);
            fas_status st = fas_format_cast(&cur, &cur);
            fz_check_status(st, "fas_format_cast(t, t)");
            FZ_CHECK(st == FAS_OK && fz_unchanged(&cur, snap), "same-descriptor cast: %s",
                     fas_status_string(st));
            free(snap);
        } else if ((fl & 6) == 4) {
            /* same buffer, different descriptor: a partial overlap, rejected untouched */
            fas_tensor alias = cur;
            alias.format = cur.format == FAS_FORMAT_ND ? FAS_FORMAT_FRACTAL_NZ : FAS_FORMAT_ND;
            void *snap = fz_snapshot(&cur);
            fas_status st = fas_format_cast(&cur, &alias);
            fz_check_status(st, "fas_format_cast(aliased)");
            FZ_CHECK(st == FAS_ERR_ALIAS && fz_unchanged(&cur, snap),
                     "overlapping cast returned %s", fas_status_string(st));
            free(snap);
        } else if ((fl & 6) == 6) {
            /* UINT8 <-> float is refused, destination untouched */
            fas_dtype bad = dtype == FAS_DTYPE_UINT8 ? FAS_DTYPE_FLOAT16 : FAS_DTYPE_UINT8;
            fas_tensor d = fz_tensor_new(bad, fto, ndim, dims, 0x5a);
            void *snap = fz_snapshot(&d);
            fas_status st = fas_format_cast(&cur, &d);
            fz_check_status(st, "fas_format_cast(uint8 <-> float)");
            FZ_CHECK(st == FAS_ERR_DTYPE && fz_unchanged(&d, snap), "returned %s",
                     fas_status_string(st));
            free(snap);
            fz_tensor_free(&d);
        }

        fas_tensor dst = fz_tensor_new(to, fto, ndim, dims, (unsigned char)(fl & 0xf8));
        fz_geom gd = fz_geom_of(&dst);
        FZ_CHECK(fas_tensor_bytes(&dst) == (size_t)fz_storage_elems(&gd) * gd.es,
                 "fas_tensor_bytes %zu, expected %lld elements of %zu bytes",
                 fas_tensor_bytes(&dst), (long long)fz_storage_elems(&gd), gd.es);
        fas_status st = fas_format_cast(&cur, &dst);
        fz_check_status(st, "fas_format_cast");
        FZ_CHECK(st == FAS_OK, "step %d: %d/%d -> %d/%d returned %s", s, (int)dtype,
                 (int)cur.format, (int)to, (int)fto, fas_status_string(st));
        FZ_CHECK(fz_padding_is_zero(&dst), "step %d: NZ padding of dst not zero", s);
        verify_step(&dst, &gd, dtype, want, elems, s);
        fz_tensor_free(&cur);
        cur = dst;
        dtype = to;
        g = gd;
    }
    fz_tensor_free(&cur);
    free(want);
    return 0;
}
