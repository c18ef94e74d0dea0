/* avx2 specialisations of the rowops kernels (none yet: the level below is used). */
#include "kernels/isa.h"

void fasi_register_rowops_avx2(fasi_kernels *k) { (void)k; }
