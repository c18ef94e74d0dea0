/* The overflow the NPU's row-max reduction causes, shown on the CPU.
 *
 * At S = 384 (24 blocks of 16 keys) the Ascend kernel's row maximum never looks at blocks
 * 2, 5, 8, ... (t mod 3 = 2). When a logit there exceeds the maximum it did see by more than
 * ln 65504 = 11.09, its fp16 exp overflows and the whole row of probabilities and context turns
 * inf or NaN on the NPU. This program builds one head whose every query sees a logit 12 above
 * the rest at key 37 (block 2), runs the forward in the default precision and in the NPU
 * precision mode, and prints row 0 of both; then it moves the large logit to key 5 (block 0,
 * which the reduction visits) and shows that the NPU mode stays finite there.
 *
 *   usage: npu_overflow [key]    (default 37; any key in 0..383) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <fused_attention.h>

enum { S = 384, D = 16 };

typedef struct run {
    uint16_t ctx[S * D], probs[S * S];
} run;

static int forward(const uint16_t *q, const uint16_t *k, const uint16_t *v, fas_precision prec,
                   run *out)
{
    fas_tensor tq = {(void *)q, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {1, 1, S, D}};
    fas_tensor tk = {(void *)k, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {1, 1, S, D}};
    fas_tensor tv = {(void *)v, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {1, 1, S, D}};
    fas_tensor to = {out->ctx, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 2, {S, D}};
    fas_tensor tp = {out->probs, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {1, 1, S, S}};
    fas_options o;
    fas_options_init(&o);
    o.precision = prec;
    fas_status st = fused_attention_score_fwd_ex(&tq, &tk, &tv, NULL, 1.0, 1.0, false, false, false,
                                                 false, false, false, &to, &tp, NULL, &o);
    if (st != FAS_OK) {
        fprintf(stderr, "fused_attention_score_fwd_ex: %s: %s\n", fas_status_string(st),
                fas_last_error());
        return 1;
    }
    return 0;
}

static void show(const char *title, const run *r, int key)
{
    int nonfinite_p = 0, nonfinite_c = 0;
    for (int i = 0; i < S * S; i++) nonfinite_p += !isfinite(fas_half_to_float(r->probs[i]));
    for (int i = 0; i < S * D; i++) nonfinite_c += !isfinite(fas_half_to_float(r->ctx[i]));
    printf("%s\n", title);
    printf("  softmax_output[0][%d] = %g, [0][0] = %g; context row 0: ", key,
           fas_half_to_float(r->probs[key]), fas_half_to_float(r->probs[0]));
    for (int d = 0; d < 4; d++) printf("%g ", fas_half_to_float(r->ctx[d]));
    printf("...\n  non-finite: %d of %d probabilities, %d of %d context values\n", nonfinite_p,
           S * S, nonfinite_c, S * D);
}

int main(int argc, char **argv)
{
    int key = argc > 1 ? atoi(argv[1]) : 37;
    if (key < 0 || key >= S) {
        fprintf(stderr, "usage: npu_overflow [key in 0..%d]\n", S - 1);
        return 2;
    }
    static uint16_t q[S * D], k[S * D], v[S * D];
    unsigned state = 12345;
    for (int i = 0; i < S * D; i++) {
        state = state * 1664525u + 1013904223u;
        /* small logits everywhere: |q . k| <= 16 * 0.25 * 0.25 */
        q[i] = fas_float_to_half(i % D == 0 ? 1.0f : 0.0f);
        k[i] = fas_float_to_half(((float)(state >> 8) / 16777216.0f - 0.5f) * 0.5f);
        v[i] = fas_float_to_half((float)(i % 7) - 3.0f);
    }
    run *fp32 = malloc(sizeof *fp32), *npu = malloc(sizeof *npu), *moved = malloc(sizeof *moved);
    if (!fp32 || !npu || !moved) return 1;

    printf("fused-attention %s: one head, S = %d (T = %d blocks of 16 keys), D = %d, scale 1\n",
           fas_version_string(), S, S / 16, D);
    printf("every query sees a logit of 12 at key %d (block %d, %s by the NPU's row maximum); "
           "the other logits are within +-0.25 of 0\n\n",
           key, key / 16, key / 16 % 3 == 2 ? "left out" : "visited");
    k[key * D] = fas_float_to_half(12.0f); /* q[i] = e_0, so logit(i, key) = k[key][0] = 12 */
    if (forward(q, k, v, FAS_PRECISION_FP32, fp32) || forward(q, k, v, FAS_PRECISION_NPU, npu))
        return 1;
    show("default precision (fp32 stages, one rounding per output):", fp32, key);
    show("NPU precision mode (the Ascend kernel's roundings and row maximum):", npu, key);

    const int visited = key % 16; /* the same column inside block 0, which the maximum visits */
    k[key * D] = k[(key + 1) % S * D];
    k[visited * D] = fas_float_to_half(12.0f);
    if (forward(q, k, v, FAS_PRECISION_NPU, moved)) return 1;
    printf("\nthe same logit moved to key %d (block 0):\n", visited);
    show("NPU precision mode:", moved, visited);
    free(fp32);
    free(npu);
    free(moved);
    return 0;
}
