"""The calls into the C library, independent of numpy and torch.

The numpy and torch front ends turn their arrays into ``Operand`` objects (a ``FasTensor``
descriptor plus the Python object that owns the memory, kept alive for the whole call) and pass
an ``allocate(name, shape)`` callback that creates each output once the library has said what
its shape is. Everything the library can check it checks; Python only checks what the library
cannot see (a Python object's type, an integer that would not fit its C field, the size of a
storage array the library receives only as a pointer).
"""

from __future__ import annotations

import ctypes
import math
import operator
import os
import re
import sys
from typing import Any, Dict, Optional, Sequence, Tuple

from . import _library as L

_lib, library_path = L.load()

version: str = _lib.fas_version_string().decode("ascii", "replace")
version_tuple = L.parse_version(version)

# ACL's aclDataType ids and names (the ids fas_tensor.dtype takes). The library computes on
# FLOAT16, FLOAT and BF16 tensors and UINT8 drop masks; the others are known but not supported.
ACL_DTYPE_NAMES = {
    0: "FLOAT", 1: "FLOAT16", 2: "INT8", 3: "INT32", 4: "UINT8", 6: "INT16", 7: "UINT16",
    8: "UINT32", 9: "INT64", 10: "UINT64", 11: "DOUBLE", 12: "BOOL", 13: "STRING",
    16: "COMPLEX64", 17: "COMPLEX128", 27: "BF16",
}
SUPPORTED_DTYPES = ("float16 (ACL FLOAT16, 1), float32 (FLOAT, 0) and bfloat16 (BF16, 27) "
                    "tensors, and uint8 (UINT8, 4) drop masks")


class FusedAttentionError(ValueError):
    """A call was rejected. ``str(error)`` is the library's sentence naming the argument and the
    problem (``fas_last_error()``); ``error.status`` is the status name, e.g. ``"FAS_ERR_SHAPE"``.

    The library checks every argument before writing anything, so after this error no output
    exists and no input was changed. A few problems that only Python can see (an integer too
    large for its C field, an NZ storage array whose shape does not match its logical shape, a
    precision mode the loaded library lacks) raise it too, with a status of the same meaning.
    """

    status: str
    library_message: str

    def __init__(self, message: str, status: str, library_message: Optional[str] = None):
        super().__init__(message)
        self.status = status
        #: the library's own sentence (fas_last_error()), when the message was made clearer
        self.library_message = message if library_message is None else library_message


def status_name(status: int) -> str:
    return _lib.fas_status_string(status).decode("ascii", "replace")


def check(status: int) -> None:
    """Raise FusedAttentionError for any status other than FAS_OK."""
    if status != 0:
        # Read the sentence first: it stays valid only until the next library call.
        message = _lib.fas_last_error().decode("utf-8", "replace")
        raise FusedAttentionError(message, status_name(status))


def simd_level() -> str:
    """The SIMD level of the library's kernels on this CPU and build: "avx512" or "avx2"
    (x86-64), "neon" (aarch64) or "portable" (any other target, or a build without SIMD).
    Every level gives bit-identical results."""
    return _lib.fas_simd_level().decode("ascii", "replace")


GEMMS = {"auto": L.GEMM_AUTO, "builtin": L.GEMM_BUILTIN, "blas": L.GEMM_BLAS, "amx": L.GEMM_AMX}
GEMM_MIN_VERSION = (0, 3, 0)


def gemm_engine() -> str:
    """The matrix engine ``gemm="auto"`` resolves to in this process: "builtin" (the library's
    own register tiles, the same bits on every machine), "blas" (cblas_sgemm of the BLAS the
    library was built with) or "amx" (Intel AMX-BF16 tiles); "invalid" when the FAS_GEMM
    environment variable holds an unknown value (every ``gemm="auto"`` call then raises
    FusedAttentionError saying so). FAS_GEMM (auto, builtin, blas or amx, any case) is read once
    per process, at the first call that needs it."""
    fn = L.optional(_lib, "fas_gemm_engine")
    if fn is None:
        return "builtin"  # libraries before 0.3.0 have only their own gemm
    return fn().decode("ascii", "replace")


def blas_info() -> str:
    """One line on the BLAS of the "blas" engine (fas_blas_info()): vendor, version, build
    options and the CPU core its kernels were chosen for, followed by a WARNING sentence when
    that core is below this CPU's SIMD level."""
    fn = L.optional(_lib, "fas_blas_info")
    if fn is None:
        return "(library %s does not report its BLAS)" % version
    return fn().decode("utf-8", "replace")


def default_threads() -> Tuple[int, str]:
    """The thread count the library uses for ``threads=0``: OpenMP's default for a parallel
    region started on this thread (omp_get_max_threads() of the OpenMP runtime the library
    loaded), and where the figure comes from. Without an OpenMP runtime in the process (a serial
    build) the library runs one thread."""
    runtime = _openmp_runtime()
    if runtime is not None:
        omp, name = runtime
        omp.omp_get_max_threads.restype = ctypes.c_int
        omp.omp_get_max_threads.argtypes = []
        return int(omp.omp_get_max_threads()), "omp_get_max_threads() of %s" % name
    return 1, "no OpenMP runtime in the process: the library is serial"


# The OpenMP runtimes a build of the library can link, by SONAME (GCC, LLVM, Intel).
_OPENMP_SONAMES = ("libgomp.so.1", "libomp.so.5", "libomp.so", "libiomp5.so")


def _openmp_runtime() -> Optional[Tuple[ctypes.CDLL, str]]:
    """The OpenMP runtime already loaded into this process under the SONAME the library links
    (RTLD_NOLOAD: nothing new is loaded, and a runtime that another package bundles under a
    different name, e.g. a wheel's libgomp-<hash>.so, is not taken for the library's)."""
    noload = getattr(os, "RTLD_NOLOAD", None)
    if noload is None:
        return None
    for soname in _OPENMP_SONAMES:
        try:
            lib = ctypes.CDLL(soname, mode=noload | getattr(os, "RTLD_LAZY", 1))
        except OSError:
            continue
        if hasattr(lib, "omp_get_max_threads"):
            return lib, soname
    return None


def show_config(file: Any = None) -> Dict[str, Any]:
    """Print what this process runs, in aligned lines, and return it as a dict:

    - ``version``: the library's (``fused_attention.__version__``) and ``library``, its path;
    - ``gemm_engine``: what ``gemm="auto"`` resolves to (FAS_GEMM when set, else the rule of the
      README's "Matrix engines"), see ``gemm_engine()``;
    - ``simd_level``: "avx512", "avx2", "neon" or "portable", see ``simd_level()``;
    - ``blas``: ``blas_info()`` (vendor, version, core; a WARNING when the core is below this
      CPU's level);
    - ``threads``: the library's thread count for ``threads=0`` (OpenMP's default: OMP_NUM_THREADS,
      else the CPUs of the affinity mask), and ``threads_source``.

    ``file`` is where to print (default sys.stdout)."""
    threads, source = default_threads()
    config: Dict[str, Any] = {
        "version": version,
        "library": library_path,
        "gemm_engine": gemm_engine(),
        "simd_level": simd_level(),
        "blas": blas_info(),
        "threads": threads,
        "threads_source": source,
    }
    gemm_env = os.environ.get("FAS_GEMM")
    lines = [
        ("fused_attention", "%s (%s)" % (version, library_path)),
        ("gemm engine", "%s (%s)" % (config["gemm_engine"], "FAS_GEMM=%s" % gemm_env
                                     if gemm_env is not None else "FAS_GEMM unset: AUTO rule")),
        ("SIMD level", config["simd_level"]),
        ("BLAS", config["blas"]),
        ("threads", "%d (%s)" % (threads, source)),
    ]
    width = max(len(k) for k, _ in lines)
    out = sys.stdout if file is None else file
    for key, value in lines:
        print("%-*s  %s" % (width + 1, key + ":", value), file=out)
    return config


def manual_seed(seed: int) -> None:
    """Seed the library's process-wide dropout generator and reset its offset to 0.

    numpy-API calls made with ``seed=None`` draw from this generator; each such call advances
    its offset, so successive calls get different masks. (The torch API draws its seeds from
    torch's own generator instead: see fused_attention.torch_npu.)"""
    _lib.fas_manual_seed(_uint64("seed", seed))


class Operand:
    """A FasTensor describing memory owned by ``owner``; holding the Operand keeps it alive.
    ``py_dtype`` is the front end's dtype (numpy or torch), named in the note of dtype errors."""

    __slots__ = ("desc", "owner", "py_dtype")

    def __init__(self, owner, pointer, dtype_id, shape, fmt=L.FORMAT_ND, py_dtype=None):
        self.owner = owner
        self.py_dtype = py_dtype
        desc = L.FasTensor()
        desc.data = pointer or None
        desc.dtype = dtype_id
        desc.format = fmt
        desc.ndim = len(shape)
        # The struct holds at most 8 dims; a larger ndim is passed on so the library rejects it.
        for i, extent in enumerate(shape[: L.MAX_DIMS]):
            desc.dims[i] = extent
        self.desc = desc

    def ref(self):
        return ctypes.byref(self.desc)


_DTYPE_SENTENCE = re.compile(r"^(\w+): dtype (-?\d+) (\(ACL \w+\) is not supported|is not an ACL dtype id"
                             r"|is not a float dtype|must be UINT8)")


_FLOATS = "float16 (ACL FLOAT16, 1), float32 (FLOAT, 0) or bfloat16 (BF16, 27)"


def clarify_dtype_error(error: FusedAttentionError,
                        named: Sequence[Tuple[str, Optional["Operand"]]],
                        supported: str = _FLOATS) -> FusedAttentionError:
    """A dtype error with a sentence that names the dtype (ACL's name and the Python one) and
    says "not supported" for an id ACL knows, then what to pass (``supported``, default the
    float dtypes); the library's sentence stays in ``library_message``. Other errors are
    returned as they are."""
    if error.status != "FAS_ERR_DTYPE":
        return error
    match = _DTYPE_SENTENCE.match(str(error))
    if match is None:
        return error
    name, dtype_id, kind = match.group(1), int(match.group(2)), match.group(3)
    py = {n: op.py_dtype for n, op in named if op is not None and op.py_dtype is not None}
    what = "dtype %d" % dtype_id
    details = []
    if dtype_id in ACL_DTYPE_NAMES:
        details.append("ACL %s" % ACL_DTYPE_NAMES[dtype_id])
    if name in py:
        details.append("Python %s" % py[name])
    if details:
        what += " (%s)" % ", ".join(details)
    if dtype_id not in ACL_DTYPE_NAMES:
        message = "%s: %s is not an ACL dtype id; the library takes %s" % (
            name, what, SUPPORTED_DTYPES)
    elif kind == "must be UINT8":
        message = "%s: %s is not supported for a drop mask; pass uint8 (ACL UINT8, 4)" % (
            name, what)
    else:
        message = "%s: %s is not supported; pass %s" % (name, what, supported)
    return FusedAttentionError(message, error.status, library_message=str(error))


def _ref(operand):
    return None if operand is None else operand.ref()


def _integer(name, value):
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError("%s: must be an integer, not %s" % (name, type(value).__name__)) from None


def _c_int(name, value):
    value = _integer(name, value)
    if not -(2**31) <= value < 2**31:
        raise FusedAttentionError("%s: %d does not fit the library's int" % (name, value),
                                  "FAS_ERR_VALUE")
    return value


def _uint64(name, value):
    value = _integer(name, value)
    if not 0 <= value < 2**64:
        raise FusedAttentionError("%s: %d is outside 0 .. 2**64 - 1" % (name, value),
                                  "FAS_ERR_VALUE")
    return value


def to_double(name, value):
    """float(value), with integers beyond the double range mapped to +-inf so that the library,
    not Python, reports the value as out of range."""
    if isinstance(value, (str, bytes)):
        raise TypeError("%s: must be a real number, not %s" % (name, type(value).__name__))
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


PRECISIONS = {"fp32": L.PRECISION_FP32, "npu": L.PRECISION_NPU}


def _int64(name: str, value: Any) -> int:
    value = _integer(name, value)
    if not -(2**63) <= value < 2**63:
        raise FusedAttentionError("%s: %d does not fit the library's int64_t" % (name, value),
                                  "FAS_ERR_VALUE")
    return value


def make_options(threads: int = 0, seed: Optional[int] = None, precision: str = "fp32",
                 gemm: str = "auto", batch_offset: int = 0, head_offset: int = 0,
                 global_num_heads: int = 0) -> L.FasOptions:
    """Build a FasOptions: thread count, explicit seed (offset 0) or the process-wide generator,
    the precision mode ("fp32" or "npu"; "npu" needs library 0.2.0 or later), the matrix engine
    ("auto", "builtin", "blas" or "amx"; other than "auto" needs 0.3.0) and the shard's place in
    the whole call (batch_offset, head_offset, global_num_heads; 0.2.0)."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise FusedAttentionError(
            "precision: %r is not a precision mode; use 'fp32' (fp32 pipeline, the default) or "
            "'npu' (the NPU's fp16 rounding model)" % (precision,), "FAS_ERR_VALUE")
    if not isinstance(gemm, str) or gemm.lower() not in GEMMS:
        raise FusedAttentionError(
            "gemm: %r is not a matrix engine; use 'auto' (the default: FAS_GEMM, else the "
            "library's rule), 'builtin', 'blas' or 'amx'" % (gemm,), "FAS_ERR_VALUE")
    gemm = gemm.lower()
    needs = []
    if precision != "fp32":
        needs.append(("precision", precision, L.PRECISION_MIN_VERSION))
    if gemm != "auto":
        needs.append(("gemm", gemm, GEMM_MIN_VERSION))
    if (batch_offset, head_offset, global_num_heads) != (0, 0, 0):
        needs.append(("batch_offset/head_offset/global_num_heads", "sharding",
                      L.PRECISION_MIN_VERSION))
    for name, value, minimum in needs:
        if version_tuple < minimum:
            raise FusedAttentionError(
                "%s: %r needs libfused_attention %s or later, but the loaded library (%s) is %s, "
                "which lacks it" % (name, value, ".".join(map(str, minimum)), library_path,
                                    version), "FAS_ERR_UNSUPPORTED")
    options = L.new_options()
    options.num_threads = _c_int("threads", threads)
    if seed is not None:
        options.has_seed = True
        options.seed = _uint64("seed", seed)
        options.offset = 0
    options.precision = PRECISIONS[precision]
    options.batch_offset = _int64("batch_offset", batch_offset)
    options.head_offset = _int64("head_offset", head_offset)
    options.global_num_heads = _int64("global_num_heads", global_num_heads)
    options.gemm = GEMMS[gemm]
    return options


def _dims_of(desc):
    return tuple(desc.dims[i] for i in range(desc.ndim))


def forward(q, k, v, mask, scale, keep_prob, flags, options, allocate, want_probs):
    """Run the forward. ``flags`` are the six torch_npu flags in order; ``allocate(name, shape)``
    returns an Operand for "attention_score", "softmax_output" and "drop_mask" (the last two
    only when ``want_probs``). Returns the list of output Operands."""
    try:
        return _forward(q, k, v, mask, scale, keep_prob, flags, options, allocate, want_probs)
    except FusedAttentionError as error:
        clear = clarify_dtype_error(error, [("query_layer", q), ("key_layer", k),
                                            ("value_layer", v), ("attention_mask", mask)])
        if clear is error:
            raise
        raise clear from None


def _forward(q, k, v, mask, scale, keep_prob, flags, options, allocate, want_probs):
    query_t, key_t, transpose_a, transpose_b, value_t, dx_t = (bool(f) for f in flags)
    score_d, probs_d, dmask_d = L.FasTensor(), L.FasTensor(), L.FasTensor()
    check(_lib.fas_attention_output_dims(q.ref(), k.ref(), v.ref(), query_t, key_t,
                                         transpose_a, transpose_b, ctypes.byref(score_d),
                                         ctypes.byref(probs_d), ctypes.byref(dmask_d)))
    scale, keep_prob = to_double("scale", scale), to_double("keep_prob", keep_prob)
    score = allocate("attention_score", _dims_of(score_d))
    if not want_probs:
        check(_lib.fused_attention_score_ex(q.ref(), k.ref(), v.ref(), _ref(mask), scale,
                                            keep_prob, query_t, key_t, transpose_a, transpose_b,
                                            value_t, dx_t, score.ref(), ctypes.byref(options)))
        return [score]
    probs = allocate("softmax_output", _dims_of(probs_d))
    dmask = allocate("drop_mask", _dims_of(dmask_d))
    check(_lib.fused_attention_score_fwd_ex(q.ref(), k.ref(), v.ref(), _ref(mask), scale,
                                            keep_prob, query_t, key_t, transpose_a, transpose_b,
                                            value_t, dx_t, score.ref(), probs.ref(), dmask.ref(),
                                            ctypes.byref(options)))
    return [score, probs, dmask]


def backward(grad_output, probs, q, k, v, dmask, scale, keep_prob, flags, options, allocate,
             out_rank):
    """Run the backward. ``flags`` = (query_transpose, key_transpose, value_transpose,
    dx_transpose); ``allocate(name, shape)`` is called for "query_dx", "key_dw" and "value_dw"
    with the shapes of ``out_rank`` (2: [B*S, N*D]; 4: [B, N, S, D])."""
    try:
        return _backward(grad_output, probs, q, k, v, dmask, scale, keep_prob, flags, options,
                         allocate, out_rank)
    except FusedAttentionError as error:
        clear = clarify_dtype_error(error, [("grad_output", grad_output),
                                            ("softmax_output", probs), ("query_layer", q),
                                            ("key_layer", k), ("value_layer", v),
                                            ("drop_mask", dmask), ("mask", dmask)])
        if clear is error:
            raise
        raise clear from None


def _backward(grad_output, probs, q, k, v, dmask, scale, keep_prob, flags, options, allocate,
              out_rank):
    query_t, key_t, value_t, dx_t = (bool(f) for f in flags)
    descs = [L.FasTensor() for _ in range(3)]
    check(_lib.fas_attention_grad_dims(q.ref(), k.ref(), v.ref(), query_t, key_t, value_t,
                                       out_rank, *[ctypes.byref(d) for d in descs]))
    outs = [allocate(name, _dims_of(d))
            for name, d in zip(("query_dx", "key_dw", "value_dw"), descs)]
    scale, keep_prob = to_double("scale", scale), to_double("keep_prob", keep_prob)
    check(_lib.fused_attention_score_grad_ex(
        grad_output.ref(), _ref(probs), q.ref(), k.ref(), v.ref(), _ref(dmask), scale, keep_prob,
        query_t, key_t, value_t, dx_t, *[o.ref() for o in outs], ctypes.byref(options)))
    return outs


def tensor_bytes(desc):
    """fas_tensor_bytes: storage bytes of a descriptor, 0 when the descriptor is invalid."""
    return _lib.fas_tensor_bytes(ctypes.byref(desc))


CAST_DTYPES = ("float16 (ACL FLOAT16, 1), float32 (FLOAT, 0), bfloat16 (BF16, 27) or uint8 "
               "(UINT8, 4)")


def format_cast(src, dst):
    """fas_format_cast(src, dst) on two Operands."""
    try:
        check(_lib.fas_format_cast(src.ref(), dst.ref()))
    except FusedAttentionError as error:
        clear = clarify_dtype_error(error, [("src", src), ("dst", dst)], CAST_DTYPES)
        if clear is error:
            raise
        raise clear from None


def reject(src, dst_desc):
    """Let the library report why a descriptor pair is invalid (called when fas_tensor_bytes says
    a descriptor is unusable, before any memory for it exists); raises FusedAttentionError."""
    try:
        check(_lib.fas_format_cast(src.ref(), ctypes.byref(dst_desc)))
    except FusedAttentionError as error:
        clear = clarify_dtype_error(error, [("src", src)], CAST_DTYPES)
        if clear is error:
            raise
        raise clear from None
    raise FusedAttentionError("format_cast: the library accepted a descriptor it sized as 0 "
                              "bytes; please report this", "FAS_ERR_INTERNAL")
