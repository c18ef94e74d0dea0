"""A CPU stand-in for the fused-attention part of ``torch_npu``.

``import fused_attention.torch_npu as torch_npu`` and code written for Ascend's
``torch_npu.npu_fused_attention_score`` runs on CPU tensors (drop the ``.npu()`` calls)::

    import torch
    import fused_attention.torch_npu as torch_npu

    q = torch_npu.npu_format_cast(torch.rand(24, 16, 512, 64), 29).half()
    ...
    out = torch_npu.npu_fused_attention_score(q, k, v, mask, 0.125, 0.5)

Functions (parameter names and order as torch_npu's):

- ``npu_fused_attention_score``: the context ``[B*Sq, N*Dv]`` in the query's dtype,
  differentiable with respect to query, key and value (a torch.autograd.Function whose
  backward calls the library's backward with the saved probabilities and drop mask, as
  torch_npu's autograd does).
- ``npu_fused_attention_score_fwd``: ``(attention_score, softmax_output, drop_mask)``.
- ``npu_fused_attention_score_grad``: ``(query_dx, key_dw, value_dw)``, each 2-D
  ``[B*S, N*D]``.
- ``npu_format_cast(self, acl_format)``: torch tensors carry no NZ storage format, so this is
  the identity on values (it returns ``self``); 2 (ND) and 29 (FRACTAL_NZ) are accepted.

Differences from torch_npu, all deliberate:

- Tensors must be CPU tensors of dtype float16 (the NPU's), float32 or bfloat16; each may
  have any strides (non-contiguous tensors are copied).
- The drop mask from ``_fwd`` is a uint8 tensor of shape ``[B, N, Sq, Sk]`` in row-major
  order, not the NPU's flat byte buffer; ``_grad`` takes it back in that shape.
- Dropout: every call with ``keep_prob < 1`` takes a fresh 63-bit seed from torch's default
  CPU generator and passes it to the library's Philox generator. So ``torch.manual_seed``
  makes runs reproducible (as it does for torch_npu through the NPU generator), and
  ``torch.utils.checkpoint``, which restores torch's RNG state before recomputing a forward,
  recomputes the same mask. The masks themselves are the library's, not the NPU's.
- The six transpose flags are honoured with their documented meaning (the NPU ignores
  them). Autograd describes the tensors it holds: the value is stored as the forward's
  ``bmm_score_transpose_b`` says, and the incoming gradient is never transposed, so its
  backward ignores ``value_transpose`` and ``dx_transpose``; gradients come back in the shape of
  each input. ``bmm_score_transpose_a`` has no backward in the library: with it, the call
  works only when no gradient is needed.
- The library runs ``torch.get_num_threads()`` threads; results never depend on the count.

Keyword-only extras (not in torch_npu), on every function but ``npu_format_cast``:

- ``gemm``: the matrix engine, "auto" (default: the FAS_GEMM environment variable, else the
  library's rule; ``fused_attention.gemm_engine()``), "builtin", "blas" or "amx"
  (see ``fused_attention.fused_attention_score``).
- On the forwards, ``seed`` (an explicit dropout seed instead of one drawn from torch's
  generator) and ``batch_offset``, ``head_offset``, ``global_num_heads``: the place of a shard in
  a larger call (docs/design.md §10). With the same ``seed`` on every shard, the shards' outputs
  and gradients are the whole call's, bit for bit; ``examples/torch_distributed_sharded.py``
  does it with torch.distributed.

Which forward runs, and why it matters: ``npu_fused_attention_score`` under ``torch.no_grad()``,
or on inputs that do not require grad, runs the library's streaming forward (online softmax over
key tiles, no ``[Sq, Sk]`` probabilities stored: the memory of long sequences); when a gradient
is needed it runs the materialising forward (``_fwd``), which keeps the probabilities and the
drop mask for the backward. Both draw the same drop mask and meet the same accuracy contract,
but their contexts are not bitwise equal (docs/semantics.md §2, "streaming vs materialising
forward"): the same inputs can give results that differ in the last bits with and without
``requires_grad``. Compare a sharded call with a whole one on the same path.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch.autograd.function import once_differentiable

from . import _core
from . import _library as L

__all__ = [
    "npu_format_cast",
    "npu_fused_attention_score",
    "npu_fused_attention_score_fwd",
    "npu_fused_attention_score_grad",
]

_ACL_IDS = {
    torch.float32: 0, torch.float16: 1, torch.int8: 2, torch.int32: 3, torch.uint8: 4,
    torch.int16: 6, torch.int64: 9, torch.float64: 11, torch.bool: 12, torch.complex64: 16,
    torch.complex128: 17, torch.bfloat16: 27,
}


def _operand(name, t):
    """Describe a CPU tensor for the library (a contiguous copy when its strides need one)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError("%s: expected a torch.Tensor, got %s" % (name, type(t).__name__))
    if t.device.type != "cpu":
        raise TypeError("%s: is on device %s; this library computes on the CPU, pass a CPU "
                        "tensor" % (name, t.device))
    if t.dtype not in _ACL_IDS:
        raise TypeError("%s: torch dtype %s has no ACL dtype id; pass float16, float32 or "
                        "bfloat16 tensors (uint8 for drop masks)" % (name, t.dtype))
    c = t.detach()
    if c.is_conj():
        c = c.resolve_conj()
    c = c.contiguous()
    return _core.Operand(c, c.data_ptr(), _ACL_IDS[t.dtype], tuple(c.shape),
                         py_dtype=t.dtype)


def _allocator(dtypes):
    def allocate(name, shape):
        t = torch.empty(shape, dtype=dtypes[name])
        return _core.Operand(t, t.data_ptr(), _ACL_IDS[t.dtype], tuple(t.shape))
    return allocate


def _options(keep_prob=1.0, extra=None):
    """Library threads = torch's intra-op threads; with dropout and no explicit seed, a seed drawn
    from torch's default generator (see the module doc). ``extra``: the keyword-only extras."""
    extra = dict(extra or {})
    seed = extra.pop("seed", None)
    if seed is None:
        try:
            dropout = float(keep_prob) < 1.0
        except (TypeError, ValueError, OverflowError):
            dropout = False  # the library reports the bad value
        if dropout:
            seed = int(torch.randint(0, 2**63 - 1, (), dtype=torch.int64).item())
    return _core.make_options(threads=torch.get_num_threads(), seed=seed, **extra)


def _extras(gemm, seed=None, batch_offset=0, head_offset=0, global_num_heads=0):
    return {"gemm": gemm, "seed": seed, "batch_offset": batch_offset,
            "head_offset": head_offset, "global_num_heads": global_num_heads}


def _forward(want_probs, query_layer, key_layer, value_layer, attention_mask, scale, keep_prob,
             flags, extra):
    q = _operand("query_layer", query_layer)
    k = _operand("key_layer", key_layer)
    v = _operand("value_layer", value_layer)
    m = None if attention_mask is None else _operand("attention_mask", attention_mask)
    dtype = _float_dtype(query_layer, torch.float16)  # the library rejects other dtypes
    dtypes = {"attention_score": dtype, "softmax_output": dtype, "drop_mask": torch.uint8}
    outs = _core.forward(q, k, v, m, scale, keep_prob, flags, _options(keep_prob, extra),
                         _allocator(dtypes), want_probs)
    return [o.owner for o in outs]


def _grad(grad_output, softmax_output, query_layer, key_layer, value_layer, mask, scale,
          keep_prob, flags, out_rank, dtypes, gemm):
    g = _operand("grad_output", grad_output)
    p = _operand("softmax_output", softmax_output)
    q = _operand("query_layer", query_layer)
    k = _operand("key_layer", key_layer)
    v = _operand("value_layer", value_layer)
    m = None if mask is None else _operand("mask", mask)
    outs = _core.backward(g, p, q, k, v, m, scale, keep_prob, flags,
                          _options(extra={"gemm": gemm}), _allocator(dtypes), out_rank)
    return [o.owner for o in outs]


def _float_dtype(t, fallback):
    return t.dtype if t.dtype in (torch.float16, torch.float32, torch.bfloat16) else fallback


class _FusedAttentionScore(torch.autograd.Function):
    """Forward through the library's _fwd (keeping P and the drop mask), backward through its
    _grad with what was saved, returning [B, N, S, D]-shaped gradients for q, k, v."""

    @staticmethod
    def forward(ctx, query_layer, key_layer, value_layer, attention_mask, scale, keep_prob,
                query_transpose, key_transpose, bmm_score_transpose_a, bmm_score_transpose_b,
                value_transpose, dx_transpose, extra):
        flags = (query_transpose, key_transpose, bmm_score_transpose_a, bmm_score_transpose_b,
                 value_transpose, dx_transpose)
        score, probs, dmask = _forward(True, query_layer, key_layer, value_layer,
                                       attention_mask, scale, keep_prob, flags, extra)
        ctx.save_for_backward(probs, query_layer, key_layer, value_layer, dmask)
        ctx.scale, ctx.keep_prob, ctx.gemm = scale, keep_prob, extra["gemm"]
        ctx.transposed = (bool(query_transpose), bool(key_transpose), bool(bmm_score_transpose_b))
        return score

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        probs, query_layer, key_layer, value_layer, dmask = ctx.saved_tensors
        query_t, key_t, value_t = ctx.transposed
        dtypes = {"query_dx": _float_dtype(query_layer, torch.float32),
                  "key_dw": _float_dtype(key_layer, torch.float32),
                  "value_dw": _float_dtype(value_layer, torch.float32)}
        grads = _grad(grad_output, probs, query_layer, key_layer, value_layer, dmask, ctx.scale,
                      ctx.keep_prob, (query_t, key_t, value_t, False), 4, dtypes, ctx.gemm)
        # The library returns [B, N, S, D]; a transposed input gets its gradient transposed.
        for i, transposed in enumerate((query_t, key_t, value_t)):
            if transposed:
                grads[i] = grads[i].transpose(-1, -2)
        return (grads[0], grads[1], grads[2]) + (None,) * 10


def _needs_grad(*tensors):
    return torch.is_grad_enabled() and any(
        isinstance(t, torch.Tensor) and t.requires_grad for t in tensors)


def npu_fused_attention_score(
        query_layer: torch.Tensor, key_layer: torch.Tensor, value_layer: torch.Tensor,
        attention_mask: Optional[torch.Tensor], scale: float, keep_prob: float,
        query_transpose: bool = False, key_transpose: bool = False,
        bmm_score_transpose_a: bool = False, bmm_score_transpose_b: bool = False,
        value_transpose: bool = False, dx_transpose: bool = False, *, gemm: str = "auto",
        seed: Optional[int] = None, batch_offset: int = 0, head_offset: int = 0,
        global_num_heads: int = 0) -> torch.Tensor:
    """The fused attention score ``[B*Sq, N*Dv]`` in the query's dtype (see the module doc).

    Differentiable with respect to query_layer, key_layer and value_layer. When no gradient is
    needed (``torch.no_grad()`` or inputs without requires_grad) it runs the library's streaming
    forward, which never stores the ``[Sq, Sk]`` probabilities; when one is needed, the
    materialising forward. The two agree within the accuracy contract, not bitwise
    (docs/semantics.md §2). Keyword-only extras: see the module doc.
    """
    extra = _extras(gemm, seed, batch_offset, head_offset, global_num_heads)
    if not _needs_grad(query_layer, key_layer, value_layer):
        flags = (query_transpose, key_transpose, bmm_score_transpose_a, bmm_score_transpose_b,
                 value_transpose, dx_transpose)
        return _forward(False, query_layer, key_layer, value_layer, attention_mask, scale,
                        keep_prob, flags, extra)[0]
    if bmm_score_transpose_a:
        raise _core.FusedAttentionError(
            "bmm_score_transpose_a: the library's backward has no such flag, so this call cannot "
            "be differentiated; run it under torch.no_grad() or with inputs that do not require "
            "grad", "FAS_ERR_UNSUPPORTED")
    return _FusedAttentionScore.apply(query_layer, key_layer, value_layer, attention_mask, scale,
                                      keep_prob, query_transpose, key_transpose,
                                      bmm_score_transpose_a, bmm_score_transpose_b,
                                      value_transpose, dx_transpose, extra)


def npu_fused_attention_score_fwd(
        query_layer: torch.Tensor, key_layer: torch.Tensor, value_layer: torch.Tensor,
        attention_mask: Optional[torch.Tensor], scale: float, keep_prob: float,
        query_transpose: bool = False, key_transpose: bool = False,
        bmm_score_transpose_a: bool = False, bmm_score_transpose_b: bool = False,
        value_transpose: bool = False, dx_transpose: bool = False, *, gemm: str = "auto",
        seed: Optional[int] = None, batch_offset: int = 0, head_offset: int = 0,
        global_num_heads: int = 0) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(attention_score, softmax_output, drop_mask)``: the context ``[B*Sq, N*Dv]`` and the
    probabilities ``[B, N, Sq, Sk]`` before dropout, both in the query's dtype, and the uint8
    keep mask ``[B, N, Sq, Sk]`` (1 kept). Not differentiable (as in torch_npu). Keyword-only
    extras: see the module doc."""
    flags = (query_transpose, key_transpose, bmm_score_transpose_a, bmm_score_transpose_b,
             value_transpose, dx_transpose)
    extra = _extras(gemm, seed, batch_offset, head_offset, global_num_heads)
    with torch.no_grad():
        score, probs, dmask = _forward(True, query_layer, key_layer, value_layer,
                                       attention_mask, scale, keep_prob, flags, extra)
    return score, probs, dmask


def npu_fused_attention_score_grad(
        grad_output: torch.Tensor, softmax_output: torch.Tensor, query_layer: torch.Tensor,
        key_layer: torch.Tensor, value_layer: torch.Tensor, mask: Optional[torch.Tensor],
        scale: float, keep_prob: float, query_transpose: bool = False,
        key_transpose: bool = False, value_transpose: bool = False, dx_transpose: bool = False,
        *, gemm: str = "auto") -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(query_dx, key_dw, value_dw)`` in grad_output's dtype, each in torch_npu's 2-D ``_grad``
    layout ``[B*S, N*D]`` (row ``b*S + s``, column ``n*D + d``). ``mask`` is the drop mask from
    ``npu_fused_attention_score_fwd`` (None allowed when keep_prob is 1). ``gemm``: the matrix
    engine (see the module doc)."""
    dtype = _float_dtype(grad_output, torch.float16) if isinstance(
        grad_output, torch.Tensor) else torch.float16
    dtypes = {"query_dx": dtype, "key_dw": dtype, "value_dw": dtype}
    with torch.no_grad():
        dq, dk, dv = _grad(grad_output, softmax_output, query_layer, key_layer, value_layer,
                           mask, scale, keep_prob,
                           (query_transpose, key_transpose, value_transpose, dx_transpose), 2,
                           dtypes, gemm)
    return dq, dk, dv


def npu_format_cast(self: torch.Tensor, acl_format: int) -> torch.Tensor:
    """torch_npu's format cast. A CPU tensor has no NZ storage, so the values are returned as
    they are (``self`` itself) for acl_format 2 (ND) or 29 (FRACTAL_NZ); the library reads every
    tensor it is given as ND. For the NZ bytes themselves use ``fused_attention.format_cast`` on
    a numpy array."""
    if acl_format not in (L.FORMAT_ND, L.FORMAT_FRACTAL_NZ):
        raise _core.FusedAttentionError(
            "acl_format: %r is not accepted (ND = 2, FRACTAL_NZ = 29)" % (acl_format,),
            "FAS_ERR_FORMAT")
    return self
