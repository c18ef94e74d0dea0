/* Error reporting shared by every module: a status plus a thread-local sentence. */
#ifndef FASI_STATUS_H
#define FASI_STATUS_H

#include "fused_attention.h"

#if defined(__GNUC__)
#define FASI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FASI_PRINTF(a, b)
#endif

/* Record "message" (printf-style, one sentence, no trailing newline) as this thread's last
 * error and return status. */
fas_status fasi_fail(fas_status status, const char *fmt, ...) FASI_PRINTF(2, 3);

/* A double as the shortest of %.15g, %.16g and %.17g that reads back as exactly x (0.9 rather
 * than 0.90000000000000002), for error sentences. The array lives in the returned struct, so
 * fasi_double_text(x).s is valid until the end of the full expression that calls it. */
typedef struct fasi_text32 {
    char s[32];
} fasi_text32;
fasi_text32 fasi_double_text(double x);

/* Clear this thread's last error (called at the start of every public entry point). */
void fasi_clear_error(void);

#endif
