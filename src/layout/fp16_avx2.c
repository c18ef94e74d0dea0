/* avx2 specialisations of the fp16 kernels (none yet: the level below is used). */
#include "kernels/isa.h"

void fasi_register_fp16_avx2(fasi_kernels *k) { (void)k; }
