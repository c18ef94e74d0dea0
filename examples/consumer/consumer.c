/* Minimal embedding: one attention call on a tiny problem, checked against the obvious answer
 * (a single key gives softmax 1, so the context is exactly that key's value row). */
#include <stdio.h>

#include <fused_attention.h>

int main(void)
{
    uint16_t q[4], k[4], v[4], out[4];
    for (int i = 0; i < 4; i++) {
        q[i] = fas_float_to_half(0.5f * (float)i);
        k[i] = fas_float_to_half(1.0f);
        v[i] = fas_float_to_half((float)(i + 1));
    }
    fas_tensor tq = {q, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {1, 1, 1, 4}};
    fas_tensor tk = {k, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {1, 1, 1, 4}};
    fas_tensor tv = {v, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {1, 1, 1, 4}};
    fas_tensor to = {out, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 2, {1, 4}};
    fas_status st = fused_attention_score(&tq, &tk, &tv, NULL, 0.125, 1.0, false, false, false,
                                          false, false, false, &to);
    if (st != FAS_OK) {
        fprintf(stderr, "%s: %s\n", fas_status_string(st), fas_last_error());
        return 1;
    }
    for (int i = 0; i < 4; i++) {
        if (fas_half_to_float(out[i]) != (float)(i + 1)) {
            fprintf(stderr, "context[%d] = %g, expected %d\n", i, fas_half_to_float(out[i]), i + 1);
            return 1;
        }
    }
    printf("fused-attention %s: consumer OK\n", fas_version_string());
    return 0;
}
