/* The AMX engine (engine.h; docs/design.md §6, docs/precision.md): exact bf16 products on Intel
 * AMX-BF16 tiles, fp32 accumulation.
 *
 * Operands. Every fp32 value is split into bf16 parts hi + lo (+ lo2) (kernels/amx.h); the
 * product sums the passes Ah.Bh + Ah.Bl + Al.Bh (FASI_AMX_SPLIT) into the same C tiles, every
 * product exact. B's own copy (prepare, once per packing): per 16-column panel, per part, the
 * VNNI pair rows the tile instruction reads (rows 2r and 2r+1 interleaved, 64 bytes a pair row,
 * the odd last row zero), a flag per panel and 16-row group that holds an infinity or NaN, and
 * the parts in use (an fp16 operand has no lo2; one with no lo skips its passes). A is split per
 * call, 32 rows at a time, into the thread's work.
 *
 * Blocking: C blocks of 32 x 32 (2 x 2 tiles), k in steps of 32. Products read B from row t0 for
 * k rows; the rows after t0 + k belong to other blocks and must not contribute, not even 0 * inf,
 * so a k that is not a multiple of 32 copies its last pair rows into work with zero pair rows
 * after them (and A's columns past k are zero). t0 + k is even or the operand's last row (the
 * pipelines' row blocks and key tiles are multiples of 16), so no pair is cut in two.
 *
 * Special values. An infinity's parts are (inf, 0, 0), and inf * 0 in a cross pass would give
 * NaN where the product is +-inf, so an element whose A row or B column (rows t0 .. t0+k-1)
 * holds an infinity or NaN is computed again as the builtin engine does (one fmaf chain in
 * increasing t), which gives NaN and +-inf where every engine does (docs/semantics.md §9). */
#include "engine/amx.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "common/bits.h"
#include "kernels/gemm.h"

typedef struct own_header {
    size_t k, n, panels, pairs, groups;
    int parts;
} own_header;

enum { HEADER_BYTES = 64 };

static size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

static size_t flag_bytes(size_t panels, size_t groups) { return round_up(panels * groups, 64); }

size_t fasi_amx_own_bytes(size_t k, size_t n)
{
    const size_t panels = (n + 15) / 16, pairs = (k + 1) / 2, groups = (k + 15) / 16;
    return HEADER_BYTES + flag_bytes(panels, groups) +
           FASI_AMX_PARTS * panels * pairs * FASI_AMX_PAIR_ROW * sizeof(uint16_t);
}

static uint8_t *own_flags(const fasi_operand *b) { return (uint8_t *)b->own + HEADER_BYTES; }

/* part p of panel q, pair row 0 */
static uint16_t *own_part(const fasi_operand *b, int p, size_t q)
{
    const own_header *h = b->own;
    uint16_t *base = (uint16_t *)(own_flags(b) + flag_bytes(h->panels, h->groups));
    return base + ((size_t)p * h->panels + q) * h->pairs * FASI_AMX_PAIR_ROW;
}

int fasi_amx_operand_parts(const fasi_operand *b) { return ((const own_header *)b->own)->parts; }

void fasi_amx_prepare_with(const fasi_amx_ops *ops, fasi_operand *b)
{
    own_header *h = b->own;
    h->k = b->k;
    h->n = b->n;
    h->panels = (b->n + 15) / 16;
    h->pairs = (b->k + 1) / 2;
    h->groups = (b->k + 15) / 16;
    h->parts = 1;
    for (size_t q = 0; q < h->panels; q++) {
        uint16_t *part[3] = {own_part(b, 0, q), own_part(b, 1, q), own_part(b, 2, q)};
        const int used =
            ops->split_b(b->f32 + q * b->k * FASI_PANEL, b->k, part, own_flags(b) + q * h->groups);
        if (used > h->parts) h->parts = used;
    }
}

size_t fasi_amx_work_bytes(size_t m, size_t n, size_t k)
{
    (void)m;
    const size_t ld = k ? round_up(k, FASI_AMX_KSTEP) : FASI_AMX_KSTEP;
    const size_t panels = (n + 15) / 16;
    return 64 + FASI_AMX_PARTS * round_up(FASI_AMX_BLOCK * ld * sizeof(uint16_t), 64) +
           FASI_AMX_BLOCK * ld * sizeof(float) +
           round_up(FASI_AMX_PARTS * panels * 16 * FASI_AMX_PAIR_ROW * sizeof(uint16_t), 64) +
           FASI_AMX_BLOCK * FASI_AMX_BLOCK * sizeof(float) + 64 + round_up(panels * 16, 64);
}

static void *take(unsigned char **at, size_t bytes)
{
    void *p = *at;
    *at += round_up(bytes, 64);
    return p;
}

/* The passes of a split over the parts in use, in an order that reuses loaded tiles. */
static int passes(int split, int na, int nb, unsigned char pass[9][2])
{
    static const unsigned char order[6][2] = {{0, 2}, {0, 1}, {0, 0}, {1, 0}, {1, 1}, {2, 0}};
    int np = 0;
    for (int i = 0; i < 6; i++)
        if (order[i][0] + order[i][1] < split && order[i][0] < na && order[i][1] < nb) {
            pass[np][0] = order[i][0];
            pass[np][1] = order[i][1];
            np++;
        }
    return np;
}

static bool finite_bits(float x) { return (fasi_float_to_bits(x) & 0x7f800000u) != 0x7f800000u; }

void fasi_amx_gemm_with(const fasi_amx_ops *ops, int split, const fasi_kernels *kern, void *work,
                        size_t m, size_t n, size_t k, float alpha, const float *a, size_t rsa,
                        size_t csa, const fasi_operand *b, size_t t0, size_t j0, float *c,
                        size_t ldc, bool accumulate, const fasi_addend *add)
{
    assert(t0 % 16 == 0 && j0 % FASI_PANEL == 0 && t0 + k <= b->k && j0 + n <= b->n);
    assert((t0 + k) % 2 == 0 || t0 + k == b->k);
    if (m == 0 || n == 0) return;
    const own_header *h = b->own;
    const size_t ld = k ? round_up(k, FASI_AMX_KSTEP) : FASI_AMX_KSTEP;
    const size_t full = k / FASI_AMX_KSTEP, tail = k % FASI_AMX_KSTEP;
    const size_t p0 = j0 / 16, panels = (n + 15) / 16;
    const size_t step_elems = 16 * FASI_AMX_PAIR_ROW;

    unsigned char *at = (unsigned char *)round_up((size_t)(uintptr_t)work, 64);
    uint16_t *apart[3];
    for (int p = 0; p < 3; p++) apart[p] = take(&at, FASI_AMX_BLOCK * ld * sizeof(uint16_t));
    float *tmp = take(&at, FASI_AMX_BLOCK * ld * sizeof(float));
    uint16_t *btail = take(&at, FASI_AMX_PARTS * panels * step_elems * sizeof(uint16_t));
    float *acc = take(&at, FASI_AMX_BLOCK * FASI_AMX_BLOCK * sizeof(float));
    uint8_t *rowbad = take(&at, 64);
    uint8_t *colbad = take(&at, panels * 16);

    /* B's last pair rows, zero rows after them */
    if (tail) {
        const size_t r0 = (t0 + full * FASI_AMX_KSTEP) / 2, pairs = (tail + 1) / 2;
        for (int p = 0; p < h->parts; p++)
            for (size_t q = 0; q < panels; q++) {
                uint16_t *dst = btail + ((size_t)p * panels + q) * step_elems;
                memcpy(dst, own_part(b, p, p0 + q) + r0 * FASI_AMX_PAIR_ROW,
                       pairs * FASI_AMX_PAIR_ROW * sizeof(uint16_t));
                memset(dst + pairs * FASI_AMX_PAIR_ROW, 0,
                       (16 - pairs) * FASI_AMX_PAIR_ROW * sizeof(uint16_t));
            }
    }
    /* B's columns with an infinity or NaN in rows t0 .. t0+k-1 */
    bool any_colbad = false;
    memset(colbad, 0, panels * 16);
    for (size_t q = 0; k && q < panels; q++) {
        bool flagged = false;
        for (size_t g = t0 / 16; g <= (t0 + k - 1) / 16; g++)
            flagged |= own_flags(b)[(p0 + q) * h->groups + g] != 0;
        if (!flagged) continue;
        const float *panel = b->f32 + (p0 + q) * b->k * FASI_PANEL;
        for (size_t t = t0; t < t0 + k; t++)
            for (size_t j = 0; j < 16; j++)
                if (!finite_bits(panel[t * FASI_PANEL + j])) {
                    colbad[q * 16 + j] = 1;
                    any_colbad = true;
                }
    }

    ops->begin();
    for (size_t i0 = 0; i0 < m; i0 += FASI_AMX_BLOCK) {
        const size_t rows = m - i0 < FASI_AMX_BLOCK ? m - i0 : FASI_AMX_BLOCK;
        const int want = split == FASI_AMX_SPLIT_AUTO ? 2 : split; /* auto reads hi and lo only */
        const int na = ops->split_a(a + i0 * rsa, rsa, csa, rows, k, want, apart, ld, rowbad, tmp);
        /* auto: every product exact when both operands are fp16-exact, else hi.lo + lo.hi */
        const int eff = split != FASI_AMX_SPLIT_AUTO ? split : (na <= 2 && h->parts <= 2 ? 3 : 2);
        bool any_rowbad = false;
        for (size_t i = 0; i < rows; i++) any_rowbad |= rowbad[i] != 0;
        fasi_amx_block blk;
        blk.npass = passes(eff, na, h->parts, blk.pass);
        blk.mt = rows > 16 ? 2 : 1;
        blk.acc = acc;
        for (size_t jb = 0; jb < n; jb += FASI_AMX_BLOCK) {
            const size_t cols = n - jb < FASI_AMX_BLOCK ? n - jb : FASI_AMX_BLOCK;
            blk.nt = cols > 16 ? 2 : 1;
            if (full) {
                for (int p = 0; p < 3; p++) {
                    blk.a[p] = apart[p];
                    blk.b[p] = own_part(b, p < h->parts ? p : 0, p0 + jb / 16) +
                               t0 / 2 * FASI_AMX_PAIR_ROW;
                }
                blk.bpanel = h->pairs * FASI_AMX_PAIR_ROW;
                blk.steps = full;
                blk.first = true;
                blk.last = tail == 0;
                ops->block(&blk);
            }
            if (tail || !full) {
                for (int p = 0; p < 3; p++) {
                    blk.a[p] = apart[p] + full * FASI_AMX_ASTEP;
                    blk.b[p] =
                        btail + ((size_t)(p < h->parts ? p : 0) * panels + jb / 16) * step_elems;
                }
                blk.bpanel = step_elems;
                blk.steps = tail ? 1 : 0;
                blk.first = !full;
                blk.last = true;
                ops->block(&blk);
            }
            if (any_rowbad || any_colbad) {
                /* elements with an infinity or NaN among their operands, as the builtin engine
                 * computes them */
                for (size_t i = 0; i < rows; i++)
                    for (size_t j = 0; j < cols; j++) {
                        if (!rowbad[i] && !colbad[jb + j]) continue;
                        const size_t col = j0 + jb + j;
                        const float *bcol =
                            b->f32 + col / FASI_PANEL * b->k * FASI_PANEL + col % FASI_PANEL;
                        float s = 0.0f;
                        for (size_t t = 0; t < k; t++)
                            s = fmaf(a[(i0 + i) * rsa + t * csa], bcol[(t0 + t) * FASI_PANEL], s);
                        acc[i * FASI_AMX_BLOCK + j] = s;
                    }
            }
            fasi_addend sub;
            if (add) {
                sub = *add;
                if (!sub.broadcast) sub.row0 += i0;
                sub.col0 += jb;
            }
            ops->store(kern, acc, rows, cols, alpha, c + i0 * ldc + jb, ldc, accumulate,
                       add ? &sub : NULL);
        }
    }
    ops->end();
}

#if FAS_HAVE_AMX
#define ENGINE_OPS fasi_amx_tile_ops()
#else
#define ENGINE_OPS (&fasi_amx_model_ops) /* never selected: api/engines.c */
#endif

static void prepare(const fasi_kernels *kern, fasi_operand *b)
{
    (void)kern;
    fasi_amx_prepare_with(ENGINE_OPS, b);
}

static void gemm(const fasi_kernels *kern, void *work, size_t m, size_t n, size_t k, float alpha,
                 const float *a, size_t rsa, size_t csa, const fasi_operand *b, size_t t0,
                 size_t j0, float *c, size_t ldc, bool accumulate, const fasi_addend *add)
{
    fasi_amx_gemm_with(ENGINE_OPS, FASI_AMX_SPLIT, kern, work, m, n, k, alpha, a, rsa, csa, b, t0,
                       j0, c, ldc, accumulate, add);
}

const fasi_engine fasi_engine_amx = {.id = FAS_GEMM_AMX,
                                     .name = "amx",
                                     .panel = FASI_PANEL,
                                     .own_bytes = fasi_amx_own_bytes,
                                     .prepare = prepare,
                                     .work_bytes = fasi_amx_work_bytes,
                                     .gemm = gemm};
