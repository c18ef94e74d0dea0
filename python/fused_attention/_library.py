"""Finding and loading the C library, and the ctypes mirrors of its public structs.

Discovery order (the first that applies wins):

1. ``FUSED_ATTENTION_LIBRARY``: when this environment variable is set and not empty, it is the
   path of the shared library and nothing else is tried (a library named explicitly that does not
   load is an error, never silently replaced by another one). A relative path is taken from the
   current directory at import time and turned into an absolute one (``library_path``).
2. The copy inside this package: ``fused_attention/libfused_attention.so.0``, which
   ``pip install ./python`` builds with the project's CMake and installs there (also any other
   ``libfused_attention.so*``, ``.dylib`` on macOS, ``fused_attention.dll`` on Windows). Every
   directory of the package's ``__path__`` is searched, so an editable install
   (``pip install -e ./python``), whose Python files stay in the source tree while the library is
   installed into site-packages, finds it too.
3. The system's library search path: ``ctypes.util.find_library("fused_attention")``, then the
   SONAME ``libfused_attention.so.0`` as the dynamic loader resolves it.

If nothing loads, importing the package raises ImportError with one sentence listing every place
that was tried and why it failed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import sys
from typing import List, Optional, Tuple

ENV_VAR = "FUSED_ATTENTION_LIBRARY"

# The struct and enum values below mirror include/fused_attention.h. Enums are C ints.
MAX_DIMS = 8

DTYPE_FLOAT = 0
DTYPE_FLOAT16 = 1
DTYPE_UINT8 = 4
DTYPE_BF16 = 27

FORMAT_ND = 2
FORMAT_FRACTAL_NZ = 29

PRECISION_FP32 = 0
PRECISION_NPU = 1

GEMM_AUTO = 0
GEMM_BUILTIN = 1
GEMM_BLAS = 2
GEMM_AMX = 3

# The library version that introduced fas_options.precision (and the fields after it).
PRECISION_MIN_VERSION = (0, 2, 0)


class FasTensor(ctypes.Structure):
    """Mirror of ``fas_tensor``: ``{void *data; fas_dtype dtype; fas_format format; int ndim;
    int64_t dims[8]}``. ctypes inserts the same 4 padding bytes after ``ndim`` that a C compiler
    does, so ``dims`` starts at offset 24 and the struct is 88 bytes on LP64 platforms."""

    _fields_ = [
        ("data", ctypes.c_void_p),
        ("dtype", ctypes.c_int),
        ("format", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("dims", ctypes.c_int64 * MAX_DIMS),
    ]


class FasOptions(ctypes.Structure):
    """Mirror of ``fas_options`` in its 0.3.0 layout. A library that knows fewer fields reads only
    the ones that fit in the struct_size it understands, so this mirror is valid for 0.1.0 too as
    long as the fields 0.1.0 does not know are left at their defaults (zero)."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("num_threads", ctypes.c_int),
        ("has_seed", ctypes.c_bool),
        ("seed", ctypes.c_uint64),
        ("offset", ctypes.c_uint64),
        ("drop_mask_is_input", ctypes.c_bool),
        ("impl", ctypes.c_int),
        ("precision", ctypes.c_int),  # new in 0.2.0
        ("batch_offset", ctypes.c_int64),  # new in 0.2.0
        ("head_offset", ctypes.c_int64),  # new in 0.2.0
        ("global_num_heads", ctypes.c_int64),  # new in 0.2.0
        ("gemm", ctypes.c_int),  # new in 0.3.0
    ]


def new_options() -> FasOptions:
    """A FasOptions with every field zero and struct_size set, as fas_options_init() does."""
    options = FasOptions()
    options.struct_size = ctypes.sizeof(FasOptions)
    return options


_T = ctypes.POINTER(FasTensor)
_O = ctypes.POINTER(FasOptions)
_b = ctypes.c_bool
_d = ctypes.c_double
_status = ctypes.c_int

_PROTOTYPES = {
    "fas_version_string": (ctypes.c_char_p, []),
    "fas_status_string": (ctypes.c_char_p, [ctypes.c_int]),
    "fas_last_error": (ctypes.c_char_p, []),
    "fas_simd_level": (ctypes.c_char_p, []),
    "fas_tensor_bytes": (ctypes.c_size_t, [_T]),
    "fas_format_cast": (_status, [_T, _T]),
    "fas_manual_seed": (None, [ctypes.c_uint64]),
    "fused_attention_score_ex": (_status, [_T, _T, _T, _T, _d, _d] + [_b] * 6 + [_T, _O]),
    "fused_attention_score_fwd_ex": (
        _status,
        [_T, _T, _T, _T, _d, _d] + [_b] * 6 + [_T, _T, _T, _O],
    ),
    "fused_attention_score_grad_ex": (
        _status,
        [_T, _T, _T, _T, _T, _T, _d, _d] + [_b] * 4 + [_T, _T, _T, _O],
    ),
    "fas_attention_output_dims": (_status, [_T, _T, _T] + [_b] * 4 + [_T, _T, _T]),
    "fas_attention_grad_dims": (_status, [_T, _T, _T] + [_b] * 3 + [ctypes.c_int, _T, _T, _T]),
}

# Functions that appeared later than 0.1.0: bound when the library has them, else left as None.
_OPTIONAL_PROTOTYPES = {
    "fas_gemm_engine": (ctypes.c_char_p, []),  # 0.3.0
    "fas_blas_info": (ctypes.c_char_p, []),  # 0.3.0
}


def _package_dirs() -> List[str]:
    """The directories of the package: this file's, then any other of ``fused_attention.__path__``
    (an editable install lists the source tree and the site-packages directory that holds the
    library)."""
    dirs = [os.path.dirname(os.path.abspath(__file__))]
    package = sys.modules.get(__package__ or "fused_attention")
    for entry in list(getattr(package, "__path__", None) or []):
        entry = os.path.abspath(entry)
        if entry not in dirs:
            dirs.append(entry)
    return dirs


def _package_dir() -> str:
    return _package_dirs()[0]


def _bundled_candidates() -> List[str]:
    """Shared libraries shipped inside the package, in the order they are tried."""
    if sys.platform == "win32":
        patterns = ["fused_attention.dll", "libfused_attention.dll"]
    elif sys.platform == "darwin":
        patterns = ["libfused_attention*.dylib"]
    else:
        patterns = ["libfused_attention.so.0", "libfused_attention.so", "libfused_attention.so.*"]
    found: List[str] = []
    for here in _package_dirs():
        for pattern in patterns:
            for path in sorted(glob.glob(os.path.join(here, pattern))):
                if path not in found:
                    found.append(path)
    return found


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Declare the prototypes; a missing symbol means this is not a fused-attention library."""
    for name, (restype, argtypes) in _PROTOTYPES.items():
        fn = getattr(lib, name)  # AttributeError when absent
        fn.restype = restype
        fn.argtypes = argtypes
    for name, (restype, argtypes) in _OPTIONAL_PROTOTYPES.items():
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.restype = restype
            fn.argtypes = argtypes
    return lib


def optional(lib: ctypes.CDLL, name: str):
    """The library's function ``name`` when it has it, else None (an older library)."""
    return getattr(lib, name, None) if name in _OPTIONAL_PROTOTYPES else getattr(lib, name)


def parse_version(text: str) -> Tuple[int, int, int]:
    """"MAJOR.MINOR.PATCH" -> a tuple of ints (missing or non-numeric parts count as 0)."""
    parts = []
    for piece in text.split(".")[:3]:
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits) if digits else 0)
    while len(parts) < 3:
        parts.append(0)
    return (parts[0], parts[1], parts[2])


def _try_load(path: str, tried: List[str]) -> Optional[ctypes.CDLL]:
    try:
        lib = _bind(ctypes.CDLL(path))
    except (OSError, AttributeError) as exc:
        tried.append("%s (%s)" % (path, exc))
        return None
    major = parse_version(lib.fas_version_string().decode("ascii", "replace"))[0]
    if major != 0:
        tried.append("%s (version %s; this package binds the 0.x API)"
                     % (path, lib.fas_version_string().decode("ascii", "replace")))
        return None
    return lib


def explicit_path(value: str) -> str:
    """FUSED_ATTENTION_LIBRARY's value as an absolute path (``~`` expanded; a relative path is
    taken from the current directory); ImportError when no file is there."""
    path = os.path.abspath(os.path.expanduser(value))
    if not os.path.isfile(path):
        where = "" if os.path.isabs(os.path.expanduser(value)) else (
            " (a relative path is taken from the current directory, %s)" % os.getcwd())
        raise ImportError(
            "fused_attention: %s is %r, which resolves to %s%s, and no file is there; set it to "
            "the absolute path of libfused_attention.so.0, or unset it to use the library "
            "installed with the package" % (ENV_VAR, value, path, where))
    return path


def load() -> Tuple[ctypes.CDLL, str]:
    """Return (ctypes library, path it was loaded from), or raise ImportError."""
    tried: List[str] = []
    explicit = os.environ.get(ENV_VAR, "")
    if explicit:
        path = explicit_path(explicit)
        lib = _try_load(path, tried)
        if lib is None:
            raise ImportError(
                "fused_attention: %s is set but the library it names could not be loaded: %s; "
                "unset it to use the library installed with the package instead"
                % (ENV_VAR, tried[0]))
        return lib, path
    tried.append("%s (not set)" % ENV_VAR)

    bundled = _bundled_candidates()
    for path in bundled:
        lib = _try_load(path, tried)
        if lib is not None:
            return lib, path
    if not bundled:
        tried.append("%s (no libfused_attention shared library there)"
                     % " and ".join(_package_dirs()))

    system_names: List[str] = []
    found = ctypes.util.find_library("fused_attention")
    if found:
        system_names.append(found)
    else:
        tried.append('ctypes.util.find_library("fused_attention") (found nothing)')
    if sys.platform == "win32":
        system_names.append("fused_attention.dll")
    elif sys.platform == "darwin":
        system_names.append("libfused_attention.0.dylib")
    else:
        system_names.append("libfused_attention.so.0")
    for name in system_names:
        lib = _try_load(name, tried)
        if lib is not None:
            return lib, name

    raise ImportError(
        "fused_attention: could not load the C library libfused_attention; looked at: "
        + "; ".join(tried)
        + ". Install the package with pip install ./python (which builds the library and puts it "
        "inside the package), or build it (cmake --build build) and set %s to the path of "
        "libfused_attention.so.0, or install it (cmake --install build)." % ENV_VAR)
