"""fused_attention_score_grad against the fp64 reference backward, within the accuracy contract.

The reference takes the same inputs as the function under test: the probabilities P and the drop
mask are inputs of the backward. Most tests build both independently (P from an fp64 softmax
rounded to float16, the mask from numpy's generator); one feeds what _fwd returned."""

import numpy as np
import pytest

import fa_reference as ref
import fused_attention as fa
from fa_helpers import random_inputs


def _probs(q, k, mask, scale, qt, kt):
    _, p = ref.forward(q, k, np.zeros(k.shape[:2] + (k.shape[3 if kt else 2], 1)), mask, scale,
                       query_transpose=qt, key_transpose=kt)
    return p.astype(np.float16)


def _check_grad(rng, b, n, sq, sk, d, dv, flags, keep_prob, dtypes=None, threads=0):
    qt, kt, vt, dxt = flags
    q, k, v, mask = random_inputs(rng, b, n, sq, sk, d, dv, "B1SS", dtypes, qt, kt, vt)
    scale = float(rng.uniform(0.05, 0.6))
    probs = _probs(q, k, mask, scale, qt, kt)
    dmask = None
    if keep_prob < 1.0:
        dmask = (rng.random((b, n, sq, sk)) < keep_prob).astype(np.uint8)
    grad = rng.uniform(-1.0, 1.0, (b * sq, n * dv)).astype(np.float16)
    if dxt:
        grad = np.ascontiguousarray(grad.T)
    got = fa.fused_attention_score_grad(grad, probs, q, k, v, dmask, scale, keep_prob, qt, kt,
                                        vt, dxt, threads=threads)
    want = ref.backward(grad, probs, q, k, v, dmask, scale, keep_prob, qt, kt, vt, dxt)
    shapes = [(b * sq, n * d), (b * sk, n * d), (b * sk, n * dv)]
    for name, g, w, shape in zip(("query_dx", "key_dw", "value_dw"), got, want, shapes):
        assert g.dtype == np.float16 and g.shape == shape, name
        ref.assert_contract(g, w, name)
    return got


@pytest.mark.parametrize("case", range(24))
def test_random_shapes_and_flags(case):
    rng = np.random.default_rng(2000 + case)
    flags = [bool(f) for f in rng.integers(0, 2, 4)]
    b, n = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    sq, sk = int(rng.integers(1, 60)), int(rng.integers(1, 60))
    d, dv = int(rng.integers(1, 33)), int(rng.integers(1, 33))
    keep_prob = (1.0, 0.9, 0.5)[case % 3]
    dtypes = [(np.float16, np.float32)[i] for i in rng.integers(0, 2, 4)]
    _check_grad(rng, b, n, sq, sk, d, dv, flags, keep_prob, dtypes)


@pytest.mark.parametrize("flag", range(4))
def test_each_backward_flag_alone(flag):
    rng = np.random.default_rng(40 + flag)
    flags = [i == flag for i in range(4)]
    _check_grad(rng, 2, 2, 35, 41, 20, 12, flags, 0.8)


def test_larger_shape_crosses_blocks():
    rng = np.random.default_rng(43)
    _check_grad(rng, 1, 2, 260, 300, 64, 64, [False] * 4, 0.9)


def test_thread_count_does_not_change_gradients():
    a = _check_grad(np.random.default_rng(47), 2, 2, 140, 70, 32, 32, [False] * 4, 0.9, threads=1)
    b = _check_grad(np.random.default_rng(47), 2, 2, 140, 70, 32, 32, [False] * 4, 0.9, threads=2)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)


@pytest.mark.parametrize("keep_prob", [1.0, 0.6])
def test_with_what_fwd_returned(keep_prob):
    """_fwd's probabilities and drop mask go straight into _grad (the training path); the
    reference backward is computed from those same inputs, and the returned P itself is checked
    against the fp64 softmax."""
    rng = np.random.default_rng(53)
    q, k, v, mask = random_inputs(rng, 2, 3, 48, 48, 32, 32, "B1SS")
    scale = 0.125
    score, probs, dmask = fa.fused_attention_score_fwd(q, k, v, mask, scale, keep_prob, seed=5)
    want_score, want_p = ref.forward(q, k, v, mask, scale, keep_prob, dmask)
    ref.assert_contract(probs, want_p, "softmax_output")
    ref.assert_contract(score, want_score, "attention_score with the returned mask")
    if keep_prob < 1.0:
        assert 0 < dmask.mean() < 1
    grad = rng.uniform(-1, 1, score.shape).astype(np.float16)
    got = fa.fused_attention_score_grad(grad, probs, q, k, v, dmask, scale, keep_prob)
    want = ref.backward(grad, probs, q, k, v, dmask, scale, keep_prob)
    for name, g, w in zip(("query_dx", "key_dw", "value_dw"), got, want):
        ref.assert_contract(g, w, name)


def test_dropped_elements_get_no_value_gradient():
    """With every element of key row j dropped, dV row j must be exactly zero."""
    rng = np.random.default_rng(59)
    q, k, v, mask = random_inputs(rng, 1, 1, 16, 16, 8, 8, "none")
    probs = _probs(q, k, None, 0.3, False, False)
    dmask = np.ones((1, 1, 16, 16), np.uint8)
    dmask[..., 5] = 0
    grad = rng.uniform(-1, 1, (16, 8)).astype(np.float16)
    _, _, dv = fa.fused_attention_score_grad(grad, probs, q, k, v, dmask, 0.3, 0.5)
    assert (dv[5] == 0).all() and (dv[4] != 0).any()
