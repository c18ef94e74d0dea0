/* amx_gemm: the AMX engine's product against the builtin engine's on the pipelines' shapes, one
 * thread (docs/design.md §6, docs/precision.md "The AMX engine"). Not a test: it prints, per
 * shape and engine (the AMX engine at each split), GFLOP/s (2mnk / best time of the repeats,
 * "auto" the engine's own choice; the B operand prepared beforehand, the A split inside the product
 * as in the pipelines), the prepare time of B, and the error against an fp64 product: max |err| /
 * max |ref| and the largest |err| / (2^-12 max|ref| + 2^-9 |ref|) (the accuracy contract's ratio,
 * docs/semantics.md §2; <= 1 meets it). build/bench/amx_gemm [repeats]       (default 200) */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/dispatch.h"
#include "common/memory.h"
#include "engine/amx.h"
#include "fused_attention.h"
#include "kernels/gemm.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double uniform(double lo, double hi)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return lo + (hi - lo) * (double)(rng_state >> 11) * 0x1p-53;
}

typedef struct shape {
    const char *name;
    size_t m, n, k;
    bool trans_a;
    int a_kind; /* 0 fp16 values in [-1, 1]; 1 probabilities (fp32, a row sums to about 1); 2
                   fp32 in [-1, 1] / k (dA-like) */
    bool mask;  /* an fp16 NZ addend */
} shape;

static const shape shapes[] = {
    {"fwd S = Q.K^T + mask", 128, 512, 64, false, 0, true},
    {"fwd C = Pd.V", 128, 64, 512, false, 1, false},
    {"bwd dP = dO.V^T", 128, 512, 64, false, 0, false},
    {"bwd dV = Pd^T.dO", 512, 64, 128, true, 1, false},
    {"bwd dQ = dA.K", 128, 64, 512, false, 2, false},
    {"bwd dK = dA^T.Q", 512, 64, 128, true, 2, false},
};

static float half_value(double x) { return fas_half_to_float(fas_float_to_half((float)x)); }

int main(int argc, char **argv)
{
    const int reps = argc > 1 ? atoi(argv[1]) : 200;
    const fasi_kernels *kern = fasi_kernels_for(fasi_cpu_best_isa());
    const fasi_amx_ops *tiles = fasi_amx_tile_ops();
    const bool amx = tiles && fasi_amx_acquire();
    printf("amx_gemm: one thread, %d repeats (best time), kernel level %s; AMX tiles: %s\n", reps,
           kern->name,
           amx     ? "yes"
           : tiles ? fasi_amx_unusable_reason()
                   : "not in this build");
    printf("%-22s %-10s %9s %11s %12s %12s\n", "product (m x n x k)", "engine", "GFLOP/s",
           "prepare us", "max err/max", "contract");
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const shape *sh = &shapes[s];
        const size_t m = sh->m, n = sh->n, k = sh->k;
        float *a = malloc(m * k * sizeof *a), *bm = malloc(k * n * sizeof *bm);
        float *bp = fasi_alloc(fasi_packed_floats(k, n) * sizeof(float));
        void *own = fasi_alloc(fasi_amx_own_bytes(k, n));
        void *work = fasi_alloc(fasi_amx_work_bytes(m, n, k));
        float *c = malloc(m * n * sizeof *c);
        double *ref = malloc(m * n * sizeof *ref);
        const size_t m1 = (m + 15) / 16;
        uint16_t *mask = malloc((n + 15) / 16 * m1 * 256 * sizeof *mask);
        if (!a || !bm || !bp || !own || !work || !c || !ref || !mask) return 1;
        for (size_t i = 0; i < m * k; i++)
            a[i] = sh->a_kind == 0   ? half_value(uniform(-1, 1))
                   : sh->a_kind == 1 ? (float)(exp(uniform(-8, 0)) * 2.0 / (double)k)
                                     : (float)(uniform(-1, 1) / (double)k);
        for (size_t i = 0; i < k * n; i++) bm[i] = half_value(uniform(-1, 1));
        for (size_t i = 0; i < (n + 15) / 16 * m1 * 256; i++)
            mask[i] = fas_float_to_half((float)uniform(-1, 0));
        const size_t rsa = sh->trans_a ? 1 : k, csa = sh->trans_a ? m : 1;
        const fasi_addend add = {mask, true, false, 0, m1, 0, 0};
        const float alpha = sh->mask ? 0.125f : 1.0f;
        double refmax = 0.0;
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++) {
                double acc = 0.0;
                for (size_t t = 0; t < k; t++) acc += (double)a[i * rsa + t * csa] * bm[t * n + j];
                acc *= alpha;
                if (sh->mask)
                    acc += fas_half_to_float(
                        mask[(j / 16 * m1 + i / 16) * 256 + (i % 16) * 16 + j % 16]);
                ref[i * n + j] = acc;
                if (fabs(acc) > refmax) refmax = fabs(acc);
            }
        fasi_pack_panels(bm, n, k, n, 0, bp);
        fasi_operand b = {bp, 0, false, own, k, n};
        for (int e = 0; e < 5; e++) {
            if (e > 0 && !amx) break;
            double prep = 0.0;
            if (e > 0) {
                double t = now();
                for (int r = 0; r < 20; r++) fasi_amx_prepare_with(tiles, &b);
                prep = (now() - t) / 20;
            }
            double best = 1e30;
            for (int r = 0; r < reps; r++) {
                double t = now();
                if (e == 0)
                    fasi_engine_builtin.gemm(kern, work, m, n, k, alpha, a, rsa, csa, &b, 0, 0, c,
                                             n, false, sh->mask ? &add : NULL);
                else
                    fasi_amx_gemm_with(tiles, e == 4 ? FASI_AMX_SPLIT_AUTO : e, kern, work, m, n, k,
                                       alpha, a, rsa, csa, &b, 0, 0, c, n, false,
                                       sh->mask ? &add : NULL);
                t = now() - t;
                if (t < best) best = t;
            }
            double maxerr = 0.0, ratio = 0.0;
            for (size_t i = 0; i < m * n; i++) {
                const double err = fabs((double)c[i] - ref[i]);
                if (err > maxerr) maxerr = err;
                const double q = err / (0x1p-12 * refmax + 0x1p-9 * fabs(ref[i]));
                if (q > ratio) ratio = q;
            }
            char label[32], engine[16];
            snprintf(label, sizeof label, "%zux%zux%zu", m, n, k);
            snprintf(engine, sizeof engine,
                     e == 0   ? "builtin"
                     : e == 4 ? "amx auto"
                              : "amx split%d",
                     e);
            printf("%-22s %-10s %9.1f %11.1f %12.2e %12.2e   %s\n", label, engine,
                   2.0 * (double)(m * n * k) / best * 1e-9, prep * 1e6, maxerr / refmax, ratio,
                   e == 0 ? sh->name : "");
        }
        free(a);
        free(bm);
        fasi_free(bp);
        fasi_free(own);
        fasi_free(work);
        free(c);
        free(ref);
        free(mask);
    }
    return 0;
}
