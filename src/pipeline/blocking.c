/* The pipelines' blocking (pipeline/blocking.h). */
#include "pipeline/blocking.h"

enum {
    ROWS = 128,              /* query rows per block, at most */
    TILE = 512,              /* keys per streaming tile */
    BLOCK_BYTES = 512 << 10, /* a materialising block's row state */
    BLOCK_UNIT = 48          /* materialising rows come in multiples of this */
};

/* Streaming blocks hold min(Sq, ROWS) rows and walk the keys in tiles of min(Sk, TILE). A
 * materialising block keeps rows x Sk scores (4 bytes each), their fp16 copy and keep bytes (7
 * bytes per key) hot between its passes: at most BLOCK_BYTES of them, so that they stay in a
 * core's L2, in multiples of 48 rows (whole gemm tiles of 6 rows and whole NZ fractal rows of
 * 16), at least 48, at most ROWS. (Blocks of 16 rows, 512 KiB at Sk = 4096, ran fwd_probs on
 * 1x16x4096x64 1.2x slower: a third of their rows in 4-row tiles, and the packed K and V
 * streamed from L3 for every 16 rows.) */
fasi_blocking fasi_forward_blocking(int64_t sq, int64_t sk, bool streaming)
{
    int64_t rows = ROWS;
    if (!streaming) {
        int64_t fit = BLOCK_BYTES / (7 * sk) / BLOCK_UNIT * BLOCK_UNIT;
        if (fit < rows) rows = fit < BLOCK_UNIT ? BLOCK_UNIT : fit;
    }
    fasi_blocking b = {sq < rows ? sq : rows, streaming && sk > TILE ? TILE : sk};
    return b;
}

int64_t fasi_backward_rows(int64_t sq) { return sq < ROWS ? sq : ROWS; }
