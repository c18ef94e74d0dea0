"""precision="npu": the library's model of the NPU's fp16 rounding (library 0.2.0 or later).

With an older library exactly one of the two tests below runs, and the other is reported as
skipped with its reason: the NPU-mode checks never pass silently without having run."""

import numpy as np
import pytest

import fa_reference as ref
import fused_attention as fa
from fa_helpers import random_inputs
from fused_attention import _core, _library

HAS_NPU_MODE = _core.version_tuple >= _library.PRECISION_MIN_VERSION
NEEDS = "precision='npu' needs libfused_attention >= 0.2.0; the loaded library is %s" % (
    fa.__version__)


@pytest.mark.skipif(HAS_NPU_MODE, reason="the loaded library %s has the NPU precision mode"
                    % fa.__version__)
def test_npu_precision_is_refused_by_an_older_library():
    rng = np.random.default_rng(1)
    q, k, v, mask = random_inputs(rng, 1, 2, 32, 32, 16, 16, "B1SS")
    for call in (lambda: fa.fused_attention_score(q, k, v, mask, 0.125, 1.0, precision="npu"),
                 lambda: fa.fused_attention_score_fwd(q, k, v, mask, 0.125, 1.0,
                                                      precision="npu")):
        with pytest.raises(fa.FusedAttentionError) as e:
            call()
        assert e.value.status == "FAS_ERR_UNSUPPORTED"
        assert "0.2.0" in str(e.value) and fa.__version__ in str(e.value)


@pytest.mark.skipif(not HAS_NPU_MODE, reason=NEEDS)
def test_npu_precision_mode():
    """On the NPU's domain (fp16, Sq = Sk, Dv = D, multiples of 16, flags false): results within
    fp16-rounding distance of the fp64 reference (normwise 2^-7: a few fp16 roundings per
    stage), probabilities summing to 1 within 1e-2; outside the domain FAS_ERR_UNSUPPORTED; and
    the overflow the NPU's row-max reduction causes when S = 96 (blocks 2 and 5 of each row never
    take part in the max, docs/precision.md §4) shows up as non-finite probabilities, while the fp32
    mode stays finite."""
    rng = np.random.default_rng(2)
    q, k, v, mask = random_inputs(rng, 2, 2, 64, 64, 32, 32, "B1SS")
    score, probs, dmask = fa.fused_attention_score_fwd(q, k, v, mask, 0.125, 1.0,
                                                       precision="npu")
    want, p = ref.forward(q, k, v, mask, 0.125)
    for got, w in ((score, want), (probs, p)):
        assert np.linalg.norm(got.astype(np.float64) - w) <= 2**-7 * np.linalg.norm(w)
    assert np.abs(probs.astype(np.float64).sum(-1) - 1).max() <= 1e-2
    grad = rng.uniform(-1, 1, score.shape).astype(np.float16)
    got = fa.fused_attention_score_grad(grad, probs, q, k, v, dmask, 0.125, 1.0, precision="npu")
    for g, w in zip(got, ref.backward(grad, probs, q, k, v, dmask, 0.125, 1.0)):
        assert np.linalg.norm(g.astype(np.float64) - w) <= 2**-6 * np.linalg.norm(w)

    odd = random_inputs(rng, 1, 1, 17, 17, 16, 16, "none")
    with pytest.raises(fa.FusedAttentionError) as e:
        fa.fused_attention_score(*odd, 0.125, 1.0, precision="npu")
    assert e.value.status == "FAS_ERR_UNSUPPORTED"

    s = 96  # 6 blocks of 16 keys: blocks 2 and 5 are left out of the row max
    q = np.zeros((1, 1, s, 16), np.float16)
    k = np.zeros((1, 1, s, 16), np.float16)
    v = np.ones((1, 1, s, 16), np.float16)
    q[..., 0] = 1.0
    k[0, 0, 40, 0] = 20.0  # key 40 is in block 2; its logit exceeds the others by 20 > ln 65504
    _, probs_npu, _ = fa.fused_attention_score_fwd(q, k, v, None, 1.0, 1.0, precision="npu")
    _, probs_fp32, _ = fa.fused_attention_score_fwd(q, k, v, None, 1.0, 1.0)
    assert not np.isfinite(probs_npu.astype(np.float32)).all()
    assert np.isfinite(probs_fp32.astype(np.float32)).all()
