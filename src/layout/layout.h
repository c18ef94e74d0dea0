/* fp16/bf16 scalar conversions, the FRACTAL_NZ geometry, and block loaders/storers that move a
 * rectangle of any supported tensor (ND or NZ; FLOAT, FLOAT16, BF16, UINT8) to and from fp32
 * (or byte) panels. Everything the kernels read or write goes through these. */
#ifndef FASI_LAYOUT_H
#define FASI_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fused_attention.h"
#include "common/isa.h"

/* Kernel-table registration of the 2-D conversion entries (fp16/bf16 <-> fp32), one per level;
 * the AVX2 and AVX-512 ones exist only where the x86-64 SIMD files are compiled, the NEON one
 * only on aarch64. */
void fasi_register_fp16_portable(fasi_kernels *k);
void fasi_register_fp16_avx2(fasi_kernels *k);
void fasi_register_fp16_avx512(fasi_kernels *k);
void fasi_register_fp16_neon(fasi_kernels *k);
/* Whether FCVTL / FCVTN compute the portable conversions under the calling thread's current FPCR
 * (fp16_neon.c: RMode, DN, AHP and AH at their defaults); aarch64 builds with the NEON files
 * only. Other NEON kernels that widen fp16 (the gemm_add addend) check it once per call. */
bool fasi_neon_fp16_hardware_exact(void);

/* ---- scalar conversions (portable, round to nearest even; the reference of every SIMD path) */
uint16_t fasi_f32_to_f16(float x);
float fasi_f16_to_f32(uint16_t h);
uint16_t fasi_f32_to_bf16(float x);
float fasi_bf16_to_f32(uint16_t b);
/* Direct, single rounding from double (the fp64 reference rounds its results only once). */
uint16_t fasi_f64_to_f16(double x);
uint16_t fasi_f64_to_bf16(double x);

/* ---- geometry */
#define FASI_C0 16

/* ceil(x / 16) without the overflow of (x + 15) / 16 near INT64_MAX */
static inline int64_t fasi_ceil16(int64_t x) { return x / 16 + (x % 16 != 0); }

/* A tensor seen as `batch` matrices of rows x cols (its last two logical dims; rank rules of
 * FRACTAL_NZ: 1-D [n] is [n, 1], 0-D is [1, 1]; ND tensors follow the same rules). */
typedef struct fasi_mat {
    void *data;
    fas_dtype dtype;
    bool nz;
    int64_t batch;     /* product of the leading dims (1 for rank <= 2) */
    int64_t rows;      /* M */
    int64_t cols;      /* N */
    int64_t m1;        /* ceil(rows / 16) */
    int64_t n1;        /* ceil(cols / 16) */
    int64_t mat_elems; /* storage elements per matrix: rows*cols (ND) or m1*n1*256 (NZ) */
} fasi_mat;

/* t must already be valid (known dtype and format, 0 <= ndim <= 8, dims >= 1). */
void fasi_mat_init(fasi_mat *m, const fas_tensor *t);

/* Storage element index of (batch b, row r, col c). */
static inline int64_t fasi_mat_index(const fasi_mat *m, int64_t b, int64_t r, int64_t c)
{
    if (!m->nz) return (b * m->rows + r) * m->cols + c;
    return b * m->mat_elems + ((c >> 4) * m->m1 + (r >> 4)) * 256 + (r & 15) * 16 + (c & 15);
}

size_t fasi_dtype_size(fas_dtype dt); /* 0 for an unknown dtype */

/* dst[i*ldd + j] = L[r0+i][c0+j] for i < nr, j < nc, converted to fp32, where L is matrix b of
 * m, or its transpose when trans (then L[r][c] = stored[c][r]). UINT8 loads as 0..255. */
void fasi_mat_load_f32(const fasi_kernels *k, const fasi_mat *m, int64_t b, bool trans, int64_t r0,
                       int64_t nr, int64_t c0, int64_t nc, float *dst, int64_t ldd);

/* Stores into an NZ tensor of at least this many storage bytes (and 16-byte aligned data) use
 * streaming stores for whole fractal rows, as does fas_format_cast for its destination. */
#define FASI_STREAM_MIN_BYTES ((size_t)8 << 20)

/* Matrix b of m: stored[r0+i][c0+j] = round(src[i*lds + j]) into m's dtype (UINT8: round to
 * nearest and saturate to 0..255, NaN to 0). */
void fasi_mat_store_f32(const fasi_kernels *k, const fasi_mat *m, int64_t b, int64_t r0, int64_t nr,
                        int64_t c0, int64_t nc, const float *src, int64_t lds);

/* Byte rectangles (UINT8 tensors: drop masks). */
void fasi_mat_load_u8(const fasi_mat *m, int64_t b, int64_t r0, int64_t nr, int64_t c0, int64_t nc,
                      uint8_t *dst, int64_t ldd);
void fasi_mat_store_u8(const fasi_mat *m, int64_t b, int64_t r0, int64_t nr, int64_t c0, int64_t nc,
                       const uint8_t *src, int64_t lds);
/* Elements already in m's 16-bit dtype (FLOAT16 or BF16 bits), copied as they are. */
void fasi_mat_store_u16(const fasi_mat *m, int64_t b, int64_t r0, int64_t nr, int64_t c0,
                        int64_t nc, const uint16_t *src, int64_t lds);

/* Write zeros to every padding element of an NZ tensor (no-op for ND). Touches padding only,
 * so it may run before or after the blocks are stored, from any thread. */
void fasi_mat_zero_padding(const fasi_mat *m);

/* Element access for the fp64 reference: value as double (UINT8 as 0..255), and a store that
 * rounds once from double into the dtype. */
double fasi_mat_get(const fasi_mat *m, int64_t b, int64_t r, int64_t c);
void fasi_mat_set(const fasi_mat *m, int64_t b, int64_t r, int64_t c, double v);

/* Whole-tensor conversion behind fas_format_cast; src and dst already validated (same dims,
 * compatible dtypes, no partial overlap). */
void fasi_mat_convert(const fasi_kernels *k, const fasi_mat *src, const fasi_mat *dst);

#endif
