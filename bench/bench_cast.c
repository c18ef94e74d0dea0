/* fas_bench --cast: throughput of fas_format_cast (ND <-> FRACTAL_NZ) on a large tensor, in GB/s
 * of the logical fp16 tensor (2 bytes per element), the figure the layout code is held to. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

typedef struct cast_case {
    const char *name;
    fas_dtype from, to;
    fas_format from_fmt, to_fmt;
} cast_case;

int bench_cast_report(int repeat)
{
    const int64_t dims[3] = {64, 1024, 1024};
    const int64_t elems = dims[0] * dims[1] * dims[2];
    const cast_case cases[] = {
        {"ND -> NZ  fp16 -> fp16", FAS_DTYPE_FLOAT16, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND,
         FAS_FORMAT_FRACTAL_NZ},
        {"NZ -> ND  fp16 -> fp16", FAS_DTYPE_FLOAT16, FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ,
         FAS_FORMAT_ND},
        {"ND -> NZ  fp32 -> fp16", FAS_DTYPE_FLOAT, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND,
         FAS_FORMAT_FRACTAL_NZ},
        {"NZ -> ND  fp16 -> fp32", FAS_DTYPE_FLOAT16, FAS_DTYPE_FLOAT, FAS_FORMAT_FRACTAL_NZ,
         FAS_FORMAT_ND},
    };
    printf("fas_format_cast on [%lld, %lld, %lld] (%.0f MiB of fp16), best and median of %d\n",
           (long long)dims[0], (long long)dims[1], (long long)dims[2],
           (double)elems * 2 / (1 << 20), repeat);
    printf("%-24s %10s %10s %12s\n", "conversion", "best ms", "median ms", "GB/s (best)");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fas_tensor src = {NULL, cases[c].from, cases[c].from_fmt, 3, {dims[0], dims[1], dims[2]}};
        fas_tensor dst = {NULL, cases[c].to, cases[c].to_fmt, 3, {dims[0], dims[1], dims[2]}};
        src.data = bench_alloc(fas_tensor_bytes(&src), 1);
        dst.data = bench_alloc(fas_tensor_bytes(&dst), 1);
        double *t = calloc((size_t)repeat, sizeof *t);
        if (!src.data || !dst.data || !t) {
            fprintf(stderr, "fas_bench --cast: out of memory\n");
            return 1;
        }
        memset(src.data, 0x3c, fas_tensor_bytes(&src)); /* fp16 1.0-ish, fp32 small normals */
        memset(dst.data, 0, fas_tensor_bytes(&dst));    /* fault the pages in before timing */
        for (int r = -1; r < repeat; r++) {
            double t0 = bench_now();
            fas_status st = fas_format_cast(&src, &dst);
            double dt = bench_now() - t0;
            if (st != FAS_OK) {
                fprintf(stderr, "fas_format_cast: %s: %s\n", fas_status_string(st),
                        fas_last_error());
                return 1;
            }
            if (r >= 0) t[r] = dt;
        }
        for (int i = 1; i < repeat; i++) /* insertion sort: repeat is small */
            for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
                double x = t[j];
                t[j] = t[j - 1];
                t[j - 1] = x;
            }
        printf("%-24s %10.2f %10.2f %12.2f\n", cases[c].name, t[0] * 1e3, t[repeat / 2] * 1e3,
               (double)elems * 2 / t[0] * 1e-9);
        free(t);
        bench_free(src.data);
        bench_free(dst.data);
    }
    return 0;
}
