"""Dropout: reproducible masks from a seed, distinct masks otherwise, the keep rate, and the
forward computed with the mask it reports."""

import math

import numpy as np
import pytest

import fa_reference as ref
import fused_attention as fa
from fa_helpers import random_inputs


def _mask(seed=None, keep_prob=0.7, shape=(2, 3, 64, 96), threads=0):
    rng = np.random.default_rng(0)
    b, n, sq, sk = shape
    q, k, v, mask = random_inputs(rng, b, n, sq, sk, 16, 16, "B1SS")
    return fa.fused_attention_score_fwd(q, k, v, mask, 0.2, keep_prob, seed=seed,
                                        threads=threads)[2]


def test_same_seed_same_mask_different_seed_different_mask():
    a, b, c = _mask(seed=123), _mask(seed=123), _mask(seed=124)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # two independent masks of keep rate 0.7 agree on about 0.7^2 + 0.3^2 = 58 % of elements
    assert 0.5 < (a == c).mean() < 0.66


def test_seed_does_not_depend_on_threads():
    assert np.array_equal(_mask(seed=77, threads=1), _mask(seed=77, threads=2))


def test_explicit_seed_ignores_process_generator():
    fa.manual_seed(1)
    a = _mask(seed=5)
    fa.manual_seed(2)
    _mask()  # advances the process-wide generator
    b = _mask(seed=5)
    assert np.array_equal(a, b)


def test_explicit_seed_is_the_process_generators_first_draw():
    """seed=s passes (seed s, offset 0): the mask the process generator gives on its first draw
    after manual_seed(s)."""
    fa.manual_seed(4321)
    assert np.array_equal(_mask(), _mask(seed=4321))


def test_process_generator_manual_seed_and_advance():
    fa.manual_seed(2024)
    first, second = _mask(), _mask()
    assert not np.array_equal(first, second), "successive calls must not reuse random bits"
    fa.manual_seed(2024)
    assert np.array_equal(_mask(), first)
    assert np.array_equal(_mask(), second)


@pytest.mark.parametrize("keep_prob", [0.1, 0.5, 0.9])
def test_keep_rate_within_binomial_bound(keep_prob):
    """The fraction kept over n = 2*3*64*96 elements lies within 6 standard deviations of
    keep_prob (a false failure has probability about 2e-9)."""
    m = _mask(seed=99, keep_prob=keep_prob)
    assert set(np.unique(m)) <= {0, 1}
    n = m.size
    sigma = math.sqrt(keep_prob * (1 - keep_prob) / n)
    assert abs(m.mean() - keep_prob) <= 6 * sigma, (m.mean(), keep_prob, sigma)


def test_keep_prob_one_keeps_everything():
    assert (_mask(keep_prob=1.0) == 1).all()


def test_streaming_forward_uses_the_same_mask_as_fwd():
    """fused_attention_score with a seed applies the mask _fwd reports for that seed: its output
    matches the fp64 reference computed with that mask."""
    rng = np.random.default_rng(31)
    q, k, v, mask = random_inputs(rng, 2, 2, 70, 90, 24, 24, "BNSS")
    _, _, dmask = fa.fused_attention_score_fwd(q, k, v, mask, 0.3, 0.6, seed=8)
    out = fa.fused_attention_score(q, k, v, mask, 0.3, 0.6, seed=8)
    want, _ = ref.forward(q, k, v, mask, 0.3, 0.6, dmask)
    ref.assert_contract(out, want, "streaming forward with dropout")
    without, _ = ref.forward(q, k, v, mask, 0.3, 1.0)
    assert np.abs(out - without).max() > 0.05, "dropout must change the output"


def test_nz_drop_mask_follows_the_npu_byte_order():
    """docs/semantics.md §4: element (b, n, i, j) of the NPU's flat mask is at
    (b*N + n)*Sq*Sk + ((j/16)*(Sq/16) + i/16)*256 + (i%16)*16 + j%16."""
    m = _mask(seed=3, shape=(2, 2, 32, 48))
    flat = fa.format_cast(m, "nz").ravel()
    b, n, sq, sk = m.shape
    bi, ni, ii, jj = np.meshgrid(*[np.arange(s) for s in m.shape], indexing="ij")
    idx = ((bi * n + ni) * sq * sk + ((jj // 16) * (sq // 16) + ii // 16) * 256
           + (ii % 16) * 16 + jj % 16)
    assert np.array_equal(flat[idx], m)
