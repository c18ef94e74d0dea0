/* fuzz_forward: tiny attention problems through the blocked pipeline and the fp64 reference.
 *
 * The input picks B, N <= 2, Sq, Sk <= 40, D, Dv <= 24, the six flags, one of the mask forms
 * (or none, or an invalid [1, N, 1, Sk]), the dtype and format of every tensor, keep_prob in
 * {1, 0.5, 0.9} (rarely an invalid one), scale (a multiple of 1/8 up to +-4, any fp16 value, or
 * any double bit pattern: NaN, infinities and values beyond FLT_MAX included), an explicit
 * dropout seed/offset, thread counts, a forced ISA level, and whether softmax_output and
 * drop_mask are requested or the drop mask is an input. Element data come from the rest of the
 * input as fp16 bit patterns (continued pseudo-randomly when the input is short, see
 * fz_stream16): "raw" cases keep every pattern (NaN, infinities, 65504), "nice" cases fold them
 * into finite values with |x| <= 8 (a mask element with an all-ones exponent becomes -inf).
 * Input NZ padding is filled with NaN, which must never be read. Rarely an argument is
 * corrupted (wrong dims, dtype, aliasing, NULL data).
 *
 * Checks:
 * - fas_attention_output_dims gives the shapes the flags imply;
 * - the reference (FAS_IMPL_REFERENCE), the pipeline (FAS_IMPL_AUTO) and the pipeline at a
 *   forced ISA level with the other thread count return the same status, the one the argument
 *   rules predict (FAS_ERR_VALUE for a NaN or infinite scale); on failure no output byte
 *   changed;
 * - drop masks are identical between the reference and the pipeline (all ones for keep_prob 1);
 *   an input drop mask is not modified;
 * - AUTO and the forced ISA level agree bit for bit (any NaN equals any NaN), forward and
 *   backward: SIMD kernels are bit-identical to the portable ones and results do not depend on
 *   the thread count;
 * - NZ padding of every output is zero;
 * - NaN propagation: where fp32 cannot overflow, a probability (and, with finite V, a context
 *   element) is NaN in the pipeline exactly when it is NaN in the reference;
 * - accuracy in the nice domain: every element of attention_score and softmax_output is within
 *   the bound argued at check_accuracy of the reference's;
 * - a finite scale beyond FLT_MAX is either rejected with FAS_ERR_VALUE or gives no NaN where
 *   the reference has none (forward and backward);
 * - fused_attention_score_grad on the forward's outputs succeeds (pipeline, reference, forced
 *   ISA), no gradient is NaN in the nice domain, and where no fp32 stage can overflow the
 *   pipeline's gradients are NaN exactly where the reference's are. */
#include <float.h>

#include "fuzz_util.h"

/* ---- the decoded case --------------------------------------------------------------------- */

enum { MASK_NONE, MASK_B1SS, MASK_BNSS, MASK_11SS, MASK_1NSS, MASK_B11S, MASK_111S, MASK_1N1S };

typedef struct problem {
    int64_t b, n, sq, sk, d, dv;
    bool qt, kt, ta, tb, vt, dxt;
    int mask_form;
    int64_t mdims[4];
    bool raw;
    double scale, keep_prob;
    uint64_t seed, offset;
    bool want_probs, want_dmask, dmask_input;
    int threads, forced_threads;
    fas_impl forced;
    int corrupt;
    fas_format fmt_q, fmt_k, fmt_v, fmt_m, fmt_out, fmt_probs, fmt_dmask;
    fas_dtype dt_q, dt_k, dt_v, dt_m, dt_out, dt_probs;
    uint8_t grad_sel, grad_dt;
    fas_tensor q, k, v, mask, dmask_in;
    /* logical values as stored: q [b][n][sq][d], k [b][n][sk][d], v [b][n][sk][dv],
     * mask [mdims] */
    double *qv, *kv, *vv, *mv;
} problem;

/* Outputs of one forward call. */
typedef struct fwd_out {
    fas_tensor out, probs, dmask;
    bool has_probs, has_dmask; /* dmask: an output here (not the input mask) */
} fwd_out;

static const fas_dtype FLOATS[4] = {FAS_DTYPE_FLOAT16, FAS_DTYPE_FLOAT16, FAS_DTYPE_BF16,
                                    FAS_DTYPE_FLOAT};

static fas_format fmt_bit(uint8_t bits, int i)
{
    return (bits >> i) & 1 ? FAS_FORMAT_FRACTAL_NZ : FAS_FORMAT_ND;
}

static void mask_dims(const problem *p, int form, int64_t md[4])
{
    int64_t b = p->b, n = p->n, sq = p->sq, sk = p->sk;
    int64_t all[8][4] = {{0, 0, 0, 0},   {b, 1, sq, sk}, {b, n, sq, sk}, {1, 1, sq, sk},
                         {1, n, sq, sk}, {b, 1, 1, sk},  {1, 1, 1, sk},  {1, n, 1, sk}};
    memcpy(md, all[form], sizeof all[form]);
}

/* ---- element data -------------------------------------------------------------------------- */

FZ_NO_COVERAGE static uint16_t next_half(fz_reader *data) { return fz_stream16(data); }

/* Fold a pattern into a finite value with |x| <= 8 (clearing exponent bit 14 leaves |x| < 2). */
FZ_NO_COVERAGE static uint16_t nice_half(uint16_t h, bool is_mask)
{
    if (is_mask && (h & 0x7c00) == 0x7c00) return 0xfc00; /* -inf */
    if ((h & 0x7c00) == 0x7c00 || fabs(fz_half_to_double(h)) > 8.0) h &= (uint16_t)~0x4000;
    return h;
}

/* Store element (mat, r, c) of t from the next pattern; returns the value as stored. */
FZ_NO_COVERAGE static double put(const fas_tensor *t, const fz_geom *g, int64_t mat, int64_t r,
                                 int64_t c, fz_reader *data, bool raw, bool is_mask)
{
    uint16_t h = next_half(data);
    if (!raw) h = nice_half(h, is_mask);
    double x = fz_half_to_double(h);
    uint32_t bits = t->dtype == FAS_DTYPE_FLOAT16 ? h : fz_value_bits(t->dtype, x);
    fz_set_bits(t, g, mat, r, c, bits);
    return fz_get(t, g, mat, r, c);
}

/* A 4-D input [B, N, rows, cols] per head, stored transposed when trans. */
FZ_NO_COVERAGE static fas_tensor make_heads(const problem *p, fas_dtype dt, fas_format fmt,
                                            int64_t rows, int64_t cols, bool trans, fz_reader *data,
                                            double **values)
{
    int64_t dims[4] = {p->b, p->n, trans ? cols : rows, trans ? rows : cols};
    fas_tensor t = fz_tensor_new(dt, fmt, 4, dims, 0xff); /* NaN everywhere, padding included */
    fz_geom g = fz_geom_of(&t);
    double *v = malloc((size_t)(p->b * p->n * rows * cols) * sizeof *v);
    FZ_CHECK(v != NULL, "out of memory");
    for (int64_t h = 0; h < p->b * p->n; h++)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++)
                v[(h * rows + r) * cols + c] = trans ? put(&t, &g, h, c, r, data, p->raw, false)
                                                     : put(&t, &g, h, r, c, data, p->raw, false);
    *values = v;
    return t;
}

FZ_NO_COVERAGE static double qval(const problem *p, int64_t b, int64_t n, int64_t i, int64_t t)
{
    return p->qv[((b * p->n + n) * p->sq + i) * p->d + t];
}
FZ_NO_COVERAGE static double kval(const problem *p, int64_t b, int64_t n, int64_t j, int64_t t)
{
    return p->kv[((b * p->n + n) * p->sk + j) * p->d + t];
}
FZ_NO_COVERAGE static double vval(const problem *p, int64_t b, int64_t n, int64_t j, int64_t c)
{
    return p->vv[((b * p->n + n) * p->sk + j) * p->dv + c];
}
/* The mask element added to logit (b, n, i, j); 0 without a mask. */
FZ_NO_COVERAGE static double mval(const problem *p, int64_t b, int64_t n, int64_t i, int64_t j)
{
    if (p->mask_form == MASK_NONE) return 0.0;
    const int64_t *m = p->mdims;
    int64_t mb = m[0] > 1 ? b : 0, mn = m[1] > 1 ? n : 0, mi = m[2] > 1 ? i : 0;
    return p->mv[((mb * m[1] + mn) * m[2] + mi) * m[3] + j];
}

/* ---- decoding ----------------------------------------------------------------------------- */

static void decode(problem *p, fz_reader *rd)
{
    memset(p, 0, sizeof *p);
    uint8_t h0 = fz_u8(rd);
    p->b = 1 + (h0 & 1);
    p->n = 1 + ((h0 >> 1) & 1);
    p->qt = h0 & 4;
    p->kt = h0 & 8;
    p->ta = h0 & 16;
    p->tb = h0 & 32;
    p->vt = h0 & 64;
    p->dxt = h0 & 128;
    p->sq = 1 + fz_u8(rd) % 40;
    p->sk = 1 + fz_u8(rd) % 40;
    p->d = 1 + fz_u8(rd) % 24;
    p->dv = 1 + fz_u8(rd) % 24;
    uint8_t hm = fz_u8(rd);
    p->mask_form = hm & 7;
    p->raw = ((hm >> 3) & 3) == 3;
    if (p->ta && (hm >> 5) != 7) p->sk = p->sq; /* rarely keep Sq != Sk: a shape error */
    mask_dims(p, p->mask_form, p->mdims);

    uint8_t hf = fz_u8(rd);
    p->fmt_q = fmt_bit(hf, 0);
    p->fmt_k = fmt_bit(hf, 1);
    p->fmt_v = fmt_bit(hf, 2);
    p->fmt_m = fmt_bit(hf, 3);
    p->fmt_out = fmt_bit(hf, 4);
    p->fmt_probs = fmt_bit(hf, 5);
    p->fmt_dmask = fmt_bit(hf, 6);
    p->want_probs = hf & 128;
    uint8_t hd = fz_u8(rd);
    p->dt_q = FLOATS[hd & 3];
    p->dt_k = FLOATS[(hd >> 2) & 3];
    p->dt_v = FLOATS[(hd >> 4) & 3];
    p->dt_m = FLOATS[(hd >> 6) & 3];
    uint8_t ho = fz_u8(rd);
    p->dt_out = FLOATS[ho & 3];
    p->dt_probs = FLOATS[(ho >> 2) & 3];
    p->want_dmask = ho & 16;
    p->dmask_input = (ho & 0x60) == 0x60;
    p->threads = 1 + ((ho >> 7) & 1);
    p->forced_threads = 3 - p->threads;

    uint8_t hk = fz_u8(rd);
    static const double keeps[16] = {1,   1,   1,   1,   1,   0.5, 0.5, 0.5,
                                     0.5, 0.5, 0.9, 0.9, 0.9, 0.9, 0.9, 0};
    static const double bad_keeps[4] = {0.0, -0.5, 1.5, NAN};
    p->keep_prob = (hk & 15) == 15 ? bad_keeps[(hk >> 4) & 3] : keeps[hk & 15];
    static const fas_impl forced[4] = {FAS_IMPL_PORTABLE, FAS_IMPL_AVX2, FAS_IMPL_AVX512,
                                       FAS_IMPL_NEON};
    p->forced = forced[(hk >> 6) & 3];

    uint8_t hs = fz_u8(rd);
    switch (hs & 3) {
    case 2: p->scale = fz_f64_bits(fz_u64(rd)); break;
    case 3: p->scale = fz_half_to_double(fz_u16(rd)); break;
    default: /* +-0.125 .. +-4 in steps of 1/8; a zero byte gives 0.125 */
        p->scale = (double)((hs >> 2) % 32 + 1) / 8.0 * ((hs >> 2) >= 32 ? -1.0 : 1.0);
    }
    p->seed = fz_u64(rd);
    p->offset = fz_u16(rd);
    uint8_t hc = fz_u8(rd);
    p->corrupt = hc >= 0xfb ? hc - 0xfa : 0; /* 1..5, rare */
    p->grad_sel = fz_u8(rd);
    p->grad_dt = fz_u8(rd);
}

FZ_NO_COVERAGE static void build_inputs(problem *p, fz_reader *data)
{
    p->q = make_heads(p, p->dt_q, p->fmt_q, p->sq, p->d, p->qt, data, &p->qv);
    p->k = make_heads(p, p->dt_k, p->fmt_k, p->sk, p->d, p->kt, data, &p->kv);
    p->v = make_heads(p, p->dt_v, p->fmt_v, p->sk, p->dv, p->tb, data, &p->vv);
    if (p->mask_form != MASK_NONE) {
        const int64_t *m = p->mdims;
        p->mask = fz_tensor_new(p->dt_m, p->fmt_m, 4, m, 0xff);
        fz_geom g = fz_geom_of(&p->mask);
        p->mv = malloc((size_t)(m[0] * m[1] * m[2] * m[3]) * sizeof *p->mv);
        FZ_CHECK(p->mv != NULL, "out of memory");
        for (int64_t h = 0; h < m[0] * m[1]; h++)
            for (int64_t r = 0; r < m[2]; r++)
                for (int64_t c = 0; c < m[3]; c++)
                    p->mv[(h * m[2] + r) * m[3] + c] =
                        put(&p->mask, &g, h, r, c, data, p->raw, true);
    }
    if (p->dmask_input) {
        int64_t dims[4] = {p->b, p->n, p->sq, p->sk};
        p->dmask_in = fz_tensor_new(FAS_DTYPE_UINT8, p->fmt_dmask, 4, dims, 0xff);
        fz_geom g = fz_geom_of(&p->dmask_in);
        for (int64_t h = 0; h < p->b * p->n; h++)
            for (int64_t r = 0; r < p->sq; r++)
                for (int64_t c = 0; c < p->sk; c++) {
                    uint8_t byte = (uint8_t)next_half(data);
                    fz_set_bits(&p->dmask_in, &g, h, r, c, p->raw ? byte : byte & 1);
                }
    }
}

static void free_problem(problem *p)
{
    fz_tensor_free(&p->q);
    fz_tensor_free(&p->k);
    fz_tensor_free(&p->v);
    fz_tensor_free(&p->mask);
    fz_tensor_free(&p->dmask_in);
    free(p->qv);
    free(p->kv);
    free(p->vv);
    free(p->mv);
}

/* ---- running the forward ------------------------------------------------------------------ */

static void alloc_outputs(const problem *p, fwd_out *o, bool reference)
{
    memset(o, 0, sizeof *o);
    int64_t od[2] = {p->b * p->sq, p->n * p->dv}, pd[4] = {p->b, p->n, p->sq, p->sk};
    /* the reference writes FLOAT ND, so that the accuracy bound needs no double rounding */
    o->out = fz_tensor_new(reference ? FAS_DTYPE_FLOAT : p->dt_out,
                           reference ? FAS_FORMAT_ND : p->fmt_out, 2, od, 0xa5);
    o->has_probs = reference || p->want_probs;
    if (o->has_probs)
        o->probs = fz_tensor_new(reference ? FAS_DTYPE_FLOAT : p->dt_probs,
                                 reference ? FAS_FORMAT_ND : p->fmt_probs, 4, pd, 0xa5);
    o->has_dmask = !p->dmask_input && (reference || p->want_dmask);
    if (o->has_dmask)
        o->dmask =
            fz_tensor_new(FAS_DTYPE_UINT8, reference ? FAS_FORMAT_ND : p->fmt_dmask, 4, pd, 0xa5);
}

static void free_outputs(fwd_out *o)
{
    fz_tensor_free(&o->out);
    fz_tensor_free(&o->probs);
    fz_tensor_free(&o->dmask);
}

static bool huge_scale(const problem *p) { return isfinite(p->scale) && fabs(p->scale) > FLT_MAX; }

/* The status the argument rules of fused_attention.h predict, in the order the operator checks
 * its arguments (inputs, mask, scalars, outputs, aliasing). *late: a status that comes after
 * the scalar checks (FAS_OK included), which a rejected huge scale would preempt. */
static fas_status expected_status(const problem *p, bool *late)
{
    *late = false;
    if (p->corrupt == 5) return FAS_ERR_NULL_POINTER;
    if (p->ta && p->sq != p->sk) return FAS_ERR_SHAPE;
    if (p->mask_form == MASK_1N1S && p->n != 1 && p->sq != 1) return FAS_ERR_SHAPE;
    if (!isfinite(p->scale) || !(p->keep_prob > 0.0 && p->keep_prob <= 1.0)) return FAS_ERR_VALUE;
    *late = true;
    switch (p->corrupt) {
    case 1: return p->b * p->sq != p->n * p->dv ? FAS_ERR_SHAPE : FAS_OK;
    case 2: return p->want_probs ? FAS_ERR_DTYPE : FAS_OK;
    case 3: return !p->dmask_input && p->want_dmask ? FAS_ERR_DTYPE : FAS_OK;
    case 4: return p->want_probs ? FAS_ERR_ALIAS : FAS_OK;
    default: return FAS_OK;
    }
}

static fas_status run_forward(const problem *p, fwd_out *o, fas_impl impl, int threads,
                              const char *what)
{
    fas_options opt;
    fas_options_init(&opt);
    opt.num_threads = threads;
    opt.has_seed = true;
    opt.seed = p->seed;
    opt.offset = p->offset;
    opt.drop_mask_is_input = p->dmask_input;
    opt.impl = impl;

    /* corruptions apply to the optional outputs only when the case requests them, so that
     * the reference (which always writes them) fails or succeeds with the pipeline */
    fas_tensor q = p->q, out = o->out, probs = o->probs, dmask = o->dmask;
    switch (p->corrupt) {
    case 1: {
        int64_t x = out.dims[0];
        out.dims[0] = out.dims[1];
        out.dims[1] = x;
        break;
    }
    case 2:
        if (p->want_probs) probs.dtype = FAS_DTYPE_UINT8;
        break;
    case 3:
        if (p->want_dmask) dmask.dtype = FAS_DTYPE_FLOAT16;
        break;
    case 4:
        if (p->want_probs) out.data = probs.data; /* overlaps softmax_output */
        break;
    case 5: q.data = NULL; break;
    default: break;
    }
    fas_tensor *dm = p->dmask_input ? (fas_tensor *)&p->dmask_in : o->has_dmask ? &dmask : NULL;
    /* snapshots of the real buffers, not of the corrupted descriptors */
    const fas_tensor *dm_buf = p->dmask_input ? &p->dmask_in : o->has_dmask ? &o->dmask : NULL;
    void *snap_out = fz_snapshot(&o->out), *snap_probs = fz_snapshot(&o->probs),
         *snap_dm = dm_buf ? fz_snapshot(dm_buf) : NULL;
    const fas_tensor *mask = p->mask_form == MASK_NONE ? NULL : &p->mask;
    fas_status st;
    if (!o->has_probs && !dm && impl != FAS_IMPL_AUTO && impl != FAS_IMPL_REFERENCE)
        /* the forced-ISA run without optional outputs goes through the plain entry point */
        st = fused_attention_score_ex(&q, &p->k, &p->v, mask, p->scale, p->keep_prob, p->qt, p->kt,
                                      p->ta, p->tb, p->vt, p->dxt, &out, &opt);
    else
        st = fused_attention_score_fwd_ex(&q, &p->k, &p->v, mask, p->scale, p->keep_prob, p->qt,
                                          p->kt, p->ta, p->tb, p->vt, p->dxt, &out,
                                          o->has_probs ? &probs : NULL, dm, &opt);
    fz_check_status(st, what);
    if (st != FAS_OK || p->dmask_input) {
        /* nothing written on failure; an input mask is never written */
        FZ_CHECK(!dm_buf || fz_unchanged(dm_buf, snap_dm), "%s: drop_mask changed (%s)", what,
                 fas_status_string(st));
    }
    if (st != FAS_OK) {
        FZ_CHECK(fz_unchanged(&o->out, snap_out), "%s: attention_score changed on failure (%s)",
                 what, fas_status_string(st));
        FZ_CHECK(!o->has_probs || fz_unchanged(&o->probs, snap_probs),
                 "%s: softmax_output changed on failure (%s)", what, fas_status_string(st));
    } else {
        FZ_CHECK(fz_padding_is_zero(&o->out), "%s: NZ padding of attention_score", what);
        FZ_CHECK(!o->has_probs || fz_padding_is_zero(&o->probs), "%s: NZ padding of softmax_output",
                 what);
        FZ_CHECK(!o->has_dmask || fz_padding_is_zero(&o->dmask), "%s: NZ padding of drop_mask",
                 what);
    }
    free(snap_out);
    free(snap_probs);
    free(snap_dm);
    return st;
}

/* ---- comparisons -------------------------------------------------------------------------- */

static bool float_dtype(fas_dtype dt) { return dt != FAS_DTYPE_UINT8; }

/* Same descriptors; every storage element equal bit for bit, NaN equal to any NaN. */
FZ_NO_COVERAGE static void expect_identical(const fas_tensor *a, const fas_tensor *b,
                                            const char *what)
{
    fz_geom g = fz_geom_of(a);
    int64_t n = fz_storage_elems(&g);
    for (int64_t e = 0; e < n; e++) {
        uint32_t x = 0, y = 0;
        memcpy(&x, (const unsigned char *)a->data + (size_t)e * g.es, g.es);
        memcpy(&y, (const unsigned char *)b->data + (size_t)e * g.es, g.es);
        if (x == y) continue;
        bool both_nan = float_dtype(a->dtype) && isnan(fz_bits_value(a->dtype, x)) &&
                        isnan(fz_bits_value(a->dtype, y));
        FZ_CHECK(both_nan, "%s: storage element %lld differs: 0x%x vs 0x%x", what, (long long)e, x,
                 y);
    }
}

/* Element (b, n, i, c) of attention_score [B*Sq, N*Dv]. */
FZ_NO_COVERAGE static double out_at(const problem *p, const fas_tensor *t, const fz_geom *g,
                                    int64_t b, int64_t n, int64_t i, int64_t c)
{
    return fz_get(t, g, 0, b * p->sq + i, n * p->dv + c);
}

/* Keep byte of (head, i, j) as used: the reference's generated mask, or the input mask. */
FZ_NO_COVERAGE static bool kept(const problem *p, const fwd_out *ref, int64_t head, int64_t i,
                                int64_t j)
{
    const fas_tensor *m = p->dmask_input ? &p->dmask_in : &ref->dmask;
    fz_geom g = fz_geom_of(m);
    return fz_get_bits(m, &g, head, i, j) != 0;
}

FZ_NO_COVERAGE static void check_drop_masks(const problem *p, const fwd_out *ref,
                                            const fwd_out *got)
{
    if (!got->has_dmask) return;
    fz_geom gr = fz_geom_of(&ref->dmask), gg = fz_geom_of(&got->dmask);
    for (int64_t h = 0; h < p->b * p->n; h++)
        for (int64_t i = 0; i < p->sq; i++)
            for (int64_t j = 0; j < p->sk; j++) {
                uint32_t a = fz_get_bits(&ref->dmask, &gr, h, i, j);
                uint32_t b = fz_get_bits(&got->dmask, &gg, h, i, j);
                FZ_CHECK(a == b, "drop_mask (%lld, %lld, %lld): reference %u, pipeline %u",
                         (long long)h, (long long)i, (long long)j, a, b);
                FZ_CHECK(a <= 1, "drop_mask byte %u is not 0 or 1", a);
                if (p->keep_prob == 1.0) FZ_CHECK(a == 1, "keep_prob 1 but an element dropped");
            }
}

/* Which checks the inputs' values admit. */
typedef struct domain {
    bool nice;         /* q, k, v finite, |x| <= 8; mask finite |x| <= 8 or -inf */
    bool no_overflow;  /* fp32 logits cannot overflow: NaN patterns of P must agree */
    bool v_no_inf;     /* ... and of the context: V has no infinity (0 * inf from a P that
                        * underflows in fp32 only) and |finite V| <= 2^100; NaN is fine */
    bool qkv_moderate; /* q, k, v: no infinity, |finite| <= 2^17, scale 0 or in [2^-100, 2^20]:
                        * with such a grad_output no fp32 stage of the backward overflows */
} domain;

/* Largest |x| of the finite elements; clears *finite at a NaN or infinity (except -inf when
 * allowed) and *small at a finite |x| > 8. */
FZ_NO_COVERAGE static double max_abs(const double *v, int64_t n, bool *finite, bool *small,
                                     bool allow_neg_inf)
{
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (isfinite(v[i])) {
            if (fabs(v[i]) > m) m = fabs(v[i]);
            if (fabs(v[i]) > 8.0) *small = false;
        } else if (!(allow_neg_inf && v[i] == -INFINITY)) {
            *finite = false;
        }
    }
    return m;
}

FZ_NO_COVERAGE static domain classify(const problem *p)
{
    domain dm;
    bool f_qk = true, s_qk = true, f_v = true, s_v = true, f_m = true, s_m = true;
    int64_t nq = p->b * p->n * p->sq * p->d, nk = p->b * p->n * p->sk * p->d;
    double mq = max_abs(p->qv, nq, &f_qk, &s_qk, false);
    double mk = max_abs(p->kv, nk, &f_qk, &s_qk, false);
    double mv = max_abs(p->vv, p->b * p->n * p->sk * p->dv, &f_v, &s_v, false);
    double mm = 0.0;
    if (p->mask_form != MASK_NONE)
        mm =
            max_abs(p->mv, p->mdims[0] * p->mdims[1] * p->mdims[2] * p->mdims[3], &f_m, &s_m, true);
    double as = fabs(p->scale);
    dm.nice = f_qk && s_qk && f_v && s_v && f_m && s_m && as <= 0x1p64;
    dm.v_no_inf = mv <= 0x1p100;
    for (int64_t i = 0; i < p->b * p->n * p->sk * p->dv; i++)
        if (isinf(p->vv[i])) dm.v_no_inf = false;
    /* |scale * q.k| <= |scale| * D * max|q| * max|k|; (float)scale must not under- or
     * overflow (0 * inf and inf * 0 would differ from fp64) */
    bool qkv_inf = false;
    for (int64_t i = 0; i < nq; i++) qkv_inf |= isinf(p->qv[i]);
    for (int64_t i = 0; i < nk; i++) qkv_inf |= isinf(p->kv[i]);
    for (int64_t i = 0; i < p->b * p->n * p->sk * p->dv; i++) qkv_inf |= isinf(p->vv[i]);
    bool scale_ok = as == 0.0 || (as >= 0x1p-100 && as <= 0x1p20);
    dm.qkv_moderate = !qkv_inf && scale_ok && mq <= 0x1p17 && mk <= 0x1p17 && mv <= 0x1p17;
    double logit = as * (double)p->d * mq * mk;
    dm.no_overflow = scale_ok && logit <= 0x1p100 && mm <= 0x1p100 && mq <= 0x1p17 && mk <= 0x1p17;
    return dm;
}

/* Where fp32 cannot overflow, NaN in the pipeline <=> NaN in the reference. */
FZ_NO_COVERAGE static void check_nan_patterns(const problem *p, const domain *dm,
                                              const fwd_out *ref, const fwd_out *got)
{
    if (!dm->no_overflow) return;
    fz_geom gro = fz_geom_of(&ref->out), ggo = fz_geom_of(&got->out);
    fz_geom grp = fz_geom_of(&ref->probs), ggp = got->has_probs ? fz_geom_of(&got->probs) : grp;
    for (int64_t b = 0; b < p->b; b++)
        for (int64_t n = 0; n < p->n; n++) {
            int64_t h = b * p->n + n;
            for (int64_t i = 0; i < p->sq; i++) {
                for (int64_t j = 0; got->has_probs && j < p->sk; j++) {
                    bool rn = isnan(fz_get(&ref->probs, &grp, h, i, j));
                    bool gn = isnan(fz_get(&got->probs, &ggp, h, i, j));
                    FZ_CHECK(rn == gn, "softmax_output (%lld,%lld,%lld,%lld): NaN %d vs %d",
                             (long long)b, (long long)n, (long long)i, (long long)j, rn, gn);
                }
                for (int64_t c = 0; dm->v_no_inf && c < p->dv; c++) {
                    bool rn = isnan(out_at(p, &ref->out, &gro, b, n, i, c));
                    bool gn = isnan(out_at(p, &got->out, &ggo, b, n, i, c));
                    FZ_CHECK(rn == gn, "attention_score (%lld,%lld,%lld,%lld): NaN %d vs %d",
                             (long long)b, (long long)n, (long long)i, (long long)c, rn, gn);
                }
            }
        }
}

/* Accuracy of the pipeline against the reference in the nice domain.
 *
 * The reference computes in fp64 and writes FLOAT, so its values x are exact to 2^-24
 * relative. The pipeline computes y in fp32 and rounds once into the output dtype:
 *   |fl(y) - x| <= ulp(y)/2 + |y - x|,  ulp(y)/2 <= 2^-p |y| + tiny,
 * p = 11 (fp16), 8 (bf16), 24 (fp32), tiny the dtype's smallest subnormal.
 * The nominal bound 2^-12 max|ref| + 2^-8 |ref| covers the fp16 rounding (2^-11 |ref|) with 8x
 * room for fp32 error when the sum is well conditioned. It is not sound on its own: a context
 * element that cancels (sum_j Pd_ij V_jc ~ 0 while sum_j Pd_ij |V_jc| is not) carries fp32
 * error relative to sum_j Pd_ij |V_jc|, not to itself, and a row of large logits carries the
 * dot products' rounding, |delta X_ij| <= (D + 4) u |scale| sum_t |q_it k_jt| (u = 2^-24),
 * into P through exp. So the bound used is
 *   tol = 2^-12 max|ref| + r |ref| + 2 e + tiny,   r = 2^-8 (2^-6 for bf16),
 * where e bounds the fp32 error from first principles:
 *   relP_i = expm1(2 max_j delta X_ij) + 4 u max_j |X_ij| + (Sk + 8) u
 *            (logit errors through softmax, the rounding of X - max, exp to < 1 ulp, the sum,
 *            the division),
 *   |delta P_ij| <= relP_i P_ij + 2^-120   (exp results below FLT_MIN lose relative accuracy),
 *   e_ic = sum_j G_ij (|delta P_ij| + (L + 4) u P_ij) |V_jc|, G = keep / keep_prob,
 *          L the length of the sum (the second GEMM's rounding),
 * with P the reference's probabilities; for softmax_output e_ij = |delta P_ij|. A wrong index,
 * mask broadcast, scale or dropout factor is far outside this bound. */
FZ_NO_COVERAGE static void check_accuracy(const problem *p, const fwd_out *ref, const fwd_out *got)
{
    const double u = 0x1p-24;
    const int64_t sq = p->sq, sk = p->sk, d = p->d, dv = p->dv;
    double as = fabs(p->scale);
    fz_geom gro = fz_geom_of(&ref->out), ggo = fz_geom_of(&got->out);
    fz_geom grp = fz_geom_of(&ref->probs), ggp = got->has_probs ? fz_geom_of(&got->probs) : grp;
    double r_out = p->dt_out == FAS_DTYPE_BF16 ? 0x1p-6 : 0x1p-8;
    double r_probs = p->dt_probs == FAS_DTYPE_BF16 ? 0x1p-6 : 0x1p-8;
    double tiny_out = p->dt_out == FAS_DTYPE_FLOAT16 ? 0x1p-24 : 0x1p-133;
    double tiny_probs = p->dt_probs == FAS_DTYPE_FLOAT16 ? 0x1p-24 : 0x1p-133;

    double *relp = malloc((size_t)(sq > sk ? sq : sk) * sizeof *relp);
    FZ_CHECK(relp != NULL, "out of memory");
    double max_out = 0.0, max_probs = 0.0;
    for (int64_t r = 0; r < p->b * sq; r++)
        for (int64_t c = 0; c < p->n * dv; c++) {
            double x = fz_get(&ref->out, &gro, 0, r, c);
            FZ_CHECK(isfinite(x), "reference attention_score (%lld, %lld) is %g in the nice domain",
                     (long long)r, (long long)c, x);
            if (fabs(x) > max_out) max_out = fabs(x);
        }
    for (int64_t h = 0; h < p->b * p->n; h++)
        for (int64_t i = 0; i < sq; i++)
            for (int64_t j = 0; j < sk; j++) {
                double x = fz_get(&ref->probs, &grp, h, i, j);
                FZ_CHECK(isfinite(x), "reference softmax_output is %g in the nice domain", x);
                if (fabs(x) > max_probs) max_probs = fabs(x);
            }

    for (int64_t b = 0; b < p->b; b++)
        for (int64_t n = 0; n < p->n; n++) {
            int64_t h = b * p->n + n;
            for (int64_t i = 0; i < sq; i++) {
                double emax = 0.0, xmax = 0.0;
                for (int64_t j = 0; j < sk; j++) {
                    double m = mval(p, b, n, i, j);
                    if (m == -INFINITY) continue; /* exactly -inf in both */
                    double s = 0.0;
                    for (int64_t t = 0; t < d; t++)
                        s += fabs(qval(p, b, n, i, t) * kval(p, b, n, j, t));
                    double dx =
                        (double)(d + 4) * u * as * s + 2.0 * u * fabs(m) + 0x1p-140 * (s + 1);
                    double x = as * s + fabs(m);
                    if (dx > emax) emax = dx;
                    if (x > xmax) xmax = x;
                }
                relp[i] = expm1(2.0 * emax) + 4.0 * u * xmax + (double)(sk + 8) * u;
                /* past 1 the bound says nothing (0 <= P <= 1); keep it finite, since inf * 0
                 * for a zero probability would make the tolerance NaN */
                relp[i] = fmin(relp[i], 0x1p20);
                for (int64_t j = 0; got->has_probs && j < sk; j++) {
                    double x = fz_get(&ref->probs, &grp, h, i, j);
                    double y = fz_get(&got->probs, &ggp, h, i, j);
                    double e = relp[i] * fabs(x) + 0x1p-120;
                    double tol = 0x1p-12 * max_probs + r_probs * fabs(x) + 2.0 * e + tiny_probs;
                    FZ_CHECK(fabs(y - x) <= tol,
                             "softmax_output (%lld,%lld,%lld,%lld): pipeline %.9g, reference "
                             "%.9g, |diff| %.3g > tol %.3g",
                             (long long)b, (long long)n, (long long)i, (long long)j, y, x,
                             fabs(y - x), tol);
                }
            }
            /* context row i sums over L = Sk keys j of Pd[i][j] V[j]; with transpose_a over
             * L = Sq rows r of Pd[r][i] V[r] */
            int64_t len = p->ta ? sq : sk;
            for (int64_t i = 0; i < sq; i++)
                for (int64_t c = 0; c < dv; c++) {
                    double e = 0.0;
                    for (int64_t l = 0; l < len; l++) {
                        int64_t pi = p->ta ? l : i, pj = p->ta ? i : l;
                        if (!kept(p, ref, h, pi, pj)) continue;
                        double pr = fz_get(&ref->probs, &grp, h, pi, pj);
                        double dp = relp[pi] * pr + 0x1p-120 + (double)(len + 4) * u * pr;
                        e += dp / p->keep_prob * fabs(vval(p, b, n, l, c));
                    }
                    e *= 1.0 + 0x1p-20; /* P itself is the reference's, exact to 2^-24 */
                    double x = out_at(p, &ref->out, &gro, b, n, i, c);
                    double y = out_at(p, &got->out, &ggo, b, n, i, c);
                    double tol = 0x1p-12 * max_out + r_out * fabs(x) + 2.0 * e + tiny_out;
                    FZ_CHECK(fabs(y - x) <= tol,
                             "attention_score (b %lld, n %lld, i %lld, c %lld): pipeline %.9g, "
                             "reference %.9g, |diff| %.3g > tol %.3g",
                             (long long)b, (long long)n, (long long)i, (long long)c, y, x,
                             fabs(y - x), tol);
                }
        }
    free(relp);
}

/* A scale beyond FLT_MAX: rejected, or no NaN where the reference has none. */
FZ_NO_COVERAGE static void check_huge_scale(const problem *p, const fwd_out *ref,
                                            const fwd_out *got)
{
    if (!huge_scale(p)) return;
    fz_geom gro = fz_geom_of(&ref->out), ggo = fz_geom_of(&got->out);
    for (int64_t r = 0; r < p->b * p->sq; r++)
        for (int64_t c = 0; c < p->n * p->dv; c++) {
            double x = fz_get(&ref->out, &gro, 0, r, c), y = fz_get(&got->out, &ggo, 0, r, c);
            FZ_CHECK(!(isnan(y) && !isnan(x)),
                     "scale %g > FLT_MAX: attention_score (%lld, %lld) is NaN, reference %g",
                     p->scale, (long long)r, (long long)c, x);
        }
}

/* ---- backward ----------------------------------------------------------------------------- */

static bool forced_supported(fas_impl impl);

typedef struct grad_out {
    fas_tensor dq, dk, dv;
} grad_out;

static fas_tensor grad_tensor(const problem *p, int64_t rows, int64_t cols, int rank4,
                              fas_format fmt, fas_dtype dt)
{
    int64_t d2[2] = {p->b * rows, p->n * cols}, d4[4] = {p->b, p->n, rows, cols};
    return rank4 ? fz_tensor_new(dt, fmt, 4, d4, 0xa5) : fz_tensor_new(dt, fmt, 2, d2, 0xa5);
}

static void alloc_grads(const problem *p, grad_out *g)
{
    uint8_t s = p->grad_sel, t = p->grad_dt;
    g->dq = grad_tensor(p, p->sq, p->d, s & 1, fmt_bit(s, 3), FLOATS[t & 3]);
    g->dk = grad_tensor(p, p->sk, p->d, s & 2, fmt_bit(s, 4), FLOATS[(t >> 2) & 3]);
    g->dv = grad_tensor(p, p->sk, p->dv, s & 4, fmt_bit(s, 5), FLOATS[(t >> 4) & 3]);
}

static void free_grads(grad_out *g)
{
    fz_tensor_free(&g->dq);
    fz_tensor_free(&g->dk);
    fz_tensor_free(&g->dv);
}

static fas_status run_grad(const problem *p, const fas_tensor *dout, const fas_tensor *probs,
                           const fas_tensor *dmask, grad_out *g, fas_impl impl, int threads,
                           const char *what)
{
    fas_options opt;
    fas_options_init(&opt);
    opt.num_threads = threads;
    opt.impl = impl;
    fas_status st = fused_attention_score_grad_ex(dout, probs, &p->q, &p->k, &p->v, dmask, p->scale,
                                                  p->keep_prob, p->qt, p->kt, p->tb, p->dxt, &g->dq,
                                                  &g->dk, &g->dv, &opt);
    fz_check_status(st, what);
    FZ_CHECK(st == FAS_OK, "%s returned %s after a successful forward", what,
             fas_status_string(st));
    FZ_CHECK(fz_padding_is_zero(&g->dq) && fz_padding_is_zero(&g->dk) && fz_padding_is_zero(&g->dv),
             "%s: NZ padding of a gradient is not zero", what);
    return st;
}

FZ_NO_COVERAGE static void expect_no_nan(const fas_tensor *t, const char *what)
{
    fz_geom g = fz_geom_of(t);
    for (int64_t b = 0; b < g.batch; b++)
        for (int64_t r = 0; r < g.rows; r++)
            for (int64_t c = 0; c < g.cols; c++)
                FZ_CHECK(!isnan(fz_get(t, &g, b, r, c)), "%s (%lld, %lld, %lld) is NaN", what,
                         (long long)b, (long long)r, (long long)c);
}

/* a (pipeline) and b (reference), of the same shape, are NaN in the same logical elements;
 * only_new: a may not be NaN where b is not (b may be NaN alone). */
FZ_NO_COVERAGE static void expect_same_nans(const fas_tensor *a, const fas_tensor *b, bool only_new,
                                            const char *what)
{
    fz_geom ga = fz_geom_of(a), gb = fz_geom_of(b);
    for (int64_t m = 0; m < ga.batch; m++)
        for (int64_t r = 0; r < ga.rows; r++)
            for (int64_t c = 0; c < ga.cols; c++) {
                bool na = isnan(fz_get(a, &ga, m, r, c)), nb = isnan(fz_get(b, &gb, m, r, c));
                FZ_CHECK(na == nb || (only_new && !na),
                         "%s (%lld, %lld, %lld): NaN %d in the pipeline, %d in the "
                         "reference",
                         what, (long long)m, (long long)r, (long long)c, na, nb);
            }
}

/* No infinity and |x| <= 2^17 in every logical element. */
FZ_NO_COVERAGE static bool moderate(const fas_tensor *t)
{
    fz_geom g = fz_geom_of(t);
    for (int64_t m = 0; m < g.batch; m++)
        for (int64_t r = 0; r < g.rows; r++)
            for (int64_t c = 0; c < g.cols; c++) {
                double x = fz_get(t, &g, m, r, c);
                if (isinf(x) || fabs(x) > 0x1p17) return false;
            }
    return true;
}

static void check_backward(const problem *p, const domain *dm, const fwd_out *ref,
                           const fwd_out *got)
{
    /* grad_output: the forward's attention_score, transposed when dx_transpose */
    uint8_t s = p->grad_sel;
    int64_t rows = p->b * p->sq, cols = p->n * p->dv;
    int64_t dd[2] = {p->dxt ? cols : rows, p->dxt ? rows : cols};
    fas_tensor dout = fz_tensor_new(FLOATS[(p->grad_dt >> 6) & 3], fmt_bit(s, 6), 2, dd, 0xff);
    fz_geom gd = fz_geom_of(&dout), go = fz_geom_of(&got->out);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            double x = fz_get(&got->out, &go, 0, r, c);
            if (p->dxt)
                fz_set(&dout, &gd, 0, c, r, x);
            else
                fz_set(&dout, &gd, 0, r, c, x);
        }
    const fas_tensor *probs = got->has_probs ? &got->probs : &ref->probs;
    const fas_tensor *dmask = p->dmask_input   ? &p->dmask_in
                              : got->has_dmask ? &got->dmask
                                               : &ref->dmask;
    if (p->keep_prob == 1.0 && !p->dmask_input && (s & 128)) dmask = NULL;

    grad_out ga, gf, gr;
    alloc_grads(p, &ga);
    alloc_grads(p, &gf);
    alloc_grads(p, &gr);
    run_grad(p, &dout, probs, dmask, &ga, FAS_IMPL_AUTO, p->threads, "grad (auto)");
    run_grad(p, &dout, probs, dmask, &gr, FAS_IMPL_REFERENCE, 1, "grad (reference)");
    fas_options opt;
    fas_options_init(&opt);
    opt.num_threads = p->forced_threads;
    opt.impl = p->forced;
    fas_status st = fused_attention_score_grad_ex(&dout, probs, &p->q, &p->k, &p->v, dmask,
                                                  p->scale, p->keep_prob, p->qt, p->kt, p->tb,
                                                  p->dxt, &gf.dq, &gf.dk, &gf.dv, &opt);
    fz_check_status(st, "grad (forced isa)");
    FZ_CHECK(st == (forced_supported(p->forced) ? FAS_OK : FAS_ERR_UNSUPPORTED),
             "grad (forced isa %d) returned %s", (int)p->forced, fas_status_string(st));
    if (st == FAS_OK) {
        expect_identical(&ga.dq, &gf.dq, "query_dx: auto vs forced isa");
        expect_identical(&ga.dk, &gf.dk, "key_dw: auto vs forced isa");
        expect_identical(&ga.dv, &gf.dv, "value_dw: auto vs forced isa");
    }
    /* the same P, drop mask and grad_output go to both: NaN must land in the same places */
    if (dm->qkv_moderate && moderate(&dout)) {
        expect_same_nans(&ga.dq, &gr.dq, false, "query_dx");
        expect_same_nans(&ga.dk, &gr.dk, false, "key_dw");
        expect_same_nans(&ga.dv, &gr.dv, false, "value_dw");
    }
    if (huge_scale(p)) { /* accepted: then no NaN where the reference has none */
        expect_same_nans(&ga.dq, &gr.dq, true, "query_dx (scale > FLT_MAX)");
        expect_same_nans(&ga.dk, &gr.dk, true, "key_dw (scale > FLT_MAX)");
        expect_same_nans(&ga.dv, &gr.dv, true, "value_dw (scale > FLT_MAX)");
    }
    if (dm->nice) {
        expect_no_nan(&ga.dq, "query_dx");
        expect_no_nan(&ga.dk, "key_dw");
        expect_no_nan(&ga.dv, "value_dw");
        expect_no_nan(&gr.dq, "reference query_dx");
        expect_no_nan(&gr.dk, "reference key_dw");
        expect_no_nan(&gr.dv, "reference value_dw");
    }
    free_grads(&ga);
    free_grads(&gf);
    free_grads(&gr);
    fz_tensor_free(&dout);
}

/* ---- the harness --------------------------------------------------------------------------- */

/* fas_attention_output_dims agrees with the shapes the harness derives from the flags. */
static void check_output_dims(const problem *p)
{
    fas_tensor o, pr, dm;
    memset(&o, 0, sizeof o);
    pr = dm = o;
    fas_status st =
        fas_attention_output_dims(&p->q, &p->k, &p->v, p->qt, p->kt, p->ta, p->tb, &o, &pr, &dm);
    fz_check_status(st, "fas_attention_output_dims");
    bool ok = !(p->ta && p->sq != p->sk);
    FZ_CHECK((st == FAS_OK) == ok, "fas_attention_output_dims returned %s", fas_status_string(st));
    if (!ok) return;
    FZ_CHECK(o.ndim == 2 && o.dims[0] == p->b * p->sq && o.dims[1] == p->n * p->dv &&
                 o.dtype == FAS_DTYPE_FLOAT16,
             "attention_score dims");
    int64_t want[4] = {p->b, p->n, p->sq, p->sk};
    FZ_CHECK(pr.ndim == 4 && dm.ndim == 4 && pr.dtype == FAS_DTYPE_FLOAT16 &&
                 dm.dtype == FAS_DTYPE_UINT8 && memcmp(pr.dims, want, sizeof want) == 0 &&
                 memcmp(dm.dims, want, sizeof want) == 0,
             "softmax_output / drop_mask dims");
}

static bool forced_supported(fas_impl impl)
{
    const char *lvl = fas_simd_level();
    if (impl == FAS_IMPL_PORTABLE) return true;
    if (impl == FAS_IMPL_AVX2) return strcmp(lvl, "avx2") == 0 || strcmp(lvl, "avx512") == 0;
    if (impl == FAS_IMPL_NEON) return strcmp(lvl, "neon") == 0;
    return strcmp(lvl, "avx512") == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_reader rd = {data, size, 0, 0};
    problem p;
    decode(&p, &rd);
    fz_reader elems = {data + rd.pos, rd.pos < size ? size - rd.pos : 0, 0, 0};
    build_inputs(&p, &elems);

    check_output_dims(&p);
    fwd_out ref, got, forced;
    alloc_outputs(&p, &ref, true);
    alloc_outputs(&p, &got, false);
    alloc_outputs(&p, &forced, false);
    bool late;
    fas_status want = expected_status(&p, &late);
    fas_status st_ref = run_forward(&p, &ref, FAS_IMPL_REFERENCE, 1, "forward (reference)");
    fas_status st = run_forward(&p, &got, FAS_IMPL_AUTO, p.threads, "forward (auto)");
    FZ_CHECK(st == st_ref, "pipeline returned %s, reference %s", fas_status_string(st),
             fas_status_string(st_ref));
    FZ_CHECK(st == want || (huge_scale(&p) && late && st == FAS_ERR_VALUE),
             "forward returned %s, the argument rules say %s", fas_status_string(st),
             fas_status_string(want));
    FZ_COUNT(st == FAS_OK ? "forward ok" : "forward error");

    fas_status st_forced =
        run_forward(&p, &forced, p.forced, p.forced_threads, "forward (forced isa)");
    /* options are resolved after the argument checks and before the aliasing check */
    fas_status want_forced = st;
    if (!forced_supported(p.forced) && (st == FAS_OK || st == FAS_ERR_ALIAS))
        want_forced = FAS_ERR_UNSUPPORTED;
    FZ_CHECK(st_forced == want_forced, "forced isa %d returned %s, expected %s (auto: %s)",
             (int)p.forced, fas_status_string(st_forced), fas_status_string(want_forced),
             fas_status_string(st));

    if (st == FAS_OK) {
        domain dm = classify(&p);
        check_drop_masks(&p, &ref, &got);
        if (st_forced == FAS_OK) {
            expect_identical(&got.out, &forced.out, "attention_score: auto vs forced isa");
            if (got.has_probs)
                expect_identical(&got.probs, &forced.probs, "softmax_output: auto vs forced isa");
            if (got.has_dmask)
                expect_identical(&got.dmask, &forced.dmask, "drop_mask: auto vs forced isa");
        }
        check_nan_patterns(&p, &dm, &ref, &got);
        if (dm.nice) {
            FZ_COUNT("accuracy checked");
            check_accuracy(&p, &ref, &got);
        }
        check_huge_scale(&p, &ref, &got);
        check_backward(&p, &dm, &ref, &got);
    }

    free_outputs(&ref);
    free_outputs(&got);
    free_outputs(&forced);
    free_problem(&p);
    return 0;
}
