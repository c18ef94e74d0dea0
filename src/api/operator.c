/* The operator's public entry points: validation, problem construction, dispatch. */
#include "api/validate.h"
#include "rng/philox.h"

void fas_manual_seed(uint64_t seed) { fasi_generator_seed(seed); }
