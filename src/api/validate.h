/* Argument checks shared by the public entry points. Each returns FAS_OK or the failure status
 * with fas_last_error() set. */
#ifndef FASI_VALIDATE_H
#define FASI_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/status.h"
#include "fused_attention.h"

/* Structural validity: non-NULL, known dtype/format, ndim in 0..8, dims >= 1, no size
 * overflow, and (need_data) a non-NULL data pointer. name is used in the message. */
fas_status fasi_check_tensor(const fas_tensor *t, const char *name, bool need_data);

bool fasi_ranges_overlap(const void *a, size_t a_bytes, const void *b, size_t b_bytes);

#endif
