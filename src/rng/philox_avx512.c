/* avx512 specialisations of the philox kernels (none yet: the level below is used). */
#include "kernels/isa.h"

void fasi_register_philox_avx512(fasi_kernels *k) { (void)k; }
