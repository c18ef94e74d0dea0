/* Argument checks of the public entry points. Each returns FAS_OK or the failure status with
 * fas_last_error() set; none writes anything but the error text. */
#ifndef FASI_VALIDATE_H
#define FASI_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "fused_attention.h"

/* Structural validity: non-NULL, known dtype/format, ndim in 0..8, dims >= 1, no size
 * overflow, and (need_data) a non-NULL data pointer. name is used in the message. */
fas_status fasi_check_tensor(const fas_tensor *t, const char *name, bool need_data);

bool fasi_ranges_overlap(const void *a, size_t a_bytes, const void *b, size_t b_bytes);

/* The sizes of a call, inferred from query, key and value and the flags. */
typedef struct fasi_shape {
    int64_t b, n, sq, sk, d, dv;
} fasi_shape;

/* q, k, v (4-D float tensors) and the flags -> sizes; every per-head size within the BLAS int
 * range; transpose_a needs Sq == Sk. need_data false skips the data pointers (dims queries). */
fas_status fasi_infer_shape(const fas_tensor *q, const fas_tensor *k, const fas_tensor *v,
                            bool query_transpose, bool key_transpose, bool transpose_a,
                            bool value_transpose, bool need_data, fasi_shape *s);

/* A float tensor of rank ndim with data. */
fas_status fasi_check_float(const fas_tensor *t, const char *name, int ndim);

/* One expected dim: its value and where the expectation comes from ("query_layer's D"). */
typedef struct fasi_expect {
    int64_t value;
    const char *why;
} fasi_expect;

/* dims[i] == e[i].value for i < n. */
fas_status fasi_check_dims(const fas_tensor *t, const char *name, const fasi_expect *e, int n);

/* attention_mask: one of the accepted broadcast shapes for s. */
fas_status fasi_check_mask(const fas_tensor *m, const fasi_shape *s);

/* softmax_output (bytes false: float) or drop_mask (bytes true: UINT8), [B, N, Sq, Sk]. */
fas_status fasi_check_probs_like(const fas_tensor *t, const char *name, const fasi_shape *s,
                                 bool bytes);

/* A gradient output: 2-D [B*rows, N*cols] or 4-D [B, N, rows, cols], float. */
fas_status fasi_check_grad_output(const fas_tensor *t, const char *name, const fasi_shape *s,
                                  int64_t rows, const char *rows_name, int64_t cols,
                                  const char *cols_name);

/* scale finite and within fp32; keep_prob in (0, 1]. */
fas_status fasi_check_scalars(double scale, double keep_prob);

/* A tensor argument and its name, for checks over several of them. */
typedef struct fasi_named {
    const char *name;
    const fas_tensor *t;
} fasi_named;

/* The NPU precision mode's domain (docs/precision.md): every tensor of tensors[0..n) FLOAT16
 * (NULL entries skipped), Sq == Sk, Dv == D, S and D multiples of 16, S a multiple of 64 when
 * backward, every flag false (names and values in flags[0..n_flags)). FAS_ERR_UNSUPPORTED with a
 * sentence naming the constraint. */
typedef struct fasi_flag {
    const char *name;
    bool value;
} fasi_flag;

fas_status fasi_check_npu_domain(const fasi_shape *s, bool backward, const fasi_named *tensors,
                                 int n, const fasi_flag *flags, int n_flags);

/* No output overlaps an input or another output; NULL tensors are skipped. */

fas_status fasi_check_aliasing(const fasi_named *outs, int n_outs, const fasi_named *ins,
                               int n_ins);

#endif
