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
    static const struct {
        const char *name;
        fas_gemm value;
    } engines[] = {{"builtin", FAS_GEMM_BUILTIN}, {"blas", FAS_GEMM_BLAS}, {"amx", FAS_GEMM_AMX}};
    if (argc < 3) {
        fprintf(stderr, "usage: engine_gate builtin|blas|amx [RUNNER...] TEST\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof engines / sizeof *engines; i++) {
        if (strcmp(argv[1], engines[i].name) != 0) continue;
        const fasi_engine *e;
        if (fasi_resolve_engine(engines[i].value, &e) != FAS_OK) {
            printf("SKIPPED: %s on the %s engine: %s\n", argv[argc - 1], argv[1], fas_last_error());
            return 77;
        }
        if (setenv("FAS_GEMM", argv[1], 1) != 0) return 2;
        execv(argv[2], argv + 2);
        perror(argv[2]);
        return 2;
    }
    fprintf(stderr, "engine_gate: unknown engine \"%s\"\n", argv[1]);
    return 2;
}
