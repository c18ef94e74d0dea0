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

/* Clear this thread's last error (called at the start of every public entry point). */
void fasi_clear_error(void);

#endif
