"""The matrix engines from Python: gemm= on every entry point, gemm_engine(), show_config(), and
FAS_GEMM (read once per process, so its cases run in subprocesses).

Both engines must meet the accuracy contract of docs/semantics.md §2 against the fp64 reference
(fa_reference.py), forward and backward, on random shapes with odd sizes, and draw byte-identical
drop masks. Their outputs are NOT required to be equal: the BLAS sums in its own order."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest

import fa_reference as ref
import fused_attention as fa
from fa_helpers import random_inputs

HERE = os.path.dirname(os.path.abspath(__file__))
ENGINES = ["builtin", "blas"]
BOGUS_SENTENCE = ('FAS_GEMM: "xyz" is not a matrix engine; use auto, builtin, blas or amx '
                  '(or unset it)')


def _shape(rng):
    b, n = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    sq, sk = int(rng.integers(1, 90)), int(rng.integers(1, 90))
    d, dv = int(rng.integers(1, 72)), int(rng.integers(1, 72))
    return b, n, sq, sk, d, dv


@pytest.mark.parametrize("case", range(12))
def test_both_engines_meet_the_contract_with_the_same_drop_mask(case):
    """Random shapes (odd sizes), mask forms and transpose flags; keep_prob < 1 on every other
    case. Each engine's _fwd context, softmax_output and _grad outputs against the fp64
    reference on the same drop mask; the masks of the two engines byte for byte."""
    rng = np.random.default_rng(4200 + case)
    b, n, sq, sk, d, dv = _shape(rng)
    qt, kt, tb = (bool(x) for x in rng.integers(0, 2, 3))
    form = ["B1SS", "BNSS", "11SS", "1NSS", "B11S", "111S", "none"][case % 7]
    q, k, v, mask = random_inputs(rng, b, n, sq, sk, d, dv, form, None, qt, kt, tb)
    scale = float(rng.uniform(0.05, 0.6))
    keep_prob = 0.8 if case % 2 else 1.0
    seed = 1234 + case
    flags = (qt, kt, False, tb, False, False)
    grad = rng.uniform(-1.0, 1.0, (b * sq, n * dv)).astype(np.float16)
    masks = {}
    for gemm in ENGINES:
        score, probs, dmask = fa.fused_attention_score_fwd(q, k, v, mask, scale, keep_prob,
                                                           *flags, seed=seed, gemm=gemm)
        want, p = ref.forward(q, k, v, mask, scale, keep_prob, dmask, qt, kt, False, tb)
        ref.assert_contract(score, want, "%s: _fwd attention_score" % gemm)
        ref.assert_contract(probs, p, "%s: softmax_output" % gemm)
        streaming = fa.fused_attention_score(q, k, v, mask, scale, keep_prob, *flags, seed=seed,
                                             gemm=gemm)
        ref.assert_contract(streaming, want, "%s: streaming attention_score" % gemm)
        masks[gemm] = dmask
        got = fa.fused_attention_score_grad(grad, probs, q, k, v, dmask, scale, keep_prob, qt,
                                            kt, tb, False, gemm=gemm)
        wants = ref.backward(grad, probs, q, k, v, dmask, scale, keep_prob, qt, kt, tb, False)
        for name, g, w in zip(("query_dx", "key_dw", "value_dw"), got, wants):
            ref.assert_contract(g, w, "%s: %s" % (gemm, name))
    assert masks["builtin"].tobytes() == masks["blas"].tobytes(), "drop masks differ"
    if keep_prob < 1.0:
        assert 0 < int(masks["blas"].sum()) < masks["blas"].size or masks["blas"].size < 8


def test_the_engines_are_really_different_paths():
    """Guards the test above against comparing one engine with itself: on a shape with long
    sums the two engines' contexts differ in some last bit (the BLAS sums in its own order).
    Sk = 512: OpenBLAS's kernels sum shorter products in one sequential chain of fused
    multiply-adds, as the builtin engine does, and then give the same bits (Sk = 160 did)."""
    rng = np.random.default_rng(99)
    q, k, v, mask = random_inputs(rng, 2, 4, 96, 512, 64, 64, "B1SS")
    outs = [fa.fused_attention_score(q, k, v, mask, 0.125, 1.0, gemm=g) for g in ENGINES]
    if np.array_equal(outs[0], outs[1]):
        pytest.skip("gemm='blas' gave the builtin engine's bits on this shape: this BLAS (%s) "
                    "sums these products in the builtin chain's order" % fa.blas_info())
    assert not np.array_equal(outs[0], outs[1])


def test_torch_api_takes_gemm():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    import fused_attention.torch_npu as torch_npu

    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.rand(2, 3, 33, 24, generator=g).half().requires_grad_() for _ in range(3))
    outs = {}
    for gemm in ENGINES:
        for t in (q, k, v):
            t.grad = None
        out = torch_npu.npu_fused_attention_score(q, k, v, None, 0.2, 0.7, gemm=gemm, seed=11)
        out.float().sum().backward()
        want, _ = ref.forward(q.detach().numpy(), k.detach().numpy(), v.detach().numpy(), None,
                              0.2, 0.7, torch_npu.npu_fused_attention_score_fwd(
                                  q, k, v, None, 0.2, 0.7, gemm=gemm, seed=11)[2].numpy())
        ref.assert_contract(out.detach().numpy(), want, gemm)
        outs[gemm] = [t.grad.clone() for t in (q, k, v)]
    with pytest.raises(fa.FusedAttentionError) as e:
        torch_npu.npu_fused_attention_score(q, k, v, None, 0.2, 1.0, gemm="mkl")
    assert e.value.status == "FAS_ERR_VALUE" and str(e.value).startswith("gemm: 'mkl'")
    with pytest.raises(fa.FusedAttentionError):
        torch_npu.npu_fused_attention_score_grad(
            torch.zeros(66, 72).half(), torch.zeros(2, 3, 33, 33).half(), q, k, v, None, 0.2, 1.0,
            gemm=3)


@pytest.mark.parametrize("bad", ["mkl", "", "BLAS ", None, 2])
def test_bad_gemm_value_names_the_allowed_ones(bad):
    q = np.zeros((1, 1, 4, 4), np.float16)
    with pytest.raises(fa.FusedAttentionError) as e:
        fa.fused_attention_score(q, q, q, None, 0.5, 1.0, gemm=bad)
    assert e.value.status == "FAS_ERR_VALUE"
    assert str(e.value) == ("gemm: %r is not a matrix engine; use 'auto' (the default: FAS_GEMM, "
                            "else the library's rule), 'builtin', 'blas' or 'amx'" % (bad,))


def test_amx_runs_or_says_unsupported():
    """AMX is optional (the CPU, the OS and the build must have it): it either meets the contract
    or raises FAS_ERR_UNSUPPORTED, never anything else."""
    rng = np.random.default_rng(3)
    q, k, v, mask = random_inputs(rng, 1, 2, 40, 40, 32, 32, "B1SS")
    try:
        out = fa.fused_attention_score(q, k, v, mask, 0.125, 1.0, gemm="amx")
    except fa.FusedAttentionError as e:
        assert e.status == "FAS_ERR_UNSUPPORTED", str(e)
        assert str(e)
        return
    want, _ = ref.forward(q, k, v, mask, 0.125)
    ref.assert_contract(out, want, "amx")


def test_gemm_engine_and_show_config():
    assert fa.gemm_engine() in ("builtin", "blas", "amx")
    if os.environ.get("FAS_GEMM", "").strip().lower() in ENGINES:
        assert fa.gemm_engine() == os.environ["FAS_GEMM"].strip().lower()
    buf = io.StringIO()
    config = fa.show_config(file=buf)
    assert set(config) >= {"version", "library", "gemm_engine", "simd_level", "blas", "threads"}
    assert config["version"] == fa.__version__
    assert config["gemm_engine"] == fa.gemm_engine()
    assert config["simd_level"] == fa.simd_level()
    assert config["blas"] == fa.blas_info() and config["blas"]
    assert isinstance(config["threads"], int) and config["threads"] >= 1
    lines = buf.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "fused_attention", "gemm engine", "SIMD level", "BLAS", "threads"]
    # aligned: every value starts in the same column
    starts = {len(line) - len(line.split(":", 1)[1].lstrip()) for line in lines}
    assert len(starts) == 1
    assert lines[1].split(":", 1)[1].split()[0] == fa.gemm_engine()


def _run(code, **env_overrides):
    env = dict(os.environ)
    env.pop("FAS_GEMM", None)
    env.update(env_overrides)
    env["PYTHONPATH"] = os.pathsep.join(
        [HERE] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)


def test_bogus_fas_gemm_makes_auto_calls_raise_with_the_sentence():
    """FAS_GEMM is read once per process: a subprocess with FAS_GEMM=xyz. Every AUTO call raises
    the library's sentence (FAS_ERR_VALUE); an explicit engine still runs; gemm_engine() says
    "invalid"; show_config() still prints."""
    code = "\n".join([
        "import numpy as np, fused_attention as fa",
        "q = np.ones((1, 2, 8, 4), np.float16)",
        "print(fa.gemm_engine())",
        "for call in (lambda: fa.fused_attention_score(q, q, q, None, 0.5, 1.0),",
        "             lambda: fa.fused_attention_score_fwd(q, q, q, None, 0.5, 1.0)):",
        "    try:",
        "        call()",
        "        print('no error')",
        "    except fa.FusedAttentionError as e:",
        "        print(e.status); print(e)",
        "print(fa.fused_attention_score(q, q, q, None, 0.5, 1.0, gemm='builtin').shape)",
        "fa.show_config()",
    ])
    r = _run(code, FAS_GEMM="xyz")
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0] == "invalid"
    assert out[1:5] == ["FAS_ERR_VALUE", BOGUS_SENTENCE, "FAS_ERR_VALUE", BOGUS_SENTENCE]
    assert out[5] == "(8, 8)"
    assert any(line.startswith("gemm engine:") and "invalid" in line and "FAS_GEMM=xyz" in line
               for line in out[6:])


@pytest.mark.parametrize("value,engine", [("blas", "blas"), ("BUILTIN", "builtin")])
def test_fas_gemm_chooses_the_auto_engine(value, engine):
    r = _run("import fused_attention as fa; print(fa.gemm_engine())", FAS_GEMM=value)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == engine


@pytest.mark.parametrize("n", ["1", "3"])
def test_show_config_threads_follow_omp_num_threads(n):
    """threads=0 means OpenMP's default, so OMP_NUM_THREADS (read by the runtime at start) sets
    the figure show_config() reports."""
    r = _run("import io, fused_attention as fa; print(fa.show_config(file=io.StringIO())"
             "['threads'])", OMP_NUM_THREADS=n)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == n
