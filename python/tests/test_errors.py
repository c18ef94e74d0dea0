"""Every invalid argument raises FusedAttentionError carrying the library's own sentence (the one
fas_last_error() holds) and the right status name. The expected sentences are written here from
the library's documented checks. A dtype error's message is made clearer on the Python side (it
names the ACL and Python dtypes and says "not supported" for an id ACL knows); the library's
sentence stays in ``library_message``."""

import numpy as np
import pytest

import fused_attention as fa
from fa_helpers import last_library_error

B, N, S, D = 2, 3, 16, 8

_FLOATS = "pass float16 (ACL FLOAT16, 1), float32 (FLOAT, 0) or bfloat16 (BF16, 27)"
# library sentence -> the message Python raises
CLEARER = {
    "query_layer: dtype 11 (ACL DOUBLE) is not supported (FLOAT16 = 1, FLOAT = 0, BF16 = 27; UINT8 = 4 for drop masks)":
        "query_layer: dtype 11 (ACL DOUBLE, Python float64) is not supported; " + _FLOATS,
    "query_layer: dtype 4 is not a float dtype (FLOAT16 = 1, FLOAT = 0, BF16 = 27)":
        "query_layer: dtype 4 (ACL UINT8, Python uint8) is not supported; " + _FLOATS,
    "attention_mask: dtype 3 (ACL INT32) is not supported (FLOAT16 = 1, FLOAT = 0, BF16 = 27; UINT8 = 4 for drop masks)":
        "attention_mask: dtype 3 (ACL INT32, Python int32) is not supported; " + _FLOATS,
    "drop_mask: dtype 1 must be UINT8 (4)":
        "drop_mask: dtype 1 (ACL FLOAT16, Python float16) is not supported for a drop mask; "
        "pass uint8 (ACL UINT8, 4)",
}


def _check_sentence(error, status, sentence):
    assert error.status == status
    assert error.library_message == sentence
    assert error.library_message == last_library_error(), "must be fas_last_error()'s"
    assert str(error) == CLEARER.get(sentence, sentence)


def _inputs(**over):
    x = dict(q=np.zeros((B, N, S, D), np.float16), k=np.zeros((B, N, S, D), np.float16),
             v=np.zeros((B, N, S, D), np.float16), mask=np.zeros((B, 1, S, S), np.float16))
    x.update(over)
    return x


def _fwd(scale=0.125, keep_prob=1.0, flags=(), **over):
    x = _inputs(**{k: v for k, v in over.items() if k in ("q", "k", "v", "mask")})
    kw = {k: v for k, v in over.items() if k not in ("q", "k", "v", "mask")}
    return fa.fused_attention_score(x["q"], x["k"], x["v"], x["mask"], scale, keep_prob, *flags,
                                    **kw)


FORWARD_CASES = [
    # (id, call, status, exact library sentence)
    ("q float64", lambda: _fwd(q=np.zeros((B, N, S, D))), "FAS_ERR_DTYPE",
     "query_layer: dtype 11 (ACL DOUBLE) is not supported (FLOAT16 = 1, FLOAT = 0, BF16 = 27; UINT8 = 4 for drop masks)"),
    ("q uint8", lambda: _fwd(q=np.zeros((B, N, S, D), np.uint8)), "FAS_ERR_DTYPE",
     "query_layer: dtype 4 is not a float dtype (FLOAT16 = 1, FLOAT = 0, BF16 = 27)"),
    ("mask int32", lambda: _fwd(mask=np.zeros((B, 1, S, S), np.int32)), "FAS_ERR_DTYPE",
     "attention_mask: dtype 3 (ACL INT32) is not supported (FLOAT16 = 1, FLOAT = 0, BF16 = 27; UINT8 = 4 for drop masks)"),
    ("key D", lambda: _fwd(k=np.zeros((B, N, S, 6), np.float16)), "FAS_ERR_SHAPE",
     "key_layer: dims[3] is 6 but query_layer's D (dims[3]) is 8"),
    ("q rank", lambda: _fwd(q=np.zeros((N, S, D), np.float16)), "FAS_ERR_SHAPE",
     "query_layer: ndim is 3 but must be 4"),
    ("key batch", lambda: _fwd(k=np.zeros((1, N, S, D), np.float16)), "FAS_ERR_SHAPE",
     "key_layer: dims[0] is 1 but query_layer's B is 2"),
    ("value Sk", lambda: _fwd(v=np.zeros((B, N, S - 1, D), np.float16)), "FAS_ERR_SHAPE",
     "value_layer: dims[2] is 15 but key_layer's Sk is 16"),
    ("mask batch", lambda: _fwd(mask=np.zeros((3, 1, S, S), np.float16)), "FAS_ERR_SHAPE",
     "attention_mask: dims[0] is 3 but must be 1 or B = 2"),
    ("mask Sk", lambda: _fwd(mask=np.zeros((B, 1, S, S - 1), np.float16)), "FAS_ERR_SHAPE",
     "attention_mask: dims[3] is 15 but Sk is 16"),
    ("padding mask with heads", lambda: _fwd(mask=np.zeros((B, N, 1, S), np.float16)),
     "FAS_ERR_SHAPE",
     "attention_mask: a key padding mask [B|1, 1, 1, Sk] must have dims[1] = 1, not 3"),
    ("transpose_a needs Sq == Sk",
     lambda: _fwd(q=np.zeros((B, N, 5, D), np.float16), k=np.zeros((B, N, 7, D), np.float16),
                  v=np.zeros((B, N, 7, D), np.float16), mask=None,
                  flags=(False, False, True)), "FAS_ERR_SHAPE",
     "bmm_score_transpose_a: needs Sq == Sk but Sq is 5 and Sk is 7"),
    ("zero dim", lambda: _fwd(q=np.zeros((B, N, 0, D), np.float16)), "FAS_ERR_SHAPE",
     "query_layer: dims[2] is 0, dims must be >= 1"),
    ("rank 9", lambda: _fwd(q=np.zeros((1,) * 9, np.float16)), "FAS_ERR_SHAPE",
     "query_layer: ndim is 9, outside 0..8"),
    ("keep_prob 0", lambda: _fwd(keep_prob=0.0), "FAS_ERR_VALUE",
     "keep_prob: 0 is outside (0, 1]"),
    ("keep_prob 1.5", lambda: _fwd(keep_prob=1.5), "FAS_ERR_VALUE",
     "keep_prob: 1.5 is outside (0, 1]"),
    ("keep_prob nan", lambda: _fwd(keep_prob=float("nan")), "FAS_ERR_VALUE",
     "keep_prob: nan is outside (0, 1]"),
    ("scale nan", lambda: _fwd(scale=float("nan")), "FAS_ERR_VALUE",
     "scale: nan is not a finite number"),
    ("scale inf", lambda: _fwd(scale=float("inf")), "FAS_ERR_VALUE",
     "scale: inf is not a finite number"),
    ("scale huge int", lambda: _fwd(scale=10**400), "FAS_ERR_VALUE",
     "scale: inf is not a finite number"),
    ("scale beyond fp32", lambda: _fwd(scale=1e300), "FAS_ERR_VALUE",
     "scale: 1e+300 is beyond the fp32 range the pipeline computes in (|scale| <= 3.4028234663852886e+38)"),
    ("threads negative", lambda: _fwd(threads=-1), "FAS_ERR_VALUE",
     "options: num_threads is -1, must be >= 0"),
]


@pytest.mark.parametrize("call,status,sentence", [c[1:] for c in FORWARD_CASES],
                         ids=[c[0] for c in FORWARD_CASES])
def test_forward_errors_carry_the_library_sentence(call, status, sentence):
    with pytest.raises(fa.FusedAttentionError) as e:
        call()
    assert isinstance(e.value, ValueError)
    _check_sentence(e.value, status, sentence)


def test_fwd_dtype_error_names_the_dtype():
    """_fwd reports the same sentences; a dtype error names the ACL and Python dtypes."""
    x = _inputs(q=np.zeros((B, N, S, D)))
    with pytest.raises(fa.FusedAttentionError) as e:
        fa.fused_attention_score_fwd(x["q"], x["k"], x["v"], x["mask"], 0.1, 1.0)
    _check_sentence(e.value, "FAS_ERR_DTYPE", "query_layer: dtype 11 (ACL DOUBLE) is not supported (FLOAT16 = 1, FLOAT = 0, BF16 = 27; UINT8 = 4 for drop masks)")
    assert "float64" in str(e.value) and "DOUBLE" in str(e.value)
    assert "not supported" in str(e.value)


def _grad(keep_prob=1.0, flags=(), precision="fp32", **over):
    g = np.zeros((B * S, N * D), np.float16)
    p = np.zeros((B, N, S, S), np.float16)
    m = np.ones((B, N, S, S), np.uint8)
    x = dict(g=g, p=p, m=m, **_inputs())
    x.update(over)
    return fa.fused_attention_score_grad(x["g"], x["p"], x["q"], x["k"], x["v"], x["m"], 0.125,
                                         keep_prob, *flags, precision=precision)


GRAD_CASES = [
    ("drop mask missing", lambda: _grad(keep_prob=0.5, m=None), "FAS_ERR_NULL_POINTER",
     "drop_mask: NULL but keep_prob is 0.5 < 1"),
    ("drop mask float16", lambda: _grad(m=np.ones((B, N, S, S), np.float16)), "FAS_ERR_DTYPE",
     "drop_mask: dtype 1 must be UINT8 (4)"),
    ("drop mask heads", lambda: _grad(m=np.ones((B, 1, S, S), np.uint8)), "FAS_ERR_SHAPE",
     "drop_mask: dims[1] is 1 but N is 3"),
    ("grad_output columns", lambda: _grad(g=np.zeros((B * S, N * D - 1), np.float16)),
     "FAS_ERR_SHAPE", "grad_output: dims[1] is 23 but N*Dv is 24"),
    ("grad_output not transposed", lambda: _grad(flags=(False, False, False, True)),
     "FAS_ERR_SHAPE", "grad_output: dims[0] is 32 but N*Dv (dx_transpose) is 24"),
    ("softmax_output Sk", lambda: _grad(p=np.zeros((B, N, S, S - 1), np.float16)),
     "FAS_ERR_SHAPE", "softmax_output: dims[3] is 15 but Sk is 16"),
    ("grad keep_prob 0", lambda: _grad(keep_prob=0.0), "FAS_ERR_VALUE",
     "keep_prob: 0 is outside (0, 1]"),
    ("grad q float64", lambda: _grad(q=np.zeros((B, N, S, D))), "FAS_ERR_DTYPE",
     "query_layer: dtype 11 (ACL DOUBLE) is not supported (FLOAT16 = 1, FLOAT = 0, BF16 = 27; UINT8 = 4 for drop masks)"),
]


@pytest.mark.parametrize("call,status,sentence", [c[1:] for c in GRAD_CASES],
                         ids=[c[0] for c in GRAD_CASES])
def test_grad_errors_carry_the_library_sentence(call, status, sentence):
    with pytest.raises(fa.FusedAttentionError) as e:
        call()
    _check_sentence(e.value, status, sentence)


def test_checks_python_alone_can_make():
    """Problems the library cannot see: values that do not fit their C field, an unknown
    precision mode, objects with no ACL dtype. Each names the argument."""
    with pytest.raises(fa.FusedAttentionError) as e:
        _fwd(threads=2**40)
    assert e.value.status == "FAS_ERR_VALUE" and str(e.value).startswith("threads: ")
    with pytest.raises(fa.FusedAttentionError) as e:
        _fwd(seed=-1)
    assert e.value.status == "FAS_ERR_VALUE" and str(e.value).startswith("seed: ")
    with pytest.raises(fa.FusedAttentionError) as e:
        _fwd(seed=2**64)
    assert e.value.status == "FAS_ERR_VALUE"
    for bad in ("fp16", "NPU", "", None, 1):
        with pytest.raises(fa.FusedAttentionError) as e:
            _fwd(precision=bad)
        assert e.value.status == "FAS_ERR_VALUE" and str(e.value).startswith("precision: ")
    with pytest.raises(fa.FusedAttentionError) as e:
        _grad(precision="fp64")
    assert e.value.status == "FAS_ERR_VALUE"
    with pytest.raises(TypeError, match="query_layer: numpy dtype object"):
        _fwd(q=np.empty((B, N, S, D), dtype=object))
    with pytest.raises(TypeError, match="scale: must be a real number"):
        _fwd(scale="0.5")
    with pytest.raises(TypeError, match="threads: must be an integer, not float"):
        _fwd(threads=1.5)
    with pytest.raises(TypeError, match="seed: must be an integer, not str"):
        _fwd(seed="7")


def test_no_error_leaves_a_sentence_behind():
    with pytest.raises(fa.FusedAttentionError):
        _fwd(keep_prob=0.0)
    out = _fwd()
    assert out.shape == (B * S, N * D)
    assert last_library_error() == ""


def test_random_bad_inputs_never_crash():
    """300 random argument mixes (sizes 0..3, ranks 2..5, assorted dtypes, flags, scalars):
    each call returns a result or raises FusedAttentionError/TypeError, never crashes."""
    rng = np.random.default_rng(404)
    dtypes = [np.float16, np.float32, np.float64, np.uint8, np.int32, np.bool_]
    scalars = [0.125, 0.0, -1.0, 1.0, 0.5, float("nan"), float("inf"), 1e39, 2.0]
    outcomes = set()
    for _ in range(300):
        def arr():
            shape = tuple(int(s) for s in rng.integers(0, 4, int(rng.integers(2, 6))))
            return np.ones(shape, dtypes[int(rng.integers(0, len(dtypes)))])
        q, k, v = arr(), arr(), arr()
        mask = None if rng.random() < 0.3 else arr()
        flags = [bool(f) for f in rng.integers(0, 2, 6)]
        scale = scalars[int(rng.integers(0, len(scalars)))]
        keep = scalars[int(rng.integers(0, len(scalars)))]
        try:
            if rng.random() < 0.5:
                fa.fused_attention_score(q, k, v, mask, scale, keep, *flags, seed=1)
            else:
                fa.fused_attention_score_grad(arr(), arr(), q, k, v, mask, scale, keep,
                                              *flags[:4])
            outcomes.add("ok")
        except fa.FusedAttentionError as e:
            outcomes.add(e.status)
    assert "FAS_ERR_SHAPE" in outcomes and "FAS_ERR_DTYPE" in outcomes
