#include "common/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define FASI_ERROR_CAPACITY 512

static _Thread_local char fasi_error_text[FASI_ERROR_CAPACITY];

fas_status fasi_fail(fas_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fasi_error_text, sizeof fasi_error_text, fmt, ap);
    va_end(ap);
    return status;
}

fasi_text32 fasi_double_text(double x)
{
    fasi_text32 t;
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(t.s, sizeof t.s, "%.*g", digits, x);
        if (strtod(t.s, NULL) == x) break; /* NaN never compares equal: 17 digits, "nan" */
    }
    return t;
}

void fasi_clear_error(void) { fasi_error_text[0] = '\0'; }

const char *fas_last_error(void) { return fasi_error_text; }

const char *fas_status_string(fas_status status)
{
    switch (status) {
    case FAS_OK: return "FAS_OK";
    case FAS_ERR_NULL_POINTER: return "FAS_ERR_NULL_POINTER";
    case FAS_ERR_DTYPE: return "FAS_ERR_DTYPE";
    case FAS_ERR_FORMAT: return "FAS_ERR_FORMAT";
    case FAS_ERR_SHAPE: return "FAS_ERR_SHAPE";
    case FAS_ERR_VALUE: return "FAS_ERR_VALUE";
    case FAS_ERR_ALIAS: return "FAS_ERR_ALIAS";
    case FAS_ERR_NO_MEMORY: return "FAS_ERR_NO_MEMORY";
    case FAS_ERR_WORKSPACE: return "FAS_ERR_WORKSPACE";
    case FAS_ERR_UNSUPPORTED: return "FAS_ERR_UNSUPPORTED";
    case FAS_ERR_INTERNAL: return "FAS_ERR_INTERNAL";
    }
    return "unknown status";
}

#define FASI_STR2(x) #x
#define FASI_STR(x) FASI_STR2(x)

const char *fas_version_string(void)
{
    return FASI_STR(FAS_VERSION_MAJOR) "." FASI_STR(FAS_VERSION_MINOR) "." FASI_STR(
        FAS_VERSION_PATCH);
}
