/* The AMX engine's kernels behind one small portable interface (docs/design.md §6, "The AMX
 * engine"), so that the engine's split, packing and blocking (engine/amx.c) run either on the
 * tiles (kernels/tiles_amx.c, AMX-TILE + AMX-BF16 with AVX-512 conversions) or on a portable
 * model of the tile instruction (kernels/amx_model.c) on any machine.
 *
 * The split. Every fp32 value x is hi + lo + lo2 with
 *   hi  = bf16(x)        round to nearest even; a finite x whose rounding overflows keeps
 *                        hi = x rounded toward zero (the largest bf16); an infinity or NaN is
 *                        its own hi (a NaN quiet, sign kept) with lo = lo2 = 0
 *   lo  = bf16(x - hi)   x - hi is exact in fp32
 *   lo2 = bf16(x - hi - lo)
 * hi + lo holds 16 significant bits of x, hi + lo + lo2 all 24 (exactly x, unless a part is
 * below the bf16 normal range, where the tile instruction reads it as zero). An fp16 value is
 * exactly hi + lo (lo has at most 3 significant bits; lo2 = 0). A bf16 x bf16 product is exact
 * in fp32, so the passes Ah.Bh + Ah.Bl + Al.Bh (+ ...) sum exact products in fp32.
 *
 * The tile instruction (TDPBF16PS) as the model computes it, for C (16 x 16 fp32), A (16 rows
 * of 16 bf16 pairs) and B (16 pair rows of 16 columns, VNNI layout: pair r, column c holds rows
 * 2r and 2r+1 at elements 2c and 2c+1):
 *   for r in 0..15: c[i][j] = F(fmaf(a[i][2r], b[r][2j], c[i][j]))
 *                   c[i][j] = F(fmaf(a[i][2r+1], b[r][2j+1], c[i][j]))
 * with bf16 denormal inputs read as zero and F flushing a denormal result to a zero of its
 * sign. The hardware's order inside one instruction may differ (it is not documented
 * consistently); the tests hold the tiles to the accuracy contract against the model, not to
 * its bits. */
#ifndef FASI_AMX_H
#define FASI_AMX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/isa.h"

#define FASI_AMX_KSTEP 32    /* k of one tile instruction: 16 bf16 pairs */
#define FASI_AMX_BLOCK 32    /* rows and columns of a C block: 2 x 2 tiles of 16 x 16 */
#define FASI_AMX_PAIR_ROW 32 /* bf16 of one pair row of a 16-column panel (64 bytes) */
#define FASI_AMX_PARTS 3     /* hi, lo, lo2 */
#define FASI_AMX_ASTEP (FASI_AMX_BLOCK * FASI_AMX_KSTEP) /* bf16 of A's 32 rows in one k step */

/* One C block (at most 32 x 32) over `steps` k steps of 32. */
typedef struct fasi_amx_block {
    int mt, nt; /* row tiles and column tiles, 1 or 2 each */
    size_t steps;
    /* A part p: step 0 of the block at a[p], step s at + s*FASI_AMX_ASTEP: 32 rows of 32 bf16
     * (one 64-byte tile row each, so the two A tiles are 1 KiB each, contiguous) */
    const uint16_t *a[FASI_AMX_PARTS];
    /* B part p: the block's first panel at b[p], its second at + bpanel; step s at + s*512
     * (16 pair rows of 32 bf16) */
    const uint16_t *b[FASI_AMX_PARTS];
    size_t bpanel;
    /* the passes (A part, B part), run in this order within each step */
    int npass;
    unsigned char pass[9][2];
    bool first; /* C starts at zero (else it continues the previous call's C) */
    bool last;  /* store C into acc (32 x 32 fp32, row stride 32) */
    float *acc;
} fasi_amx_block;

typedef struct fasi_amx_ops {
    const char *name; /* "tiles", "model" */
    /* Rows 0 .. rows-1 (rows <= 32) of A(i, t) = a[i*rsa + t*csa], t < k, split; the first
     * `want` parts (1 to 3) are written, the others only looked at: part p, row i, column t at
     * part[p][(t/32)*FASI_AMX_ASTEP + i*32 + t%32], for t < ld (a multiple of 32, >= k); columns
     * k .. ld-1 and rows rows .. 31 are zero. bad[i] = 1 when row i holds an infinity or NaN,
     * else 0 (32 entries). tmp: 32 * ld floats of scratch. Returns the parts in use, written or
     * not: 3 when some x - hi - lo is nonzero, else 2 when some lo is nonzero, else 1 (at most 2
     * for fp16-exact values). */
    int (*split_a)(const float *a, size_t rsa, size_t csa, size_t rows, size_t k, int want,
                   uint16_t *part[3], size_t ld, uint8_t *bad, float *tmp);
    /* One 16-column fp32 panel (k rows of 16 floats) into VNNI pair rows: part p, row t, column c
     * at part[p][(t/2)*32 + 2c + t%2], ceil(k/2) pair rows, the odd k's last row zero. bad[g] = 1
     * when rows 16g .. 16g+15 hold an infinity or NaN. Returns the parts in use as split_a. */
    int (*split_b)(const float *panel, size_t k, uint16_t *part[3], uint8_t *bad);
    /* Tile configuration of the calling thread, before the first block and after the last
     * (LDTILECFG, TILERELEASE); no-ops in the model. */
    void (*begin)(void);
    void (*end)(void);
    void (*block)(const fasi_amx_block *blk);
    /* c = alpha * acc (+ add or + c): the engine's epilogue (engine/engine.h) for a rows x cols
     * block of acc (row stride 32); add already offset to the block. */
    void (*store)(const fasi_kernels *kern, const float *acc, size_t rows, size_t cols, float alpha,
                  float *c, size_t ldc, bool accumulate, const fasi_addend *add);
} fasi_amx_ops;

/* The portable model (every machine). */
extern const fasi_amx_ops fasi_amx_model_ops;
/* The tiles; NULL where this build has no AMX code (FAS_HAVE_AMX 0). Run them only where the
 * CPU and OS allow (api/dispatch.h, fasi_amx_usable). */
const fasi_amx_ops *fasi_amx_tile_ops(void);

/* The split of one value (the definition above); returns whether x is finite. */
bool fasi_amx_split1(float x, uint16_t part[3]);
/* bf16 bits as fp32, and the model's product-accumulate step F(fmaf(a, b, c)). */
float fasi_amx_bf16_value(uint16_t h);
float fasi_amx_model_fma(uint16_t a, uint16_t b, float c);

#endif
