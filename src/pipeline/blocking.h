/* The pipelines' blocking (docs/design.md §3): query rows per block and keys per tile, decided by
 * the shape alone, never by the thread count or the engine. fas_bench's GEMM floor runs the same
 * products and takes its blocks from here. */
#ifndef FASI_BLOCKING_H
#define FASI_BLOCKING_H

#include <stdbool.h>
#include <stdint.h>

typedef struct fasi_blocking {
    int64_t rows; /* query rows per block */
    int64_t tile; /* keys per tile: all Sk unless streaming */
} fasi_blocking;

/* The forward: streaming (keys in tiles, online softmax) or materialising (whole rows). */
fasi_blocking fasi_forward_blocking(int64_t sq, int64_t sk, bool streaming);

/* The backward: query rows per block (each block covers all Sk keys). */
int64_t fasi_backward_rows(int64_t sq);

#endif
