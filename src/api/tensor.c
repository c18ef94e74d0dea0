/* Descriptor validation, storage sizes, fas_format_cast and the scalar conversions. */
#include "api/dispatch.h"
#include "api/validate.h"

#include <string.h>

#include "layout/layout.h"

uint16_t fas_float_to_half(float x) { return fasi_f32_to_f16(x); }
float fas_half_to_float(uint16_t h) { return fasi_f16_to_f32(h); }
uint16_t fas_float_to_bf16(float x) { return fasi_f32_to_bf16(x); }
float fas_bf16_to_float(uint16_t b) { return fasi_bf16_to_f32(b); }

static bool dtype_known(fas_dtype dt) { return fasi_dtype_size(dt) != 0; }

/* ACL's name of a dtype id this library does not take (aclDataType; python/fused_attention keeps
 * the same table), or NULL for an id ACL does not define: an error then says "not supported"
 * rather than "not an ACL dtype id". */
static const char *acl_dtype_name(int id)
{
    static const struct {
        int id;
        const char *name;
    } names[] = {{2, "INT8"},   {3, "INT32"},   {6, "INT16"},      {7, "UINT16"},
                 {8, "UINT32"}, {9, "INT64"},   {10, "UINT64"},    {11, "DOUBLE"},
                 {12, "BOOL"},  {13, "STRING"}, {16, "COMPLEX64"}, {17, "COMPLEX128"}};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (names[i].id == id) return names[i].name;
    return NULL;
}

static bool format_known(fas_format f) { return f == FAS_FORMAT_ND || f == FAS_FORMAT_FRACTAL_NZ; }

static bool mul_ok(int64_t a, int64_t b, int64_t *out)
{
    if (a > 0 && b > INT64_MAX / a) return false;
    *out = a * b;
    return true;
}

/* Storage elements of a structurally valid descriptor, or -1 on overflow. */
static int64_t storage_elems(const fas_tensor *t)
{
    int64_t rows = 1, cols = 1, batch = 1;
    if (t->ndim == 1) {
        rows = t->dims[0];
    } else if (t->ndim >= 2) {
        rows = t->dims[t->ndim - 2];
        cols = t->dims[t->ndim - 1];
        for (int i = 0; i < t->ndim - 2; i++)
            if (!mul_ok(batch, t->dims[i], &batch)) return -1;
    }
    if (t->format == FAS_FORMAT_FRACTAL_NZ) {
        /* rounded up to whole fractals without forming rows + 15, which can overflow */
        if (!mul_ok(rows / 16 + (rows % 16 != 0), 16, &rows) ||
            !mul_ok(cols / 16 + (cols % 16 != 0), 16, &cols))
            return -1;
    }
    int64_t n;
    if (!mul_ok(rows, cols, &n) || !mul_ok(n, batch, &n)) return -1;
    return n;
}

fas_status fasi_check_tensor(const fas_tensor *t, const char *name, bool need_data)
{
    if (!t) return fasi_fail(FAS_ERR_NULL_POINTER, "%s: the tensor pointer is NULL", name);
    if (!dtype_known(t->dtype)) {
        const char *acl = acl_dtype_name((int)t->dtype);
        if (acl)
            return fasi_fail(FAS_ERR_DTYPE,
                             "%s: dtype %d (ACL %s) is not supported (FLOAT16 = 1, FLOAT = 0, "
                             "BF16 = 27; UINT8 = 4 for drop masks)",
                             name, (int)t->dtype, acl);
        return fasi_fail(FAS_ERR_DTYPE, "%s: dtype %d is not an ACL dtype id", name, (int)t->dtype);
    }
    if (!format_known(t->format))
        return fasi_fail(FAS_ERR_FORMAT, "%s: format %d is not accepted (ND = 2, FRACTAL_NZ = 29)",
                         name, (int)t->format);
    if (t->ndim < 0 || t->ndim > FAS_MAX_DIMS)
        return fasi_fail(FAS_ERR_SHAPE, "%s: ndim is %d, outside 0..%d", name, t->ndim,
                         FAS_MAX_DIMS);
    for (int i = 0; i < t->ndim; i++)
        if (t->dims[i] < 1)
            return fasi_fail(FAS_ERR_SHAPE, "%s: dims[%d] is %lld, dims must be >= 1", name, i,
                             (long long)t->dims[i]);
    int64_t elems = storage_elems(t);
    size_t es = fasi_dtype_size(t->dtype);
    if (elems < 0 || (uint64_t)elems > (uint64_t)(SIZE_MAX / es) ||
        (uint64_t)elems > (uint64_t)(INT64_MAX / (int64_t)es))
        return fasi_fail(FAS_ERR_SHAPE, "%s: the storage size overflows", name);
    if (need_data && !t->data) return fasi_fail(FAS_ERR_NULL_POINTER, "%s: data is NULL", name);
    return FAS_OK;
}

size_t fas_tensor_bytes(const fas_tensor *t)
{
    /* must not disturb the caller's last error: this is a query, not an operation */
    if (!t || !dtype_known(t->dtype) || !format_known(t->format) || t->ndim < 0 ||
        t->ndim > FAS_MAX_DIMS)
        return 0;
    for (int i = 0; i < t->ndim; i++)
        if (t->dims[i] < 1) return 0;
    int64_t elems = storage_elems(t);
    size_t es = fasi_dtype_size(t->dtype);
    if (elems < 0 || (uint64_t)elems > (uint64_t)(SIZE_MAX / es) ||
        (uint64_t)elems > (uint64_t)(INT64_MAX / (int64_t)es))
        return 0;
    return (size_t)elems * es;
}

bool fasi_ranges_overlap(const void *a, size_t a_bytes, const void *b, size_t b_bytes)
{
    uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
    if (!a || !b || a_bytes == 0 || b_bytes == 0) return false;
    return pa < pb + b_bytes && pb < pa + a_bytes;
}

static bool same_descriptor(const fas_tensor *a, const fas_tensor *b)
{
    if (a->data != b->data || a->dtype != b->dtype || a->format != b->format || a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->dims[i] != b->dims[i]) return false;
    return true;
}

fas_status fas_format_cast(const fas_tensor *src, fas_tensor *dst)
{
    fasi_clear_error();
    fas_status st;
    if ((st = fasi_check_tensor(src, "src", true)) != FAS_OK) return st;
    if ((st = fasi_check_tensor(dst, "dst", true)) != FAS_OK) return st;
    if (src->ndim != dst->ndim)
        return fasi_fail(FAS_ERR_SHAPE, "dst: ndim is %d but src has ndim %d", dst->ndim,
                         src->ndim);
    for (int i = 0; i < src->ndim; i++)
        if (src->dims[i] != dst->dims[i])
            return fasi_fail(FAS_ERR_SHAPE, "dst: dims[%d] is %lld but src has %lld", i,
                             (long long)dst->dims[i], (long long)src->dims[i]);
    if ((src->dtype == FAS_DTYPE_UINT8) != (dst->dtype == FAS_DTYPE_UINT8))
        return fasi_fail(FAS_ERR_DTYPE,
                         "dst: cannot convert between UINT8 and a float dtype (src %d, dst %d)",
                         (int)src->dtype, (int)dst->dtype);
    if (same_descriptor(src, dst)) return FAS_OK;
    if (fasi_ranges_overlap(src->data, fas_tensor_bytes(src), dst->data, fas_tensor_bytes(dst)))
        return fasi_fail(FAS_ERR_ALIAS, "dst: its buffer overlaps src's buffer");
    const fasi_kernels *k = fasi_kernels_for(fasi_cpu_best_isa());
    if (!k) return fasi_fail(FAS_ERR_INTERNAL, "no kernel table for the detected CPU");
    fasi_mat ms, md;
    fasi_mat_init(&ms, src);
    fasi_mat_init(&md, dst);
    fasi_mat_convert(k, &ms, &md);
    return FAS_OK;
}
