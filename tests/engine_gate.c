/* The engine dimension of the unit suite (docs/testing.md): `engine_gate ENGINE [RUNNER...] TEST`
 * runs TEST (through RUNNER, the emulator of a cross build, when given) with FAS_GEMM=ENGINE in
 * its environment, so that every FAS_GEMM_AUTO call of the test runs
 * on that matrix engine. An engine this build or CPU cannot run is a skip, said on stdout with the
 * library's reason, and exit status 77 (the tests' SKIP_RETURN_CODE), never a pass. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/engines.h"

int main(int argc, char **argv)
{
    fas_gemm g;
    if (argc < 3 || !fasi_gemm_from_name(argv[1], &g) || g == FAS_GEMM_AUTO) {
        fprintf(stderr, "usage: engine_gate builtin|blas|amx [RUNNER...] TEST\n");
        return 2;
    }
    const fasi_engine *e;
    if (fasi_resolve_engine(g, &e) != FAS_OK) {
        printf("SKIPPED: %s on the %s engine: %s\n", argv[argc - 1], argv[1], fas_last_error());
        return 77;
    }
    if (setenv("FAS_GEMM", argv[1], 1) != 0) return 2;
    execv(argv[2], argv + 2);
    perror(argv[2]);
    return 2;
}
