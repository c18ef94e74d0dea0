/* The AMX engine's portable kernels (kernels/amx.h): the split of fp32 values into bf16 parts,
 * and a model of the tile instruction, so that the engine's packing and blocking run and are
 * tested on every machine. Every function here is the definition the AVX-512 and tile code of
 * kernels/tiles_amx.c follows (the splits bit for bit). */
#include <math.h>
#include <string.h>

#include "common/bits.h"
#include "kernels/amx.h"

float fasi_amx_bf16_value(uint16_t h) { return fasi_bits_to_float((uint32_t)h << 16); }

/* bf16 of a finite x, to nearest even; toward zero where that overflows */
static uint16_t bf16_finite(float x)
{
    const uint32_t u = fasi_float_to_bits(x);
    const uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    if ((r & 0x7f80u) == 0x7f80u) return (uint16_t)(u >> 16);
    return (uint16_t)r;
}

bool fasi_amx_split1(float x, uint16_t part[3])
{
    const uint32_t u = fasi_float_to_bits(x);
    if ((u & 0x7f800000u) == 0x7f800000u) {
        /* infinity: its own hi; NaN: quiet, sign kept */
        part[0] = (uint16_t)((u >> 16) | ((u & 0x7fffffu) ? 0x40u : 0u));
        part[1] = part[2] = 0;
        return false;
    }
    part[0] = bf16_finite(x);
    const float r1 = x - fasi_amx_bf16_value(part[0]);
    part[1] = bf16_finite(r1);
    const float r2 = r1 - fasi_amx_bf16_value(part[1]);
    part[2] = bf16_finite(r2);
    return true;
}

/* lo2 is in use where x - hi - lo is nonzero (even below bf16's range) */
static int parts_in_use(uint16_t any1, uint32_t any2) { return any2 ? 3 : any1 ? 2 : 1; }

static uint32_t rest_bits(float x, const uint16_t s[3])
{
    if ((fasi_float_to_bits(x) & 0x7f800000u) == 0x7f800000u) return 0;
    return fasi_float_to_bits((x - fasi_amx_bf16_value(s[0])) - fasi_amx_bf16_value(s[1])) &
           0x7fffffffu;
}

static int split_a(const float *a, size_t rsa, size_t csa, size_t rows, size_t k, int want,
                   uint16_t *part[3], size_t ld, uint8_t *bad, float *tmp)
{
    (void)tmp;
    uint16_t any1 = 0;
    uint32_t any2 = 0;
    for (size_t i = 0; i < FASI_AMX_BLOCK; i++) {
        bool finite = true;
        for (size_t t = 0; t < ld; t++) {
            uint16_t s[3] = {0, 0, 0};
            if (i < rows && t < k) {
                const float x = a[i * rsa + t * csa];
                finite &= fasi_amx_split1(x, s);
                any2 |= rest_bits(x, s);
            }
            for (int p = 0; p < want; p++)
                part[p][(t / 32) * FASI_AMX_ASTEP + i * 32 + t % 32] = s[p];
            any1 |= s[1] & 0x7fffu;
        }
        bad[i] = !finite;
    }
    return parts_in_use(any1, any2);
}

static int split_b(const float *panel, size_t k, uint16_t *part[3], uint8_t *bad)
{
    uint16_t any1 = 0;
    uint32_t any2 = 0;
    for (size_t g = 0; g < (k + 15) / 16; g++) bad[g] = 0;
    for (size_t t = 0; t < (k + 1) / 2 * 2; t++)
        for (size_t c = 0; c < 16; c++) {
            uint16_t s[3] = {0, 0, 0};
            if (t < k) {
                if (!fasi_amx_split1(panel[t * 16 + c], s)) bad[t / 16] = 1;
                any2 |= rest_bits(panel[t * 16 + c], s);
            }
            for (int p = 0; p < 3; p++) part[p][(t / 2) * 32 + 2 * c + t % 2] = s[p];
            any1 |= s[1] & 0x7fffu;
        }
    return parts_in_use(any1, any2);
}

/* F(fmaf(a, b, c)): bf16 denormals read as zero, a denormal result flushed to zero */
float fasi_amx_model_fma(uint16_t a, uint16_t b, float c)
{
    float x = (a & 0x7f80u) ? fasi_amx_bf16_value(a) : fasi_amx_bf16_value(a & 0x8000u);
    float y = (b & 0x7f80u) ? fasi_amx_bf16_value(b) : fasi_amx_bf16_value(b & 0x8000u);
    float r = fmaf(x, y, c);
    if (r != 0.0f && fabsf(r) < 0x1p-126f) r = copysignf(0.0f, r);
    return r;
}

static void nothing(void) {}

/* C tile (ti, tj) of the block += A tile ti of part pa times B tile tj of part pb, step s */
static void model_tile(const fasi_amx_block *blk, float *acc, int ti, int tj, int pa, int pb,
                       size_t s)
{
    const uint16_t *a = blk->a[pa] + (size_t)ti * 16 * 32 + s * FASI_AMX_ASTEP;
    const uint16_t *b = blk->b[pb] + (size_t)tj * blk->bpanel + s * 16 * FASI_AMX_PAIR_ROW;
    for (size_t i = 0; i < 16; i++)
        for (size_t j = 0; j < 16; j++) {
            float c = acc[(ti * 16 + i) * FASI_AMX_BLOCK + tj * 16 + j];
            for (size_t r = 0; r < 16; r++) {
                c = fasi_amx_model_fma(a[i * 32 + 2 * r], b[r * 32 + 2 * j], c);
                c = fasi_amx_model_fma(a[i * 32 + 2 * r + 1], b[r * 32 + 2 * j + 1], c);
            }
            acc[(ti * 16 + i) * FASI_AMX_BLOCK + tj * 16 + j] = c;
        }
}

/* The model keeps C in acc from the first call to the last (the tiles keep it in registers). */
static void block(const fasi_amx_block *blk)
{
    float *acc = blk->acc;
    if (blk->first)
        for (size_t i = 0; i < FASI_AMX_BLOCK * FASI_AMX_BLOCK; i++) acc[i] = 0.0f;
    for (size_t s = 0; s < blk->steps; s++)
        for (int p = 0; p < blk->npass; p++)
            for (int ti = 0; ti < blk->mt; ti++)
                for (int tj = 0; tj < blk->nt; tj++)
                    model_tile(blk, acc, ti, tj, blk->pass[p][0], blk->pass[p][1], s);
}

static void store(const fasi_kernels *kern, const float *acc, size_t rows, size_t cols, float alpha,
                  float *c, size_t ldc, bool accumulate, const fasi_addend *add)
{
    float addrow[FASI_AMX_BLOCK];
    for (size_t i = 0; i < rows; i++) {
        const float *x = acc + i * FASI_AMX_BLOCK;
        float *y = c + i * ldc;
        if (add) {
            /* an NZ fractal row holds 16 contiguous columns (col0 is a multiple of 16) */
            for (size_t j = 0; j < cols; j += 16) {
                const size_t r = add->row0 + (add->broadcast ? 0 : i), col = add->col0 + j;
                const size_t at = add->nz ? (col / 16 * add->m1 + r / 16) * 256 + (r % 16) * 16
                                          : r * add->row_stride + col;
                kern->f16_to_f32(add->data + at, 0, addrow + j, 0, 1,
                                 cols - j < 16 ? cols - j : 16);
            }
            for (size_t j = 0; j < cols; j++) y[j] = fmaf(alpha, x[j], addrow[j]);
        } else if (accumulate) {
            for (size_t j = 0; j < cols; j++) y[j] = fmaf(alpha, x[j], y[j]);
        } else {
            for (size_t j = 0; j < cols; j++) y[j] = alpha * x[j];
        }
    }
}

const fasi_amx_ops fasi_amx_model_ops = {"model", split_a, split_b, nothing, nothing, block, store};

#if FAS_HAVE_AMX
extern const fasi_amx_ops fasi_amx_tiles;
const fasi_amx_ops *fasi_amx_tile_ops(void) { return &fasi_amx_tiles; }
#else
const fasi_amx_ops *fasi_amx_tile_ops(void) { return NULL; }
#endif
