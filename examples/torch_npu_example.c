/* The torch_npu documentation example of npu_fused_attention_score, in C:
 *
 *   q, k, v  = uniform [0, 1) [24, 16, 512, 64] fp16, cast to FRACTAL_NZ
 *   mask     = uniform [0, 1) [24, 16, 512, 512] fp16, cast to FRACTAL_NZ
 *   out = torch_npu.npu_fused_attention_score(q, k, v, mask, 0.125, 0.5)
 *
 * and prints the [12288, 1024] context the way torch prints a 2-D fp16 tensor. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <fused_attention.h>

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static float uniform01(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)(rng_state >> 40) / 16777216.0f;
}

/* Allocate an fp16 NZ tensor with the given dims, filled with uniform [0, 1). */
static int make_input(fas_tensor *t, const int64_t dims[4])
{
    int64_t n = dims[0] * dims[1] * dims[2] * dims[3];
    float *tmp = malloc((size_t)n * sizeof *tmp);
    *t = (fas_tensor){
        NULL, FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, 4, {dims[0], dims[1], dims[2], dims[3]}};
    t->data = malloc(fas_tensor_bytes(t));
    if (!tmp || !t->data) return 1;
    for (int64_t i = 0; i < n; i++) tmp[i] = uniform01();
    fas_tensor nd = {tmp, FAS_DTYPE_FLOAT, FAS_FORMAT_ND, 4, {dims[0], dims[1], dims[2], dims[3]}};
    fas_status st = fas_format_cast(&nd, t);
    free(tmp);
    return st != FAS_OK;
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void print_row(const float *row, int64_t cols)
{
    printf("[");
    for (int64_t c = 0; c < 3; c++) printf("%.4f, ", row[c]);
    printf(" ..., ");
    for (int64_t c = cols - 3; c < cols; c++) printf("%.4f%s", row[c], c + 1 < cols ? ", " : "]");
}

int main(void)
{
    const int64_t B = 24, N = 16, S = 512, D = 64;
    const int64_t qkv_dims[4] = {B, N, S, D}, mask_dims[4] = {B, N, S, S};
    fas_tensor q, k, v, mask;
    if (make_input(&q, qkv_dims) || make_input(&k, qkv_dims) || make_input(&v, qkv_dims) ||
        make_input(&mask, mask_dims)) {
        fprintf(stderr, "out of memory preparing inputs\n");
        return 1;
    }
    fas_tensor out = {NULL, FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, 2, {B * S, N * D}};
    out.data = malloc(fas_tensor_bytes(&out));
    if (!out.data) return 1;
    printf("fused-attention %s (%s): torch_npu.npu_fused_attention_score example\n",
           fas_version_string(), fas_simd_level());
    printf("q, k, v [%lld,%lld,%lld,%lld] and mask [%lld,%lld,%lld,%lld]: fp16 FRACTAL_NZ, uniform "
           "[0, 1)\n",
           (long long)B, (long long)N, (long long)S, (long long)D, (long long)B, (long long)N,
           (long long)S, (long long)S);
    printf("scale 0.125, keep_prob 0.5 (process-wide generator, default seed), all six flags "
           "false\n");
    printf("context: [%lld, %lld] fp16 FRACTAL_NZ\n\n", (long long)(B * S), (long long)(N * D));

    double t0 = seconds();
    fas_status st = fused_attention_score(&q, &k, &v, &mask, 0.125, 0.5, false, false, false, false,
                                          false, false, &out);
    double t1 = seconds();
    if (st != FAS_OK) {
        fprintf(stderr, "fused_attention_score: %s: %s\n", fas_status_string(st), fas_last_error());
        return 1;
    }

    const int64_t rows = B * S, cols = N * D;
    float *ctx = malloc((size_t)(rows * cols) * sizeof *ctx);
    fas_tensor nd = {ctx, FAS_DTYPE_FLOAT, FAS_FORMAT_ND, 2, {rows, cols}};
    if (!ctx || fas_format_cast(&out, &nd) != FAS_OK) return 1;
    printf("tensor([");
    for (int64_t r = 0; r < 3; r++) {
        if (r) printf("        ");
        print_row(ctx + r * cols, cols);
        printf(",\n");
    }
    printf("        ...,\n");
    for (int64_t r = rows - 3; r < rows; r++) {
        printf("        ");
        print_row(ctx + r * cols, cols);
        printf(r + 1 < rows ? ",\n" : "], dtype=torch.float16)\n");
    }
    printf("fused_attention_score [%lld,%lld,%lld,%lld] NZ fp16, keep_prob 0.5: %.1f ms\n",
           (long long)B, (long long)N, (long long)S, (long long)D, (t1 - t0) * 1e3);
    free(ctx);
    free(out.data);
    free(q.data);
    free(k.data);
    free(v.data);
    free(mask.data);
    return 0;
}
