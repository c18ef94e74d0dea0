/* The operator's entry points: validation (api/validate.h), options (api/options.h), then one
 * validated problem (problem/problem.h) handed to the pipeline or the fp64 reference.
 *
 * Every check runs before any output byte is written; implementations receive a problem whose
 * sizes and tensors are known to be consistent. */
#include <stdio.h>
#include <string.h>

#include "api/options.h"
#include "api/validate.h"
#include "problem/problem.h"
#include "rng/philox.h"

static void heads_init(fasi_heads *h, const fas_tensor *t, bool trans, int64_t heads, int64_t rows,
                       int64_t cols)
{
    fasi_mat_init(&h->mat, t);
    h->merged = t->ndim == 2;
    h->trans = trans;
    h->heads = heads;
    h->rows = rows;
    h->cols = cols;
}

/* The core shared by the forward and backward problems, filled once. */
static fasi_core make_core(const fasi_shape *s, double scale, double keep_prob,
                           const fasi_options *o)
{
    fasi_core c = {s->b,       s->n,    s->sq,     s->sk,
                   s->d,       s->dv,   scale,     keep_prob,
                   o->threads, o->kern, o->engine, o->precision == FAS_PRECISION_NPU};
    return c;
}

/* ---- forward ------------------------------------------------------------------------------ */

/* The global coordinates of a sharded call: its heads inside the whole tensor, and every
 * Philox row of the whole tensor, (batch * heads + head) * Sq + i, within int64. */
static fas_status check_shard(const fasi_options *o, const fasi_shape *s)
{
    const int64_t heads = o->global_num_heads;
    if (o->head_offset > heads - s->n)
        return fasi_fail(FAS_ERR_VALUE,
                         "options: head_offset %lld + N %lld exceeds global_num_heads %lld",
                         (long long)o->head_offset, (long long)s->n, (long long)heads);
    if (o->batch_offset > INT64_MAX - s->b || o->batch_offset + s->b > INT64_MAX / heads / s->sq)
        return fasi_fail(FAS_ERR_VALUE,
                         "options: batch_offset %lld with B %lld, %lld heads and Sq %lld puts "
                         "dropout rows beyond the int64 range",
                         (long long)o->batch_offset, (long long)s->b, (long long)heads,
                         (long long)s->sq);
    return FAS_OK;
}

static fas_status forward_impl(const fas_tensor *q, const fas_tensor *k, const fas_tensor *v,
                               const fas_tensor *mask, double scale, double keep_prob,
                               bool query_transpose, bool key_transpose, bool transpose_a,
                               bool transpose_b, bool value_transpose, bool dx_transpose,
                               fas_tensor *out, fas_tensor *probs, fas_tensor *dmask,
                               const fas_options *options)
{
    fas_status st;
    fasi_shape s;
    fasi_options ro;
    if ((st = fasi_infer_shape(q, k, v, query_transpose, key_transpose, transpose_a, transpose_b,
                               true, &s)) != FAS_OK)
        return st;
    if (mask && (st = fasi_check_mask(mask, &s)) != FAS_OK) return st;
    if ((st = fasi_check_scalars(scale, keep_prob)) != FAS_OK) return st;
    if ((st = fasi_check_float(out, "attention_score", 2)) != FAS_OK) return st;
    fasi_expect eo[2] = {{s.b * s.sq, "B*Sq"}, {s.n * s.dv, "N*Dv"}};
    if ((st = fasi_check_dims(out, "attention_score", eo, 2)) != FAS_OK) return st;
    if (probs && (st = fasi_check_probs_like(probs, "softmax_output", &s, false)) != FAS_OK)
        return st;
    if (dmask && (st = fasi_check_probs_like(dmask, "drop_mask", &s, true)) != FAS_OK) return st;
    if ((st = fasi_resolve_options(options, &ro)) != FAS_OK) return st;
    if (ro.precision == FAS_PRECISION_NPU) {
        fasi_named ts[6] = {{"query_layer", q},       {"key_layer", k},
                            {"value_layer", v},       {"attention_mask", mask},
                            {"attention_score", out}, {"softmax_output", probs}};
        fasi_flag fl[6] = {
            {"query_transpose", query_transpose},   {"key_transpose", key_transpose},
            {"bmm_score_transpose_a", transpose_a}, {"bmm_score_transpose_b", transpose_b},
            {"value_transpose", value_transpose},   {"dx_transpose", dx_transpose}};
        if ((st = fasi_check_npu_domain(&s, false, ts, 6, fl, 6)) != FAS_OK) return st;
    }
    if (ro.global_num_heads == 0) ro.global_num_heads = s.n; /* 0: this call's N */
    if ((st = check_shard(&ro, &s)) != FAS_OK) return st;
    bool mask_in = ro.drop_mask_is_input;
    if (mask_in && !dmask && keep_prob < 1.0)
        return fasi_fail(
            FAS_ERR_NULL_POINTER,
            "drop_mask: NULL but options->drop_mask_is_input is set and keep_prob < 1");

    fasi_named ins[5] = {{"query_layer", q},
                         {"key_layer", k},
                         {"value_layer", v},
                         {"attention_mask", mask},
                         {"drop_mask", mask_in ? dmask : NULL}};
    fasi_named outs[3] = {
        {"attention_score", out}, {"softmax_output", probs}, {"drop_mask", mask_in ? NULL : dmask}};
    if ((st = fasi_check_aliasing(outs, 3, ins, 5)) != FAS_OK) return st;

    fasi_fwd_problem p;
    memset(&p, 0, sizeof p);
    p.core = make_core(&s, scale, keep_prob, &ro);
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
    p.batch_offset = ro.batch_offset;
    p.head_offset = ro.head_offset;
    p.global_heads = ro.global_num_heads;
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
            fasi_generator_draw((uint64_t)((s.sk + FASI_PHILOX_COLS - 1) / FASI_PHILOX_COLS),
                                &p.seed, &p.offset);
        }
    }
    return ro.impl == FAS_IMPL_REFERENCE ? fasi_reference_forward(&p) : fasi_pipeline_forward(&p);
}

fas_status fused_attention_score_fwd_ex(const fas_tensor *query_layer, const fas_tensor *key_layer,
                                        const fas_tensor *value_layer,
                                        const fas_tensor *attention_mask, double scale,
                                        double keep_prob, bool query_transpose, bool key_transpose,
                                        bool bmm_score_transpose_a, bool bmm_score_transpose_b,
                                        bool value_transpose, bool dx_transpose,
                                        fas_tensor *attention_score, fas_tensor *softmax_output,
                                        fas_tensor *drop_mask, const fas_options *options)
{
    /* value_transpose and dx_transpose describe the backward's inputs: the forward ignores
     * them, as the NPU does, except that the NPU precision mode requires them false */
    fasi_clear_error();
    return forward_impl(query_layer, key_layer, value_layer, attention_mask, scale, keep_prob,
                        query_transpose, key_transpose, bmm_score_transpose_a,
                        bmm_score_transpose_b, value_transpose, dx_transpose, attention_score,
                        softmax_output, drop_mask, options);
}

fas_status fused_attention_score_fwd(const fas_tensor *query_layer, const fas_tensor *key_layer,
                                     const fas_tensor *value_layer,
                                     const fas_tensor *attention_mask, double scale,
                                     double keep_prob, bool query_transpose, bool key_transpose,
                                     bool bmm_score_transpose_a, bool bmm_score_transpose_b,
                                     bool value_transpose, bool dx_transpose,
                                     fas_tensor *attention_score, fas_tensor *softmax_output,
                                     fas_tensor *drop_mask)
{
    return fused_attention_score_fwd_ex(
        query_layer, key_layer, value_layer, attention_mask, scale, keep_prob, query_transpose,
        key_transpose, bmm_score_transpose_a, bmm_score_transpose_b, value_transpose, dx_transpose,
        attention_score, softmax_output, drop_mask, NULL);
}

fas_status fused_attention_score(const fas_tensor *query_layer, const fas_tensor *key_layer,
                                 const fas_tensor *value_layer, const fas_tensor *attention_mask,
                                 double scale, double keep_prob, bool query_transpose,
                                 bool key_transpose, bool bmm_score_transpose_a,
                                 bool bmm_score_transpose_b, bool value_transpose,
                                 bool dx_transpose, fas_tensor *attention_score)
{
    return fused_attention_score_fwd_ex(
        query_layer, key_layer, value_layer, attention_mask, scale, keep_prob, query_transpose,
        key_transpose, bmm_score_transpose_a, bmm_score_transpose_b, value_transpose, dx_transpose,
        attention_score, NULL, NULL, NULL);
}

fas_status fused_attention_score_ex(const fas_tensor *query_layer, const fas_tensor *key_layer,
                                    const fas_tensor *value_layer, const fas_tensor *attention_mask,
                                    double scale, double keep_prob, bool query_transpose,
                                    bool key_transpose, bool bmm_score_transpose_a,
                                    bool bmm_score_transpose_b, bool value_transpose,
                                    bool dx_transpose, fas_tensor *attention_score,
                                    const fas_options *options)
{
    return fused_attention_score_fwd_ex(
        query_layer, key_layer, value_layer, attention_mask, scale, keep_prob, query_transpose,
        key_transpose, bmm_score_transpose_a, bmm_score_transpose_b, value_transpose, dx_transpose,
        attention_score, NULL, NULL, options);
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
    fasi_shape s;
    fas_status st =
        fasi_infer_shape(query_layer, key_layer, value_layer, query_transpose, key_transpose,
                         bmm_score_transpose_a, bmm_score_transpose_b, false, &s);
    if (st != FAS_OK) return st;
    int64_t out_dims[2] = {s.b * s.sq, s.n * s.dv};
    int64_t p_dims[4] = {s.b, s.n, s.sq, s.sk};
    if (attention_score) set_dims(attention_score, FAS_DTYPE_FLOAT16, 2, out_dims);
    if (softmax_output) set_dims(softmax_output, FAS_DTYPE_FLOAT16, 4, p_dims);
    if (drop_mask) set_dims(drop_mask, FAS_DTYPE_UINT8, 4, p_dims);
    return FAS_OK;
}
/* ---- backward ----------------------------------------------------------------------------- */

static fas_status backward_impl(const fas_tensor *dout, const fas_tensor *probs,
                                const fas_tensor *q, const fas_tensor *k, const fas_tensor *v,
                                const fas_tensor *dmask, double scale, double keep_prob,
                                bool query_transpose, bool key_transpose, bool value_transpose,
                                bool dx_transpose, fas_tensor *dq, fas_tensor *dk, fas_tensor *dv,
                                const fas_options *options)
{
    fas_status st;
    fasi_shape s;
    fasi_options ro;
    if ((st = fasi_infer_shape(q, k, v, query_transpose, key_transpose, false, value_transpose,
                               true, &s)) != FAS_OK)
        return st;
    if ((st = fasi_check_float(dout, "grad_output", 2)) != FAS_OK) return st;
    {
        fasi_expect e[2] = {{s.b * s.sq, "B*Sq"}, {s.n * s.dv, "N*Dv"}};
        fasi_expect et[2] = {{s.n * s.dv, "N*Dv (dx_transpose)"},
                             {s.b * s.sq, "B*Sq (dx_transpose)"}};
        if ((st = fasi_check_dims(dout, "grad_output", dx_transpose ? et : e, 2)) != FAS_OK)
            return st;
    }
    if ((st = fasi_check_probs_like(probs, "softmax_output", &s, false)) != FAS_OK) return st;
    if (dmask && (st = fasi_check_probs_like(dmask, "drop_mask", &s, true)) != FAS_OK) return st;
    if ((st = fasi_check_scalars(scale, keep_prob)) != FAS_OK) return st;
    if (!dmask && keep_prob < 1.0)
        return fasi_fail(FAS_ERR_NULL_POINTER, "drop_mask: NULL but keep_prob is %s < 1",
                         fasi_double_text(keep_prob).s);
    if ((st = fasi_check_grad_output(dq, "query_dx", &s, s.sq, "Sq", s.d, "D")) != FAS_OK)
        return st;
    if ((st = fasi_check_grad_output(dk, "key_dw", &s, s.sk, "Sk", s.d, "D")) != FAS_OK) return st;
    if ((st = fasi_check_grad_output(dv, "value_dw", &s, s.sk, "Sk", s.dv, "Dv")) != FAS_OK)
        return st;
    if ((st = fasi_resolve_options(options, &ro)) != FAS_OK) return st;
    if (ro.precision == FAS_PRECISION_NPU) {
        fasi_named ts[8] = {{"grad_output", dout}, {"softmax_output", probs}, {"query_layer", q},
                            {"key_layer", k},      {"value_layer", v},        {"query_dx", dq},
                            {"key_dw", dk},        {"value_dw", dv}};
        fasi_flag fl[4] = {{"query_transpose", query_transpose},
                           {"key_transpose", key_transpose},
                           {"value_transpose", value_transpose},
                           {"dx_transpose", dx_transpose}};
        if ((st = fasi_check_npu_domain(&s, true, ts, 8, fl, 4)) != FAS_OK) return st;
    }

    fasi_named ins[6] = {{"grad_output", dout}, {"softmax_output", probs}, {"query_layer", q},
                         {"key_layer", k},      {"value_layer", v},        {"drop_mask", dmask}};
    fasi_named outs[3] = {{"query_dx", dq}, {"key_dw", dk}, {"value_dw", dv}};
    if ((st = fasi_check_aliasing(outs, 3, ins, 6)) != FAS_OK) return st;

    fasi_bwd_problem p;
    memset(&p, 0, sizeof p);
    p.core = make_core(&s, scale, keep_prob, &ro);
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
    return ro.impl == FAS_IMPL_REFERENCE ? fasi_reference_backward(&p) : fasi_pipeline_backward(&p);
}

fas_status fused_attention_score_grad_ex(
    const fas_tensor *grad_output, const fas_tensor *softmax_output, const fas_tensor *query_layer,
    const fas_tensor *key_layer, const fas_tensor *value_layer, const fas_tensor *drop_mask,
    double scale, double keep_prob, bool query_transpose, bool key_transpose, bool value_transpose,
    bool dx_transpose, fas_tensor *query_dx, fas_tensor *key_dw, fas_tensor *value_dw,
    const fas_options *options)
{
    fasi_clear_error();
    return backward_impl(grad_output, softmax_output, query_layer, key_layer, value_layer,
                         drop_mask, scale, keep_prob, query_transpose, key_transpose,
                         value_transpose, dx_transpose, query_dx, key_dw, value_dw, options);
}

fas_status fused_attention_score_grad(
    const fas_tensor *grad_output, const fas_tensor *softmax_output, const fas_tensor *query_layer,
    const fas_tensor *key_layer, const fas_tensor *value_layer, const fas_tensor *drop_mask,
    double scale, double keep_prob, bool query_transpose, bool key_transpose, bool value_transpose,
    bool dx_transpose, fas_tensor *query_dx, fas_tensor *key_dw, fas_tensor *value_dw)
{
    return fused_attention_score_grad_ex(grad_output, softmax_output, query_layer, key_layer,
                                         value_layer, drop_mask, scale, keep_prob, query_transpose,
                                         key_transpose, value_transpose, dx_transpose, query_dx,
                                         key_dw, value_dw, NULL);
}

fas_status fas_attention_grad_dims(const fas_tensor *query_layer, const fas_tensor *key_layer,
                                   const fas_tensor *value_layer, bool query_transpose,
                                   bool key_transpose, bool value_transpose, int out_rank,
                                   fas_tensor *query_dx, fas_tensor *key_dw, fas_tensor *value_dw)
{
    fasi_clear_error();
    fasi_shape s;
    fas_status st = fasi_infer_shape(query_layer, key_layer, value_layer, query_transpose,
                                     key_transpose, false, value_transpose, false, &s);
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
