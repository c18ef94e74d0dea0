"""fused_attention: Ascend's fused attention-score operator on the CPU, from Python.

A pure-Python (ctypes) binding of the C library libfused_attention, which computes what
``torch_npu.npu_fused_attention_score`` computes on an NPU::

    P       = softmax(scale * Q . K^T + mask)        per batch b and head n
    Pd      = P * M / keep_prob                      M: dropout keep mask
    context = Pd . V, permuted to [B*Sq, N*Dv]       row b*Sq + i, column n*Dv + d

numpy API (this module)
    fused_attention_score, fused_attention_score_fwd, fused_attention_score_grad,
    format_cast (ND <-> FRACTAL_NZ storage), manual_seed, simd_level, __version__.
torch API
    ``import fused_attention.torch_npu as torch_npu`` gives npu_fused_attention_score (with
    autograd), npu_fused_attention_score_fwd, npu_fused_attention_score_grad, npu_format_cast.

Every invalid argument raises FusedAttentionError (a ValueError) whose message is the library's
sentence and whose ``.status`` is the library's status name.

The shared library is found through the FUSED_ATTENTION_LIBRARY environment variable, a copy
next to this package, or the system library path, in that order.
"""

from ._core import FusedAttentionError, library_path, manual_seed, simd_level
from ._core import version as __version__
from ._numpy_api import (
    format_cast,
    fused_attention_score,
    fused_attention_score_fwd,
    fused_attention_score_grad,
    nz_storage_shape,
)

__all__ = [
    "FusedAttentionError",
    "__version__",
    "format_cast",
    "fused_attention_score",
    "fused_attention_score_fwd",
    "fused_attention_score_grad",
    "library_path",
    "manual_seed",
    "nz_storage_shape",
    "simd_level",
]
