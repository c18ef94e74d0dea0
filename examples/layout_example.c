/* A tour of FRACTAL_NZ (ACL format 29): a [20, 40] fp32 matrix whose every element is
 * 100*row + col is cast to fp16 NZ and back. The program prints the order of the 16x16 fractals
 * in storage, one whole fractal, the zero padding of a partial one, checks every element against
 * the documented index formula, and checks that the round trip ND -> NZ -> ND is exact. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fused_attention.h>

enum { ROWS = 20, COLS = 40, M1 = (ROWS + 15) / 16, N1 = (COLS + 15) / 16 };

static int check(fas_status st, const char *what)
{
    if (st == FAS_OK) return 0;
    fprintf(stderr, "%s failed: %s: %s\n", what, fas_status_string(st), fas_last_error());
    return 1;
}

static void print_fractal(const uint16_t *h, int f, int rows)
{
    for (int r = 0; r < rows; r++) {
        printf("  ");
        for (int c = 0; c < 16; c++) printf("%5.0f", fas_half_to_float(h[f * 256 + r * 16 + c]));
        printf("\n");
    }
}

int main(void)
{
    float values[ROWS * COLS], back[ROWS * COLS];
    for (int r = 0; r < ROWS; r++)
        for (int c = 0; c < COLS; c++) values[r * COLS + c] = (float)(100 * r + c); /* exact */

    fas_tensor nd = {values, FAS_DTYPE_FLOAT, FAS_FORMAT_ND, 2, {ROWS, COLS}};
    fas_tensor nz = {NULL, FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, 2, {ROWS, COLS}};
    fas_tensor round_trip = {back, FAS_DTYPE_FLOAT, FAS_FORMAT_ND, 2, {ROWS, COLS}};
    size_t nz_bytes = fas_tensor_bytes(&nz);
    nz.data = malloc(nz_bytes);
    if (!nz.data) return 1;
    if (check(fas_format_cast(&nd, &nz), "ND -> NZ") ||
        check(fas_format_cast(&nz, &round_trip), "NZ -> ND")) {
        free(nz.data);
        return 1;
    }
    const uint16_t *h = nz.data;

    printf("fused-attention %s: FRACTAL_NZ tour\n\n", fas_version_string());
    printf("logical [%d, %d], element (r, c) = 100*r + c, cast to fp16 FRACTAL_NZ:\n", ROWS, COLS);
    printf("stored as [N1, M1, 16, 16] = [%d, %d, 16, 16]: %zu bytes, %d fractals of 16x16\n\n", N1,
           M1, nz_bytes, M1 * N1);
    printf("fractals in storage order (column blocks outermost, each fractal row-major):\n");
    for (int f = 0; f < M1 * N1; f++) {
        int rb = f % M1, cb = f / M1;
        int r_end = 16 * rb + 16 < ROWS ? 16 * rb + 16 : ROWS;
        int c_end = 16 * cb + 16 < COLS ? 16 * cb + 16 : COLS;
        printf("  fractal %d at byte %5d: rows %2d..%2d, cols %2d..%2d", f, f * 512, 16 * rb,
               r_end - 1, 16 * cb, c_end - 1);
        if (r_end - 16 * rb < 16 || c_end - 16 * cb < 16)
            printf("  (+ zero padding: %d rows, %d cols)", 16 - (r_end - 16 * rb),
                   16 - (c_end - 16 * cb));
        printf("\n");
    }
    printf("\nfractal 0, all 16 rows (rows 0..15, cols 0..15 of the matrix):\n");
    print_fractal(h, 0, 16);
    printf("\nfractal 1, rows 0..5 (matrix rows 16..19, then padding rows of zeros):\n");
    print_fractal(h, 1, 6);
    printf("\nfractal %d, row 0 (matrix row 0, cols 32..39, then padding cols of zeros):\n",
           M1 * N1 - 2);
    print_fractal(h, M1 * N1 - 2, 1);

    /* element (m, n) lives at ((n/16)*M1 + m/16)*256 + (m%16)*16 + n%16 */
    int misplaced = 0;
    for (int m = 0; m < ROWS; m++)
        for (int n = 0; n < COLS; n++)
            if (fas_half_to_float(h[((n / 16) * M1 + m / 16) * 256 + (m % 16) * 16 + n % 16]) !=
                values[m * COLS + n])
                misplaced++;
    printf("\nindex formula ((n/16)*M1 + m/16)*256 + (m%%16)*16 + n%%16: %d of %d elements "
           "misplaced\n",
           misplaced, ROWS * COLS);
    int exact = memcmp(values, back, sizeof values) == 0;
    printf("round trip ND -> NZ -> ND: %s\n", exact ? "exact" : "DIFFERS");
    free(nz.data);
    return misplaced == 0 && exact ? 0 : 1;
}
