"""The numpy forward (fused_attention_score, _fwd) against the fp64 reference, within the accuracy
contract |got - ref| <= 2^-12 max|ref| + 2^-9 |ref| on every element."""

import numpy as np
import pytest

import fa_reference as ref
import fused_attention as fa
from fa_helpers import MASK_FORMS, mask_shape, random_inputs

FLAG_NAMES = ["query_transpose", "key_transpose", "bmm_score_transpose_a",
              "bmm_score_transpose_b", "value_transpose", "dx_transpose"]


def _run_and_check(rng, b, n, sq, sk, d, dv, mask_form, flags, dtypes=None, threads=0):
    qt, kt, ta, tb, _, _ = flags
    q, k, v, mask = random_inputs(rng, b, n, sq, sk, d, dv, mask_form, dtypes, qt, kt, tb)
    scale = float(rng.uniform(0.05, 0.6))
    out = fa.fused_attention_score(q, k, v, mask, scale, 1.0, *flags, threads=threads)
    assert out.dtype == np.float16 and out.shape == (b * sq, n * dv)
    want, p = ref.forward(q, k, v, mask, scale, 1.0, None, qt, kt, ta, tb)
    ref.assert_contract(out, want, "attention_score")

    score, probs, dmask = fa.fused_attention_score_fwd(q, k, v, mask, scale, 1.0, *flags,
                                                       threads=threads)
    assert probs.dtype == np.float16 and probs.shape == (b, n, sq, sk)
    assert dmask.dtype == np.uint8 and dmask.shape == (b, n, sq, sk)
    ref.assert_contract(score, want, "_fwd attention_score")
    ref.assert_contract(probs, p, "softmax_output")
    assert (dmask == 1).all(), "keep_prob 1 must give an all-ones drop mask"
    sums = probs.astype(np.float64).sum(axis=-1)
    assert np.abs(sums - 1.0).max() <= 2e-3, "softmax rows must sum to 1 within 2e-3"


@pytest.mark.parametrize("case", range(40))
def test_random_shapes_flags_masks_dtypes(case):
    """40 random problems: odd sizes, a random flag combination, each mask form in turn, a random
    float16/float32 mix of inputs."""
    rng = np.random.default_rng(1000 + case)
    flags = [bool(f) for f in rng.integers(0, 2, 6)]
    b, n = int(rng.integers(1, 4)), int(rng.integers(1, 5))
    sq, sk = int(rng.integers(1, 70)), int(rng.integers(1, 70))
    if flags[2]:
        sk = sq  # bmm_score_transpose_a needs Sq == Sk
    d, dv = int(rng.integers(1, 40)), int(rng.integers(1, 40))
    dtypes = [(np.float16, np.float32)[i] for i in rng.integers(0, 2, 4)]
    _run_and_check(rng, b, n, sq, sk, d, dv, MASK_FORMS[case % len(MASK_FORMS)], flags, dtypes)


@pytest.mark.parametrize("flag", FLAG_NAMES)
def test_each_flag_alone(flag):
    rng = np.random.default_rng(hash(flag) % 2**32)
    flags = [name == flag for name in FLAG_NAMES]
    sq = 37
    sk = sq if flag == "bmm_score_transpose_a" else 45
    _run_and_check(rng, 2, 3, sq, sk, 24, 19, "B1SS", flags)


def test_all_flags_together():
    rng = np.random.default_rng(7)
    _run_and_check(rng, 2, 2, 33, 33, 17, 23, "BNSS", [True] * 6)


@pytest.mark.parametrize("form", MASK_FORMS)
def test_each_mask_form(form):
    rng = np.random.default_rng(MASK_FORMS.index(form))
    _run_and_check(rng, 3, 2, 29, 51, 16, 20, form, [False] * 6)


def test_mask_changes_the_result():
    """A large negative key-padding mask must remove those keys: the output equals attention over
    the remaining keys only."""
    rng = np.random.default_rng(3)
    q, k, v, _ = random_inputs(rng, 2, 2, 20, 30, 16, 16, "none")
    mask = np.zeros((1, 1, 1, 30), np.float16)
    mask[..., 10:] = -30000.0
    out = fa.fused_attention_score(q, k, v, mask, 0.25, 1.0)
    want, _ = ref.forward(q, k[:, :, :10], v[:, :, :10], None, 0.25)
    ref.assert_contract(out, want, "masked keys")


def test_larger_shape_crosses_blocks():
    """Sizes past the library's row blocks and key tiles (hundreds of rows and keys)."""
    rng = np.random.default_rng(11)
    _run_and_check(rng, 1, 2, 300, 600, 64, 64, "B1SS", [False] * 6)


def test_results_do_not_depend_on_thread_count():
    rng = np.random.default_rng(5)
    q, k, v, mask = random_inputs(rng, 2, 3, 150, 140, 32, 32, "B1SS")
    one = fa.fused_attention_score_fwd(q, k, v, mask, 0.2, 0.8, threads=1, seed=9)
    two = fa.fused_attention_score_fwd(q, k, v, mask, 0.2, 0.8, threads=2, seed=9)
    for a, b in zip(one, two):
        assert np.array_equal(a, b)
    s1 = fa.fused_attention_score(q, k, v, mask, 0.2, 0.8, threads=1, seed=9)
    s2 = fa.fused_attention_score(q, k, v, mask, 0.2, 0.8, threads=2, seed=9)
    assert np.array_equal(s1, s2)


def test_any_strides_and_byte_order_give_the_same_result():
    """Non-contiguous views, Fortran order and big-endian arrays are copied as needed; the result
    equals the one for plain contiguous arrays, bit for bit."""
    rng = np.random.default_rng(13)
    q, k, v, mask = random_inputs(rng, 2, 2, 24, 40, 16, 8, "B1SS")
    plain = fa.fused_attention_score(q, k, v, mask, 0.3, 1.0)
    big = np.zeros((2, 2, 24, 32), np.float16)
    big[..., ::2] = q
    q_strided = big[..., ::2]
    assert not q_strided.flags.c_contiguous
    k_fortran = np.asfortranarray(k)
    v_big_endian = v.astype(">f2")
    mask_view = np.broadcast_to(mask, mask.shape)  # read-only view
    got = fa.fused_attention_score(q_strided, k_fortran, v_big_endian, mask_view, 0.3, 1.0)
    assert np.array_equal(got, plain)


def test_inputs_are_not_modified():
    rng = np.random.default_rng(17)
    q, k, v, mask = random_inputs(rng, 1, 2, 16, 16, 8, 8, "B1SS")
    copies = [x.copy() for x in (q, k, v, mask)]
    fa.fused_attention_score_fwd(q, k, v, mask, 0.3, 0.7, seed=1)
    for before, after in zip(copies, (q, k, v, mask)):
        assert np.array_equal(before, after)


@pytest.mark.parametrize("form", ["B1SS", "none"])
def test_nz_round_trip_of_inputs_and_output(form):
    """Inputs taken through ND -> NZ -> ND give the same result, and the output's NZ storage
    holds exactly the output's values in the fractal order."""
    rng = np.random.default_rng(19)
    q, k, v, mask = random_inputs(rng, 2, 2, 20, 33, 17, 9, form)
    plain = fa.fused_attention_score(q, k, v, mask, 0.3, 1.0)
    back = [None if x is None else fa.format_cast(fa.format_cast(x, "nz"), "nd", x.shape)
            for x in (q, k, v, mask)]
    again = fa.fused_attention_score(*back, 0.3, 1.0)
    assert np.array_equal(again, plain)
    assert np.array_equal(fa.format_cast(plain, "nz"), ref.nz_layout(plain))


def test_output_shape_for_cross_attention():
    rng = np.random.default_rng(23)
    q, k, v, mask = random_inputs(rng, 3, 5, 7, 11, 6, 13, mask_form="B11S")
    out = fa.fused_attention_score(q, k, v, mask, 0.5, 1.0)
    assert out.shape == (3 * 7, 5 * 13)
    assert mask_shape("B11S", 3, 5, 7, 11) == mask.shape


def test_bfloat16_inputs_from_ml_dtypes():
    """bfloat16 arrays (ml_dtypes) are passed as BF16: the result is the reference's on the
    same bfloat16 values."""
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes (numpy bfloat16) is not "
                                    "installed")
    rng = np.random.default_rng(29)
    q, k, v, mask = random_inputs(rng, 2, 2, 20, 24, 16, 8, "B1SS", (np.float32,) * 4)
    q, k = q.astype(ml_dtypes.bfloat16), k.astype(ml_dtypes.bfloat16)
    out = fa.fused_attention_score(q, k, v, mask, 0.3, 1.0)
    want, _ = ref.forward(q.astype(np.float64), k.astype(np.float64), v, mask, 0.3)
    ref.assert_contract(out, want, "bfloat16 inputs")
