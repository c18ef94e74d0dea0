/* Helpers shared by the libFuzzer harnesses: a byte reader, fp16/bf16 oracles written from the
 * IEEE definitions (independent of the library's conversion code), FRACTAL_NZ addressing from
 * the formula in the public header, and tensor buffers with padding and canary helpers.
 *
 * Every check fails with FZ_CHECK, which prints the condition and traps, so libFuzzer records
 * the input as a crash. */
#ifndef FAS_FUZZ_UTIL_H
#define FAS_FUZZ_UTIL_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fused_attention.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Checking code needs no coverage feedback and no comparison tracing (which costs more than the
 * library call it checks); only the decoding and the library itself are instrumented. noinline:
 * inlined into an instrumented caller, the code would be instrumented after all. */
#define FZ_NO_COVERAGE __attribute__((no_sanitize("coverage"), noinline))

#define FZ_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n  ", __FILE__, __LINE__, #cond);             \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n  fas_last_error: \"%s\"\n", fas_last_error());                     \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

/* Build with -DFZ_STATS to print, at exit, how often each FZ_COUNT point was reached (to see
 * whether the decoded cases reach the interesting checks). */
#ifdef FZ_STATS
enum { FZ_MAX_COUNTERS = 64 };
static const char *fz_counter_names[FZ_MAX_COUNTERS];
static unsigned long fz_counter_values[FZ_MAX_COUNTERS];
static void fz_print_counters(void)
{
    for (int i = 0; i < FZ_MAX_COUNTERS && fz_counter_names[i]; i++)
        fprintf(stderr, "FZ_STATS %-32s %lu\n", fz_counter_names[i], fz_counter_values[i]);
}
static void fz_count(const char *name)
{
    for (int i = 0; i < FZ_MAX_COUNTERS; i++) {
        if (!fz_counter_names[i]) {
            if (i == 0) atexit(fz_print_counters);
            fz_counter_names[i] = name;
        }
        if (fz_counter_names[i] == name || strcmp(fz_counter_names[i], name) == 0) {
            fz_counter_values[i]++;
            return;
        }
    }
}
#define FZ_COUNT(name) fz_count(name)
#else
#define FZ_COUNT(name) ((void)0)
#endif

/* ---- input bytes ------------------------------------------------------------------------- */

/* Reads past the end yield zeros, so every input decodes to some case. */
typedef struct fz_reader {
    const uint8_t *p;
    size_t n, pos;
    uint64_t rng; /* fz_stream: state of the continuation, 0 until first used */
} fz_reader;

static inline uint8_t fz_u8(fz_reader *r) { return r->pos < r->n ? r->p[r->pos++] : 0; }

static inline uint16_t fz_u16(fz_reader *r)
{
    uint16_t lo = fz_u8(r);
    return (uint16_t)(lo | (uint16_t)fz_u8(r) << 8);
}

static inline uint32_t fz_u32(fz_reader *r)
{
    uint32_t lo = fz_u16(r);
    return lo | (uint32_t)fz_u16(r) << 16;
}

static inline uint64_t fz_u64(fz_reader *r)
{
    uint64_t lo = fz_u32(r);
    return lo | (uint64_t)fz_u32(r) << 32;
}

/* Element data: the reader's bytes, then (when they run out) a deterministic pseudo-random
 * continuation seeded by a hash of all of them, so that short inputs still give varied
 * tensors while the first elements stay under the fuzzer's direct control. */
FZ_NO_COVERAGE static inline uint16_t fz_stream16(fz_reader *r)
{
    if (r->pos + 2 <= r->n) {
        uint16_t v = (uint16_t)(r->p[r->pos] | r->p[r->pos + 1] << 8);
        r->pos += 2;
        return v;
    }
    if (r->rng == 0) {
        uint64_t h = 1469598103934665603u; /* FNV-1a */
        for (size_t i = 0; i < r->n; i++) h = (h ^ r->p[i]) * 1099511628211u;
        r->rng = h | 1;
    }
    r->rng ^= r->rng >> 12; /* xorshift64* */
    r->rng ^= r->rng << 25;
    r->rng ^= r->rng >> 27;
    return (uint16_t)((r->rng * 2685821657736338717u) >> 48);
}

FZ_NO_COVERAGE static inline double fz_f64_bits(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

FZ_NO_COVERAGE static inline float fz_f32_bits(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

FZ_NO_COVERAGE static inline uint32_t fz_bits_f32(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

/* ---- fp16 / bf16 oracles ----------------------------------------------------------------- */

FZ_NO_COVERAGE static inline double fz_half_to_double(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double s = (h & 0x8000) ? -1.0 : 1.0;
    if (e == 0x1f) return m ? copysign(NAN, s) : s * INFINITY;
    if (e == 0) return s * ldexp((double)m, -24);
    return s * ldexp((double)(m | 0x400), e - 25);
}

FZ_NO_COVERAGE static inline double fz_bf16_to_double(uint16_t b)
{
    return fz_f32_bits((uint32_t)b << 16);
}

/* Round a non-NaN double once, to nearest even, to a binary format with p significand bits,
 * minimum normal exponent emin and maximum exponent emax; returns sign-less magnitude code
 * (exponent field << (p-1) | fraction) or the infinity code. */
FZ_NO_COVERAGE static inline uint32_t fz_round_code(double a, int p, int emin, int emax)
{
    const uint32_t inf = (uint32_t)(emax - emin + 2) << (p - 1);
    if (a == 0.0) return 0;
    if (isinf(a)) return inf;
    int e;
    (void)frexp(a, &e);
    int ex = e - 1 < emin ? emin : e - 1;         /* exponent of the ulp's binade */
    double q = nearbyint(ldexp(a, (p - 1) - ex)); /* exact scaling, then round half even */
    if (q >= ldexp(1.0, p)) {                     /* rounded up into the next binade */
        q /= 2.0;
        ex += 1;
    }
    if (ex > emax) return inf;
    if (q < ldexp(1.0, p - 1)) return (uint32_t)q; /* subnormal (ex == emin) */
    return (uint32_t)(ex - emin + 1) << (p - 1) | ((uint32_t)q - (1u << (p - 1)));
}

/* fp16 and bf16 from a double (one rounding); NaN becomes the quiet NaN of its sign. */
FZ_NO_COVERAGE static inline uint16_t fz_double_to_half(double x)
{
    uint16_t s = signbit(x) ? 0x8000 : 0;
    if (isnan(x)) return s | 0x7e00;
    return (uint16_t)(s | fz_round_code(fabs(x), 11, -14, 15));
}

FZ_NO_COVERAGE static inline uint16_t fz_double_to_bf16(double x)
{
    uint16_t s = signbit(x) ? 0x8000 : 0;
    if (isnan(x)) return s | 0x7fc0;
    return (uint16_t)(s | fz_round_code(fabs(x), 8, -126, 127));
}

FZ_NO_COVERAGE static inline bool fz_half_is_nan(uint16_t h)
{
    return (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
}
FZ_NO_COVERAGE static inline bool fz_bf16_is_nan(uint16_t h)
{
    return (h & 0x7f80) == 0x7f80 && (h & 0x7f);
}

/* ---- tensors ----------------------------------------------------------------------------- */

FZ_NO_COVERAGE static inline size_t fz_dtype_size(fas_dtype dt)
{
    switch ((int)dt) {
    case FAS_DTYPE_FLOAT: return 4;
    case FAS_DTYPE_FLOAT16:
    case FAS_DTYPE_BF16: return 2;
    case FAS_DTYPE_UINT8: return 1;
    default: return 0;
    }
}

/* A tensor seen as batch matrices of rows x cols (its last two dims; 1-D [n] is [n, 1], 0-D is
 * [1, 1]), with its storage geometry. */
typedef struct fz_geom {
    int64_t batch, rows, cols, m1, n1, mat_elems;
    bool nz;
    size_t es;
} fz_geom;

FZ_NO_COVERAGE static inline fz_geom fz_geom_of(const fas_tensor *t)
{
    fz_geom g;
    g.batch = 1;
    g.rows = 1;
    g.cols = 1;
    if (t->ndim == 1) g.rows = t->dims[0];
    if (t->ndim >= 2) {
        g.rows = t->dims[t->ndim - 2];
        g.cols = t->dims[t->ndim - 1];
        for (int i = 0; i < t->ndim - 2; i++) g.batch *= t->dims[i];
    }
    g.nz = t->format == FAS_FORMAT_FRACTAL_NZ;
    g.m1 = (g.rows + 15) / 16;
    g.n1 = (g.cols + 15) / 16;
    g.mat_elems = g.nz ? g.m1 * g.n1 * 256 : g.rows * g.cols;
    g.es = fz_dtype_size(t->dtype);
    return g;
}

/* Storage element index of (b, r, c), from the formula in fused_attention.h. */
FZ_NO_COVERAGE static inline int64_t fz_index(const fz_geom *g, int64_t b, int64_t r, int64_t c)
{
    if (!g->nz) return (b * g->rows + r) * g->cols + c;
    return b * g->mat_elems + ((c / 16) * g->m1 + r / 16) * 256 + (r % 16) * 16 + c % 16;
}

FZ_NO_COVERAGE static inline int64_t fz_storage_elems(const fz_geom *g)
{
    return g->batch * g->mat_elems;
}

/* Raw bits of an element (zero-extended). */
FZ_NO_COVERAGE static inline uint32_t fz_get_bits(const fas_tensor *t, const fz_geom *g, int64_t b,
                                                  int64_t r, int64_t c)
{
    const unsigned char *p = (const unsigned char *)t->data + (size_t)fz_index(g, b, r, c) * g->es;
    if (g->es == 4) {
        uint32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    if (g->es == 2) {
        uint16_t v;
        memcpy(&v, p, 2);
        return v;
    }
    return p[0];
}

FZ_NO_COVERAGE static inline void fz_set_bits(const fas_tensor *t, const fz_geom *g, int64_t b,
                                              int64_t r, int64_t c, uint32_t bits)
{
    unsigned char *p = (unsigned char *)t->data + (size_t)fz_index(g, b, r, c) * g->es;
    if (g->es == 4) {
        memcpy(p, &bits, 4);
    } else if (g->es == 2) {
        uint16_t v = (uint16_t)bits;
        memcpy(p, &v, 2);
    } else {
        p[0] = (unsigned char)bits;
    }
}

FZ_NO_COVERAGE static inline double fz_bits_value(fas_dtype dt, uint32_t bits)
{
    switch ((int)dt) {
    case FAS_DTYPE_FLOAT: return fz_f32_bits(bits);
    case FAS_DTYPE_FLOAT16: return fz_half_to_double((uint16_t)bits);
    case FAS_DTYPE_BF16: return fz_bf16_to_double((uint16_t)bits);
    default: return (double)bits;
    }
}

/* Bits of the value x rounded once into dtype dt (UINT8: x must be 0..255). */
FZ_NO_COVERAGE static inline uint32_t fz_value_bits(fas_dtype dt, double x)
{
    switch ((int)dt) {
    case FAS_DTYPE_FLOAT: return fz_bits_f32((float)x);
    case FAS_DTYPE_FLOAT16: return fz_double_to_half(x);
    case FAS_DTYPE_BF16: return fz_double_to_bf16(x);
    default: return (uint32_t)x;
    }
}

FZ_NO_COVERAGE static inline double fz_get(const fas_tensor *t, const fz_geom *g, int64_t b,
                                           int64_t r, int64_t c)
{
    return fz_bits_value(t->dtype, fz_get_bits(t, g, b, r, c));
}

FZ_NO_COVERAGE static inline void fz_set(const fas_tensor *t, const fz_geom *g, int64_t b,
                                         int64_t r, int64_t c, double x)
{
    fz_set_bits(t, g, b, r, c, fz_value_bits(t->dtype, x));
}

/* True when every NZ padding byte of t is zero (always true for ND). */
FZ_NO_COVERAGE static inline bool fz_padding_is_zero(const fas_tensor *t)
{
    fz_geom g = fz_geom_of(t);
    if (!g.nz) return true;
    const unsigned char *p = t->data;
    for (int64_t b = 0; b < g.batch; b++)
        for (int64_t r = 0; r < g.m1 * 16; r++)
            for (int64_t c = 0; c < g.n1 * 16; c++) {
                if (r < g.rows && c < g.cols) continue;
                const unsigned char *e = p + (size_t)fz_index(&g, b, r, c) * g.es;
                for (size_t k = 0; k < g.es; k++)
                    if (e[k]) return false;
            }
    return true;
}

/* Overwrite NZ padding with the byte pattern `fill` (a caller must never read it). */
FZ_NO_COVERAGE static inline void fz_scribble_padding(const fas_tensor *t, unsigned char fill)
{
    fz_geom g = fz_geom_of(t);
    if (!g.nz) return;
    unsigned char *p = t->data;
    for (int64_t b = 0; b < g.batch; b++)
        for (int64_t r = 0; r < g.m1 * 16; r++)
            for (int64_t c = 0; c < g.n1 * 16; c++)
                if (r >= g.rows || c >= g.cols)
                    memset(p + (size_t)fz_index(&g, b, r, c) * g.es, fill, g.es);
}

/* A tensor with a buffer of exactly fas_tensor_bytes() bytes filled with `fill`, so that ASan
 * reports any access past the end. ndim/dims from the arguments. */
FZ_NO_COVERAGE static inline fas_tensor fz_tensor_new(fas_dtype dt, fas_format fmt, int ndim,
                                                      const int64_t *dims, unsigned char fill)
{
    fas_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.format = fmt;
    t.ndim = ndim;
    for (int i = 0; i < ndim; i++) t.dims[i] = dims[i];
    size_t bytes = fas_tensor_bytes(&t);
    FZ_CHECK(bytes > 0, "fas_tensor_bytes is 0 for a valid small tensor (dtype %d format %d)",
             (int)dt, (int)fmt);
    t.data = malloc(bytes);
    FZ_CHECK(t.data != NULL, "out of memory (%zu bytes)", bytes);
    memset(t.data, fill, bytes);
    return t;
}

/* A copy of t's bytes, to verify later that a failing call left them alone. */
FZ_NO_COVERAGE static inline void *fz_snapshot(const fas_tensor *t)
{
    if (!t || !t->data) return NULL;
    size_t bytes = fas_tensor_bytes(t);
    void *s = malloc(bytes ? bytes : 1);
    FZ_CHECK(s != NULL, "out of memory");
    memcpy(s, t->data, bytes);
    return s;
}

FZ_NO_COVERAGE static inline bool fz_unchanged(const fas_tensor *t, const void *snap)
{
    if (!t || !t->data) return true;
    return memcmp(t->data, snap, fas_tensor_bytes(t)) == 0;
}

FZ_NO_COVERAGE static inline void fz_tensor_free(fas_tensor *t)
{
    free(t->data);
    t->data = NULL;
}

/* The status/error contract of a call that starts by clearing the error text. */
FZ_NO_COVERAGE static inline void fz_check_status(fas_status st, const char *call)
{
    FZ_CHECK((int)st >= 0 && (int)st <= 10, "%s returned status %d, outside 0..10", call, (int)st);
    const char *err = fas_last_error();
    FZ_CHECK(err != NULL, "%s: fas_last_error() is NULL", call);
    if (st == FAS_OK)
        FZ_CHECK(err[0] == '\0', "%s succeeded but fas_last_error() is \"%s\"", call, err);
    else
        FZ_CHECK(err[0] != '\0', "%s failed with %s but fas_last_error() is empty", call,
                 fas_status_string(st));
    const char *name = fas_status_string(st);
    FZ_CHECK(name && strcmp(name, "unknown status") != 0, "%s: no name for status %d", call,
             (int)st);
}

#endif
