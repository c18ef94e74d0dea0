/* The AMX engine's kernels on the tiles (kernels/amx.h): the splits vectorised with AVX-512 (bit
 * for bit the portable definitions of kernels/amx_model.c), the C block on AMX-BF16 tiles
 * (TDPBF16PS) and the epilogue with AVX-512. Compiled only with the AMX flags (CMakeLists.txt,
 * FAS_HAVE_AMX); run only where api/dispatch.c found the CPU and the OS allow the tiles.
 *
 * Tiles: 0-3 are the 2 x 2 C tiles (16 x 16 fp32 each), 4-5 the block's two A tiles (16 rows of
 * 16 bf16 pairs), 6-7 its two B tiles (16 pair rows of one 16-column panel). Within a k step the
 * passes reuse a loaded A or B part when the next pass reads the same one (hi.lo, hi.hi, lo.hi:
 * 8 tile loads for 12 instructions). The configuration is loaded on the calling thread at the
 * start of every product and released at its end (docs/design.md §6). */
#include <immintrin.h>
#include <string.h>

#include "kernels/amx.h"

/* ---- the split, 16 values at a time: each part's bf16 in the low half of a 32-bit lane ---- */

/* Each part is kept as the fp32 value of its bf16 (the bf16 in the upper 16 bits of a lane,
 * the lower 16 zero), so it is used as a float without a shift and two vectors of parts narrow
 * to 32 bf16 with one permute. */

/* x rounded to bf16, to nearest even (u + 0x7fff + the lowest kept bit, low half cleared) */
static inline __m512i round_hi(__m512i u)
{
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    return _mm512_and_si512(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb),
                            _mm512_set1_epi32((int)0xffff0000u));
}

typedef struct split16 {
    __m512i p[2]; /* hi, lo */
    __m512i r2;   /* x - hi - lo (0 where x is not finite): lo2 is its bf16 */
    __mmask16 bad;
} split16;

static inline __m512i part_of(const split16 *s, int p) { return p < 2 ? s->p[p] : round_hi(s->r2); }

static inline split16 split_vec(__m512 x)
{
    split16 s;
    const __m512i u = _mm512_castps_si512(x);
    const __m512i expo = _mm512_set1_epi32(0x7f800000);
    s.bad = _mm512_cmpeq_epi32_mask(_mm512_and_si512(u, expo), expo);
    const __mmask16 nan =
        _mm512_mask_test_epi32_mask(s.bad, u, _mm512_set1_epi32(0x7fffff)); /* NaN: quiet */
    __m512i h = round_hi(u);
    /* infinity, NaN and a rounding that overflows: x's own upper half (toward zero) */
    const __mmask16 keep = s.bad | _mm512_cmpeq_epi32_mask(_mm512_and_si512(h, expo), expo);
    h = _mm512_mask_and_epi32(h, keep, u, _mm512_set1_epi32((int)0xffff0000u));
    h = _mm512_mask_or_epi32(h, nan, h, _mm512_set1_epi32(0x400000));
    s.p[0] = h;
    /* x - hi and its remainder are far from overflow: no check there */
    const __m512 r1 = _mm512_sub_ps(x, _mm512_castsi512_ps(h));
    const __m512i l = _mm512_maskz_mov_epi32((__mmask16)~s.bad, round_hi(_mm512_castps_si512(r1)));
    s.p[1] = l;
    const __m512 r2 = _mm512_sub_ps(r1, _mm512_castsi512_ps(l));
    s.r2 = _mm512_maskz_mov_epi32((__mmask16)~s.bad, _mm512_castps_si512(r2));
    return s;
}

/* any1: lo's ORed; any2: x - hi - lo ORed (lo2 is in use where that is nonzero) */
static int parts_in_use(__m512i any1, __m512i any2)
{
    if (_mm512_test_epi32_mask(any2, _mm512_set1_epi32(0x7fffffff))) return 3;
    return _mm512_test_epi32_mask(any1, _mm512_set1_epi32(0x7fff0000)) ? 2 : 1;
}

/* the bf16 (upper halves) of x's 16 lanes, then of y's */
static inline __m512i narrow2(__m512i x, __m512i y)
{
    const __m512i odd =
        _mm512_set_epi16(63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37, 35, 33, 31, 29, 27,
                         25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    return _mm512_permutex2var_epi16(x, odd, y);
}

/* rows of 16 floats, 16 x 16, transposed in place */
static void transpose16(__m512 r[16])
{
    __m512 t[16], u[16];
    for (int p = 0; p < 8; p++) {
        t[2 * p] = _mm512_unpacklo_ps(r[2 * p], r[2 * p + 1]);
        t[2 * p + 1] = _mm512_unpackhi_ps(r[2 * p], r[2 * p + 1]);
    }
    for (int g = 0; g < 4; g++) {
        u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
        u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
        u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
    for (int q = 0; q < 4; q++) {
        const __m512 v = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x88);
        const __m512 v1 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xDD);
        const __m512 w = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x88);
        const __m512 w1 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xDD);
        r[q] = _mm512_shuffle_f32x4(v, w, 0x88);
        r[8 + q] = _mm512_shuffle_f32x4(v, w, 0xDD);
        r[4 + q] = _mm512_shuffle_f32x4(v1, w1, 0x88);
        r[12 + q] = _mm512_shuffle_f32x4(v1, w1, 0xDD);
    }
}

static inline __mmask16 first_mask(size_t count)
{
    return count >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << count) - 1u);
}

/* rows of A read row-major (column stride 1), one k step (32 columns) at a time */
static int split_rows(const float *a, size_t rsa, size_t rows, size_t k, int want,
                      uint16_t *part[3], size_t ld, uint8_t *bad)
{
    __m512i any1 = _mm512_setzero_si512(), any2 = _mm512_setzero_si512();
    for (size_t i = 0; i < FASI_AMX_BLOCK; i++) {
        __mmask16 rowbad = 0;
        for (size_t t = 0; t < ld; t += 32) {
            __m512 x0 = _mm512_setzero_ps(), x1 = _mm512_setzero_ps();
            if (i < rows && t < k) {
                x0 = _mm512_maskz_loadu_ps(first_mask(k - t), a + i * rsa + t);
                if (t + 16 < k)
                    x1 = _mm512_maskz_loadu_ps(first_mask(k - t - 16), a + i * rsa + t + 16);
            }
            const split16 s0 = split_vec(x0), s1 = split_vec(x1);
            rowbad |= s0.bad | s1.bad;
            any1 = _mm512_ternarylogic_epi32(any1, s0.p[1], s1.p[1], 0xfe);
            any2 = _mm512_ternarylogic_epi32(any2, s0.r2, s1.r2, 0xfe);
            uint16_t *at = NULL;
            const size_t off = (t / 32) * FASI_AMX_ASTEP + i * 32;
            for (int p = 0; p < want; p++) {
                at = part[p] + off;
                _mm512_storeu_si512((void *)at, narrow2(part_of(&s0, p), part_of(&s1, p)));
            }
        }
        bad[i] = rowbad != 0;
    }
    return parts_in_use(any1, any2);
}

static int split_a(const float *a, size_t rsa, size_t csa, size_t rows, size_t k, int want,
                   uint16_t *part[3], size_t ld, uint8_t *bad, float *tmp)
{
    if (csa == 1) return split_rows(a, rsa, rows, k, want, part, ld, bad);
    if (rsa != 1) return fasi_amx_model_ops.split_a(a, rsa, csa, rows, k, want, part, ld, bad, tmp);
    (void)tmp;
    /* the transpose of a row-major matrix: per 16 rows and k step, two 16 x 16 transposes give
     * each row's 32 values, split as split_rows splits them */
    __m512i any1 = _mm512_setzero_si512(), any2 = _mm512_setzero_si512();
    __mmask16 rowbad[FASI_AMX_BLOCK] = {0};
    for (size_t i = 0; i < FASI_AMX_BLOCK; i += 16) {
        const __mmask16 im = i < rows ? first_mask(rows - i) : 0;
        for (size_t t = 0; t < ld; t += 32) {
            __m512 x0[16], x1[16];
            for (size_t q = 0; q < 16; q++) {
                x0[q] = im && t + q < k ? _mm512_maskz_loadu_ps(im, a + i + (t + q) * csa)
                                        : _mm512_setzero_ps();
                x1[q] = im && t + 16 + q < k ? _mm512_maskz_loadu_ps(im, a + i + (t + 16 + q) * csa)
                                             : _mm512_setzero_ps();
            }
            transpose16(x0);
            transpose16(x1);
            const size_t off = (t / 32) * FASI_AMX_ASTEP + i * 32;
            for (size_t q = 0; q < 16; q++) {
                const split16 s0 = split_vec(x0[q]), s1 = split_vec(x1[q]);
                rowbad[i + q] |= s0.bad | s1.bad;
                any1 = _mm512_ternarylogic_epi32(any1, s0.p[1], s1.p[1], 0xfe);
                any2 = _mm512_ternarylogic_epi32(any2, s0.r2, s1.r2, 0xfe);
                for (int p = 0; p < want; p++)
                    _mm512_storeu_si512((void *)(part[p] + off + q * 32),
                                        narrow2(part_of(&s0, p), part_of(&s1, p)));
            }
        }
    }
    for (size_t i = 0; i < FASI_AMX_BLOCK; i++) bad[i] = rowbad[i] != 0;
    return parts_in_use(any1, any2);
}

static int split_b(const float *panel, size_t k, uint16_t *part[3], uint8_t *bad)
{
    __m512i any1 = _mm512_setzero_si512(), any2 = _mm512_setzero_si512();
    for (size_t g = 0; g < (k + 15) / 16; g++) bad[g] = 0;
    for (size_t t = 0; t < k; t += 2) {
        const split16 s0 = split_vec(_mm512_loadu_ps(panel + t * 16));
        const split16 s1 =
            split_vec(t + 1 < k ? _mm512_loadu_ps(panel + (t + 1) * 16) : _mm512_setzero_ps());
        if (s0.bad | s1.bad) bad[t / 16] = 1;
        any1 = _mm512_or_si512(any1, _mm512_or_si512(s0.p[1], s1.p[1]));
        any2 = _mm512_ternarylogic_epi32(any2, s0.r2, s1.r2, 0xfe);
        for (int p = 0; p < 3; p++)
            _mm512_storeu_si512(
                (void *)(part[p] + (t / 2) * 32),
                _mm512_or_si512(_mm512_srli_epi32(part_of(&s0, p), 16), part_of(&s1, p)));
    }
    return parts_in_use(any1, any2);
}

/* ---- tiles -------------------------------------------------------------------------------- */

typedef struct tile_config {
    uint8_t palette;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* Tiles 0-7: 16 rows of 64 bytes. A constant in memory: gcc 12 drops stores into a local
 * configuration that only LDTILECFG reads. */
static const tile_config config = {
    1, 0, {0}, {64, 64, 64, 64, 64, 64, 64, 64}, {16, 16, 16, 16, 16, 16, 16, 16}};

static void begin(void) { _tile_loadconfig(&config); }

static void end(void) { _tile_release(); }

static void block(const fasi_amx_block *blk)
{
    const size_t sa = 64, a2 = 16 * 32, b2 = blk->bpanel;
    const bool two_m = blk->mt == 2, two_n = blk->nt == 2;
    if (blk->first) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    if (two_m && two_n) {
        for (size_t s = 0; s < blk->steps; s++) {
            int ca = -1, cb = -1;
            for (int p = 0; p < blk->npass; p++) {
                const int pa = blk->pass[p][0], pb = blk->pass[p][1];
                if (pa != ca) {
                    const uint16_t *a = blk->a[pa] + s * FASI_AMX_ASTEP;
                    _tile_loadd(4, a, sa);
                    _tile_loadd(5, a + a2, sa);
                    ca = pa;
                }
                if (pb != cb) {
                    const uint16_t *b = blk->b[pb] + s * 16 * FASI_AMX_PAIR_ROW;
                    _tile_loadd(6, b, 64);
                    _tile_loadd(7, b + b2, 64);
                    cb = pb;
                }
                _tile_dpbf16ps(0, 4, 6);
                _tile_dpbf16ps(1, 4, 7);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
            }
        }
    } else {
        for (size_t s = 0; s < blk->steps; s++) {
            int ca = -1, cb = -1;
            for (int p = 0; p < blk->npass; p++) {
                const int pa = blk->pass[p][0], pb = blk->pass[p][1];
                if (pa != ca) {
                    const uint16_t *a = blk->a[pa] + s * FASI_AMX_ASTEP;
                    _tile_loadd(4, a, sa);
                    if (two_m) _tile_loadd(5, a + a2, sa);
                    ca = pa;
                }
                if (pb != cb) {
                    const uint16_t *b = blk->b[pb] + s * 16 * FASI_AMX_PAIR_ROW;
                    _tile_loadd(6, b, 64);
                    if (two_n) _tile_loadd(7, b + b2, 64);
                    cb = pb;
                }
                _tile_dpbf16ps(0, 4, 6);
                if (two_n) _tile_dpbf16ps(1, 4, 7);
                if (two_m) _tile_dpbf16ps(2, 5, 6);
                if (two_m && two_n) _tile_dpbf16ps(3, 5, 7);
            }
        }
    }
    if (blk->last) {
        const size_t sc = FASI_AMX_BLOCK * sizeof(float);
        _tile_stored(0, blk->acc, sc);
        if (two_n) _tile_stored(1, blk->acc + 16, sc);
        if (two_m) _tile_stored(2, blk->acc + 16 * FASI_AMX_BLOCK, sc);
        if (two_m && two_n) _tile_stored(3, blk->acc + 16 * FASI_AMX_BLOCK + 16, sc);
    }
}

static void store(const fasi_kernels *kern, const float *acc, size_t rows, size_t cols, float alpha,
                  float *c, size_t ldc, bool accumulate, const fasi_addend *add)
{
    (void)kern;
    const __m512 va = _mm512_set1_ps(alpha);
    for (size_t i = 0; i < rows; i++) {
        const float *x = acc + i * FASI_AMX_BLOCK;
        float *y = c + i * ldc;
        for (size_t j = 0; j < cols; j += 16) {
            const __mmask16 m = first_mask(cols - j);
            const __m512 v = _mm512_maskz_loadu_ps(m, x + j);
            __m512 out;
            if (add) {
                const size_t r = add->row0 + (add->broadcast ? 0 : i), col = add->col0 + j;
                const size_t at = add->nz ? (col / 16 * add->m1 + r / 16) * 256 + (r % 16) * 16
                                          : r * add->row_stride + col;
                const __m256i h = _mm256_maskz_loadu_epi16(m, add->data + at);
                out = _mm512_fmadd_ps(va, v, _mm512_cvtph_ps(h));
            } else if (accumulate) {
                out = _mm512_fmadd_ps(va, v, _mm512_maskz_loadu_ps(m, y + j));
            } else {
                out = _mm512_mul_ps(va, v);
            }
            _mm512_mask_storeu_ps(y + j, m, out);
        }
    }
}

extern const fasi_amx_ops fasi_amx_tiles;
const fasi_amx_ops fasi_amx_tiles = {"tiles", split_a, split_b, begin, end, block, store};
