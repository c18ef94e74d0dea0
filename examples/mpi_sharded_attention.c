/* Sharded attention across MPI ranks, checked byte for byte against one process.
 *
 * Rank 0 makes the inputs of the torch_npu documentation example (q, k, v and a [B, N, S, S]
 * mask uniform in [0, 1), scale 0.125, keep_prob 0.5) at a smaller default shape, and a
 * grad_output. The B x N heads, taken in (batch, head) order, are cut into one contiguous range
 * per rank, as evenly as the counts allow; a range is one to three rectangles of whole-batch or
 * partial-batch heads, so with most rank counts both batches and heads are split, unevenly. Each
 * rank receives only its rectangles' inputs, runs fused_attention_score_fwd_ex and _grad_ex on
 * each with its global coordinates (fas_options.batch_offset, head_offset, global_num_heads) and
 * the seed and offset rank 0 chose, and sends back context, softmax_output, drop mask and
 * gradients. Rank 0 assembles them, runs the whole problem in one call, compares every byte and
 * prints the verdict and each rank's time. The exit status is non-zero on any difference.
 *
 *   mpirun -np 3 mpi_sharded_attention [B N S D] [--threads T]
 *   (default 5 3 128 64; --threads: library threads per rank, default 1) */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fused_attention.h>

enum { MAX_RECTS = 3, N_OUT = 6 };

typedef struct rect {
    int64_t b0, nb, h0, nh; /* batches [b0, b0+nb), heads [h0, h0+nh) */
} rect;

typedef struct shape {
    int64_t b, n, s, d;
} shape;

/* The rectangles of the (batch, head) units [u0, u1) in row-major order. */
static int rects_of(const shape *sh, int64_t u0, int64_t u1, rect *out)
{
    int count = 0;
    while (u0 < u1) {
        int64_t b = u0 / sh->n, h = u0 % sh->n;
        if (h != 0 || u1 - u0 < sh->n) { /* part of one batch */
            int64_t nh = sh->n - h < u1 - u0 ? sh->n - h : u1 - u0;
            out[count++] = (rect){b, 1, h, nh};
            u0 += nh;
        } else { /* whole batches */
            int64_t nb = (u1 - u0) / sh->n;
            out[count++] = (rect){b, nb, 0, sh->n};
            u0 += nb * sh->n;
        }
    }
    return count;
}

static int rank_rects(const shape *sh, int rank, int size, rect *out)
{
    int64_t units = sh->b * sh->n;
    return rects_of(sh, units * rank / size, units * (rank + 1) / size, out);
}

/* Element counts of one rectangle's per-head blocks: q/k/v/grads (S x D), P/mask (S x S). */
static int64_t heads_of(const rect *r) { return r->nb * r->nh; }

/* Copy the rectangle's heads between a whole [B, N, rows, cols] array and a packed
 * [nb, nh, rows, cols] one (to_packed chooses the direction). */
static void move_heads(const shape *sh, const rect *r, int64_t block, uint16_t *whole,
                       uint16_t *packed, int to_packed)
{
    for (int64_t b = 0; b < r->nb; b++)
        for (int64_t h = 0; h < r->nh; h++) {
            uint16_t *w = whole + ((r->b0 + b) * sh->n + r->h0 + h) * block;
            uint16_t *p = packed + (b * r->nh + h) * block;
            if (to_packed)
                memcpy(p, w, (size_t)block * sizeof *p);
            else
                memcpy(w, p, (size_t)block * sizeof *p);
        }
}

/* The same for bytes (drop masks). */
static void move_bytes(const shape *sh, const rect *r, int64_t block, uint8_t *whole,
                       uint8_t *packed, int to_packed)
{
    for (int64_t b = 0; b < r->nb; b++)
        for (int64_t h = 0; h < r->nh; h++) {
            uint8_t *w = whole + ((r->b0 + b) * sh->n + r->h0 + h) * block;
            uint8_t *p = packed + (b * r->nh + h) * block;
            if (to_packed)
                memcpy(p, w, (size_t)block);
            else
                memcpy(w, p, (size_t)block);
        }
}

/* Rows b*S + i, columns n*D + d of a merged [B*S, N*D] array, for the rectangle. */
static void move_merged(const shape *sh, const rect *r, uint16_t *whole, uint16_t *packed,
                        int to_packed)
{
    for (int64_t row = 0; row < r->nb * sh->s; row++) {
        uint16_t *w = whole + (r->b0 * sh->s + row) * sh->n * sh->d + r->h0 * sh->d;
        uint16_t *p = packed + row * r->nh * sh->d;
        if (to_packed)
            memcpy(p, w, (size_t)(r->nh * sh->d) * sizeof *p);
        else
            memcpy(w, p, (size_t)(r->nh * sh->d) * sizeof *p);
    }
}

/* A shard's buffers: inputs q, k, v, mask, dout; outputs out, probs, dmask, dq, dk, dv. */
typedef struct shard {
    rect r;
    uint16_t *q, *k, *v, *mask, *dout, *out, *probs, *dq, *dk, *dv;
    uint8_t *dmask;
} shard;

static int shard_alloc(const shape *sh, shard *s)
{
    int64_t heads = heads_of(&s->r), sd = sh->s * sh->d, ss = sh->s * sh->s;
    size_t e = sizeof(uint16_t);
    s->q = malloc((size_t)(heads * sd) * e);
    s->k = malloc((size_t)(heads * sd) * e);
    s->v = malloc((size_t)(heads * sd) * e);
    s->dout = malloc((size_t)(heads * sd) * e);
    s->out = malloc((size_t)(heads * sd) * e);
    s->dq = malloc((size_t)(heads * sd) * e);
    s->dk = malloc((size_t)(heads * sd) * e);
    s->dv = malloc((size_t)(heads * sd) * e);
    s->mask = malloc((size_t)(heads * ss) * e);
    s->probs = malloc((size_t)(heads * ss) * e);
    s->dmask = malloc((size_t)(heads * ss));
    return s->q && s->k && s->v && s->dout && s->out && s->dq && s->dk && s->dv && s->mask &&
           s->probs && s->dmask;
}

static void shard_free(shard *s)
{
    void *p[] = {s->q,  s->k,  s->v,    s->dout,  s->out,  s->dq,
                 s->dk, s->dv, s->mask, s->probs, s->dmask};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) free(p[i]);
}

static int check(fas_status st, const char *what, int rank)
{
    if (st == FAS_OK) return 0;
    fprintf(stderr, "rank %d: %s: %s: %s\n", rank, what, fas_status_string(st), fas_last_error());
    return 1;
}

/* Forward and backward of one shard (or of the whole problem: r covers everything). */
static int run_shard(const shape *sh, shard *s, uint64_t seed, uint64_t offset, int threads,
                     int rank)
{
    const int64_t nb = s->r.nb, nh = s->r.nh, S = sh->s, D = sh->d;
    fas_tensor q = {s->q, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {nb, nh, S, D}};
    fas_tensor k = {s->k, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {nb, nh, S, D}};
    fas_tensor v = {s->v, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {nb, nh, S, D}};
    fas_tensor mask = {s->mask, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {nb, nh, S, S}};
    fas_tensor out = {s->out, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 2, {nb * S, nh * D}};
    fas_tensor probs = {s->probs, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {nb, nh, S, S}};
    fas_tensor dmask = {s->dmask, FAS_DTYPE_UINT8, FAS_FORMAT_ND, 4, {nb, nh, S, S}};
    fas_tensor dout = {s->dout, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 2, {nb * S, nh * D}};
    fas_tensor dq = {s->dq, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {nb, nh, S, D}};
    fas_tensor dk = {s->dk, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {nb, nh, S, D}};
    fas_tensor dv = {s->dv, FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 4, {nb, nh, S, D}};
    fas_options o;
    fas_options_init(&o);
    o.num_threads = threads;
    o.has_seed = true; /* every rank draws from the same (seed, offset) */
    o.seed = seed;
    o.offset = offset;
    o.batch_offset = s->r.b0;
    o.head_offset = s->r.h0;
    o.global_num_heads = sh->n;
    if (check(fused_attention_score_fwd_ex(&q, &k, &v, &mask, 0.125, 0.5, false, false, false,
                                           false, false, false, &out, &probs, &dmask, &o),
              "fused_attention_score_fwd_ex", rank))
        return 1;
    return check(fused_attention_score_grad_ex(&dout, &probs, &q, &k, &v, &dmask, 0.125, 0.5, false,
                                               false, false, false, &dq, &dk, &dv, &o),
                 "fused_attention_score_grad_ex", rank);
}

/* The whole problem's inputs, on rank 0: q, k, v, mask, dout. */
typedef struct problem {
    uint16_t *in[5];
} problem;

/* Which whole array each 16-bit field of a shard belongs to, and its layout. */
typedef enum layout { HEADS_SD, HEADS_SS, MERGED } layout;

static uint16_t **shard_field(shard *s, int i)
{
    uint16_t **f[10] = {&s->q,   &s->k,     &s->v,  &s->mask, &s->dout,
                        &s->out, &s->probs, &s->dq, &s->dk,   &s->dv};
    return f[i];
}

static const layout field_layout[10] = {HEADS_SD, HEADS_SD, HEADS_SD, HEADS_SS, MERGED,
                                        MERGED,   HEADS_SS, HEADS_SD, HEADS_SD, HEADS_SD};

static void move_field(const shape *sh, const rect *r, int field, uint16_t *whole, uint16_t *packed,
                       int to_packed)
{
    if (field_layout[field] == MERGED)
        move_merged(sh, r, whole, packed, to_packed);
    else
        move_heads(sh, r, field_layout[field] == HEADS_SS ? sh->s * sh->s : sh->s * sh->d, whole,
                   packed, to_packed);
}

static int64_t field_elems(const shape *sh, const rect *r, int field)
{
    return heads_of(r) * (field_layout[field] == HEADS_SS ? sh->s * sh->s : sh->s * sh->d);
}

static double now(void) { return MPI_Wtime(); }

static int parse_args(int argc, char **argv, shape *sh, int *threads)
{
    int64_t v[4] = {5, 3, 128, 64};
    int nv = 0;
    *threads = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            *threads = atoi(argv[++i]);
        } else if (nv < 4) {
            v[nv++] = atoll(argv[i]);
        } else {
            return 1;
        }
    }
    if ((nv != 0 && nv != 4) || *threads < 0) return 1;
    for (int i = 0; i < 4; i++)
        if (v[i] < 1 || v[i] > 65536) return 1;
    *sh = (shape){v[0], v[1], v[2], v[3]};
    return 0;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    shape sh;
    int threads;
    if (parse_args(argc, argv, &sh, &threads)) {
        if (rank == 0)
            fprintf(stderr, "usage: mpirun -np P mpi_sharded_attention [B N S D] [--threads T]\n");
        MPI_Finalize();
        return 2;
    }
    const int64_t sd = sh.s * sh.d, ss = sh.s * sh.s, heads = sh.b * sh.n;

    /* rank 0: the inputs, and the seed and offset every rank draws dropout bits from */
    problem pr = {{NULL}};
    uint64_t rng[2] = {2026, 0};
    if (rank == 0) {
        const int64_t counts[5] = {heads * sd, heads * sd, heads * sd, heads * ss, heads * sd};
        uint64_t state = 0x9E3779B97F4A7C15ull;
        for (int i = 0; i < 5; i++) {
            pr.in[i] = malloc((size_t)counts[i] * sizeof(uint16_t));
            if (!pr.in[i]) MPI_Abort(MPI_COMM_WORLD, 1);
            for (int64_t e = 0; e < counts[i]; e++) {
                state ^= state << 13, state ^= state >> 7, state ^= state << 17;
                float u = (float)(state >> 40) / 16777216.0f; /* uniform [0, 1) */
                pr.in[i][e] = fas_float_to_half(i == 4 ? u - 0.5f : u);
            }
        }
        rng[1] = 4096; /* any offset: what matters is that every rank uses the same one */
        printf("fused-attention %s: %d ranks, B %lld, N %lld, S %lld, D %lld, scale 0.125, "
               "keep_prob 0.5, seed %llu, offset %llu, %d thread(s) per rank\n",
               fas_version_string(), size, (long long)sh.b, (long long)sh.n, (long long)sh.s,
               (long long)sh.d, (unsigned long long)rng[0], (unsigned long long)rng[1], threads);
    }
    MPI_Bcast(rng, 2, MPI_UINT64_T, 0, MPI_COMM_WORLD);

    /* every rank's shards: rank 0 sends the inputs of each, in order */
    rect mine[MAX_RECTS];
    int nmine = rank_rects(&sh, rank, size, mine);
    shard shards[MAX_RECTS];
    int failed = 0;
    for (int i = 0; i < nmine; i++) {
        shards[i].r = mine[i];
        if (!shard_alloc(&sh, &shards[i])) MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (rank == 0) {
        for (int dst = 0; dst < size; dst++) {
            rect rs[MAX_RECTS];
            int n = rank_rects(&sh, dst, size, rs);
            for (int i = 0; i < n; i++)
                for (int f = 0; f < 5; f++) {
                    int64_t count = field_elems(&sh, &rs[i], f);
                    uint16_t *buf = dst == 0 ? *shard_field(&shards[i], f)
                                             : malloc((size_t)count * sizeof *buf);
                    if (!buf) MPI_Abort(MPI_COMM_WORLD, 1);
                    move_field(&sh, &rs[i], f, pr.in[f], buf, 1);
                    if (dst != 0) {
                        MPI_Send(buf, (int)count, MPI_UINT16_T, dst, i * 16 + f, MPI_COMM_WORLD);
                        free(buf);
                    }
                }
        }
    } else {
        for (int i = 0; i < nmine; i++)
            for (int f = 0; f < 5; f++)
                MPI_Recv(*shard_field(&shards[i], f), (int)field_elems(&sh, &mine[i], f),
                         MPI_UINT16_T, 0, i * 16 + f, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }

    /* the shards, timed */
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = now();
    for (int i = 0; i < nmine && !failed; i++)
        failed = run_shard(&sh, &shards[i], rng[0], rng[1], threads, rank);
    double elapsed = now() - t0;

    /* results back to rank 0, assembled into the whole arrays */
    int64_t my_heads = 0;
    for (int i = 0; i < nmine; i++) my_heads += heads_of(&mine[i]);
    double all_times[1024];
    int64_t all_heads[1024];
    MPI_Gather(&elapsed, 1, MPI_DOUBLE, all_times, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    MPI_Gather(&my_heads, 1, MPI_INT64_T, all_heads, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
    int any_failed = 0;
    MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (any_failed) {
        for (int i = 0; i < nmine; i++) shard_free(&shards[i]);
        MPI_Finalize();
        return 1;
    }
    uint16_t *assembled[5] = {NULL};
    uint8_t *assembled_mask = NULL;
    if (rank == 0) {
        const int64_t counts[5] = {heads * sd, heads * ss, heads * sd, heads * sd, heads * sd};
        for (int f = 0; f < 5; f++) {
            assembled[f] = malloc((size_t)counts[f] * sizeof(uint16_t));
            if (!assembled[f]) MPI_Abort(MPI_COMM_WORLD, 1);
        }
        assembled_mask = malloc((size_t)(heads * ss));
        if (!assembled_mask) MPI_Abort(MPI_COMM_WORLD, 1);
        for (int src = 0; src < size; src++) {
            rect rs[MAX_RECTS];
            int n = rank_rects(&sh, src, size, rs);
            for (int i = 0; i < n; i++) {
                for (int f = 5; f < 10; f++) {
                    int64_t count = field_elems(&sh, &rs[i], f);
                    uint16_t *buf = src == 0 ? *shard_field(&shards[i], f)
                                             : malloc((size_t)count * sizeof *buf);
                    if (!buf) MPI_Abort(MPI_COMM_WORLD, 1);
                    if (src != 0)
                        MPI_Recv(buf, (int)count, MPI_UINT16_T, src, i * 16 + f, MPI_COMM_WORLD,
                                 MPI_STATUS_IGNORE);
                    move_field(&sh, &rs[i], f, assembled[f - 5], buf, 0);
                    if (src != 0) free(buf);
                }
                int64_t count = heads_of(&rs[i]) * ss;
                uint8_t *mb = src == 0 ? shards[i].dmask : malloc((size_t)count);
                if (!mb) MPI_Abort(MPI_COMM_WORLD, 1);
                if (src != 0)
                    MPI_Recv(mb, (int)count, MPI_UINT8_T, src, i * 16 + 10, MPI_COMM_WORLD,
                             MPI_STATUS_IGNORE);
                move_bytes(&sh, &rs[i], ss, assembled_mask, mb, 0);
                if (src != 0) free(mb);
            }
        }
    } else {
        for (int i = 0; i < nmine; i++) {
            for (int f = 5; f < 10; f++)
                MPI_Send(*shard_field(&shards[i], f), (int)field_elems(&sh, &mine[i], f),
                         MPI_UINT16_T, 0, i * 16 + f, MPI_COMM_WORLD);
            MPI_Send(shards[i].dmask, (int)(heads_of(&mine[i]) * ss), MPI_UINT8_T, 0, i * 16 + 10,
                     MPI_COMM_WORLD);
        }
    }

    /* rank 0: the whole problem in one call, and the comparison */
    int differs = 0;
    if (rank == 0) {
        shard whole = {.r = {0, sh.b, 0, sh.n}};
        if (!shard_alloc(&sh, &whole)) MPI_Abort(MPI_COMM_WORLD, 1);
        for (int f = 0; f < 5; f++)
            memcpy(*shard_field(&whole, f), pr.in[f],
                   (size_t)field_elems(&sh, &whole.r, f) * sizeof(uint16_t));
        double w0 = now();
        if (run_shard(&sh, &whole, rng[0], rng[1], threads, rank)) MPI_Abort(MPI_COMM_WORLD, 1);
        double whole_time = now() - w0;
        static const char *names[5] = {"attention_score", "softmax_output", "query_dx", "key_dw",
                                       "value_dw"};
        for (int f = 0; f < 5; f++) {
            size_t bytes = (size_t)field_elems(&sh, &whole.r, f + 5) * sizeof(uint16_t);
            int same = memcmp(assembled[f], *shard_field(&whole, f + 5), bytes) == 0;
            printf("  %-16s %s\n", names[f], same ? "identical" : "DIFFERS");
            differs |= !same;
        }
        int same = memcmp(assembled_mask, whole.dmask, (size_t)(heads * ss)) == 0;
        printf("  %-16s %s\n", "drop_mask", same ? "identical" : "DIFFERS");
        differs |= !same;
        for (int r = 0; r < size; r++) {
            rect rs[MAX_RECTS];
            int n = rank_rects(&sh, r, size, rs);
            printf("rank %d: %lld head(s) in %d call(s):", r, (long long)all_heads[r], n);
            for (int i = 0; i < n; i++)
                printf(" batches %lld-%lld x heads %lld-%lld%s", (long long)rs[i].b0,
                       (long long)(rs[i].b0 + rs[i].nb - 1), (long long)rs[i].h0,
                       (long long)(rs[i].h0 + rs[i].nh - 1), i + 1 < n ? "," : "");
            printf("; forward + backward %.1f ms\n", all_times[r] * 1e3);
        }
        printf("one process, all %lld heads: forward + backward %.1f ms\n", (long long)heads,
               whole_time * 1e3);
        printf("verdict: the sharded run %s the one-process run byte for byte\n",
               differs ? "DIFFERS FROM" : "reproduces");
        shard_free(&whole);
        for (int f = 0; f < 5; f++) {
            free(assembled[f]);
            free(pr.in[f]);
        }
        free(assembled_mask);
    }
    MPI_Bcast(&differs, 1, MPI_INT, 0, MPI_COMM_WORLD);
    for (int i = 0; i < nmine; i++) shard_free(&shards[i]);
    MPI_Finalize();
    return differs ? 1 : 0;
}
