/* The operator's public entry points: validation, problem construction, dispatch.
 *
 * Every check runs before any output byte is written; implementations receive a fasi_*_problem
 * whose sizes and tensors are known to be consistent. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "api/dispatch.h"
#include "api/validate.h"
#include "pipeline/parallel.h"
#include "problem/problem.h"
#include "rng/philox.h"

void fas_manual_seed(uint64_t seed) { fasi_generator_seed(seed); }

const char *fas_simd_level(void)
{
    const fasi_kernels *k = fasi_kernels_for(fasi_cpu_best_isa());
    return k ? k->name : "portable";
}

/* ---- small checks ------------------------------------------------------------------------- */

static bool is_float_dtype(fas_dtype dt)
{
    return dt == FAS_DTYPE_FLOAT16 || dt == FAS_DTYPE_FLOAT || dt == FAS_DTYPE_BF16;
}

static fas_status check_float_data(const fas_tensor *t, const char *name, int ndim,
                                   bool need_data)
{
    fas_status st = fasi_check_tensor(t, name, need_data);
    if (st != FAS_OK) return st;
    if (!is_float_dtype(t->dtype))
        return fasi_fail(FAS_ERR_DTYPE,
                         "%s: dtype %d is not a float dtype (FLOAT16 = 1, FLOAT = 0, BF16 = 27)",
                         name, (int)t->dtype);
    if (t->ndim != ndim)
        return fasi_fail(FAS_ERR_SHAPE, "%s: ndim is %d but must be %d", name, t->ndim, ndim);
    return FAS_OK;
}

static fas_status check_float(const fas_tensor *t, const char *name, int ndim)
{
    return check_float_data(t, name, ndim, true);
}

/* One expected dim: its value and where the expectation comes from ("query_layer's D"). */
typedef struct expect {
    int64_t value;
    const char *why;
} expect;

static fas_status check_dims(const fas_tensor *t, const char *name, const expect *e, int n)
{
    for (int i = 0; i < n; i++)
        if (t->dims[i] != e[i].value)
            return fasi_fail(FAS_ERR_SHAPE, "%s: dims[%d] is %lld but %s is %lld", name, i,
                             (long long)t->dims[i], e[i].why, (long long)e[i].value);
    return FAS_OK;
}

/* An output must not overlap any input nor any other output. */
typedef struct named_buffer {
    const char *name;
    const fas_tensor *t;
} named_buffer;

static fas_status check_aliasing(const named_buffer *outs, int n_outs, const named_buffer *ins,
                                 int n_ins)
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

static fas_status check_scalars(double scale, double keep_prob)
{
    if (!isfinite(scale))
        return fasi_fail(FAS_ERR_VALUE, "scale: %g is not a finite number", scale);
    if (fabs(scale) > FLT_MAX)
        return fasi_fail(FAS_ERR_VALUE,
                         "scale: %g is beyond the fp32 range the pipeline computes in (|scale| <= "
                         "%g)",
                         scale, (double)FLT_MAX);
    if (!(keep_prob > 0.0 && keep_prob <= 1.0))
        return fasi_fail(FAS_ERR_VALUE, "keep_prob: %.17g is outside (0, 1]", keep_prob);
    return FAS_OK;
}

/* Options read field by field up to the caller's struct_size, so that a caller compiled
 * against an older (shorter) fas_options keeps working. */
typedef struct resolved_options {
    int threads;
    bool has_seed;
    uint64_t seed, offset;
    bool drop_mask_is_input;
    fas_impl impl;
    const fasi_kernels *kern;
} resolved_options;

#define HAS_FIELD(o, f) ((o)->struct_size >= offsetof(fas_options, f) + sizeof((o)->f))

static fas_status resolve_options(const fas_options *o, resolved_options *r)
{
    memset(r, 0, sizeof *r);
    r->impl = FAS_IMPL_AUTO;
    int requested = 0;
    if (o) {
        if (o->struct_size < offsetof(fas_options, num_threads) + sizeof o->num_threads)
            return fasi_fail(FAS_ERR_VALUE,
                             "options: struct_size is %zu; initialise with fas_options_init()",
                             o->struct_size);
        requested = o->num_threads;
        if (requested < 0)
            return fasi_fail(FAS_ERR_VALUE, "options: num_threads is %d, must be >= 0",
                             requested);
        if (HAS_FIELD(o, has_seed)) r->has_seed = o->has_seed;
        if (HAS_FIELD(o, seed)) r->seed = o->seed;
        if (HAS_FIELD(o, offset)) r->offset = o->offset;
        if (HAS_FIELD(o, drop_mask_is_input)) r->drop_mask_is_input = o->drop_mask_is_input;
        if (HAS_FIELD(o, impl)) r->impl = o->impl;
    }
    r->threads = fasi_resolve_threads(requested);
    fasi_isa isa;
    switch (r->impl) {
    case FAS_IMPL_AUTO:
    case FAS_IMPL_REFERENCE: isa = fasi_cpu_best_isa(); break;
    case FAS_IMPL_PORTABLE: isa = FASI_ISA_PORTABLE; break;
    case FAS_IMPL_AVX2: isa = FASI_ISA_AVX2; break;
    case FAS_IMPL_AVX512: isa = FASI_ISA_AVX512; break;
    default:
        return fasi_fail(FAS_ERR_VALUE, "options: impl %d is not a fas_impl value", (int)r->impl);
    }
    r->kern = fasi_kernels_for(isa);
    if (!r->kern)
        return fasi_fail(FAS_ERR_UNSUPPORTED,
                         "options: impl %d needs a SIMD level this build or CPU does not have",
                         (int)r->impl);
    return FAS_OK;
}

/* cblas takes int sizes: every per-head dim (and so every leading dimension) must fit. */
static fas_status check_blas_range(int64_t sq, int64_t sk, int64_t d, int64_t dv)
{
    const struct {
        int64_t value;
        const char *what;
    } sizes[4] = {{sq, "query_layer: Sq"}, {d, "query_layer: D"}, {sk, "key_layer: Sk"},
                  {dv, "value_layer: Dv"}};
    for (int i = 0; i < 4; i++)
        if (sizes[i].value > INT_MAX)
            return fasi_fail(FAS_ERR_UNSUPPORTED, "%s = %lld exceeds the BLAS int range (%d)",
                             sizes[i].what, (long long)sizes[i].value, INT_MAX);
    return FAS_OK;
}

static void heads_init(fasi_heads *h, const fas_tensor *t, bool trans, int64_t heads,
                       int64_t rows, int64_t cols)
{
    fasi_mat_init(&h->mat, t);
    h->merged = t->ndim == 2;
    h->trans = trans;
    h->heads = heads;
    h->rows = rows;
    h->cols = cols;
}

/* ---- forward ------------------------------------------------------------------------------ */

typedef struct fwd_shape {
    int64_t b, n, sq, sk, d, dv;
} fwd_shape;

/* q, k, v dims and flags -> sizes. Shared by the operator and fas_attention_output_dims. */
static fas_status infer_forward_shape(const fas_tensor *q, const fas_tensor *k,
                                      const fas_tensor *v, bool query_transpose,
                                      bool key_transpose, bool transpose_a, bool value_t,
                                      bool need_data, fwd_shape *s)
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
    expect ek[4] = {{s->b, "query_layer's B"}, {s->n, "query_layer's N"}, {0, ""}, {0, ""}};
    if ((st = check_dims(k, "key_layer", ek, 2)) != FAS_OK) return st;
    if (kd != s->d)
        return fasi_fail(FAS_ERR_SHAPE, "key_layer: dims[%d] is %lld but %s is %lld",
                         key_transpose ? 2 : 3, (long long)kd, d_why, (long long)s->d);
    s->dv = value_t ? v->dims[2] : v->dims[3];
    expect ev[4] = {{s->b, "query_layer's B"}, {s->n, "query_layer's N"}, {0, ""}, {0, ""}};
    if ((st = check_dims(v, "value_layer", ev, 2)) != FAS_OK) return st;
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

static fas_status check_mask(const fas_tensor *m, const fwd_shape *s)
{
    fas_status st = check_float(m, "attention_mask", 4);
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
        return fasi_fail(FAS_ERR_SHAPE,
                         "attention_mask: a key padding mask [B|1, 1, 1, Sk] must have dims[1] = 1, "
                         "not %lld",
                         (long long)d[1]);
    return FAS_OK;
}

static fas_status check_probs_like(const fas_tensor *t, const char *name, const fwd_shape *s,
                                   bool bytes)
{
    fas_status st;
    if (bytes) {
        if ((st = fasi_check_tensor(t, name, true)) != FAS_OK) return st;
        if (t->dtype != FAS_DTYPE_UINT8)
            return fasi_fail(FAS_ERR_DTYPE, "%s: dtype %d must be UINT8 (4)", name, (int)t->dtype);
        if (t->ndim != 4)
            return fasi_fail(FAS_ERR_SHAPE, "%s: ndim is %d but must be 4", name, t->ndim);
    } else if ((st = check_float(t, name, 4)) != FAS_OK) {
        return st;
    }
    expect e[4] = {{s->b, "B"}, {s->n, "N"}, {s->sq, "Sq"}, {s->sk, "Sk"}};
    return check_dims(t, name, e, 4);
}

static fas_status forward_impl(const fas_tensor *q, const fas_tensor *k, const fas_tensor *v,
                               const fas_tensor *mask, double scale, double keep_prob,
                               bool query_transpose, bool key_transpose, bool transpose_a,
                               bool transpose_b, fas_tensor *out, fas_tensor *probs,
                               fas_tensor *dmask, const fas_options *options)
{
    fas_status st;
    fwd_shape s;
    resolved_options ro;
    if ((st = infer_forward_shape(q, k, v, query_transpose, key_transpose, transpose_a,
                                  transpose_b, true, &s)) != FAS_OK)
        return st;
    if (mask && (st = check_mask(mask, &s)) != FAS_OK) return st;
    if ((st = check_scalars(scale, keep_prob)) != FAS_OK) return st;
    if (!out) return fasi_fail(FAS_ERR_NULL_POINTER, "attention_score: the tensor pointer is NULL");
    if ((st = check_float(out, "attention_score", 2)) != FAS_OK) return st;
    expect eo[2] = {{s.b * s.sq, "B*Sq"}, {s.n * s.dv, "N*Dv"}};
    if ((st = check_dims(out, "attention_score", eo, 2)) != FAS_OK) return st;
    if (probs && (st = check_probs_like(probs, "softmax_output", &s, false)) != FAS_OK) return st;
    if (dmask && (st = check_probs_like(dmask, "drop_mask", &s, true)) != FAS_OK) return st;
    if ((st = resolve_options(options, &ro)) != FAS_OK) return st;
    bool mask_in = ro.drop_mask_is_input;
    if (mask_in && !dmask && keep_prob < 1.0)
        return fasi_fail(FAS_ERR_NULL_POINTER,
                         "drop_mask: NULL but options->drop_mask_is_input is set and keep_prob < 1");

    named_buffer ins[5] = {{"query_layer", q}, {"key_layer", k}, {"value_layer", v},
                           {"attention_mask", mask}, {"drop_mask", mask_in ? dmask : NULL}};
    named_buffer outs[3] = {{"attention_score", out}, {"softmax_output", probs},
                            {"drop_mask", mask_in ? NULL : dmask}};
    if ((st = check_aliasing(outs, 3, ins, 5)) != FAS_OK) return st;

    fasi_fwd_problem p;
    memset(&p, 0, sizeof p);
    p.b = s.b;
    p.n = s.n;
    p.sq = s.sq;
    p.sk = s.sk;
    p.d = s.d;
    p.dv = s.dv;
    p.scale = scale;
    p.keep_prob = keep_prob;
    heads_init(&p.q, q, query_transpose, s.n, s.sq, s.d);
    heads_init(&p.k, k, key_transpose, s.n, s.sk, s.d);
    heads_init(&p.v, v, transpose_b, s.n, s.sk, s.dv);
    if (mask) {
        p.mask.present = true;
        fasi_mat_init(&p.mask.mat, mask);
        p.mask.mask_b = mask->dims[0];
        p.mask.mask_n = mask->dims[1];
        p.mask.mask_rows = mask->dims[2];
    }
    p.transpose_a = transpose_a;
    heads_init(&p.out, out, false, s.n, s.sq, s.dv);
    if (probs) {
        p.has_probs = true;
        fasi_mat_init(&p.probs, probs);
    }
    if (dmask) {
        p.has_dmask = true;
        fasi_mat_init(&p.dmask, dmask);
    }
    if (mask_in && dmask) {
        p.dropout = FASI_DROPOUT_INPUT;
    } else if (keep_prob == 1.0) {
        p.dropout = FASI_DROPOUT_NONE;
    } else {
        p.dropout = FASI_DROPOUT_GENERATE;
        p.threshold = fasi_dropout_threshold(keep_prob);
        if (ro.has_seed) {
            p.seed = ro.seed;
            p.offset = ro.offset;
        } else {
            fasi_generator_draw((uint64_t)((s.sk + 3) / 4), &p.seed, &p.offset);
        }
    }
    p.threads = ro.threads;
    p.kern = ro.kern;
    return ro.impl == FAS_IMPL_REFERENCE ? fasi_reference_forward(&p) : fasi_pipeline_forward(&p);
}

fas_status fused_attention_score_fwd_ex(
    const fas_tensor *query_layer, const fas_tensor *key_layer, const fas_tensor *value_layer,
    const fas_tensor *attention_mask, double scale, double keep_prob, bool query_transpose,
    bool key_transpose, bool bmm_score_transpose_a, bool bmm_score_transpose_b,
    bool value_transpose, bool dx_transpose, fas_tensor *attention_score,
    fas_tensor *softmax_output, fas_tensor *drop_mask, const fas_options *options)
{
    (void)value_transpose; /* backward-only flags: accepted and ignored, as on the NPU */
    (void)dx_transpose;
    fasi_clear_error();
    return forward_impl(query_layer, key_layer, value_layer, attention_mask, scale, keep_prob,
                        query_transpose, key_transpose, bmm_score_transpose_a,
                        bmm_score_transpose_b, attention_score, softmax_output, drop_mask,
                        options);
}

fas_status fused_attention_score_fwd(
    const fas_tensor *query_layer, const fas_tensor *key_layer, const fas_tensor *value_layer,
    const fas_tensor *attention_mask, double scale, double keep_prob, bool query_transpose,
    bool key_transpose, bool bmm_score_transpose_a, bool bmm_score_transpose_b,
    bool value_transpose, bool dx_transpose, fas_tensor *attention_score,
    fas_tensor *softmax_output, fas_tensor *drop_mask)
{
    return fused_attention_score_fwd_ex(query_layer, key_layer, value_layer, attention_mask,
                                        scale, keep_prob, query_transpose, key_transpose,
                                        bmm_score_transpose_a, bmm_score_transpose_b,
                                        value_transpose, dx_transpose, attention_score,
                                        softmax_output, drop_mask, NULL);
}

fas_status fused_attention_score(const fas_tensor *query_layer, const fas_tensor *key_layer,
                                 const fas_tensor *value_layer, const fas_tensor *attention_mask,
                                 double scale, double keep_prob, bool query_transpose,
                                 bool key_transpose, bool bmm_score_transpose_a,
                                 bool bmm_score_transpose_b, bool value_transpose,
                                 bool dx_transpose, fas_tensor *attention_score)
{
    return fused_attention_score_fwd_ex(query_layer, key_layer, value_layer, attention_mask,
                                        scale, keep_prob, query_transpose, key_transpose,
                                        bmm_score_transpose_a, bmm_score_transpose_b,
                                        value_transpose, dx_transpose, attention_score, NULL,
                                        NULL, NULL);
}

fas_status fused_attention_score_ex(
    const fas_tensor *query_layer, const fas_tensor *key_layer, const fas_tensor *value_layer,
    const fas_tensor *attention_mask, double scale, double keep_prob, bool query_transpose,
    bool key_transpose, bool bmm_score_transpose_a, bool bmm_score_transpose_b,
    bool value_transpose, bool dx_transpose, fas_tensor *attention_score,
    const fas_options *options)
{
    return fused_attention_score_fwd_ex(query_layer, key_layer, value_layer, attention_mask,
                                        scale, keep_prob, query_transpose, key_transpose,
                                        bmm_score_transpose_a, bmm_score_transpose_b,
                                        value_transpose, dx_transpose, attention_score, NULL,
                                        NULL, options);
}

static void set_dims(fas_tensor *t, fas_dtype dtype, int ndim, const int64_t *dims)
{
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < FAS_MAX_DIMS; i++) t->dims[i] = i < ndim ? dims[i] : 0;
}

fas_status fas_attention_output_dims(const fas_tensor *query_layer, const fas_tensor *key_layer,
                                     const fas_tensor *value_layer, bool query_transpose,
                                     bool key_transpose, bool bmm_score_transpose_a,
                                     bool bmm_score_transpose_b, fas_tensor *attention_score,
                                     fas_tensor *softmax_output, fas_tensor *drop_mask)
{
    fasi_clear_error();
    fwd_shape s;
    fas_status st = infer_forward_shape(query_layer, key_layer, value_layer, query_transpose,
                                        key_transpose, bmm_score_transpose_a,
                                        bmm_score_transpose_b, false, &s);
    if (st != FAS_OK) return st;
    int64_t out_dims[2] = {s.b * s.sq, s.n * s.dv};
    int64_t p_dims[4] = {s.b, s.n, s.sq, s.sk};
    if (attention_score) set_dims(attention_score, FAS_DTYPE_FLOAT16, 2, out_dims);
    if (softmax_output) set_dims(softmax_output, FAS_DTYPE_FLOAT16, 4, p_dims);
    if (drop_mask) set_dims(drop_mask, FAS_DTYPE_UINT8, 4, p_dims);
    return FAS_OK;
}

/* ---- backward ----------------------------------------------------------------------------- */

/* A gradient output: 2-D [B*S, N*cols] or 4-D [B, N, S, cols]. */
static fas_status check_grad_output(const fas_tensor *t, const char *name, const fwd_shape *s,
                                    int64_t rows, const char *rows_name, int64_t cols,
                                    const char *cols_name)
{
    if (!t) return fasi_fail(FAS_ERR_NULL_POINTER, "%s: the tensor pointer is NULL", name);
    fas_status st = fasi_check_tensor(t, name, true);
    if (st != FAS_OK) return st;
    if (!is_float_dtype(t->dtype))
        return fasi_fail(FAS_ERR_DTYPE, "%s: dtype %d is not a float dtype", name, (int)t->dtype);
    if (t->ndim == 2) {
        char why_r[48], why_c[48];
        snprintf(why_r, sizeof why_r, "B*%s", rows_name);
        snprintf(why_c, sizeof why_c, "N*%s", cols_name);
        expect e[2] = {{s->b * rows, why_r}, {s->n * cols, why_c}};
        return check_dims(t, name, e, 2);
    }
    if (t->ndim == 4) {
        expect e[4] = {{s->b, "B"}, {s->n, "N"}, {rows, rows_name}, {cols, cols_name}};
        return check_dims(t, name, e, 4);
    }
    return fasi_fail(FAS_ERR_SHAPE, "%s: ndim is %d but must be 2 ([B*S, N*D]) or 4 ([B,N,S,D])",
                     name, t->ndim);
}

static fas_status backward_impl(const fas_tensor *dout, const fas_tensor *probs,
                                const fas_tensor *q, const fas_tensor *k, const fas_tensor *v,
                                const fas_tensor *dmask, double scale, double keep_prob,
                                bool query_transpose, bool key_transpose, bool value_transpose,
                                bool dx_transpose, fas_tensor *dq, fas_tensor *dk,
                                fas_tensor *dv, const fas_options *options)
{
    fas_status st;
    fwd_shape s;
    resolved_options ro;
    if ((st = infer_forward_shape(q, k, v, query_transpose, key_transpose, false,
                                  value_transpose, true, &s)) != FAS_OK)
        return st;
    if ((st = check_float(dout, "grad_output", 2)) != FAS_OK) return st;
    {
        expect e[2] = {{s.b * s.sq, "B*Sq"}, {s.n * s.dv, "N*Dv"}};
        expect et[2] = {{s.n * s.dv, "N*Dv (dx_transpose)"}, {s.b * s.sq, "B*Sq (dx_transpose)"}};
        if ((st = check_dims(dout, "grad_output", dx_transpose ? et : e, 2)) != FAS_OK) return st;
    }
    if (!probs) return fasi_fail(FAS_ERR_NULL_POINTER, "softmax_output: the tensor pointer is NULL");
    if ((st = check_probs_like(probs, "softmax_output", &s, false)) != FAS_OK) return st;
    if (dmask && (st = check_probs_like(dmask, "drop_mask", &s, true)) != FAS_OK) return st;
    if ((st = check_scalars(scale, keep_prob)) != FAS_OK) return st;
    if (!dmask && keep_prob < 1.0)
        return fasi_fail(FAS_ERR_NULL_POINTER, "drop_mask: NULL but keep_prob is %.17g < 1",
                         keep_prob);
    if ((st = check_grad_output(dq, "query_dx", &s, s.sq, "Sq", s.d, "D")) != FAS_OK) return st;
    if ((st = check_grad_output(dk, "key_dw", &s, s.sk, "Sk", s.d, "D")) != FAS_OK) return st;
    if ((st = check_grad_output(dv, "value_dw", &s, s.sk, "Sk", s.dv, "Dv")) != FAS_OK) return st;
    if ((st = resolve_options(options, &ro)) != FAS_OK) return st;

    named_buffer ins[6] = {{"grad_output", dout}, {"softmax_output", probs},
                           {"query_layer", q},    {"key_layer", k},
                           {"value_layer", v},    {"drop_mask", dmask}};
    named_buffer outs[3] = {{"query_dx", dq}, {"key_dw", dk}, {"value_dw", dv}};
    if ((st = check_aliasing(outs, 3, ins, 6)) != FAS_OK) return st;

    fasi_bwd_problem p;
    memset(&p, 0, sizeof p);
    p.b = s.b;
    p.n = s.n;
    p.sq = s.sq;
    p.sk = s.sk;
    p.d = s.d;
    p.dv = s.dv;
    p.scale = scale;
    p.keep_prob = keep_prob;
    heads_init(&p.dout, dout, dx_transpose, s.n, s.sq, s.dv);
    fasi_mat_init(&p.probs, probs);
    heads_init(&p.q, q, query_transpose, s.n, s.sq, s.d);
    heads_init(&p.k, k, key_transpose, s.n, s.sk, s.d);
    heads_init(&p.v, v, value_transpose, s.n, s.sk, s.dv);
    if (dmask) {
        p.has_dmask = true;
        fasi_mat_init(&p.dmask, dmask);
    }
    heads_init(&p.dq, dq, false, s.n, s.sq, s.d);
    heads_init(&p.dk, dk, false, s.n, s.sk, s.d);
    heads_init(&p.dv_out, dv, false, s.n, s.sk, s.dv);
    p.threads = ro.threads;
    p.kern = ro.kern;
    return ro.impl == FAS_IMPL_REFERENCE ? fasi_reference_backward(&p)
                                         : fasi_pipeline_backward(&p);
}

fas_status fused_attention_score_grad_ex(
    const fas_tensor *grad_output, const fas_tensor *softmax_output,
    const fas_tensor *query_layer, const fas_tensor *key_layer, const fas_tensor *value_layer,
    const fas_tensor *drop_mask, double scale, double keep_prob, bool query_transpose,
    bool key_transpose, bool value_transpose, bool dx_transpose, fas_tensor *query_dx,
    fas_tensor *key_dw, fas_tensor *value_dw, const fas_options *options)
{
    fasi_clear_error();
    return backward_impl(grad_output, softmax_output, query_layer, key_layer, value_layer,
                         drop_mask, scale, keep_prob, query_transpose, key_transpose,
                         value_transpose, dx_transpose, query_dx, key_dw, value_dw, options);
}

fas_status fused_attention_score_grad(
    const fas_tensor *grad_output, const fas_tensor *softmax_output,
    const fas_tensor *query_layer, const fas_tensor *key_layer, const fas_tensor *value_layer,
    const fas_tensor *drop_mask, double scale, double keep_prob, bool query_transpose,
    bool key_transpose, bool value_transpose, bool dx_transpose, fas_tensor *query_dx,
    fas_tensor *key_dw, fas_tensor *value_dw)
{
    return fused_attention_score_grad_ex(grad_output, softmax_output, query_layer, key_layer,
                                         value_layer, drop_mask, scale, keep_prob,
                                         query_transpose, key_transpose, value_transpose,
                                         dx_transpose, query_dx, key_dw, value_dw, NULL);
}

fas_status fas_attention_grad_dims(const fas_tensor *query_layer, const fas_tensor *key_layer,
                                   const fas_tensor *value_layer, bool query_transpose,
                                   bool key_transpose, bool value_transpose, int out_rank,
                                   fas_tensor *query_dx, fas_tensor *key_dw, fas_tensor *value_dw)
{
    fasi_clear_error();
    fwd_shape s;
    fas_status st = infer_forward_shape(query_layer, key_layer, value_layer, query_transpose,
                                        key_transpose, false, value_transpose, false,
                                        &s);
    if (st != FAS_OK) return st;
    if (out_rank != 2 && out_rank != 4)
        return fasi_fail(FAS_ERR_VALUE, "out_rank: %d must be 2 or 4", out_rank);
    int64_t q2[2] = {s.b * s.sq, s.n * s.d}, k2[2] = {s.b * s.sk, s.n * s.d},
            v2[2] = {s.b * s.sk, s.n * s.dv};
    int64_t q4[4] = {s.b, s.n, s.sq, s.d}, k4[4] = {s.b, s.n, s.sk, s.d},
            v4[4] = {s.b, s.n, s.sk, s.dv};
    bool two = out_rank == 2;
    if (query_dx) set_dims(query_dx, FAS_DTYPE_FLOAT16, out_rank, two ? q2 : q4);
    if (key_dw) set_dims(key_dw, FAS_DTYPE_FLOAT16, out_rank, two ? k2 : k4);
    if (value_dw) set_dims(value_dw, FAS_DTYPE_FLOAT16, out_rank, two ? v2 : v4);
    return FAS_OK;
}
