/* A few steps of training through the operator: forward (with dropout), a mean-squared-error
 * loss against a fixed target, backward, and an SGD update of fp32 master copies of q, k, v.
 * The operator runs on fp16 copies, as mixed-precision training does. */
#include <stdio.h>
#include <stdlib.h>

#include <fused_attention.h>

enum { B = 2, N = 2, S = 24, D = 16, STEPS = 8 };
#define NUMEL (B * N * S * D)

static float frand(unsigned *state)
{
    *state = *state * 1664525u + 1013904223u;
    return (float)(*state >> 8) / 16777216.0f * 2.0f - 1.0f;
}

#define CHECK(call)                                                                                \
    do {                                                                                           \
        fas_status st_ = (call);                                                                   \
        if (st_ != FAS_OK) {                                                                       \
            fprintf(stderr, "%s: %s: %s\n", #call, fas_status_string(st_), fas_last_error());      \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(void)
{
    static float master[3][NUMEL], grad[3][NUMEL], target[NUMEL], ctx[NUMEL], dctx[NUMEL];
    static uint16_t half[3][NUMEL], probs[B * N * S * S], out16[NUMEL], dout16[NUMEL];
    static uint8_t keep[B * N * S * S];
    unsigned seed = 7;
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < NUMEL; i++) master[t][i] = frand(&seed);
    for (int i = 0; i < NUMEL; i++) target[i] = 0.5f * frand(&seed);

    const double scale = 0.25, keep_prob = 0.9, lr = 300.0;
    fas_manual_seed(2026);
    printf("fused-attention %s (%s): training q, k, v [B,N,S,D] = [%d,%d,%d,%d] fp16 ND\n",
           fas_version_string(), fas_simd_level(), B, N, S, D);
    printf("no mask, scale %g, keep_prob %g (seed 2026), MSE loss against a fixed target, SGD "
           "with lr %g on fp32 masters, %d steps\n",
           scale, keep_prob, lr, STEPS);
    for (int step = 0; step <= STEPS; step++) {
        fas_tensor in32[3], in16[3];
        for (int t = 0; t < 3; t++) {
            in32[t] = (fas_tensor){master[t], FAS_DTYPE_FLOAT, FAS_FORMAT_ND, 4, {B, N, S, D}};
            in16[t] = (fas_tensor){half[t], FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {B, N, S, D}};
            CHECK(fas_format_cast(&in32[t], &in16[t]));
        }
        fas_tensor out = {out16, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 2, {B * S, N * D}};
        fas_tensor p = {probs, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {B, N, S, S}};
        fas_tensor m = {keep, FAS_DTYPE_UINT8, FAS_FORMAT_ND, 4, {B, N, S, S}};
        CHECK(fused_attention_score_fwd(&in16[0], &in16[1], &in16[2], NULL, scale, keep_prob, false,
                                        false, false, false, false, false, &out, &p, &m));
        fas_tensor out32 = {ctx, FAS_DTYPE_FLOAT, FAS_FORMAT_ND, 2, {B * S, N * D}};
        CHECK(fas_format_cast(&out, &out32));

        /* loss = mean((ctx - target)^2) / 2; target is laid out like the context [B*S, N*D] */
        double loss = 0;
        for (int i = 0; i < NUMEL; i++) {
            double e = ctx[i] - target[i];
            loss += 0.5 * e * e / NUMEL;
            dctx[i] = (float)(e / NUMEL);
        }
        printf("step %d  loss %.6f\n", step, loss);
        if (step == STEPS) break;

        fas_tensor d32 = {dctx, FAS_DTYPE_FLOAT, FAS_FORMAT_ND, 2, {B * S, N * D}};
        fas_tensor dout = {dout16, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 2, {B * S, N * D}};
        CHECK(fas_format_cast(&d32, &dout));
        fas_tensor g[3];
        for (int t = 0; t < 3; t++)
            g[t] = (fas_tensor){grad[t], FAS_DTYPE_FLOAT, FAS_FORMAT_ND, 4, {B, N, S, D}};
        CHECK(fused_attention_score_grad(&dout, &p, &in16[0], &in16[1], &in16[2], &m, scale,
                                         keep_prob, false, false, false, false, &g[0], &g[1],
                                         &g[2]));
        for (int t = 0; t < 3; t++)
            for (int i = 0; i < NUMEL; i++) master[t][i] -= (float)lr * grad[t][i];
    }
    return 0;
}
