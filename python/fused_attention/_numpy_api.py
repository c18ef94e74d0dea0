"""The numpy front end: the operator on numpy arrays, and ND <-> NZ storage conversion."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from . import _library as L

ArrayLike = Any  # anything numpy.asarray accepts

# numpy dtype -> ACL dtype id. The library accepts FLOAT (0), FLOAT16 (1), BF16 (27) and, for drop
# masks, UINT8 (4); every other id is passed on so that the library names the argument and the
# problem. A dtype ACL has no id for (e.g. float128, object) cannot be described at all.
_ACL_IDS = {
    ("f", 4): 0, ("f", 2): 1, ("i", 1): 2, ("i", 4): 3, ("u", 1): 4, ("i", 2): 6, ("u", 2): 7,
    ("u", 4): 8, ("i", 8): 9, ("u", 8): 10, ("f", 8): 11, ("b", 1): 12, ("c", 8): 16,
    ("c", 16): 17,
}


def _acl_dtype(name, dtype):
    key = (dtype.kind, dtype.itemsize)
    if key in _ACL_IDS and (key != ("f", 2) or dtype.type is np.float16):
        return _ACL_IDS[key]
    if dtype.name == "bfloat16":  # ml_dtypes' extension dtype
        return L.DTYPE_BF16
    raise TypeError("%s: numpy dtype %s has no ACL dtype id; pass float16 or float32 arrays "
                    "(uint8 for drop masks)" % (name, dtype))


def _operand(name, x):
    """Describe x (anything numpy.asarray accepts) for the library: a C-contiguous, aligned,
    native-byte-order array of the same dtype (copied only when needed)."""
    a = np.asarray(x)
    dtype_id = _acl_dtype(name, a.dtype)
    if a.dtype.byteorder not in ("=", "|"):
        a = a.astype(a.dtype.newbyteorder("="))
    a = np.require(a, requirements=["C", "A"])
    return _core.Operand(a, a.ctypes.data, dtype_id, a.shape, py_dtype=a.dtype)


def _alloc_numpy(dtypes):
    def allocate(name, shape):
        a = np.empty(shape, dtype=dtypes[name])
        return _core.Operand(a, a.ctypes.data, _acl_dtype(name, a.dtype), a.shape)
    return allocate


_FWD_DTYPES = {"attention_score": np.float16, "softmax_output": np.float16,
               "drop_mask": np.uint8}
_GRAD_DTYPES = {"query_dx": np.float16, "key_dw": np.float16, "value_dw": np.float16}


def _forward(want_probs, query_layer, key_layer, value_layer, attention_mask, scale, keep_prob,
             flags, threads, seed, precision, gemm, batch_offset, head_offset, global_num_heads):
    options = _core.make_options(threads, seed, precision, gemm, batch_offset, head_offset,
                                 global_num_heads)
    q = _operand("query_layer", query_layer)
    k = _operand("key_layer", key_layer)
    v = _operand("value_layer", value_layer)
    m = None if attention_mask is None else _operand("attention_mask", attention_mask)
    outs = _core.forward(q, k, v, m, scale, keep_prob, flags, options,
                         _alloc_numpy(_FWD_DTYPES), want_probs)
    return [o.owner for o in outs]


def fused_attention_score(query_layer: ArrayLike, key_layer: ArrayLike, value_layer: ArrayLike,
                          attention_mask: Optional[ArrayLike], scale: float, keep_prob: float,
                          query_transpose: bool = False, key_transpose: bool = False,
                          bmm_score_transpose_a: bool = False, bmm_score_transpose_b: bool = False,
                          value_transpose: bool = False, dx_transpose: bool = False, *,
                          threads: int = 0, seed: Optional[int] = None, precision: str = "fp32",
                          gemm: str = "auto", batch_offset: int = 0, head_offset: int = 0,
                          global_num_heads: int = 0) -> np.ndarray:
    """The attention-score block: ``softmax(scale * Q.K^T + mask)``, dropout, ``.V``, permuted.

    Parameters (names and order as ``torch_npu.npu_fused_attention_score``):

    query_layer, key_layer, value_layer : float16 or float32 arrays (any mix, any strides)
        ``[B, N, Sq, D]``, ``[B, N, Sk, D]``, ``[B, N, Sk, Dv]``; with a ``*_transpose`` flag the
        named operand is given with its last two axes swapped (see below).
    attention_mask : float16/float32 array or None
        Added to the scaled scores: ``[B|1, N|1, Sq, Sk]`` or a key-padding mask
        ``[B|1, 1, 1, Sk]``; None for no mask.
    scale : float
        Multiplies ``Q.K^T`` before the mask is added; any finite value.
    keep_prob : float
        Probability of keeping an element in dropout, ``0 < keep_prob <= 1`` (1: no dropout).
    query_transpose, key_transpose : bool
        query_layer is ``[B, N, D, Sq]`` / key_layer is ``[B, N, D, Sk]``.
    bmm_score_transpose_a : bool
        The second product uses the transposed probabilities (needs ``Sq == Sk``).
    bmm_score_transpose_b : bool
        value_layer is ``[B, N, Dv, Sk]``.
    value_transpose, dx_transpose : bool
        Backward-only flags, accepted and ignored here (as on the NPU).
    threads : int, keyword-only
        Library threads; 0 = OpenMP's default (OMP_NUM_THREADS, else the CPUs of the affinity
        mask; ``show_config()`` prints it). Results never depend on it.
    seed : int or None, keyword-only
        None draws dropout bits from the library's process-wide generator (see ``manual_seed``);
        an int in ``0 .. 2**64 - 1`` gives a mask that depends only on the seed.
    precision : "fp32" or "npu", keyword-only
        "fp32": every stage in fp32, one rounding per output. "npu": the library's model of the
        NPU's fp16 rounding (library 0.2.0 or later).
    gemm : "auto", "builtin", "blas" or "amx", keyword-only
        The matrix engine of the products. "auto" (default): the FAS_GEMM environment variable
        when set, else the library's rule (``gemm_engine()`` says which). "builtin": the
        library's own tiles, the same bits on every machine; "blas": cblas_sgemm of the BLAS the
        library was built with; "amx": Intel AMX-BF16 tiles where the CPU and build have them.
        Every engine meets the accuracy contract (docs/semantics.md §2) and draws the same drop
        mask; their outputs may differ in the last bits. An engine this build or CPU lacks
        raises FusedAttentionError (FAS_ERR_UNSUPPORTED).
    batch_offset, head_offset, global_num_heads : int, keyword-only
        For a shard of a larger call (docs/design.md §10): the shard's first batch and head in
        the whole tensor, and the whole call's head count (0: this call's N). With the same
        explicit ``seed`` on every shard, the shards' outputs are the whole call's, bit for bit,
        dropout included.

    Returns the float16 context ``[B*Sq, N*Dv]``: row ``b*Sq + i``, column ``n*Dv + d``.
    This is the streaming forward (no ``[Sq, Sk]`` probabilities stored); it may differ in the
    last bit from ``fused_attention_score_fwd``'s context, which is computed from the stored
    probabilities (docs/semantics.md). Raises FusedAttentionError (with the library's sentence)
    for any invalid argument.
    """
    flags = (query_transpose, key_transpose, bmm_score_transpose_a, bmm_score_transpose_b,
             value_transpose, dx_transpose)
    return _forward(False, query_layer, key_layer, value_layer, attention_mask, scale, keep_prob,
                    flags, threads, seed, precision, gemm, batch_offset, head_offset,
                    global_num_heads)[0]


def fused_attention_score_fwd(
        query_layer: ArrayLike, key_layer: ArrayLike, value_layer: ArrayLike,
        attention_mask: Optional[ArrayLike], scale: float, keep_prob: float,
        query_transpose: bool = False, key_transpose: bool = False,
        bmm_score_transpose_a: bool = False, bmm_score_transpose_b: bool = False,
        value_transpose: bool = False, dx_transpose: bool = False, *, threads: int = 0,
        seed: Optional[int] = None, precision: str = "fp32", gemm: str = "auto",
        batch_offset: int = 0, head_offset: int = 0,
        global_num_heads: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As ``fused_attention_score``, also returning what the backward needs.

    Returns ``(attention_score, softmax_output, drop_mask)``: the float16 context
    ``[B*Sq, N*Dv]``, the float16 probabilities ``[B, N, Sq, Sk]`` before dropout, and the uint8
    keep mask ``[B, N, Sq, Sk]`` (1 kept, 0 dropped; all ones when keep_prob is 1). The mask is
    row-major (ND); ``format_cast(drop_mask, "nz")`` gives the NPU's byte order. The keyword
    arguments are ``fused_attention_score``'s.
    """
    flags = (query_transpose, key_transpose, bmm_score_transpose_a, bmm_score_transpose_b,
             value_transpose, dx_transpose)
    score, probs, dmask = _forward(True, query_layer, key_layer, value_layer, attention_mask,
                                   scale, keep_prob, flags, threads, seed, precision, gemm,
                                   batch_offset, head_offset, global_num_heads)
    return score, probs, dmask


def fused_attention_score_grad(
        grad_output: ArrayLike, softmax_output: ArrayLike, query_layer: ArrayLike,
        key_layer: ArrayLike, value_layer: ArrayLike, drop_mask: Optional[ArrayLike],
        scale: float, keep_prob: float, query_transpose: bool = False,
        key_transpose: bool = False, value_transpose: bool = False, dx_transpose: bool = False,
        *, threads: int = 0, precision: str = "fp32",
        gemm: str = "auto") -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of ``fused_attention_score`` with respect to query, key and value.

    grad_output : float16/float32 ``[B*Sq, N*Dv]`` (``[N*Dv, B*Sq]`` when dx_transpose)
    softmax_output, drop_mask : what ``fused_attention_score_fwd`` returned; drop_mask may be
        None only when keep_prob is 1.
    query_layer, key_layer : as given to the forward (query_transpose, key_transpose likewise).
    value_layer : ``[B, N, Sk, Dv]`` (``[B, N, Dv, Sk]`` when value_transpose).
    scale, keep_prob : as given to the forward.

    Returns ``(query_dx, key_dw, value_dw)`` as float16 arrays in torch_npu's ``_grad`` layout:
    ``[B*Sq, N*D]``, ``[B*Sk, N*D]``, ``[B*Sk, N*Dv]`` (row ``b*S + s``, column ``n*D + d``),
    whatever the transpose flags. ``threads``, ``precision`` and ``gemm`` are as for the
    forward. A shard's backward needs no coordinates: it draws nothing, it reads the shard's
    drop mask (docs/design.md §10).
    """
    options = _core.make_options(threads, None, precision, gemm)
    g = _operand("grad_output", grad_output)
    p = _operand("softmax_output", softmax_output)
    q = _operand("query_layer", query_layer)
    k = _operand("key_layer", key_layer)
    v = _operand("value_layer", value_layer)
    m = None if drop_mask is None else _operand("drop_mask", drop_mask)
    outs = _core.backward(g, p, q, k, v, m, scale, keep_prob,
                          (query_transpose, key_transpose, value_transpose, dx_transpose),
                          options, _alloc_numpy(_GRAD_DTYPES), 2)
    return outs[0].owner, outs[1].owner, outs[2].owner


# ---- ND <-> FRACTAL_NZ ----------------------------------------------------------------------


def _ceil16(n):
    return -(-n // 16)


def nz_storage_shape(shape: Sequence[int]) -> Tuple[int, ...]:
    """The numpy shape of the NZ storage of a tensor of logical shape ``shape``.

    A logical ``[..., M, N]`` is stored as ``[..., ceil(N/16), ceil(M/16), 16, 16]``: 16x16
    fractals, column-block-major, each fractal row-major (element ``(..., m, n)`` is at
    ``[..., n // 16, m // 16, m % 16, n % 16]``). A 1-D ``[n]`` is the column ``[n, 1]`` and so
    is stored as ``[1, ceil(n/16), 16, 16]``; a 0-D tensor is ``[1, 1]``: ``[1, 1, 16, 16]``.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        shape = (1, 1)
    elif len(shape) == 1:
        shape = (shape[0], 1)
    *batch, m, n = shape
    return tuple(batch) + (_ceil16(n), _ceil16(m), 16, 16)


def format_cast(array: ArrayLike, to: Union[str, int],
                shape: Optional[Sequence[int]] = None) -> np.ndarray:
    """Convert between a plain (ND) array and the FRACTAL_NZ storage of the same tensor.

    ``format_cast(a, "nz")``: ``a`` is an ND array (float16, float32 or uint8) of logical shape
    ``[..., M, N]``; returns a new array of the same dtype and shape
    ``[..., ceil(N/16), ceil(M/16), 16, 16]`` (see ``nz_storage_shape``) holding the NZ bytes
    exactly as torch_npu stores a format-29 tensor, padding zero.

    ``format_cast(s, "nd", shape)``: ``s`` is NZ storage, either in the shape above or flat (1-D
    with the same number of elements, e.g. an NPU buffer); ``shape`` is the logical shape to
    recover (default: the padded shape ``[..., 16*ceil(M/16), 16*ceil(N/16)]`` read off a
    storage-shaped ``s``). Returns the ND array; padding is not read.

    ``to`` may also be ACL's format id: 29 for "nz", 2 for "nd". ND -> NZ -> ND returns the
    original values exactly.
    """
    # ACL's format ids are accepted too, as torch_npu.npu_format_cast takes them
    if isinstance(to, int) and not isinstance(to, bool):
        to = {L.FORMAT_FRACTAL_NZ: "nz", L.FORMAT_ND: "nd"}.get(to, to)
    if to not in ("nz", "nd"):
        raise _core.FusedAttentionError(
            "to: %r is not a format; use 'nz' (FRACTAL_NZ storage, ACL format 29) or 'nd' "
            "(plain, ACL format 2)" % (to,), "FAS_ERR_FORMAT")
    if to == "nz":
        src = _operand("array", array)
        logical = src.owner.shape
        src_fmt, dst_fmt, dst_storage = L.FORMAT_ND, L.FORMAT_FRACTAL_NZ, None
    else:
        src = _operand("array", array)
        storage = src.owner.shape
        if shape is None:
            if len(storage) < 4 or storage[-2:] != (16, 16):
                raise _core.FusedAttentionError(
                    "array: %s is not an NZ storage shape [..., ceil(N/16), ceil(M/16), 16, 16]; "
                    "pass the logical shape as shape=" % (storage,), "FAS_ERR_SHAPE")
            logical = tuple(storage[:-4]) + (storage[-3] * 16, storage[-4] * 16)
        else:
            logical = tuple(int(s) for s in shape)
            # A logical shape the library rejects (a dim < 1, ndim > 8) is left for it to name.
            describable = len(logical) <= L.MAX_DIMS and all(s >= 1 for s in logical)
            expected = nz_storage_shape(logical) if describable else None
            size = int(np.prod(expected)) if describable else -1
            if describable and storage != expected and storage != (size,):
                raise _core.FusedAttentionError(
                    "array: NZ storage of shape %s does not hold logical shape %s, which is "
                    "stored as %s (or flat, %d elements)" % (storage, logical, expected, size),
                    "FAS_ERR_SHAPE")
        src = _core.Operand(src.owner, src.desc.data, src.desc.dtype, logical,
                            py_dtype=src.py_dtype)
        src_fmt, dst_fmt, dst_storage = L.FORMAT_FRACTAL_NZ, L.FORMAT_ND, logical
    src.desc.format = src_fmt
    dst = _core.Operand(None, None, src.desc.dtype, logical, dst_fmt)
    nbytes = _core.tensor_bytes(dst.desc)
    if nbytes == 0:
        _core.reject(src, dst.desc)
    if dst_storage is None:
        dst_storage = nz_storage_shape(logical)
    out = np.empty(dst_storage, dtype=src.owner.dtype)
    if out.nbytes != nbytes:
        raise _core.FusedAttentionError(
            "format_cast: the library sizes %s as %d bytes but Python computed %d; please "
            "report this" % (logical, nbytes, out.nbytes), "FAS_ERR_INTERNAL")
    dst.owner, dst.desc.data = out, out.ctypes.data
    _core.format_cast(src, dst)
    return out
