#include "attn_case.h"

#include <math.h>
#include <string.h>

void attn_mask_dims(const attn_case *c, int form, int64_t dims[4])
{
    int64_t b = c->b, n = c->n, sq = c->sq, sk = c->sk;
    int64_t table[MASK_FORMS][4] = {{0, 0, 0, 0},   {b, 1, sq, sk}, {b, n, sq, sk}, {1, 1, sq, sk},
                                    {1, n, sq, sk}, {b, 1, 1, sk},  {1, 1, 1, sk}};
    memcpy(dims, table[form], sizeof table[form]);
}

void attn_case_alloc(attn_case *c, fast_rng *r, fas_dtype dtype, const fas_format fmt[4], double lo,
                     double hi, double mlo, double mhi)
{
    c->q = c->qt ? fast_tensor_4d(dtype, fmt[0], c->b, c->n, c->d, c->sq)
                 : fast_tensor_4d(dtype, fmt[0], c->b, c->n, c->sq, c->d);
    c->k = c->kt ? fast_tensor_4d(dtype, fmt[1], c->b, c->n, c->d, c->sk)
                 : fast_tensor_4d(dtype, fmt[1], c->b, c->n, c->sk, c->d);
    c->v = c->tb ? fast_tensor_4d(dtype, fmt[2], c->b, c->n, c->dv, c->sk)
                 : fast_tensor_4d(dtype, fmt[2], c->b, c->n, c->sk, c->dv);
    fast_fill_uniform(&c->q, r, lo, hi);
    fast_fill_uniform(&c->k, r, lo, hi);
    fast_fill_uniform(&c->v, r, lo, hi);
    memset(&c->mask, 0, sizeof c->mask);
    if (c->mask_form != MASK_NONE) {
        int64_t dims[4];
        attn_mask_dims(c, c->mask_form, dims);
        c->mask = fast_tensor_alloc(dtype, fmt[3], 4, dims);
        fast_fill_uniform(&c->mask, r, mlo, mhi);
    }
}

void attn_case_free(attn_case *c)
{
    fast_tensor_free(&c->q);
    fast_tensor_free(&c->k);
    fast_tensor_free(&c->v);
    if (c->mask.data) fast_tensor_free(&c->mask);
}

const fas_tensor *attn_mask_ptr(const attn_case *c)
{
    return c->mask_form == MASK_NONE ? NULL : &c->mask;
}

void attn_oracle_forward(const attn_case *c, const uint8_t *keep, double *probs, double *ctx)
{
    float *q = fast_to_f32(&c->q), *k = fast_to_f32(&c->k), *v = fast_to_f32(&c->v);
    float *m = c->mask_form == MASK_NONE ? NULL : fast_to_f32(&c->mask);
    int64_t md[4] = {0, 0, 0, 0};
    if (m) attn_mask_dims(c, c->mask_form, md);
    int64_t sq = c->sq, sk = c->sk, d = c->d, dv = c->dv;
    double *pd = malloc((size_t)(sq * sk) * sizeof *pd);
    assert_non_null(pd);
    for (int64_t b = 0; b < c->b; b++) {
        for (int64_t n = 0; n < c->n; n++) {
            int64_t h = b * c->n + n;
            for (int64_t i = 0; i < sq; i++) {
                double mx = -INFINITY;
                double *row = pd + i * sk;
                for (int64_t j = 0; j < sk; j++) {
                    double a = 0;
                    for (int64_t t = 0; t < d; t++) {
                        double qv = c->qt ? q[(h * d + t) * sq + i] : q[(h * sq + i) * d + t];
                        double kv = c->kt ? k[(h * d + t) * sk + j] : k[(h * sk + j) * d + t];
                        a += qv * kv;
                    }
                    double x = a * c->scale;
                    if (m) {
                        int64_t mb = md[0] > 1 ? b : 0, mn = md[1] > 1 ? n : 0,
                                mi = md[2] > 1 ? i : 0;
                        x += m[((mb * md[1] + mn) * md[2] + mi) * sk + j];
                    }
                    row[j] = x;
                    if (!isnan(mx) && (x > mx || isnan(x)))
                        mx = x; /* a NaN max poisons the row, as in torch */
                }
                double sum = 0;
                for (int64_t j = 0; j < sk; j++) {
                    row[j] = mx == -INFINITY ? 0.0 : exp(row[j] - mx);
                    sum += row[j];
                }
                for (int64_t j = 0; j < sk; j++) {
                    if (mx != -INFINITY) row[j] /= sum;
                    if (probs) probs[(h * sq + i) * sk + j] = row[j];
                    double g = keep ? keep[(h * sq + i) * sk + j] / c->keep_prob : 1.0;
                    row[j] *= g;
                }
            }
            /* context row r (r indexes query rows; with transpose_a, key rows) */
            for (int64_t r = 0; r < sq; r++) {
                for (int64_t e = 0; e < dv; e++) {
                    double acc = 0;
                    for (int64_t t = 0; t < sk; t++) {
                        double p = c->ta ? pd[t * sk + r] : pd[r * sk + t];
                        double vv = c->tb ? v[(h * dv + e) * sk + t] : v[(h * sk + t) * dv + e];
                        acc += p * vv;
                    }
                    ctx[(b * sq + r) * (c->n * dv) + n * dv + e] = acc;
                }
            }
        }
    }
    free(pd);
    free(q);
    free(k);
    free(v);
    free(m);
}

fas_status attn_run_forward(const attn_case *c, fas_impl impl, int threads, uint64_t seed,
                            uint64_t offset, fas_tensor *out, fas_tensor *probs, fas_tensor *dmask)
{
    fas_options o;
    fas_options_init(&o);
    o.impl = impl;
    o.num_threads = threads;
    o.has_seed = true;
    o.seed = seed;
    o.offset = offset;
    return fused_attention_score_fwd_ex(&c->q, &c->k, &c->v, attn_mask_ptr(c), c->scale,
                                        c->keep_prob, c->qt, c->kt, c->ta, c->tb, false, false, out,
                                        probs, dmask, &o);
}

void attn_case_print(const attn_case *c, int index)
{
    printf("  case %d: B=%lld N=%lld Sq=%lld Sk=%lld D=%lld Dv=%lld qt=%d kt=%d ta=%d tb=%d "
           "mask=%d fmt q/k/v/m=%d/%d/%d/%d dtype=%d keep=%g scale=%g\n",
           index, (long long)c->b, (long long)c->n, (long long)c->sq, (long long)c->sk,
           (long long)c->d, (long long)c->dv, c->qt, c->kt, c->ta, c->tb, c->mask_form, c->q.format,
           c->k.format, c->v.format, c->mask.data ? (int)c->mask.format : -1, c->q.dtype,
           c->keep_prob, c->scale);
}

/* GV-F1 (scaled): uniform [-3, 3], key padding of -10000 beyond key 5, scale 0.125, keep 1. */
void attn_check_gv_f1(int64_t b, int64_t n, int64_t s, int64_t d)
{
    fast_rng r;
    fast_rng_seed(&r, 1);
    attn_case c;
    memset(&c, 0, sizeof c);
    c.b = b;
    c.n = n;
    c.sq = c.sk = s;
    c.d = c.dv = d;
    c.mask_form = MASK_B1SS;
    c.scale = 0.125;
    c.keep_prob = 1.0;
    fas_format nz[4] = {FAS_FORMAT_FRACTAL_NZ, FAS_FORMAT_FRACTAL_NZ, FAS_FORMAT_FRACTAL_NZ,
                        FAS_FORMAT_FRACTAL_NZ};
    attn_case_alloc(&c, &r, FAS_DTYPE_FLOAT16, nz, -3.0, 3.0, 0.0, 0.0);
    float *mvals = malloc((size_t)(b * s * s) * sizeof *mvals);
    assert_non_null(mvals);
    for (int64_t i = 0; i < b * s * s; i++) mvals[i] = (i % s) < 6 ? 0.0f : -10000.0f;
    fast_from_f32(&c.mask, mvals);
    free(mvals);

    fas_tensor out = fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, b * s, n * d);
    fas_tensor probs = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, b, n, s, s);
    fas_tensor dmask = fast_tensor_4d(FAS_DTYPE_UINT8, FAS_FORMAT_FRACTAL_NZ, b, n, s, s);
    fas_tensor ref = fast_tensor_2d(FAS_DTYPE_FLOAT, FAS_FORMAT_ND, b * s, n * d);
    assert_int_equal(attn_run_forward(&c, FAS_IMPL_AUTO, 0, 1, 0, &out, &probs, &dmask), FAS_OK);
    assert_int_equal(attn_run_forward(&c, FAS_IMPL_REFERENCE, 0, 1, 0, &ref, NULL, NULL), FAS_OK);
    int64_t n_p = b * n * s * s, n_out = b * s * n * d;
    float *p = fast_to_f32(&probs);
    uint8_t *m = fast_to_u8(&dmask);
    for (int64_t i = 0; i < n_p; i++) {
        if (i % s >= 6 && p[i] != 0.0f)
            fail_msg("P[%lld] = %g for a padded key", (long long)i, p[i]);
        assert_int_equal(m[i], 1);
    }
    for (int64_t row = 0; row < b * n * s; row++) {
        double sum = 0;
        for (int64_t j = 0; j < s; j++) sum += p[row * s + j];
        if (fabs(sum - 1.0) > 2e-3) fail_msg("row %lld sums to %.6f", (long long)row, sum);
    }
    float *o = fast_to_f32(&out), *oref = fast_to_f32(&ref);
    double *oref_d = malloc((size_t)n_out * sizeof *oref_d);
    assert_non_null(oref_d);
    for (int64_t i = 0; i < n_out; i++) oref_d[i] = oref[i];
    fast_close_stats st =
        fast_check_close("GV-F1 context", o, oref_d, n_out, FAST_RTOL, FAST_ATOL_FRAC);
    printf("  GV-F1 [%lld,%lld,%lld,%lld]: max abs %.3g, max rel %.3g\n", (long long)b,
           (long long)n, (long long)s, (long long)d, st.max_abs, st.max_rel);
    assert_int_equal(st.failures, 0);
    free(p);
    free(m);
    free(o);
    free(oref);
    free(oref_d);
    fast_tensor_free(&out);
    fast_tensor_free(&probs);
    fast_tensor_free(&dmask);
    fast_tensor_free(&ref);
    attn_case_free(&c);
}
