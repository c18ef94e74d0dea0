"""fused_attention.torch_npu: torch_npu's signatures, autograd against fp64 autograd of the
unfused pipeline, the _fwd/_grad round trip, dtypes, errors, and the documentation example.

Skipped as a whole (and reported so) when torch is not installed."""

import inspect
import os
import subprocess
import sys
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (apt-get install "
                            "python3-torch, or pip install torch)")

import fa_reference as ref  # noqa: E402
import fused_attention as fa  # noqa: E402
import fused_attention.torch_npu as torch_npu  # noqa: E402
from conftest import INSTALLED  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FLAGS = ["query_transpose", "key_transpose", "bmm_score_transpose_a", "bmm_score_transpose_b",
         "value_transpose", "dx_transpose"]
# torch_npu's schemas (op-plugin functions yaml), written out here to compare against.
TORCH_NPU_SIGNATURES = {
    "npu_fused_attention_score": ["query_layer", "key_layer", "value_layer", "attention_mask",
                                  "scale", "keep_prob"] + FLAGS,
    "npu_fused_attention_score_fwd": ["query_layer", "key_layer", "value_layer",
                                      "attention_mask", "scale", "keep_prob"] + FLAGS,
    "npu_fused_attention_score_grad": ["grad_output", "softmax_output", "query_layer",
                                       "key_layer", "value_layer", "mask", "scale", "keep_prob",
                                       "query_transpose", "key_transpose", "value_transpose",
                                       "dx_transpose"],
    "npu_format_cast": ["self", "acl_format"],
}
# This library's keyword-only extras (never positional, so torch_npu calls are unaffected)
EXTRAS = {
    "npu_fused_attention_score": ["gemm", "seed", "batch_offset", "head_offset",
                                  "global_num_heads"],
    "npu_fused_attention_score_fwd": ["gemm", "seed", "batch_offset", "head_offset",
                                      "global_num_heads"],
    "npu_fused_attention_score_grad": ["gemm"],
    "npu_format_cast": [],
}


@pytest.mark.parametrize("name", sorted(TORCH_NPU_SIGNATURES))
def test_signatures_are_torch_npus(name):
    params = dict(inspect.signature(getattr(torch_npu, name)).parameters)
    extras = [p for p in params if params[p].kind == inspect.Parameter.KEYWORD_ONLY]
    assert extras == EXTRAS[name]
    for p in extras:
        del params[p]
    assert list(params) == TORCH_NPU_SIGNATURES[name]
    for p in params.values():
        assert p.kind == p.POSITIONAL_OR_KEYWORD
        if p.name.endswith("_transpose") or p.name.startswith("bmm_score"):
            assert p.default is False, p.name
        else:
            assert p.default is p.empty, p.name


def _inputs(b, n, sq, sk, d, dv, dtype, qt=False, kt=False, vt=False, mask_shape="B1SS",
            seed=0):
    g = torch.Generator().manual_seed(seed)

    def u(shape, lo, hi):
        return (torch.rand(shape, generator=g, dtype=torch.float64) * (hi - lo) + lo).to(dtype)
    q = u((b, n, d, sq) if qt else (b, n, sq, d), -1.5, 1.5)
    k = u((b, n, d, sk) if kt else (b, n, sk, d), -1.5, 1.5)
    v = u((b, n, dv, sk) if vt else (b, n, sk, dv), -1.0, 1.0)
    shapes = {"B1SS": (b, 1, sq, sk), "B11S": (b, 1, 1, sk), "BNSS": (b, n, sq, sk)}
    mask = None if mask_shape is None else u(shapes[mask_shape], -3.0, 1.0)
    w = u((b * sq, n * dv), -1.0, 1.0)  # weights of the loss: a random grad_output
    return q, k, v, mask, w


def _unfused_fp64(q, k, v, mask, scale, keep_prob, dmask, qt, kt, tb):
    """The unfused pipeline in fp64 torch ops, differentiated by torch's own autograd."""
    qq = q.transpose(-1, -2) if qt else q
    kk = k.transpose(-1, -2) if kt else k
    vv = v.transpose(-1, -2) if tb else v
    x = torch.matmul(qq, kk.transpose(-1, -2)) * scale
    if mask is not None:
        x = x + mask
    p = torch.softmax(x, dim=-1)
    if dmask is not None:
        p = p * dmask / keep_prob
    c = torch.matmul(p, vv)
    b, n, sq, dv = c.shape
    return c.permute(0, 2, 1, 3).reshape(b * sq, n * dv)


def _normwise(got, want):
    got, want = got.detach().double(), want.detach().double()
    return float(torch.linalg.norm(got - want) / torch.linalg.norm(want))


AUTOGRAD_CASES = [
    # (b, n, sq, sk, d, dv, dtype, qt, kt, tb, mask, keep_prob)
    (2, 3, 40, 40, 32, 32, torch.float16, False, False, False, "B1SS", 1.0),
    (2, 2, 33, 47, 24, 17, torch.float16, True, False, False, "B11S", 1.0),
    (1, 3, 29, 31, 16, 16, torch.float16, False, True, False, "BNSS", 0.8),
    (2, 2, 50, 20, 8, 12, torch.float16, False, False, True, None, 0.6),
    (2, 2, 64, 64, 32, 32, torch.float32, True, True, True, "B1SS", 0.9),
    (1, 2, 48, 48, 16, 16, torch.bfloat16, False, False, False, "B1SS", 1.0),
]


@pytest.mark.parametrize("case", AUTOGRAD_CASES,
                         ids=["%s-%s" % (c[6], "".join("qkv"[i] for i in range(3) if c[7 + i])
                                         or "plain") for c in AUTOGRAD_CASES])
def test_autograd_against_fp64_autograd_of_the_unfused_pipeline(case):
    """Forward output and dq, dk, dv within normwise relative error 2^-8 of fp64 autograd
    (2^-6 for bfloat16, whose 8 significand bits give every stored value, the saved P included,
    a unit roundoff of 2^-9 instead of 2^-12). With dropout, torch's generator is seeded and
    the reference uses the mask _fwd draws from the same seed."""
    b, n, sq, sk, d, dv, dtype, qt, kt, tb, mask_form, keep_prob = case
    q, k, v, mask, w = _inputs(b, n, sq, sk, d, dv, dtype, qt, kt, tb, mask_form, seed=sq)
    scale = 0.2
    dmask = None
    if keep_prob < 1.0:
        torch.manual_seed(77)
        dmask = torch_npu.npu_fused_attention_score_fwd(q, k, v, mask, scale, keep_prob, qt, kt,
                                                        False, tb)[2]
        torch.manual_seed(77)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out = torch_npu.npu_fused_attention_score(*leaves, mask, scale, keep_prob, qt, kt, False, tb)
    assert out.dtype == dtype and out.shape == (b * sq, n * dv)
    (out.double() * w.double()).sum().backward()

    ref_leaves = [t.double().requires_grad_() for t in (q, k, v)]
    want = _unfused_fp64(*ref_leaves, None if mask is None else mask.double(), scale, keep_prob,
                         None if dmask is None else dmask.double(), qt, kt, tb)
    (want * w.double()).sum().backward()

    tol = 2.0**-6 if dtype == torch.bfloat16 else 2.0**-8
    assert _normwise(out, want) <= tol, "forward"
    for name, got, ref_leaf in zip("qkv", leaves, ref_leaves):
        assert got.grad is not None and got.grad.shape == got.shape, name
        assert got.grad.dtype == dtype, name
        err = _normwise(got.grad, ref_leaf.grad)
        assert err <= tol, "d%s: normwise error %.3g > %.3g" % (name, err, tol)


def test_fwd_and_grad_round_trip_equals_autograd():
    """What autograd does, done by hand with _fwd and _grad from the same seed, gives the same
    bits; _grad's 2-D layout [B*S, N*D] reshapes to autograd's [B, N, S, D]."""
    b, n, s, d = 2, 3, 32, 16
    q, k, v, mask, w = _inputs(b, n, s, s, d, d, torch.float16, seed=3)
    torch.manual_seed(11)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out = torch_npu.npu_fused_attention_score(*leaves, mask, 0.125, 0.7)
    out.backward(w)

    torch.manual_seed(11)
    score, probs, dmask = torch_npu.npu_fused_attention_score_fwd(q, k, v, mask, 0.125, 0.7)
    assert torch.equal(score, out.detach())
    assert probs.shape == (b, n, s, s) and probs.dtype == torch.float16
    assert dmask.shape == (b, n, s, s) and dmask.dtype == torch.uint8
    grads = torch_npu.npu_fused_attention_score_grad(w, probs, q, k, v, dmask, 0.125, 0.7)
    for g, leaf in zip(grads, leaves):
        assert g.shape == (b * s, n * d) and g.dtype == torch.float16
        as_4d = g.reshape(b, s, n, d).permute(0, 2, 1, 3)
        assert torch.equal(as_4d, leaf.grad)


def test_dropout_follows_torch_manual_seed():
    """torch.manual_seed decides the mask (and the library's own generator does not); without
    reseeding, successive calls draw different masks."""
    q, k, v, mask, _ = _inputs(2, 2, 32, 32, 16, 16, torch.float16, seed=4)

    def draw():
        return torch_npu.npu_fused_attention_score_fwd(q, k, v, mask, 0.2, 0.6)[2]
    torch.manual_seed(5)
    fa.manual_seed(1)
    first, second = draw(), draw()
    torch.manual_seed(5)
    fa.manual_seed(2)
    assert torch.equal(draw(), first) and torch.equal(draw(), second)
    assert not torch.equal(first, second)
    torch.manual_seed(5)
    with torch.no_grad():  # the streaming forward draws the same way
        streamed = torch_npu.npu_fused_attention_score(q, k, v, mask, 0.2, 0.6)
    want, _ = ref.forward(q.numpy(), k.numpy(), v.numpy(), mask.numpy(), 0.2, 0.6,
                          first.numpy())
    ref.assert_contract(streamed.numpy(), want, "streaming forward, same torch seed")


def test_checkpoint_recomputes_the_same_dropout_mask():
    """torch.utils.checkpoint restores torch's RNG state before recomputing the forward, so the
    gradients equal those of the plain autograd run from the same seed."""
    import torch.utils.checkpoint as checkpoint
    q, k, v, mask, w = _inputs(2, 2, 32, 32, 16, 16, torch.float32, seed=6)

    def grads(use_checkpoint):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        torch.manual_seed(21)

        def f(a, b, c):
            return torch_npu.npu_fused_attention_score(a, b, c, mask, 0.2, 0.5)
        out = checkpoint.checkpoint(f, *leaves, use_reentrant=False) if use_checkpoint \
            else f(*leaves)
        out.backward(w)
        return [t.grad for t in leaves]
    for plain, recomputed in zip(grads(False), grads(True)):
        assert torch.equal(plain, recomputed)


def test_no_grad_path_streams_and_matches_reference():
    q, k, v, mask, _ = _inputs(2, 2, 70, 90, 16, 24, torch.float16, seed=5)
    with torch.no_grad():
        out = torch_npu.npu_fused_attention_score(q, k, v, mask, 0.3, 1.0)
    assert out.grad_fn is None and out.dtype == torch.float16
    want, _ = ref.forward(q.numpy(), k.numpy(), v.numpy(), mask.numpy(), 0.3)
    ref.assert_contract(out.numpy(), want, "torch forward")


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.bfloat16])
def test_output_dtype_is_the_querys(dtype):
    q, k, v, mask, _ = _inputs(1, 2, 16, 16, 8, 8, dtype)
    out = torch_npu.npu_fused_attention_score(q, k, v, mask, 0.3, 1.0)
    assert out.dtype == dtype
    a, p, m = torch_npu.npu_fused_attention_score_fwd(q, k, v, mask, 0.3, 1.0)
    assert a.dtype == dtype and p.dtype == dtype and m.dtype == torch.uint8


def test_non_contiguous_tensors():
    q, k, v, mask, _ = _inputs(2, 2, 24, 24, 16, 16, torch.float16, seed=9)
    plain = torch_npu.npu_fused_attention_score(q, k, v, mask, 0.3, 1.0)
    q_view = q.transpose(-1, -2).contiguous().transpose(-1, -2)
    assert not q_view.is_contiguous()
    assert torch.equal(torch_npu.npu_fused_attention_score(q_view, k, v, mask, 0.3, 1.0), plain)


def test_mask_gets_no_gradient():
    q, k, v, mask, w = _inputs(1, 2, 16, 16, 8, 8, torch.float32)
    leaves = [t.clone().requires_grad_() for t in (q, k, v, mask)]
    torch_npu.npu_fused_attention_score(*leaves, 0.3, 1.0).backward(w)
    assert leaves[3].grad is None and leaves[0].grad is not None


def test_transpose_a_forward_only():
    q, k, v, mask, w = _inputs(1, 2, 16, 16, 8, 8, torch.float16)
    with torch.no_grad():
        out = torch_npu.npu_fused_attention_score(q, k, v, mask, 0.3, 1.0, False, False, True)
    want, _ = ref.forward(q.numpy(), k.numpy(), v.numpy(), mask.numpy(), 0.3, transpose_a=True)
    ref.assert_contract(out.numpy(), want, "bmm_score_transpose_a")
    with pytest.raises(fa.FusedAttentionError) as e:
        torch_npu.npu_fused_attention_score(q.requires_grad_(), k, v, mask, 0.3, 1.0, False,
                                            False, True)
    assert e.value.status == "FAS_ERR_UNSUPPORTED"
    assert str(e.value).startswith("bmm_score_transpose_a: ")


def test_format_cast_is_identity():
    t = torch.rand(3, 5)
    assert torch_npu.npu_format_cast(t, 29) is t
    assert torch_npu.npu_format_cast(t, 2) is t
    with pytest.raises(fa.FusedAttentionError) as e:
        torch_npu.npu_format_cast(t, 3)
    assert e.value.status == "FAS_ERR_FORMAT"


def test_errors_are_the_librarys():
    q, k, v, mask, _ = _inputs(2, 3, 16, 16, 8, 8, torch.float16)
    with pytest.raises(fa.FusedAttentionError) as e:
        torch_npu.npu_fused_attention_score(q, k[..., :6], v, mask, 0.3, 1.0)
    assert e.value.status == "FAS_ERR_SHAPE"
    assert str(e.value) == "key_layer: dims[3] is 6 but query_layer's D (dims[3]) is 8"
    with pytest.raises(fa.FusedAttentionError) as e:
        torch_npu.npu_fused_attention_score(q.double(), k, v, mask, 0.3, 1.0)
    assert e.value.library_message == "query_layer: dtype 11 (ACL DOUBLE) is not supported (FLOAT16 = 1, FLOAT = 0, BF16 = 27; UINT8 = 4 for drop masks)"
    assert str(e.value) == ("query_layer: dtype 11 (ACL DOUBLE, Python torch.float64) is not "
                            "supported; pass float16 (ACL FLOAT16, 1), float32 (FLOAT, 0) or "
                            "bfloat16 (BF16, 27)")
    with pytest.raises(fa.FusedAttentionError) as e:
        torch_npu.npu_fused_attention_score(q, k, v, mask, 0.3, 0.0)
    assert e.value.status == "FAS_ERR_VALUE"
    with pytest.raises(fa.FusedAttentionError) as e:
        torch_npu.npu_fused_attention_score_grad(q, q, q, k, v, None, 0.3, 1.0)
    assert e.value.status == "FAS_ERR_SHAPE"
    with pytest.raises(TypeError, match="query_layer: expected a torch.Tensor"):
        torch_npu.npu_fused_attention_score(q.numpy(), k, v, mask, 0.3, 1.0)


def test_documentation_example_runs_and_prints_like_torch():
    """examples/torch_npu_example.py: q, k, v [24, 16, 512, 64] and mask [24, 16, 512, 512]
    uniform in [0, 1), scale 0.125, keep_prob 0.5. It prints the [12288, 1024] float16 result as
    torch prints a tensor; with v uniform in [0, 1) the context values cluster around 0.5."""
    script = os.path.join(REPO_ROOT, "examples", "torch_npu_example.py")
    env = dict(os.environ)
    if not INSTALLED:  # else the installed package, as a user runs it
        env["PYTHONPATH"] = os.pathsep.join(
            [os.path.join(REPO_ROOT, "python")] + [p for p in [env.get("PYTHONPATH")] if p])
    start = time.perf_counter()
    r = subprocess.run([sys.executable, script], capture_output=True, text=True, env=env,
                       timeout=120)
    elapsed = time.perf_counter() - start
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("tensor([[")
    assert "dtype=torch.float16)" in r.stdout
    assert any(line.strip() == "...," for line in lines)
    values = [float(x) for line in lines if line.lstrip().startswith(("tensor([[", "["))
              for x in line.replace("tensor(", "").strip(" [],").split(",")
              if x.strip() not in ("...", "")]
    assert len(values) >= 30
    assert 0.3 < float(np.mean(values)) < 0.7 and all(0.0 <= x <= 1.5 for x in values)
    assert "[24, 16, 512, 64]" in r.stdout and "[24, 16, 512, 512]" in r.stdout
    assert "result [12288, 1024] torch.float16" in r.stdout
    assert elapsed < 60, "the example took %.1f s" % elapsed
