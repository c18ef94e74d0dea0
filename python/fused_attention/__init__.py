"""fused_attention: Ascend's fused attention-score operator on the CPU, from Python.

A ctypes binding of the C library libfused_attention, which computes what
``torch_npu.npu_fused_attention_score`` computes on an NPU::

    P       = softmax(scale * Q . K^T + mask)        per batch b and head n
    Pd      = P * M / keep_prob                      M: dropout keep mask
    context = Pd . V, permuted to [B*Sq, N*Dv]       row b*Sq + i, column n*Dv + d

numpy API (this module)
    fused_attention_score, fused_attention_score_fwd, fused_attention_score_grad,
    format_cast (ND <-> FRACTAL_NZ storage), nz_storage_shape, manual_seed.
    Keyword-only options: threads, seed, precision ("fp32", "npu"), gemm ("auto", "builtin",
    "blas", "amx") and, on the forwards, a shard's batch_offset, head_offset, global_num_heads.
What this process runs
    show_config() prints (and returns) the version, the matrix engine, the SIMD level, the BLAS
    and the thread count; gemm_engine(), simd_level(), blas_info(), __version__, library_path.
torch API
    ``import fused_attention.torch_npu as torch_npu`` gives npu_fused_attention_score (with
    autograd), npu_fused_attention_score_fwd, npu_fused_attention_score_grad, npu_format_cast.

Every invalid argument raises FusedAttentionError (a ValueError) whose message is the library's
sentence and whose ``.status`` is the library's status name.

``pip install ./python`` builds the C library with the project's CMake and installs it inside
this package, where it is found first. The FUSED_ATTENTION_LIBRARY environment variable
overrides that (a path, made absolute from the current directory); the system library path is
the last resort. ``__version__`` is the loaded library's version, which is also the package's.
"""

from ._core import (
    FusedAttentionError,
    blas_info,
    gemm_engine,
    library_path,
    manual_seed,
    show_config,
    simd_level,
)
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
    "blas_info",
    "format_cast",
    "fused_attention_score",
    "fused_attention_score_fwd",
    "fused_attention_score_grad",
    "gemm_engine",
    "library_path",
    "manual_seed",
    "nz_storage_shape",
    "show_config",
    "simd_level",
]
