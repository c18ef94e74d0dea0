/* A first taste of the API: build a small fp32 matrix in ND, cast it to fp16 FRACTAL_NZ and
 * back, and print both the logical values and the NZ storage order. */
#include <stdio.h>
#include <stdlib.h>

#include <fused_attention.h>

static int check(fas_status st, const char *what)
{
    if (st == FAS_OK) return 0;
    fprintf(stderr, "%s failed: %s: %s\n", what, fas_status_string(st), fas_last_error());
    return 1;
}

int main(void)
{
    enum { ROWS = 3, COLS = 18 };
    float values[ROWS * COLS];
    for (int i = 0; i < ROWS * COLS; i++) values[i] = (float)i / 4.0f;

    fas_tensor nd = {values, FAS_DTYPE_FLOAT, FAS_FORMAT_ND, 2, {ROWS, COLS}};
    fas_tensor nz = {NULL, FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, 2, {ROWS, COLS}};
    size_t nz_bytes = fas_tensor_bytes(&nz);
    nz.data = malloc(nz_bytes);
    float back[ROWS * COLS];
    fas_tensor round_trip = {back, FAS_DTYPE_FLOAT, FAS_FORMAT_ND, 2, {ROWS, COLS}};
    if (!nz.data) return 1;

    if (check(fas_format_cast(&nd, &nz), "ND -> NZ") || check(fas_format_cast(&nz, &round_trip), "NZ -> ND")) {
        free(nz.data);
        return 1;
    }
    printf("fused-attention %s\n", fas_version_string());
    printf("logical [%d, %d] fp32 -> fp16 FRACTAL_NZ: %zu bytes (%d fractals of 16x16)\n", ROWS,
           COLS, nz_bytes, (int)(nz_bytes / 512));
    const uint16_t *h = nz.data;
    for (int f = 0; f < (int)(nz_bytes / 512); f++) {
        printf("fractal %d, first row: ", f);
        for (int c = 0; c < 16; c++) printf("%5.2f ", fas_half_to_float(h[f * 256 + c]));
        printf("\n");
    }
    printf("round trip:\n");
    for (int r = 0; r < ROWS; r++) {
        for (int c = 0; c < COLS; c++) printf("%5.2f ", back[r * COLS + c]);
        printf("\n");
    }
    free(nz.data);
    return 0;
}
