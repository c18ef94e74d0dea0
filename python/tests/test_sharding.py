"""Sharded calls from the numpy API (docs/design.md §10): shards of the heads and batches of a call,
each told its place (batch_offset, head_offset, global_num_heads) and given the same seed,
reproduce the whole call byte for byte, dropout included; the backward of a shard is the
whole backward's slice. The torch side runs over processes in
examples/torch_distributed_sharded.py (CTest python_torch_distributed_2/_3)."""

import numpy as np
import pytest

import fused_attention as fa
from fa_helpers import random_inputs


def _cuts(rng, n):
    """Random contiguous cut points of range(n): [0, ..., n]."""
    inner = sorted(set(int(x) for x in rng.integers(1, n, size=min(2, n - 1)))) if n > 1 else []
    return [0] + inner + [n]


@pytest.mark.parametrize("case", range(6))
def test_shards_reproduce_the_whole_call(case):
    rng = np.random.default_rng(700 + case)
    b, n = int(rng.integers(1, 5)), int(rng.integers(1, 6))
    sq, sk = int(rng.integers(1, 60)), int(rng.integers(1, 60))
    d, dv = int(rng.integers(1, 40)), int(rng.integers(1, 40))
    q, k, v, mask = random_inputs(rng, b, n, sq, sk, d, dv, "B1SS")
    keep_prob, seed, scale = 0.75, 31337 + case, 0.2
    gemm = ("auto", "builtin", "blas")[case % 3]
    score, probs, dmask = fa.fused_attention_score_fwd(q, k, v, mask, scale, keep_prob,
                                                       seed=seed, gemm=gemm)
    stream = fa.fused_attention_score(q, k, v, mask, scale, keep_prob, seed=seed, gemm=gemm)
    grad = rng.uniform(-1, 1, score.shape).astype(np.float16)
    dq, dk, dv_ = fa.fused_attention_score_grad(grad, probs, q, k, v, dmask, scale, keep_prob,
                                                gemm=gemm)

    def heads(x, rows, cols):  # [b*rows, n*cols] -> [b, n, rows, cols]
        return x.reshape(-1, rows, x.shape[1] // cols, cols).transpose(0, 2, 1, 3)

    got = {name: np.zeros_like(x) for name, x in
           (("score", heads(score, sq, dv)), ("stream", heads(stream, sq, dv)),
            ("probs", probs), ("dmask", dmask), ("dq", heads(dq, sq, d)),
            ("dk", heads(dk, sk, d)), ("dv", heads(dv_, sk, dv)))}
    bc, hc = _cuts(rng, b), _cuts(rng, n)
    for b0, b1 in zip(bc, bc[1:]):
        for h0, h1 in zip(hc, hc[1:]):
            sl = (slice(b0, b1), slice(h0, h1))
            kw = dict(seed=seed, gemm=gemm, batch_offset=b0, head_offset=h0, global_num_heads=n)
            qs, ks, vs, ms = q[sl], k[sl], v[sl], mask[b0:b1]
            s_score, s_probs, s_dmask = fa.fused_attention_score_fwd(qs, ks, vs, ms, scale,
                                                                     keep_prob, **kw)
            s_stream = fa.fused_attention_score(qs, ks, vs, ms, scale, keep_prob, **kw)
            s_grad = heads(grad, sq, dv)[sl].transpose(0, 2, 1, 3).reshape(
                (b1 - b0) * sq, (h1 - h0) * dv)
            s_dq, s_dk, s_dv = fa.fused_attention_score_grad(s_grad, s_probs, qs, ks, vs,
                                                             s_dmask, scale, keep_prob,
                                                             gemm=gemm)
            got["score"][sl] = heads(s_score, sq, dv)
            got["stream"][sl] = heads(s_stream, sq, dv)
            got["probs"][sl], got["dmask"][sl] = s_probs, s_dmask
            got["dq"][sl], got["dk"][sl] = heads(s_dq, sq, d), heads(s_dk, sk, d)
            got["dv"][sl] = heads(s_dv, sk, dv)
    want = {"score": heads(score, sq, dv), "stream": heads(stream, sq, dv), "probs": probs,
            "dmask": dmask, "dq": heads(dq, sq, d), "dk": heads(dk, sk, d),
            "dv": heads(dv_, sk, dv)}
    for name in want:
        assert got[name].tobytes() == np.ascontiguousarray(want[name]).tobytes(), name
    if dmask.size >= 64:
        assert 0 < dmask.sum() < dmask.size  # dropout really drew bits


def test_a_shard_without_its_place_draws_other_bits():
    """The test above can fail: a shard that is not told its place draws the first heads'
    bits, not its own."""
    rng = np.random.default_rng(5)
    q, k, v, mask = random_inputs(rng, 2, 3, 40, 40, 16, 16, "B1SS")
    _, _, whole = fa.fused_attention_score_fwd(q, k, v, mask, 0.2, 0.5, seed=9)
    _, _, placed = fa.fused_attention_score_fwd(q[1:, 1:], k[1:, 1:], v[1:, 1:], mask[1:], 0.2,
                                                0.5, seed=9, batch_offset=1, head_offset=1,
                                                global_num_heads=3)
    _, _, unplaced = fa.fused_attention_score_fwd(q[1:, 1:], k[1:, 1:], v[1:, 1:], mask[1:], 0.2,
                                                  0.5, seed=9)
    assert placed.tobytes() == np.ascontiguousarray(whole[1:, 1:]).tobytes()
    assert unplaced.tobytes() != placed.tobytes()


def test_bad_places_carry_the_library_sentence():
    q = np.zeros((1, 2, 8, 4), np.float16)
    with pytest.raises(fa.FusedAttentionError) as e:
        fa.fused_attention_score(q, q, q, None, 0.5, 0.9, seed=1, head_offset=1,
                                 global_num_heads=2)
    assert e.value.status == "FAS_ERR_VALUE"
    assert str(e.value) == "options: head_offset 1 + N 2 exceeds global_num_heads 2"
    with pytest.raises(fa.FusedAttentionError) as e:
        fa.fused_attention_score_fwd(q, q, q, None, 0.5, 0.9, seed=1, batch_offset=-1)
    assert str(e.value) == "options: batch_offset is -1, must be >= 0"
    with pytest.raises(fa.FusedAttentionError) as e:
        fa.fused_attention_score(q, q, q, None, 0.5, 0.9, head_offset=2**63)
    assert e.value.status == "FAS_ERR_VALUE" and str(e.value).startswith("head_offset: ")
