"""The calls into the C library, independent of numpy and torch.

The numpy and torch front ends turn their arrays into ``Operand`` objects (a ``FasTensor``
descriptor plus the Python object that owns the memory, kept alive for the whole call) and pass
an ``allocate(name, shape)`` callback that creates each output once the library has said what
its shape is. Everything the library can check it checks; Python only checks what the library
cannot see (a Python object's type, an integer that would not fit its C field, the size of a
storage array the library receives only as a pointer).
"""

import ctypes
import math
import operator

from . import _library as L

_lib, library_path = L.load()

version = _lib.fas_version_string().decode("ascii", "replace")
version_tuple = L.parse_version(version)


class FusedAttentionError(ValueError):
    """A call was rejected. ``str(error)`` is the library's sentence naming the argument and the
    problem (``fas_last_error()``); ``error.status`` is the status name, e.g. ``"FAS_ERR_SHAPE"``.

    The library checks every argument before writing anything, so after this error no output
    exists and no input was changed. A few problems that only Python can see (an integer too
    large for its C field, an NZ storage array whose shape does not match its logical shape, a
    precision mode the loaded library lacks) raise it too, with a status of the same meaning.
    """

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


def status_name(status):
    return _lib.fas_status_string(status).decode("ascii", "replace")


def check(status):
    """Raise FusedAttentionError for any status other than FAS_OK."""
    if status != 0:
        # Read the sentence first: it stays valid only until the next library call.
        message = _lib.fas_last_error().decode("utf-8", "replace")
        raise FusedAttentionError(message, status_name(status))


def simd_level():
    """Name of the SIMD level the library uses on this CPU: "avx512", "avx2" or "portable"."""
    return _lib.fas_simd_level().decode("ascii", "replace")


def manual_seed(seed):
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


def _note_dtypes(error, named):
    """On a dtype error, add a note (shown in tracebacks, Python 3.11+) naming each operand's
    Python dtype beside the ACL id the library's sentence quotes."""
    if error.status != "FAS_ERR_DTYPE" or not hasattr(error, "add_note"):
        return
    parts = ["%s is %s (ACL id %d)" % (name, op.py_dtype, op.desc.dtype)
             for name, op in named if op is not None and op.py_dtype is not None]
    error.add_note("Python dtypes: " + ", ".join(parts) + ". The library takes float16 (1), "
                   "float32 (0) and bfloat16 (27) tensors, and uint8 (4) drop masks.")


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


def make_options(threads=0, seed=None, precision="fp32"):
    """Build a FasOptions: thread count, explicit seed (offset 0) or the process-wide generator,
    and the precision mode ("fp32" or "npu"; "npu" needs library version 0.2.0 or later)."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise FusedAttentionError(
            "precision: %r is not a precision mode; use 'fp32' (fp32 pipeline, the default) or "
            "'npu' (the NPU's fp16 rounding model)" % (precision,), "FAS_ERR_VALUE")
    if precision != "fp32" and version_tuple < L.PRECISION_MIN_VERSION:
        raise FusedAttentionError(
            "precision: %r needs libfused_attention %s or later, but the loaded library (%s) is "
            "%s, which lacks it" % (precision, ".".join(map(str, L.PRECISION_MIN_VERSION)),
                                    library_path, version), "FAS_ERR_UNSUPPORTED")
    options = L.new_options()
    options.num_threads = _c_int("threads", threads)
    if seed is not None:
        options.has_seed = True
        options.seed = _uint64("seed", seed)
        options.offset = 0
    options.precision = PRECISIONS[precision]
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
        _note_dtypes(error, [("query_layer", q), ("key_layer", k), ("value_layer", v),
                             ("attention_mask", mask)])
        raise


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
        _note_dtypes(error, [("grad_output", grad_output), ("softmax_output", probs),
                             ("query_layer", q), ("key_layer", k), ("value_layer", v),
                             ("drop_mask", dmask)])
        raise


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


def format_cast(src, dst):
    """fas_format_cast(src, dst) on two Operands."""
    check(_lib.fas_format_cast(src.ref(), dst.ref()))


def reject(src_desc, dst_desc):
    """Let the library report why a descriptor pair is invalid (called when fas_tensor_bytes says
    a descriptor is unusable, before any memory for it exists); raises FusedAttentionError."""
    check(_lib.fas_format_cast(ctypes.byref(src_desc), ctypes.byref(dst_desc)))
    raise FusedAttentionError("format_cast: the library accepted a descriptor it sized as 0 "
                              "bytes; please report this", "FAS_ERR_INTERNAL")
