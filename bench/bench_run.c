/* One benchmark case: build the operands, then per mode time the fused call, the GEMM floor (the
 * products of the fused call's own matrix engine, bench_floor.c), the naive pipeline and, for
 * fwd_probs, the write floor, interleaved repeat by repeat so that noise from other processes on
 * the machine hits all alike, and measure the fused call's peak memory growth. Each mode's
 * result goes to the sink as soon as the mode ends; progress goes to it before every stage. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/engines.h"
#include "common/profile.h"
#include "bench.h"
#include "bench_peak.h"

const char *bench_mode_name(bench_mode mode)
{
    switch (mode) {
    case BENCH_FWD: return "fwd";
    case BENCH_FWD_PROBS: return "fwd_probs";
    case BENCH_GRAD: return "grad";
    default: return "?";
    }
}

double bench_default_keep_prob(const bench_config *cfg, bench_mode mode)
{
    if (cfg->keep_prob_given) return cfg->keep_prob;
    return mode == BENCH_FWD ? 1.0 : 0.9;
}

typedef struct case_state {
    const bench_config *cfg;
    const bench_shape *shape;
    bench_operands ops;
    fas_options options;
    double scale;
    char label[96];
    const fasi_engine *engine; /* the engine of the fused calls, for the floor */
    const bench_sink *sink;
    int mode_index;
} case_state;

static void progress(const case_state *cs, bench_stage stage, bool warmup, int run, int runs)
{
    if (cs->sink && cs->sink->progress)
        cs->sink->progress(cs->sink->ctx, cs->mode_index, stage, warmup, run, runs);
}

static int report_failure(const case_state *cs, const char *what, bench_mode mode, fas_status st)
{
    bench_stderr_clear_line();
    fprintf(stderr, "fas_bench: %s failed (shape %s, mode %s): %s: %s\n", what, cs->label,
            bench_mode_name(mode), fas_status_string(st), fas_last_error());
    return 1;
}

static int report_oom(const case_state *cs, const char *what)
{
    bench_stderr_clear_line();
    fprintf(stderr, "fas_bench: out of memory allocating %s (shape %s)\n", what, cs->label);
    return 1;
}

static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void fill_uniform(uint16_t *dst, size_t count, uint64_t *state)
{
    for (size_t i = 0; i < count; i++) {
        float u = (float)(rng_next(state) >> 40) * 0x1p-23f - 1.0f; /* [-1, 1) */
        dst[i] = fas_float_to_half(u);
    }
}

static size_t elements(const fas_tensor *t)
{
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->dims[i];
    return n;
}

/* Allocates storage for t in the configured format (its dims and dtype already set). */
static int alloc_tensor(case_state *cs, fas_tensor *t, const char *name)
{
    t->format = cs->cfg->format;
    t->data = NULL;
    size_t bytes = fas_tensor_bytes(t);
    t->data = bytes ? bench_alloc(bytes, 1) : NULL;
    return t->data ? 0 : report_oom(cs, name);
}

/* Input t gets random fp16 values (or the mask pattern) in ND, then is cast to the format. */
static int make_input(case_state *cs, fas_tensor *t, const char *name, int ndim,
                      const int64_t *dims, bool is_mask, uint64_t *state)
{
    fas_tensor nd = {NULL, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, ndim, {0}};
    memcpy(nd.dims, dims, (size_t)ndim * sizeof *dims);
    size_t count = elements(&nd);
    nd.data = bench_alloc(count, sizeof(uint16_t));
    if (!nd.data) return report_oom(cs, name);
    uint16_t *h = nd.data;
    if (is_mask) {
        /* zeros, and -10000 on the last 10 % of the keys */
        int64_t sk = dims[ndim - 1], first_masked = sk - sk / 10;
        uint16_t masked = fas_float_to_half(-10000.0f);
        for (size_t i = 0; i < count; i++)
            h[i] = (int64_t)(i % (size_t)sk) >= first_masked ? masked : 0;
    } else {
        fill_uniform(h, count, state);
    }
    *t = nd;
    if (cs->cfg->format == FAS_FORMAT_ND) return 0;
    if (alloc_tensor(cs, t, name) != 0) {
        bench_free(nd.data);
        return 1;
    }
    fas_status st = fas_format_cast(&nd, t);
    bench_free(nd.data);
    if (st != FAS_OK) return report_failure(cs, "fas_format_cast", BENCH_FWD, st);
    return 0;
}

static void free_operands(bench_operands *ops)
{
    fas_tensor *all[] = {&ops->q,     &ops->k,    &ops->v,  &ops->mask, &ops->out, &ops->probs,
                         &ops->dmask, &ops->dout, &ops->dq, &ops->dk,   &ops->dv};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        bench_free(all[i]->data);
        all[i]->data = NULL;
    }
}

static int make_operands(case_state *cs, bool need_probs, bool need_grad)
{
    const bench_shape *s = cs->shape;
    bench_operands *ops = &cs->ops;
    memset(ops, 0, sizeof *ops);
    uint64_t state = 0x5eed0f5eed0f5eedull;
    const int64_t qd[4] = {s->b, s->n, s->sq, s->d}, kd[4] = {s->b, s->n, s->sk, s->d},
                  vd[4] = {s->b, s->n, s->sk, s->dv}, md[4] = {s->b, 1, s->sq, s->sk},
                  od[2] = {s->b * s->sq, s->n * s->dv};
    if (make_input(cs, &ops->q, "query", 4, qd, false, &state) ||
        make_input(cs, &ops->k, "key", 4, kd, false, &state) ||
        make_input(cs, &ops->v, "value", 4, vd, false, &state) ||
        make_input(cs, &ops->mask, "mask", 4, md, true, &state))
        return 1;
    if (need_grad && make_input(cs, &ops->dout, "grad_output", 2, od, false, &state)) return 1;

    fas_status st = fas_attention_output_dims(&ops->q, &ops->k, &ops->v, false, false, false, false,
                                              &ops->out, &ops->probs, &ops->dmask);
    if (st != FAS_OK) return report_failure(cs, "fas_attention_output_dims", BENCH_FWD, st);
    if (alloc_tensor(cs, &ops->out, "attention_score")) return 1;
    if (need_probs && (alloc_tensor(cs, &ops->probs, "softmax_output") ||
                       alloc_tensor(cs, &ops->dmask, "drop_mask")))
        return 1;
    if (need_grad) {
        st = fas_attention_grad_dims(&ops->q, &ops->k, &ops->v, false, false, false, 2, &ops->dq,
                                     &ops->dk, &ops->dv);
        if (st != FAS_OK) return report_failure(cs, "fas_attention_grad_dims", BENCH_GRAD, st);
        if (alloc_tensor(cs, &ops->dq, "query_dx") || alloc_tensor(cs, &ops->dk, "key_dw") ||
            alloc_tensor(cs, &ops->dv, "value_dw"))
            return 1;
    }
    return 0;
}

static fas_status run_fused(case_state *cs, bench_mode mode, double keep_prob)
{
    bench_operands *o = &cs->ops;
    switch (mode) {
    case BENCH_FWD:
        return fused_attention_score_ex(&o->q, &o->k, &o->v, &o->mask, cs->scale, keep_prob, false,
                                        false, false, false, false, false, &o->out, &cs->options);
    case BENCH_FWD_PROBS:
        return fused_attention_score_fwd_ex(&o->q, &o->k, &o->v, &o->mask, cs->scale, keep_prob,
                                            false, false, false, false, false, false, &o->out,
                                            &o->probs, &o->dmask, &cs->options);
    case BENCH_GRAD:
        return fused_attention_score_grad_ex(&o->dout, &o->probs, &o->q, &o->k, &o->v, &o->dmask,
                                             cs->scale, keep_prob, false, false, false, false,
                                             &o->dq, &o->dk, &o->dv, &cs->options);
    default: return FAS_ERR_INTERNAL;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void summarise(double *t, int n, double *median, double *min)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    *min = t[0];
    *median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static int run_mode(case_state *cs, bench_mode mode, bench_result *r)
{
    const bench_config *cfg = cs->cfg;
    const bench_shape *s = cs->shape;
    const double keep_prob = bench_default_keep_prob(cfg, mode);
    fas_status st;

    memset(r, 0, sizeof *r);
    r->shape = *s;
    r->mode = mode;
    r->keep_prob = keep_prob;
    double fwd_flop =
        2.0 * (double)s->b * (double)s->n * (double)s->sq * (double)s->sk * (double)(s->d + s->dv);
    r->gflop = (mode == BENCH_GRAD ? 2.0 : 1.0) * fwd_flop * 1e-9;

    if (mode == BENCH_GRAD) {
        /* the backward's inputs: probabilities and drop mask of a forward with the same
         * keep_prob */
        progress(cs, BENCH_STAGE_FUSED, true, 0, cfg->warmup);
        st = run_fused(cs, BENCH_FWD_PROBS, keep_prob);
        if (st != FAS_OK) return report_failure(cs, "fused_attention_score_fwd_ex", mode, st);
    }
    const char *api = mode == BENCH_GRAD        ? "fused_attention_score_grad_ex"
                      : mode == BENCH_FWD_PROBS ? "fused_attention_score_fwd_ex"
                                                : "fused_attention_score_ex";

    bench_baseline *bl = bench_baseline_create(cfg, s, mode, keep_prob, cs->scale, &cs->ops);
    if (!bl) return report_oom(cs, "baseline buffers");
    const float *q32, *k32, *v32, *dout32;
    bench_baseline_f32(bl, &q32, &k32, &v32, &dout32);
    bench_floor *fl =
        bench_floor_create(cfg, s, mode, cs->scale, cs->engine, q32, k32, v32, dout32);
    if (!fl) {
        bench_baseline_destroy(bl);
        return report_oom(cs, "GEMM floor operands");
    }

    void *writer = NULL;
    if (mode == BENCH_FWD_PROBS) {
        writer = bench_write_create(&cs->ops.probs, &cs->ops.dmask, cfg->threads);
        if (!writer) {
            bench_floor_destroy(fl);
            bench_baseline_destroy(bl);
            return report_oom(cs, "write floor buffers");
        }
    }
    double *times = malloc(5 * (size_t)cfg->repeat * sizeof *times);
    if (!times) {
        bench_write_destroy(writer);
        bench_floor_destroy(fl);
        bench_baseline_destroy(bl);
        return report_oom(cs, "timings");
    }
    double *t_fused = times, *t_floor = times + cfg->repeat, *t_naive = times + 2 * cfg->repeat;
    double *t_write = times + 3 * cfg->repeat, *peak = times + 4 * cfg->repeat;
    int rc = 0;

    for (int w = 0; w < cfg->warmup && rc == 0; w++) {
        progress(cs, BENCH_STAGE_FUSED, true, w + 1, cfg->warmup);
        st = run_fused(cs, mode, keep_prob);
        if (st != FAS_OK) {
            rc = report_failure(cs, api, mode, st);
            break;
        }
        progress(cs, BENCH_STAGE_FLOOR, true, w + 1, cfg->warmup);
        bench_floor_run(fl);
        progress(cs, BENCH_STAGE_NAIVE, true, w + 1, cfg->warmup);
        bench_naive_run(bl);
        if (writer) {
            progress(cs, BENCH_STAGE_WRITE, true, w + 1, cfg->warmup);
            bench_write_run(writer, cfg->threads);
        }
    }
    if (rc == 0) {
        progress(cs, BENCH_STAGE_FUSED, true, 0, cfg->warmup);
        bench_mem_probe probe;
        bench_mem_begin(&probe);
        st = run_fused(cs, mode, keep_prob);
        r->mem_growth_kib = bench_mem_end(&probe);
        r->mem_method = probe.method;
        if (st != FAS_OK) rc = report_failure(cs, api, mode, st);
    }
    /* The timed runs. With --profile the library's stage counters (common/profile.h) run
     * during the fused calls only: the floor and the baselines call nothing they time. */
    if (cfg->profile) {
        fasi_profile_reset();
        fasi_profile_enable(true);
    }
    for (int i = 0; i < cfg->repeat && rc == 0; i++) {
        /* the progress messages sit outside the timed intervals */
        progress(cs, BENCH_STAGE_FUSED, false, i + 1, cfg->repeat);
        double t0 = bench_now();
        st = run_fused(cs, mode, keep_prob);
        double t1 = bench_now();
        if (cfg->profile) fasi_profile_enable(false);
        if (st != FAS_OK) {
            rc = report_failure(cs, api, mode, st);
            break;
        }
        progress(cs, BENCH_STAGE_FLOOR, false, i + 1, cfg->repeat);
        double t2a = bench_now();
        bench_floor_run(fl);
        double t2 = bench_now();
        progress(cs, BENCH_STAGE_NAIVE, false, i + 1, cfg->repeat);
        double t3a = bench_now();
        bench_naive_run(bl);
        double t3 = bench_now();
        if (writer) progress(cs, BENCH_STAGE_WRITE, false, i + 1, cfg->repeat);
        double t4a = bench_now();
        if (writer) bench_write_run(writer, cfg->threads);
        double t4 = bench_now();
        t_fused[i] = t1 - t0;
        t_floor[i] = t2 - t2a;
        t_naive[i] = t3 - t3a;
        t_write[i] = t4 - t4a;
        peak[i] = bench_peak_probe(cfg->threads);
        if (cfg->profile) fasi_profile_enable(true);
    }
    if (cfg->profile) {
        fasi_profile_enable(false);
        double stage[FASI_PROF_COUNT], busy = 0.0;
        fasi_profile_read(stage);
        for (int i = 0; i < cfg->repeat; i++) busy += t_fused[i] * cfg->threads;
        for (int g = 0; g < FASI_PROF_COUNT && busy > 0.0; g++)
            r->prof_share[g] = stage[g] / busy;
    }
    if (rc == 0) {
        summarise(t_fused, cfg->repeat, &r->fused_median, &r->fused_min);
        summarise(t_floor, cfg->repeat, &r->floor_median, &r->floor_min);
        summarise(t_naive, cfg->repeat, &r->naive_median, &r->naive_min);
        if (writer) summarise(t_write, cfg->repeat, &r->write_median, &r->write_min);
        double peak_min;
        summarise(peak, cfg->repeat, &r->peak_gflops, &peak_min);
    }
    free(times);
    bench_write_destroy(writer);
    bench_floor_destroy(fl);
    bench_baseline_destroy(bl);
    return rc;
}

int bench_run_case(const bench_config *cfg, const bench_shape *shape, const bench_mode *modes,
                   int nmodes, const bench_sink *sink)
{
    case_state cs;
    memset(&cs, 0, sizeof cs);
    cs.cfg = cfg;
    cs.shape = shape;
    cs.scale = 1.0 / sqrt((double)shape->d);
    fas_options_init(&cs.options);
    cs.options.num_threads = cfg->threads_requested;
    cs.options.precision = cfg->precision;
    cs.options.gemm = cfg->gemm;
    cs.sink = sink;
    snprintf(cs.label, sizeof cs.label, "%lld,%lld,%lld,%lld,%lld,%lld", (long long)shape->b,
             (long long)shape->n, (long long)shape->sq, (long long)shape->sk, (long long)shape->d,
             (long long)shape->dv);

    bool need_probs = false, need_grad = false;
    for (int i = 0; i < nmodes; i++) {
        need_probs |= modes[i] != BENCH_FWD;
        need_grad |= modes[i] == BENCH_GRAD;
    }
    /* the floor's engine: the one the fused calls resolve (fas_bench checked it before the
     * table; checked again here because this process may be a fresh child) */
    fas_status st = fasi_resolve_engine(cfg->gemm, &cs.engine);
    if (st != FAS_OK) return report_failure(&cs, "matrix engine", modes[0], st);
    bench_blas_single_thread();
    fas_manual_seed(20260101);
    int rc = make_operands(&cs, need_probs, need_grad);
    for (int i = 0; i < nmodes && rc == 0; i++) {
        bench_result r;
        cs.mode_index = i;
        rc = run_mode(&cs, modes[i], &r);
        if (rc == 0 && sink && sink->result) sink->result(sink->ctx, i, &r);
    }
    free_operands(&cs.ops);
    return rc;
}
