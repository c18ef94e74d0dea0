/* Sharded calls (fas_options.batch_offset, head_offset, global_num_heads): a call on a slice of
 * the batches and heads, given its place in the whole tensor, reproduces the unsharded call bit
 * for bit: context, softmax_output, drop mask (generated from the global Philox coordinates)
 * and, through _grad on the same slices, dQ, dK and dV. Several uneven splits of batches and
 * heads, both layouts, both precisions; and the checks of the new options. */
#include <string.h>

#include "fas_test.h"

enum { B = 3, N = 5, SQ = 64, SK = 64, D = 16 }; /* S: a multiple of 64 for the NPU mode */
#define KEEP 0.8
#define SCALE 0.25

typedef struct whole {
    fas_tensor q, k, v, mask, out, probs, dmask, dout, dq, dk, dv;
} whole;

static fas_options options_for(int64_t b0, int64_t h0, int64_t heads, fas_precision prec)
{
    fas_options o;
    fas_options_init(&o);
    o.has_seed = true;
    o.seed = 0x5a4d;
    o.offset = 77;
    o.precision = prec;
    o.batch_offset = b0;
    o.head_offset = h0;
    o.global_num_heads = heads;
    return o;
}

/* Logical ND fp32 values of t's batches [b0, b0+nb) and heads [h0, h0+nh) of a 4-D tensor
 * [B', N', R, C] (N' == 1: the mask, taken whole along heads). */
static fas_tensor slice4(const fas_tensor *t, int64_t b0, int64_t nb, int64_t h0, int64_t nh,
                         fas_format fmt)
{
    const int64_t tn = t->dims[1], rows = t->dims[2], cols = t->dims[3];
    const int64_t hn = tn == 1 ? 1 : nh, hs = tn == 1 ? 0 : h0;
    float *all = fast_to_f32(t), *part = malloc((size_t)(nb * hn * rows * cols) * sizeof *part);
    assert_non_null(part);
    for (int64_t b = 0; b < nb; b++)
        for (int64_t n = 0; n < hn; n++)
            memcpy(part + ((b * hn + n) * rows) * cols,
                   all + (((b0 + b) * tn + hs + n) * rows) * cols,
                   (size_t)(rows * cols) * sizeof *part);
    fas_tensor s = fast_tensor_4d(t->dtype, fmt, nb, hn, rows, cols);
    fast_from_f32(&s, part);
    free(all);
    free(part);
    return s;
}

/* The merged 2-D [B*Sq, N*Dv] slice of rows of batches [b0, b0+nb), columns of heads
 * [h0, h0+nh). */
static fas_tensor slice2(const fas_tensor *t, int64_t b0, int64_t nb, int64_t h0, int64_t nh,
                         int64_t rows, int64_t cols, fas_format fmt)
{
    float *all = fast_to_f32(t), *part = malloc((size_t)(nb * rows * nh * cols) * sizeof *part);
    assert_non_null(part);
    const int64_t width = t->dims[1];
    for (int64_t r = 0; r < nb * rows; r++)
        memcpy(part + r * nh * cols, all + (b0 * rows + r) * width + h0 * cols,
               (size_t)(nh * cols) * sizeof *part);
    fas_tensor s = fast_tensor_2d(t->dtype, fmt, nb * rows, nh * cols);
    fast_from_f32(&s, part);
    free(all);
    free(part);
    return s;
}

/* Every logical element of got equals want's bit for bit (fp16 holds every fp32 it stores). */
static void assert_same(const char *what, const fas_tensor *got, const fas_tensor *want)
{
    int64_t n = fast_tensor_numel(got);
    assert_int_equal(n, fast_tensor_numel(want));
    if (got->dtype == FAS_DTYPE_UINT8) {
        uint8_t *a = fast_to_u8(got), *b = fast_to_u8(want);
        if (memcmp(a, b, (size_t)n) != 0) printf("%s: drop mask bytes differ\n", what);
        assert_memory_equal(a, b, (size_t)n);
        free(a);
        free(b);
        return;
    }
    float *a = fast_to_f32(got), *b = fast_to_f32(want);
    for (int64_t i = 0; i < n; i++) {
        if (fast_f32_bits(a[i]) != fast_f32_bits(b[i])) {
            printf("%s: element %lld is %a in the shard, %a in the whole call\n", what,
                   (long long)i, a[i], b[i]);
            fail();
        }
    }
    free(a);
    free(b);
}

static whole run_whole(fas_format fmt, fas_precision prec, fast_rng *r)
{
    whole w;
    const fas_dtype H = FAS_DTYPE_FLOAT16;
    w.q = fast_tensor_4d(H, fmt, B, N, SQ, D);
    w.k = fast_tensor_4d(H, fmt, B, N, SK, D);
    w.v = fast_tensor_4d(H, fmt, B, N, SK, D);
    w.mask = fast_tensor_4d(H, fmt, B, 1, SQ, SK);
    w.out = fast_tensor_2d(H, fmt, B * SQ, N * D);
    w.probs = fast_tensor_4d(H, fmt, B, N, SQ, SK);
    w.dmask = fast_tensor_4d(FAS_DTYPE_UINT8, fmt, B, N, SQ, SK);
    w.dout = fast_tensor_2d(H, fmt, B * SQ, N * D);
    w.dq = fast_tensor_4d(H, fmt, B, N, SQ, D);
    w.dk = fast_tensor_4d(H, fmt, B, N, SK, D);
    w.dv = fast_tensor_4d(H, fmt, B, N, SK, D);
    fast_fill_uniform(&w.q, r, -2, 2);
    fast_fill_uniform(&w.k, r, -2, 2);
    fast_fill_uniform(&w.v, r, -2, 2);
    fast_fill_uniform(&w.mask, r, -3, 0);
    fast_fill_uniform(&w.dout, r, -1, 1);
    fas_options o = options_for(0, 0, 0, prec);
    assert_int_equal(fused_attention_score_fwd_ex(&w.q, &w.k, &w.v, &w.mask, SCALE, KEEP, false,
                                                  false, false, false, false, false, &w.out,
                                                  &w.probs, &w.dmask, &o),
                     FAS_OK);
    assert_int_equal(fused_attention_score_grad_ex(&w.dout, &w.probs, &w.q, &w.k, &w.v, &w.dmask,
                                                   SCALE, KEEP, false, false, false, false, &w.dq,
                                                   &w.dk, &w.dv, &o),
                     FAS_OK);
    return w;
}

static void free_all(fas_tensor *t, int n)
{
    for (int i = 0; i < n; i++) fast_tensor_free(&t[i]);
}

static void check_shard(const whole *w, int64_t b0, int64_t nb, int64_t h0, int64_t nh,
                        fas_format fmt, fas_precision prec)
{
    fas_tensor in[6] = {
        slice4(&w->q, b0, nb, h0, nh, fmt),           slice4(&w->k, b0, nb, h0, nh, fmt),
        slice4(&w->v, b0, nb, h0, nh, fmt),           slice4(&w->mask, b0, nb, h0, nh, fmt),
        slice2(&w->dout, b0, nb, h0, nh, SQ, D, fmt), slice4(&w->probs, b0, nb, h0, nh, fmt)};
    fas_tensor out[6] = {fast_tensor_2d(FAS_DTYPE_FLOAT16, fmt, nb * SQ, nh * D),
                         fast_tensor_4d(FAS_DTYPE_FLOAT16, fmt, nb, nh, SQ, SK),
                         fast_tensor_4d(FAS_DTYPE_UINT8, fmt, nb, nh, SQ, SK),
                         fast_tensor_4d(FAS_DTYPE_FLOAT16, fmt, nb, nh, SQ, D),
                         fast_tensor_4d(FAS_DTYPE_FLOAT16, fmt, nb, nh, SK, D),
                         fast_tensor_4d(FAS_DTYPE_FLOAT16, fmt, nb, nh, SK, D)};
    fas_options o = options_for(b0, h0, N, prec);
    assert_int_equal(fused_attention_score_fwd_ex(&in[0], &in[1], &in[2], &in[3], SCALE, KEEP,
                                                  false, false, false, false, false, false, &out[0],
                                                  &out[1], &out[2], &o),
                     FAS_OK);
    fas_tensor want_out = slice2(&w->out, b0, nb, h0, nh, SQ, D, FAS_FORMAT_ND);
    fas_tensor want_probs = slice4(&w->probs, b0, nb, h0, nh, FAS_FORMAT_ND);
    fas_tensor dm_f = w->dmask; /* bytes as floats: slice4 reads through fp32 */
    float *bytes = NULL;
    (void)bytes;
    assert_same("attention_score", &out[0], &want_out);
    assert_same("softmax_output", &out[1], &want_probs);
    /* the drop mask's slice, compared byte for byte */
    uint8_t *all = fast_to_u8(&dm_f), *got = fast_to_u8(&out[2]);
    for (int64_t b = 0; b < nb; b++)
        for (int64_t n = 0; n < nh; n++)
            assert_memory_equal(got + (b * nh + n) * SQ * SK,
                                all + ((b0 + b) * N + h0 + n) * SQ * SK, SQ * SK);
    free(all);
    free(got);
    /* the backward of the shard, from the whole call's P and mask slices */
    assert_int_equal(fused_attention_score_grad_ex(&in[4], &in[5], &in[0], &in[1], &in[2], &out[2],
                                                   SCALE, KEEP, false, false, false, false, &out[3],
                                                   &out[4], &out[5], &o),
                     FAS_OK);
    fas_tensor want_g[3] = {slice4(&w->dq, b0, nb, h0, nh, FAS_FORMAT_ND),
                            slice4(&w->dk, b0, nb, h0, nh, FAS_FORMAT_ND),
                            slice4(&w->dv, b0, nb, h0, nh, FAS_FORMAT_ND)};
    assert_same("query_dx", &out[3], &want_g[0]);
    assert_same("key_dw", &out[4], &want_g[1]);
    assert_same("value_dw", &out[5], &want_g[2]);
    free_all(in, 6);
    free_all(out, 6);
    free_all(want_g, 3);
    fast_tensor_free(&want_out);
    fast_tensor_free(&want_probs);
}

static void check_splits(fas_format fmt, fas_precision prec, uint64_t seed)
{
    fast_rng r;
    fast_rng_seed(&r, fast_test_seed("sharding", seed));
    whole w = run_whole(fmt, prec, &r);
    /* {b0, nb, h0, nh}: heads split unevenly, batches split, both, single heads */
    static const int64_t splits[][4] = {{0, 3, 0, 2}, {0, 3, 2, 3}, {0, 1, 0, 5}, {1, 2, 0, 5},
                                        {1, 1, 1, 3}, {2, 1, 4, 1}, {0, 2, 3, 2}, {0, 3, 0, 5}};
    for (size_t i = 0; i < sizeof splits / sizeof splits[0]; i++)
        check_shard(&w, splits[i][0], splits[i][1], splits[i][2], splits[i][3], fmt, prec);
    fas_tensor *t = &w.q;
    free_all(t, 11);
}

static void test_shards_nd(void **state)
{
    (void)state;
    check_splits(FAS_FORMAT_ND, FAS_PRECISION_FP32, 0x5a1);
}

static void test_shards_nz(void **state)
{
    (void)state;
    check_splits(FAS_FORMAT_FRACTAL_NZ, FAS_PRECISION_FP32, 0x5a2);
}

static void test_shards_npu(void **state)
{
    (void)state;
    check_splits(FAS_FORMAT_ND, FAS_PRECISION_NPU, 0x5a3);
}

/* Shards draw different bits from the whole call's first heads: a shard run without its
 * coordinates does not reproduce its slice (so the test above can fail). */
static void test_coordinates_matter(void **state)
{
    (void)state;
    fas_tensor q = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 1, 2, SQ, D);
    fas_tensor out = fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, SQ, 2 * D);
    fas_tensor m0 = fast_tensor_4d(FAS_DTYPE_UINT8, FAS_FORMAT_ND, 1, 2, SQ, SK);
    fas_tensor m1 = fast_tensor_4d(FAS_DTYPE_UINT8, FAS_FORMAT_ND, 1, 2, SQ, SK);
    fas_options a = options_for(0, 0, 0, FAS_PRECISION_FP32);
    fas_options b = options_for(0, 2, 4, FAS_PRECISION_FP32);
    assert_int_equal(fused_attention_score_fwd_ex(&q, &q, &q, NULL, 1, 0.5, false, false, false,
                                                  false, false, false, &out, NULL, &m0, &a),
                     FAS_OK);
    assert_int_equal(fused_attention_score_fwd_ex(&q, &q, &q, NULL, 1, 0.5, false, false, false,
                                                  false, false, false, &out, NULL, &m1, &b),
                     FAS_OK);
    assert_true(memcmp(m0.data, m1.data, (size_t)(2 * SQ * SK)) != 0);
    /* all three 0 and global_num_heads == N name the same (unsharded) coordinates */
    b = options_for(0, 0, 2, FAS_PRECISION_FP32);
    assert_int_equal(fused_attention_score_fwd_ex(&q, &q, &q, NULL, 1, 0.5, false, false, false,
                                                  false, false, false, &out, NULL, &m1, &b),
                     FAS_OK);
    assert_memory_equal(m0.data, m1.data, (size_t)(2 * SQ * SK));
    fast_tensor_free(&q);
    fast_tensor_free(&out);
    fast_tensor_free(&m0);
    fast_tensor_free(&m1);
}

static void test_bad_coordinates(void **state)
{
    (void)state;
    fas_tensor q = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 2, 3, 16, 16);
    fas_tensor out = fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 32, 48);
    fast_canary_fill(out.data, fas_tensor_bytes(&out));
    const struct {
        int64_t b0, h0, heads;
        const char *text;
    } cases[] = {
        {-1, 0, 0, "options: batch_offset is -1, must be >= 0"},
        {0, -2, 0, "options: head_offset is -2, must be >= 0"},
        {0, 0, -3, "options: global_num_heads is -3, must be >= 0"},
        {0, 1, 0, "options: head_offset 1 + N 3 exceeds global_num_heads 3"},
        {0, 3, 5, "options: head_offset 3 + N 3 exceeds global_num_heads 5"},
        {0, 0, 2, "options: head_offset 0 + N 3 exceeds global_num_heads 2"},
        {INT64_MAX - 1, 0, 0,
         "options: batch_offset 9223372036854775806 with B 2, 3 heads and "
         "Sq 16 puts dropout rows beyond the int64 range"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fas_options o = options_for(cases[i].b0, cases[i].h0, cases[i].heads, FAS_PRECISION_FP32);
        assert_int_equal(fused_attention_score_ex(&q, &q, &q, NULL, 1, 0.5, false, false, false,
                                                  false, false, false, &out, &o),
                         FAS_ERR_VALUE);
        assert_string_equal(fas_last_error(), cases[i].text);
        assert_true(fast_canary_intact(out.data, fas_tensor_bytes(&out)));
    }
    /* a valid shard at the end of the range */
    fas_options o = options_for(5, 2, 5, FAS_PRECISION_FP32);
    assert_int_equal(fused_attention_score_ex(&q, &q, &q, NULL, 1, 0.5, false, false, false, false,
                                              false, false, &out, &o),
                     FAS_OK);
    fast_tensor_free(&q);
    fast_tensor_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shards_nd),       cmocka_unit_test(test_shards_nz),
        cmocka_unit_test(test_shards_npu),      cmocka_unit_test(test_coordinates_matter),
        cmocka_unit_test(test_bad_coordinates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
