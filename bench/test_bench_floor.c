/* fas_bench's GEMM floor (bench_floor.c) computes the products it claims to time: on one engine
 * (argv[1]: builtin, blas or amx; exit 77, a CTest skip, with the reason when the library
 * refuses it), over random shapes including odd sizes, Sq != Sk, Dv != D, several row blocks
 * and key tiles, for each mode, the floor's outputs after a run on one thread (its last task:
 * the last block of the last head) are compared with products summed in double from the same
 * fp32 operands:
 *   fwd, fwd_probs  S = scale * Q_blk . K^T over the last key tile; C = sum over tiles of
 *                   fl(S) . V (the context rows of the last block)
 *   grad            dP = dO_blk . V^T (last block); dQ = dP . K (every block's rows);
 *                   dV = sum over blocks Pd^T . dO_blk; dK = sum over blocks dP^T . Q_blk
 * Tolerance per element: 2 * gamma(n) * (sum of |terms|), gamma(n) = n * 2^-24 for an n-term fp32
 * sum (any summation order; composed products count the terms of both), plus 2^-14 * (sum of
 * |terms|) on the AMX engine, whose products with an fp32 operand keep 16 significant bits of it
 * (about 3 * 2^-16 per product, docs/precision.md §8), so a wrong operand,
 * offset, transpose or block is an error of order one and fails. The blocking is checked against
 * the pipeline's (docs/design.md §3.2, §3.3): blocks of min(Sq, 128) rows and key tiles of
 * min(Sk, 512) for fwd, whole rows for fwd_probs and grad. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/engines.h"
#include "bench.h"

static uint64_t rng_state = 0x5eedf100dull;

static float uniform(void) /* [-1, 1) */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)(z >> 40) * 0x1p-23f - 1.0f;
}

static int64_t pick(int64_t lo, int64_t hi)
{
    return lo + (int64_t)((uniform() + 1.0f) * 0.5f * (float)(hi - lo + 1)) % (hi - lo + 1);
}

typedef struct checker {
    double worst; /* largest error / tolerance */
    long failures;
    const char *what;
} checker;

static double engine_rel; /* the engine's own relative error per product (AMX: 2^-14) */

static void check(checker *ck, const char *name, double got, double want, double abs_terms,
                  int64_t n)
{
    double tol = (2.0 * (double)n * 0x1p-24 + engine_rel) * abs_terms + 1e-30;
    double ratio = fabs(got - want) / tol;
    if (!(ratio <= 1.0)) {
        if (ck->failures++ < 5)
            fprintf(stderr, "  %s: %s = %.9g, model %.9g, |diff| %.3g > tolerance %.3g\n", ck->what,
                    name, got, want, fabs(got - want), tol);
    }
    if (ratio > ck->worst || ratio != ratio) ck->worst = ratio;
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* One shape and mode; returns the number of failing elements. */
static long run_one(const fasi_engine *e, bench_mode mode, const bench_shape *s)
{
    const int64_t heads = s->b * s->n, sq = s->sq, sk = s->sk, d = s->d, dv = s->dv;
    float *q = bench_alloc((size_t)(heads * sq * d), sizeof(float));
    float *k = bench_alloc((size_t)(heads * sk * d), sizeof(float));
    float *v = bench_alloc((size_t)(heads * sk * dv), sizeof(float));
    float *dout = bench_alloc((size_t)(heads * sq * dv), sizeof(float));
    if (!q || !k || !v || !dout) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (int64_t i = 0; i < heads * sq * d; i++) q[i] = uniform();
    for (int64_t i = 0; i < heads * sk * d; i++) k[i] = uniform();
    for (int64_t i = 0; i < heads * sk * dv; i++) v[i] = uniform();
    for (int64_t i = 0; i < heads * sq * dv; i++) dout[i] = uniform();
    const double scale = 1.0 / sqrt((double)d);
    bench_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.threads = 1;
    bench_floor *fl =
        bench_floor_create(&cfg, s, mode, scale, e, q, k, v, mode == BENCH_GRAD ? dout : NULL);
    if (!fl) {
        fprintf(stderr, "out of memory (floor)\n");
        exit(1);
    }
    bench_floor_run(fl);
    bench_floor_view w;
    bench_floor_view_of(fl, 0, &w);

    char what[160];
    static const char *const mode_names[] = {"fwd", "fwd_probs", "grad"};
    snprintf(what, sizeof what, "%s %s %lld,%lld,%lld,%lld,%lld,%lld", e->name, mode_names[mode],
             (long long)s->b, (long long)s->n, (long long)sq, (long long)sk, (long long)d,
             (long long)dv);
    checker ck = {0.0, 0, what};

    /* the pipeline's blocking */
    int64_t rows = min64(sq, 128), tile = mode == BENCH_FWD ? min64(sk, 512) : sk;
    if (mode == BENCH_FWD_PROBS) {
        int64_t fit = (512 << 10) / (7 * sk) / 48 * 48;
        rows = min64(sq, fit >= 128 ? 128 : fit < 48 ? 48 : fit);
    }
    if (w.rows != rows || w.tile != tile || w.blocks != (sq + rows - 1) / rows) {
        fprintf(stderr, "  %s: blocks of %lld rows, tiles of %lld keys; expected %lld, %lld\n",
                what, (long long)w.rows, (long long)w.tile, (long long)rows, (long long)tile);
        ck.failures++;
    }

    const int64_t h = heads - 1, i0 = (w.blocks - 1) * w.rows, nr = sq - i0;
    const float *qh = q + h * sq * d, *kh = k + h * sk * d, *vh = v + h * sk * dv;
    const float *doh = dout + h * sq * dv;
    if (mode != BENCH_GRAD) {
        const int64_t j0 = (sk - 1) / w.tile * w.tile, nt = sk - j0;
        /* Q_blk . K^T of the last block over every key, and its sums of |terms| */
        double *sc = malloc(sizeof(double) * (size_t)(nr * sk));
        double *sca = malloc(sizeof(double) * (size_t)(nr * sk));
        if (!sc || !sca) exit(1);
        for (int64_t r = 0; r < nr; r++)
            for (int64_t j = 0; j < sk; j++) {
                double acc = 0, abs_acc = 0;
                for (int64_t t = 0; t < d; t++) {
                    double x = (double)qh[(i0 + r) * d + t] * kh[j * d + t];
                    acc += x;
                    abs_acc += fabs(x);
                }
                sc[r * sk + j] = acc * scale;
                sca[r * sk + j] = abs_acc * scale;
            }
        for (int64_t r = 0; r < nr; r++) {
            for (int64_t j = 0; j < nt; j++)
                check(&ck, "S", w.s[r * nt + j], sc[r * sk + j0 + j], sca[r * sk + j0 + j], d + 2);
            for (int64_t c = 0; c < dv; c++) {
                double acc = 0, abs_acc = 0;
                for (int64_t j = 0; j < sk; j++) {
                    acc += sc[r * sk + j] * vh[j * dv + c];
                    abs_acc += sca[r * sk + j] * fabs(vh[j * dv + c]);
                }
                check(&ck, "C", w.c[r * dv + c], acc, abs_acc, d + sk + 2);
            }
        }
        free(sc);
        free(sca);
    } else {
        /* dP of every block in double (the model's), then dQ, dK, dV */
        double *dp = malloc(sizeof(double) * (size_t)(sq * sk));
        double *dpa = malloc(sizeof(double) * (size_t)(sq * sk)); /* sum of |terms| */
        if (!dp || !dpa) exit(1);
        for (int64_t i = 0; i < sq; i++)
            for (int64_t j = 0; j < sk; j++) {
                double acc = 0, abs_acc = 0;
                for (int64_t c = 0; c < dv; c++) {
                    double x = (double)doh[i * dv + c] * vh[j * dv + c];
                    acc += x;
                    abs_acc += fabs(x);
                }
                dp[i * sk + j] = acc;
                dpa[i * sk + j] = abs_acc;
            }
        for (int64_t r = 0; r < nr; r++)
            for (int64_t j = 0; j < sk; j++)
                check(&ck, "dP", w.s[r * sk + j], dp[(i0 + r) * sk + j], dpa[(i0 + r) * sk + j],
                      dv);
        for (int64_t i = 0; i < sq; i++)
            for (int64_t c = 0; c < d; c++) {
                double acc = 0, abs_acc = 0;
                for (int64_t j = 0; j < sk; j++) {
                    acc += dp[i * sk + j] * kh[j * d + c];
                    abs_acc += dpa[i * sk + j] * fabs(kh[j * d + c]);
                }
                check(&ck, "dQ", w.dq[i * d + c], acc, abs_acc, dv + sk);
            }
        for (int64_t j = 0; j < sk; j++) {
            for (int64_t c = 0; c < dv; c++) {
                double acc = 0, abs_acc = 0;
                for (int64_t i = 0; i < sq; i++) {
                    double x = (double)w.p[(i % w.rows) * sk + j] * doh[i * dv + c];
                    acc += x;
                    abs_acc += fabs(x);
                }
                check(&ck, "dV", w.dv[j * dv + c], acc, abs_acc, sq);
            }
            for (int64_t c = 0; c < d; c++) {
                double acc = 0, abs_acc = 0;
                for (int64_t i = 0; i < sq; i++) {
                    acc += dp[i * sk + j] * qh[i * d + c];
                    abs_acc += dpa[i * sk + j] * fabs(qh[i * d + c]);
                }
                check(&ck, "dK", w.dk[j * d + c], acc, abs_acc, dv + sq);
            }
        }
        free(dp);
        free(dpa);
    }
    printf("%-60s worst error %.3f of tolerance  %s\n", what, ck.worst,
           ck.failures ? "FAIL" : "ok");
    bench_floor_destroy(fl);
    bench_free(q);
    bench_free(k);
    bench_free(v);
    bench_free(dout);
    return ck.failures;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        fas_gemm g;
    } engines[] = {{"builtin", FAS_GEMM_BUILTIN}, {"blas", FAS_GEMM_BLAS}, {"amx", FAS_GEMM_AMX}};
    fas_gemm g = FAS_GEMM_AUTO;
    for (size_t i = 0; argc == 2 && i < sizeof engines / sizeof *engines; i++)
        if (strcmp(argv[1], engines[i].name) == 0) g = engines[i].g;
    if (g == FAS_GEMM_AUTO) {
        fprintf(stderr, "usage: test_bench_floor builtin|blas|amx\n");
        return 2;
    }
    const fasi_engine *e = NULL;
    if (fasi_resolve_engine(g, &e) != FAS_OK) {
        printf("SKIP: engine %s: %s\n", argv[1], fas_last_error());
        return 77;
    }
    bench_blas_single_thread();
    engine_rel = e->id == FAS_GEMM_AMX ? 0x1p-14 : 0.0;
    printf("GEMM floor on engine %s, seed %#llx\n", e->name, (unsigned long long)rng_state);
    /* fixed shapes that cross block and tile edges, then random ones */
    bench_shape shapes[12] = {
        {1, 2, 100, 120, 40, 48},  /* one block, one tile, odd sizes */
        {1, 1, 300, 1100, 64, 64}, /* three blocks; tiles of 512, 512, 76 */
        {2, 1, 130, 96, 64, 32},   /* a block of 2 rows after 128 */
        {1, 1, 200, 1000, 24, 40}, /* fwd_probs: 48-row blocks */
    };
    int nshapes = 4;
    for (; nshapes < 12; nshapes++)
        shapes[nshapes] =
            (bench_shape){pick(1, 2), pick(1, 3), pick(1, 300), pick(1, 700), pick(1, 80), 0};
    for (int i = 4; i < nshapes; i++) shapes[i].dv = pick(1, 80);
    long failures = 0;
    for (int i = 0; i < nshapes; i++)
        for (int m = 0; m < BENCH_MODE_COUNT; m++)
            failures += run_one(e, (bench_mode)m, &shapes[i]);
    printf("%s\n", failures ? "FAILED" : "all products within tolerance");
    return failures ? 1 : 0;
}
