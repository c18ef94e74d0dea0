/* Argument checks and shape inference of the operator's entry points (api/validate.h). */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "api/validate.h"

static bool is_float_dtype(fas_dtype dt)
{
    return dt == FAS_DTYPE_FLOAT16 || dt == FAS_DTYPE_FLOAT || dt == FAS_DTYPE_BF16;
}

static fas_status check_float_data(const fas_tensor *t, const char *name, int ndim, bool need_data)
{
    fas_status st = fasi_check_tensor(t, name, need_data);
    if (st != FAS_OK) return st;
    if (!is_float_dtype(t->dtype))
        return fasi_fail(FAS_ERR_DTYPE,
                         "%s: dtype %d is not a float dtype (FLOAT16 = 1, FLOAT = 0, BF16 = 27)",
                         name, (int)t->dtype);
    if (ndim >= 0 && t->ndim != ndim)
        return fasi_fail(FAS_ERR_SHAPE, "%s: ndim is %d but must be %d", name, t->ndim, ndim);
    return FAS_OK;
}

fas_status fasi_check_float(const fas_tensor *t, const char *name, int ndim)
{
    return check_float_data(t, name, ndim, true);
}

fas_status fasi_check_dims(const fas_tensor *t, const char *name, const fasi_expect *e, int n)
{
    for (int i = 0; i < n; i++)
        if (t->dims[i] != e[i].value)
            return fasi_fail(FAS_ERR_SHAPE, "%s: dims[%d] is %lld but %s is %lld", name, i,
                             (long long)t->dims[i], e[i].why, (long long)e[i].value);
    return FAS_OK;
}

/* An output must not overlap any input nor any other output. */
fas_status fasi_check_aliasing(const fasi_named *outs, int n_outs, const fasi_named *ins, int n_ins)
{
    for (int o = 0; o < n_outs; o++) {
        if (!outs[o].t) continue;
        size_t ob = fas_tensor_bytes(outs[o].t);
        for (int i = 0; i < n_ins; i++) {
            if (!ins[i].t) continue;
            if (fasi_ranges_overlap(outs[o].t->data, ob, ins[i].t->data,
                                    fas_tensor_bytes(ins[i].t)))
                return fasi_fail(FAS_ERR_ALIAS, "%s: its buffer overlaps the input %s",
                                 outs[o].name, ins[i].name);
        }
        for (int p = 0; p < o; p++) {
            if (!outs[p].t) continue;
            if (fasi_ranges_overlap(outs[o].t->data, ob, outs[p].t->data,
                                    fas_tensor_bytes(outs[p].t)))
                return fasi_fail(FAS_ERR_ALIAS, "%s: its buffer overlaps the output %s",
                                 outs[o].name, outs[p].name);
        }
    }
    return FAS_OK;
}

fas_status fasi_check_scalars(double scale, double keep_prob)
{
    if (!isfinite(scale))
        return fasi_fail(FAS_ERR_VALUE, "scale: %s is not a finite number",
                         fasi_double_text(scale).s);
    if (fabs(scale) > FLT_MAX)
        return fasi_fail(FAS_ERR_VALUE,
                         "scale: %s is beyond the fp32 range the pipeline computes in (|scale| <= "
                         "%s)",
                         fasi_double_text(scale).s, fasi_double_text(FLT_MAX).s);
    if (!(keep_prob > 0.0 && keep_prob <= 1.0))
        return fasi_fail(FAS_ERR_VALUE, "keep_prob: %s is outside (0, 1]",
                         fasi_double_text(keep_prob).s);
    return FAS_OK;
}

/* cblas takes int sizes: every per-head dim (and so every leading dimension) must fit. */
static fas_status check_blas_range(int64_t sq, int64_t sk, int64_t d, int64_t dv)
{
    const struct {
        int64_t value;
        const char *what;
    } sizes[4] = {{sq, "query_layer: Sq"},
                  {d, "query_layer: D"},
                  {sk, "key_layer: Sk"},
                  {dv, "value_layer: Dv"}};
    for (int i = 0; i < 4; i++)
        if (sizes[i].value > INT_MAX)
            return fasi_fail(FAS_ERR_UNSUPPORTED, "%s = %lld exceeds the BLAS int range (%d)",
                             sizes[i].what, (long long)sizes[i].value, INT_MAX);
    return FAS_OK;
}

fas_status fasi_infer_shape(const fas_tensor *q, const fas_tensor *k, const fas_tensor *v,
                            bool query_transpose, bool key_transpose, bool transpose_a,
                            bool value_t, bool need_data, fasi_shape *s)
{
    fas_status st;
    if ((st = check_float_data(q, "query_layer", 4, need_data)) != FAS_OK) return st;
    if ((st = check_float_data(k, "key_layer", 4, need_data)) != FAS_OK) return st;
    if ((st = check_float_data(v, "value_layer", 4, need_data)) != FAS_OK) return st;
    s->b = q->dims[0];
    s->n = q->dims[1];
    s->sq = query_transpose ? q->dims[3] : q->dims[2];
    s->d = query_transpose ? q->dims[2] : q->dims[3];
    s->sk = key_transpose ? k->dims[3] : k->dims[2];
    int64_t kd = key_transpose ? k->dims[2] : k->dims[3];
    const char *d_why = query_transpose ? "query_layer's D (dims[2], query_transpose)"
                                        : "query_layer's D (dims[3])";
    fasi_expect ek[4] = {{s->b, "query_layer's B"}, {s->n, "query_layer's N"}, {0, ""}, {0, ""}};
    if ((st = fasi_check_dims(k, "key_layer", ek, 2)) != FAS_OK) return st;
    if (kd != s->d)
        return fasi_fail(FAS_ERR_SHAPE, "key_layer: dims[%d] is %lld but %s is %lld",
                         key_transpose ? 2 : 3, (long long)kd, d_why, (long long)s->d);
    s->dv = value_t ? v->dims[2] : v->dims[3];
    fasi_expect ev[4] = {{s->b, "query_layer's B"}, {s->n, "query_layer's N"}, {0, ""}, {0, ""}};
    if ((st = fasi_check_dims(v, "value_layer", ev, 2)) != FAS_OK) return st;
    int64_t vs = value_t ? v->dims[3] : v->dims[2];
    if (vs != s->sk)
        return fasi_fail(FAS_ERR_SHAPE, "value_layer: dims[%d] is %lld but key_layer's Sk is %lld",
                         value_t ? 3 : 2, (long long)vs, (long long)s->sk);
    if (transpose_a && s->sq != s->sk)
        return fasi_fail(FAS_ERR_SHAPE,
                         "bmm_score_transpose_a: needs Sq == Sk but Sq is %lld and Sk is %lld",
                         (long long)s->sq, (long long)s->sk);
    return check_blas_range(s->sq, s->sk, s->d, s->dv);
}

fas_status fasi_check_mask(const fas_tensor *m, const fasi_shape *s)
{
    fas_status st = fasi_check_float(m, "attention_mask", 4);
    if (st != FAS_OK) return st;
    const int64_t *d = m->dims;
    if (d[3] != s->sk)
        return fasi_fail(FAS_ERR_SHAPE, "attention_mask: dims[3] is %lld but Sk is %lld",
                         (long long)d[3], (long long)s->sk);
    if (d[0] != 1 && d[0] != s->b)
        return fasi_fail(FAS_ERR_SHAPE, "attention_mask: dims[0] is %lld but must be 1 or B = %lld",
                         (long long)d[0], (long long)s->b);
    if (d[1] != 1 && d[1] != s->n)
        return fasi_fail(FAS_ERR_SHAPE, "attention_mask: dims[1] is %lld but must be 1 or N = %lld",
                         (long long)d[1], (long long)s->n);
    if (d[2] != 1 && d[2] != s->sq)
        return fasi_fail(FAS_ERR_SHAPE,
                         "attention_mask: dims[2] is %lld but must be Sq = %lld, or 1 for a key "
                         "padding mask",
                         (long long)d[2], (long long)s->sq);
    if (d[2] == 1 && s->sq != 1 && d[1] != 1)
        return fasi_fail(
            FAS_ERR_SHAPE,
            "attention_mask: a key padding mask [B|1, 1, 1, Sk] must have dims[1] = 1, "
            "not %lld",
            (long long)d[1]);
    return FAS_OK;
}

fas_status fasi_check_probs_like(const fas_tensor *t, const char *name, const fasi_shape *s,
                                 bool bytes)
{
    fas_status st;
    if (bytes) {
        if ((st = fasi_check_tensor(t, name, true)) != FAS_OK) return st;
        if (t->dtype != FAS_DTYPE_UINT8)
            return fasi_fail(FAS_ERR_DTYPE, "%s: dtype %d must be UINT8 (4)", name, (int)t->dtype);
        if (t->ndim != 4)
            return fasi_fail(FAS_ERR_SHAPE, "%s: ndim is %d but must be 4", name, t->ndim);
    } else if ((st = fasi_check_float(t, name, 4)) != FAS_OK) {
        return st;
    }
    fasi_expect e[4] = {{s->b, "B"}, {s->n, "N"}, {s->sq, "Sq"}, {s->sk, "Sk"}};
    return fasi_check_dims(t, name, e, 4);
}

/* A gradient output: 2-D [B*S, N*cols] or 4-D [B, N, S, cols]. */
fas_status fasi_check_grad_output(const fas_tensor *t, const char *name, const fasi_shape *s,
                                  int64_t rows, const char *rows_name, int64_t cols,
                                  const char *cols_name)
{
    fas_status st = check_float_data(t, name, -1, true);
    if (st != FAS_OK) return st;
    if (t->ndim == 2) {
        char why_r[48], why_c[48];
        snprintf(why_r, sizeof why_r, "B*%s", rows_name);
        snprintf(why_c, sizeof why_c, "N*%s", cols_name);
        fasi_expect e[2] = {{s->b * rows, why_r}, {s->n * cols, why_c}};
        return fasi_check_dims(t, name, e, 2);
    }
    if (t->ndim == 4) {
        fasi_expect e[4] = {{s->b, "B"}, {s->n, "N"}, {rows, rows_name}, {cols, cols_name}};
        return fasi_check_dims(t, name, e, 4);
    }
    return fasi_fail(FAS_ERR_SHAPE, "%s: ndim is %d but must be 2 ([B*S, N*D]) or 4 ([B,N,S,D])",
                     name, t->ndim);
}

fas_status fasi_check_npu_domain(const fasi_shape *s, bool backward, const fasi_named *tensors,
                                 int n, const fasi_flag *flags, int n_flags)
{
    for (int i = 0; i < n; i++) {
        const fas_tensor *t = tensors[i].t;
        if (!t) continue;
        if (t->dtype != FAS_DTYPE_FLOAT16)
            return fasi_fail(FAS_ERR_UNSUPPORTED,
                             "%s: the NPU precision mode takes FLOAT16 tensors only (the NPU's "
                             "dtype), not dtype %d",
                             tensors[i].name, (int)t->dtype);
    }
    for (int i = 0; i < n_flags; i++)
        if (flags[i].value)
            return fasi_fail(FAS_ERR_UNSUPPORTED,
                             "%s: the NPU precision mode needs all six transpose flags false (the "
                             "NPU's kernels ignore them)",
                             flags[i].name);
    if (s->sq != s->sk)
        return fasi_fail(FAS_ERR_UNSUPPORTED,
                         "key_layer: the NPU precision mode needs Sq == Sk (the NPU's kernel), but "
                         "Sq is %lld and Sk is %lld",
                         (long long)s->sq, (long long)s->sk);
    if (s->dv != s->d)
        return fasi_fail(
            FAS_ERR_UNSUPPORTED,
            "value_layer: the NPU precision mode needs Dv == D (the NPU's kernel), but "
            "Dv is %lld and D is %lld",
            (long long)s->dv, (long long)s->d);
    if (s->sq % 16 != 0)
        return fasi_fail(FAS_ERR_UNSUPPORTED,
                         "query_layer: the NPU precision mode needs S a multiple of 16 (the NPU's "
                         "fractal), but S is %lld",
                         (long long)s->sq);
    if (s->d % 16 != 0)
        return fasi_fail(FAS_ERR_UNSUPPORTED,
                         "query_layer: the NPU precision mode needs D a multiple of 16 (the NPU's "
                         "fractal), but D is %lld",
                         (long long)s->d);
    if (backward && s->sq % 64 != 0)
        return fasi_fail(FAS_ERR_UNSUPPORTED,
                         "query_layer: the NPU precision mode's backward needs S a multiple of 64 "
                         "(the NPU's AttentionScoreGrad), but S is %lld",
                         (long long)s->sq);
    return FAS_OK;
}
