/* The naive unfused pipeline fas_bench times next to the fused call, in the same process and
 * run: what a user would write without fusion. Convert the fp16 inputs to fp32 ND tensors; per
 * head materialise the full fp32 score matrix with cblas_sgemm and make one separate pass over
 * it per elementwise step (scale + mask, row max, expf, row sum, normalise, dropout, ...);
 * second sgemm; permute to [B*Sq, N*Dv]; convert back to fp16 in the requested format. Its
 * buffers are allocated here, outside the timed region, which favours the naive. Its dropout
 * uses a cheap xorshift generator instead of Philox, which favours it too. It always runs on
 * the linked BLAS (cblas_sgemm), whatever engine the fused call uses.
 *
 * Heads are split statically over OpenMP threads with cblas single-threaded, which is how the
 * library schedules its own work. The fp32 copies of the inputs made here are also the
 * operands of the GEMM floor (bench_floor.c). */
/* POSIX types: some cblas.h (BLIS) use pthread barriers, hidden by strict C11 otherwise. */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#if FAS_BENCH_OPENMP
#include <omp.h>
#define BENCH_PRAGMA(x) _Pragma(#x)
#define PARALLEL_FOR(nt) BENCH_PRAGMA(omp parallel for num_threads(nt) schedule(static))
#else
#define PARALLEL_FOR(nt) (void)(nt);
#endif

#include "bench.h"

struct bench_baseline {
    bench_shape s;
    bench_mode mode;
    double keep_prob;
    float scale;
    bench_operands ops;
    int threads;   /* min(configured threads, heads): one head is the unit of work */
    int64_t heads; /* B * N */

    float *q, *k, *v;    /* [heads, Sq, D], [heads, Sk, D], [heads, Sk, Dv] */
    float *mask;         /* forward: [B, Sq, Sk] */
    float *ctx;          /* forward: [heads, Sq, Dv] */
    float *dout;         /* backward: [heads, Sq, Dv] */
    float *dq, *dk, *dv; /* backward: [heads, Sq, D], [heads, Sk, D], [heads, Sk, Dv] */
    float *flat;         /* a permuted 2-D [B*S, N*E] fp32 matrix before conversion */

    /* per thread, threads x Sq x Sk (rowbuf: threads x Sq) */
    float *score; /* forward scores / backward dP, dA */
    float *probs; /* backward P */
    float *gain;  /* backward keep / keep_prob */
    uint8_t *keep;
    float *rowbuf;
};

static inline int thread_id(void)
{
#if FAS_BENCH_OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* ---- plain scalar fp16 conversion (round to nearest even), as a user would write it ---- */

static inline float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0) {
        float f = (float)man * 0x1p-24f;
        return sign ? -f : f;
    }
    if (exp == 31)
        bits = sign | 0x7f800000u | (man << 13);
    else
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint16_t float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | (ax > 0x7f800000u ? 0x7e00u : 0x7c00u));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to infinity */
    if (ax < 0x38800000u) { /* half subnormal or zero: multiple of 2^-24 */
        float a;
        memcpy(&a, &ax, sizeof a);
        return (uint16_t)(sign | (uint16_t)lrintf(a * 0x1p24f));
    }
    uint32_t h = (((ax >> 23) - 112u) << 10) | ((ax & 0x7fffffu) >> 13);
    uint32_t rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

/* Element (beta, m, c) of a stack of M x N matrices in format f (docs/semantics.md §7). */
static inline size_t elem_offset(fas_format f, int64_t beta, int64_t m, int64_t c, int64_t rows,
                                 int64_t cols)
{
    if (f == FAS_FORMAT_ND) return (size_t)((beta * rows + m) * cols + c);
    int64_t m1 = (rows + 15) / 16, n1 = (cols + 15) / 16;
    return (size_t)(beta * n1 * m1 * 256 + ((c / 16) * m1 + m / 16) * 256 + (m % 16) * 16 + c % 16);
}

/* Rows r0..r1-1 of matrix beta of t (rows x cols) to / from dense row-major fp32 at dst. */
static void load_f16(const fas_tensor *t, int64_t beta, int64_t r0, int64_t r1, int64_t rows,
                     int64_t cols, float *dst)
{
    const uint16_t *src = t->data;
    for (int64_t m = r0; m < r1; m++)
        for (int64_t c = 0; c < cols; c++)
            dst[(m - r0) * cols + c] =
                half_to_float(src[elem_offset(t->format, beta, m, c, rows, cols)]);
}

static void store_f16(const fas_tensor *t, int64_t beta, int64_t r0, int64_t r1, int64_t rows,
                      int64_t cols, const float *src)
{
    uint16_t *dst = t->data;
    for (int64_t m = r0; m < r1; m++)
        for (int64_t c = 0; c < cols; c++)
            dst[elem_offset(t->format, beta, m, c, rows, cols)] =
                float_to_half(src[(m - r0) * cols + c]);
}

/* ---- cheap dropout bits: xorshift64*, one stream per head ---- */

static inline uint64_t xorshift64s(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* ---- shared stages ---- */

/* 2-D [B*S, N*E] fp32 ND (flat) -> output tensor, the row range split over threads. */
static void flat_to_output(const bench_baseline *bl, const fas_tensor *t, int64_t s, int64_t e)
{
    const int64_t rows = bl->s.b * s, cols = bl->s.n * e;
    const int nt = bl->threads;
    PARALLEL_FOR(nt)
    for (int64_t part = 0; part < nt; part++) {
        int64_t r0 = rows * part / nt, r1 = rows * (part + 1) / nt;
        store_f16(t, 0, r0, r1, rows, cols, bl->flat + r0 * cols);
    }
}

/* [heads, S, E] fp32 -> 2-D [B*S, N*E] fp32 (the permute(0, 2, 1, 3) of the operator). */
static void heads_to_flat(const bench_baseline *bl, const float *src, int64_t s, int64_t e)
{
    const int64_t n = bl->s.n, heads = bl->heads;
    const int nt = bl->threads;
    PARALLEL_FOR(nt)
    for (int64_t h = 0; h < heads; h++) {
        int64_t b = h / n, hn = h % n;
        for (int64_t i = 0; i < s; i++)
            memcpy(bl->flat + (b * s + i) * (n * e) + hn * e, src + (h * s + i) * e,
                   (size_t)e * sizeof(float));
    }
}

static void convert_inputs(bench_baseline *bl)
{
    const bench_shape *s = &bl->s;
    const int64_t heads = bl->heads;
    const int nt = bl->threads;
    PARALLEL_FOR(nt)
    for (int64_t h = 0; h < heads; h++) {
        load_f16(&bl->ops.q, h, 0, s->sq, s->sq, s->d, bl->q + h * s->sq * s->d);
        load_f16(&bl->ops.k, h, 0, s->sk, s->sk, s->d, bl->k + h * s->sk * s->d);
        load_f16(&bl->ops.v, h, 0, s->sk, s->sk, s->dv, bl->v + h * s->sk * s->dv);
    }
    if (bl->mode != BENCH_GRAD) {
        PARALLEL_FOR(nt)
        for (int64_t b = 0; b < s->b; b++)
            load_f16(&bl->ops.mask, b, 0, s->sq, s->sq, s->sk, bl->mask + b * s->sq * s->sk);
    } else {
        /* grad_output: 2-D [B*Sq, N*Dv] -> fp32 ND -> [heads, Sq, Dv] */
        const int64_t rows = s->b * s->sq, cols = s->n * s->dv;
        PARALLEL_FOR(nt)
        for (int64_t part = 0; part < nt; part++) {
            int64_t r0 = rows * part / nt, r1 = rows * (part + 1) / nt;
            load_f16(&bl->ops.dout, 0, r0, r1, rows, cols, bl->flat + r0 * cols);
        }
        PARALLEL_FOR(nt)
        for (int64_t h = 0; h < heads; h++) {
            int64_t b = h / s->n, hn = h % s->n;
            for (int64_t i = 0; i < s->sq; i++)
                memcpy(bl->dout + (h * s->sq + i) * s->dv,
                       bl->flat + (b * s->sq + i) * cols + hn * s->dv,
                       (size_t)s->dv * sizeof(float));
        }
    }
}

/* ---- naive forward ---- */

static void naive_forward_head(bench_baseline *bl, int64_t h)
{
    const bench_shape *s = &bl->s;
    const int64_t sq = s->sq, sk = s->sk, d = s->d, dv = s->dv, nel = sq * sk;
    const int t = thread_id();
    float *sc = bl->score + (size_t)t * (size_t)nel;
    float *rb = bl->rowbuf + (size_t)t * (size_t)sq;
    const float *m = bl->mask + (h / s->n) * nel;

    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)sq, (int)sk, (int)d, 1.0f,
                bl->q + h * sq * d, (int)d, bl->k + h * sk * d, (int)d, 0.0f, sc, (int)sk);
    for (int64_t e = 0; e < nel; e++) sc[e] = sc[e] * bl->scale + m[e];
    for (int64_t i = 0; i < sq; i++) {
        float mx = -INFINITY;
        for (int64_t j = 0; j < sk; j++) mx = fmaxf(mx, sc[i * sk + j]);
        rb[i] = mx;
    }
    for (int64_t i = 0; i < sq; i++)
        for (int64_t j = 0; j < sk; j++) sc[i * sk + j] = expf(sc[i * sk + j] - rb[i]);
    for (int64_t i = 0; i < sq; i++) {
        float sum = 0.0f;
        for (int64_t j = 0; j < sk; j++) sum += sc[i * sk + j];
        rb[i] = sum;
    }
    for (int64_t i = 0; i < sq; i++)
        for (int64_t j = 0; j < sk; j++) sc[i * sk + j] /= rb[i];
    if (bl->mode == BENCH_FWD_PROBS) store_f16(&bl->ops.probs, h, 0, sq, sq, sk, sc);

    if (bl->keep_prob < 1.0) {
        uint8_t *keep = bl->keep + (size_t)t * (size_t)nel;
        uint64_t state = 0x9e3779b97f4a7c15ull * (uint64_t)(h + 1);
        uint64_t threshold = (uint64_t)(bl->keep_prob * 16777216.0);
        for (int64_t e = 0; e < nel; e++) keep[e] = (xorshift64s(&state) >> 40) < threshold;
        if (bl->mode == BENCH_FWD_PROBS) {
            uint8_t *dst = bl->ops.dmask.data;
            for (int64_t i = 0; i < sq; i++)
                for (int64_t j = 0; j < sk; j++)
                    dst[elem_offset(bl->ops.dmask.format, h, i, j, sq, sk)] = keep[i * sk + j];
        }
        float inv = (float)(1.0 / bl->keep_prob);
        for (int64_t e = 0; e < nel; e++) sc[e] = sc[e] * (float)keep[e] * inv;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)sq, (int)dv, (int)sk, 1.0f, sc,
                (int)sk, bl->v + h * sk * dv, (int)dv, 0.0f, bl->ctx + h * sq * dv, (int)dv);
}

static void naive_forward(bench_baseline *bl)
{
    convert_inputs(bl);
    const int nt = bl->threads;
    const int64_t heads = bl->heads;
    PARALLEL_FOR(nt)
    for (int64_t h = 0; h < heads; h++) naive_forward_head(bl, h);
    heads_to_flat(bl, bl->ctx, bl->s.sq, bl->s.dv);
    flat_to_output(bl, &bl->ops.out, bl->s.sq, bl->s.dv);
}

/* ---- naive backward ---- */

static void naive_backward_head(bench_baseline *bl, int64_t h)
{
    const bench_shape *s = &bl->s;
    const int64_t sq = s->sq, sk = s->sk, d = s->d, dv = s->dv, nel = sq * sk;
    const int t = thread_id();
    float *p = bl->probs + (size_t)t * (size_t)nel;
    float *g = bl->gain + (size_t)t * (size_t)nel;
    float *x = bl->score + (size_t)t * (size_t)nel;
    float *rb = bl->rowbuf + (size_t)t * (size_t)sq;
    const float *dout = bl->dout + h * sq * dv;

    load_f16(&bl->ops.probs, h, 0, sq, sq, sk, p);
    const uint8_t *mask = bl->ops.dmask.data;
    const float inv = (float)(1.0 / bl->keep_prob);
    for (int64_t i = 0; i < sq; i++)
        for (int64_t j = 0; j < sk; j++)
            g[i * sk + j] = (float)mask[elem_offset(bl->ops.dmask.format, h, i, j, sq, sk)] * inv;
    for (int64_t e = 0; e < nel; e++) x[e] = p[e] * g[e];
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)sk, (int)dv, (int)sq, 1.0f, x,
                (int)sk, dout, (int)dv, 0.0f, bl->dv + h * sk * dv, (int)dv);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)sq, (int)sk, (int)dv, 1.0f, dout,
                (int)dv, bl->v + h * sk * dv, (int)dv, 0.0f, x, (int)sk);
    for (int64_t e = 0; e < nel; e++) x[e] *= g[e];
    for (int64_t i = 0; i < sq; i++) {
        float sum = 0.0f;
        for (int64_t j = 0; j < sk; j++) sum += x[i * sk + j] * p[i * sk + j];
        rb[i] = sum;
    }
    for (int64_t i = 0; i < sq; i++)
        for (int64_t j = 0; j < sk; j++) x[i * sk + j] = p[i * sk + j] * (x[i * sk + j] - rb[i]);
    for (int64_t e = 0; e < nel; e++) x[e] *= bl->scale;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)sq, (int)d, (int)sk, 1.0f, x,
                (int)sk, bl->k + h * sk * d, (int)d, 0.0f, bl->dq + h * sq * d, (int)d);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)sk, (int)d, (int)sq, 1.0f, x, (int)sk,
                bl->q + h * sq * d, (int)d, 0.0f, bl->dk + h * sk * d, (int)d);
}

static void naive_backward(bench_baseline *bl)
{
    convert_inputs(bl);
    const int nt = bl->threads;
    const int64_t heads = bl->heads;
    PARALLEL_FOR(nt)
    for (int64_t h = 0; h < heads; h++) naive_backward_head(bl, h);
    heads_to_flat(bl, bl->dq, bl->s.sq, bl->s.d);
    flat_to_output(bl, &bl->ops.dq, bl->s.sq, bl->s.d);
    heads_to_flat(bl, bl->dk, bl->s.sk, bl->s.d);
    flat_to_output(bl, &bl->ops.dk, bl->s.sk, bl->s.d);
    heads_to_flat(bl, bl->dv, bl->s.sk, bl->s.dv);
    flat_to_output(bl, &bl->ops.dv, bl->s.sk, bl->s.dv);
}

void bench_naive_run(bench_baseline *bl)
{
    if (bl->mode == BENCH_GRAD)
        naive_backward(bl);
    else
        naive_forward(bl);
}

void bench_baseline_f32(const bench_baseline *bl, const float **q, const float **k, const float **v,
                        const float **dout)
{
    *q = bl->q;
    *k = bl->k;
    *v = bl->v;
    *dout = bl->dout;
}

/* ---- lifetime ---- */

void bench_baseline_destroy(bench_baseline *bl)
{
    if (!bl) return;
    float *bufs[] = {bl->q,  bl->k,  bl->v,    bl->mask,  bl->ctx,   bl->dout, bl->dq,
                     bl->dk, bl->dv, bl->flat, bl->score, bl->probs, bl->gain, bl->rowbuf};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) bench_free(bufs[i]);
    bench_free(bl->keep);
    free(bl);
}

static size_t zmul(int64_t a, int64_t b)
{
    if (a <= 0 || b <= 0 || (uint64_t)a > SIZE_MAX / (uint64_t)b) return 0;
    return (size_t)a * (size_t)b;
}

bench_baseline *bench_baseline_create(const bench_config *cfg, const bench_shape *shape,
                                      bench_mode mode, double keep_prob, double scale,
                                      const bench_operands *ops)
{
    bench_baseline *bl = calloc(1, sizeof *bl);
    if (!bl) return NULL;
    bl->s = *shape;
    bl->mode = mode;
    bl->keep_prob = keep_prob;
    bl->scale = (float)scale;
    bl->ops = *ops;
    bl->heads = shape->b * shape->n;
    bl->threads = cfg->threads < bl->heads ? cfg->threads : (int)bl->heads;
    if (bl->threads < 1) bl->threads = 1;

    const bench_shape *s = shape;
    const int64_t heads = bl->heads, nt = bl->threads;
    const size_t per_thread = zmul(s->sq, s->sk);
    bool ok = per_thread != 0;
    bl->q = bench_alloc(zmul(heads, s->sq * s->d), sizeof(float));
    bl->k = bench_alloc(zmul(heads, s->sk * s->d), sizeof(float));
    bl->v = bench_alloc(zmul(heads, s->sk * s->dv), sizeof(float));
    bl->score = bench_alloc(zmul(nt, (int64_t)per_thread), sizeof(float));
    bl->rowbuf = bench_alloc(zmul(nt, s->sq), sizeof(float));
    ok = ok && bl->q && bl->k && bl->v && bl->score && bl->rowbuf;
    int64_t flat = s->b * s->sq * s->n * s->dv;
    if (mode != BENCH_GRAD) {
        bl->mask = bench_alloc(zmul(s->b, (int64_t)per_thread), sizeof(float));
        bl->ctx = bench_alloc(zmul(heads, s->sq * s->dv), sizeof(float));
        bl->keep = bench_alloc(zmul(nt, (int64_t)per_thread), 1);
        ok = ok && bl->mask && bl->ctx && bl->keep;
    } else {
        int64_t f2 = s->b * s->sq * s->n * s->d, f3 = s->b * s->sk * s->n * s->d,
                f4 = s->b * s->sk * s->n * s->dv;
        flat = flat > f2 ? flat : f2;
        flat = flat > f3 ? flat : f3;
        flat = flat > f4 ? flat : f4;
        bl->dout = bench_alloc(zmul(heads, s->sq * s->dv), sizeof(float));
        bl->dq = bench_alloc(zmul(heads, s->sq * s->d), sizeof(float));
        bl->dk = bench_alloc(zmul(heads, s->sk * s->d), sizeof(float));
        bl->dv = bench_alloc(zmul(heads, s->sk * s->dv), sizeof(float));
        bl->probs = bench_alloc(zmul(nt, (int64_t)per_thread), sizeof(float));
        bl->gain = bench_alloc(zmul(nt, (int64_t)per_thread), sizeof(float));
        ok = ok && bl->dout && bl->dq && bl->dk && bl->dv && bl->probs && bl->gain;
    }
    bl->flat = bench_alloc((size_t)flat, sizeof(float));
    ok = ok && bl->flat;
    if (!ok) {
        bench_baseline_destroy(bl);
        return NULL;
    }
    convert_inputs(bl);
    return bl;
}
