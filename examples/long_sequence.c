/* Long-sequence inference without O(S^2) memory: fused_attention_score on [1, 16, 16384, 64]
 * (the score matrix of all heads would be 16 GiB in fp32). Without softmax_output the library
 * streams over key tiles with an online softmax, so the process's peak resident memory stays
 * close to its inputs plus output. Prints that ratio (Linux: VmHWM from /proc/self/status).
 * Usage: long_sequence [S]   (default 16384) */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fused_attention.h>

static long peak_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kib = atol(line + 6);
    fclose(f);
    return kib;
}

int main(int argc, char **argv)
{
    const int64_t B = 1, N = 16, D = 64;
    const int64_t S = argc > 1 ? atoll(argv[1]) : 16384;
    if (S < 1) {
        fprintf(stderr, "usage: long_sequence [S >= 1]\n");
        return 2;
    }
    fas_tensor q = {NULL, FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, 4, {B, N, S, D}};
    fas_tensor k = q, v = q;
    fas_tensor out = {NULL, FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, 2, {B * S, N * D}};
    fas_tensor *all[4] = {&q, &k, &v, &out};
    double io_bytes = 0;
    for (int t = 0; t < 4; t++) {
        size_t bytes = fas_tensor_bytes(all[t]);
        uint16_t *h = malloc(bytes);
        if (!h) {
            fprintf(stderr, "out of memory for %zu bytes\n", bytes);
            return 1;
        }
        for (size_t i = 0; i < bytes / 2; i++)
            h[i] = fas_float_to_half((float)((i * 2654435761u) % 1000u) / 1000.0f - 0.5f);
        all[t]->data = h;
        io_bytes += (double)bytes;
    }
    long before = peak_rss_kib();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    fas_status st = fused_attention_score(&q, &k, &v, NULL, 0.125, 1.0, false, false, false, false,
                                          false, false, &out);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long after = peak_rss_kib();
    if (st != FAS_OK) {
        fprintf(stderr, "%s: %s\n", fas_status_string(st), fas_last_error());
        return 1;
    }
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("fused_attention_score [%lld,%lld,%lld,%lld] NZ fp16, no mask: %.2f s\n", (long long)B,
           (long long)N, (long long)S, (long long)D, secs);
    printf("inputs + output            %8.1f MiB\n", io_bytes / 1048576.0);
    if (before < 0 || after < 0) {
        printf("peak resident memory       unavailable (no /proc/self/status)\n");
    } else {
        printf("peak resident, before call %8.1f MiB\n", (double)before / 1024.0);
        printf("peak resident, after call  %8.1f MiB  (%.3f x inputs + output)\n",
               (double)after / 1024.0, (double)after * 1024.0 / io_bytes);
    }
    for (int t = 0; t < 4; t++) free(all[t]->data);
    return 0;
}
