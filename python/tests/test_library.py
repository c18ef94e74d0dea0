"""Loading the library: version, SIMD level, the discovery order, the ImportError sentence, and the
ctypes struct mirrors against the C compiler's layout."""

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys

import pytest

import fused_attention as fa
from fused_attention import _library

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_SRC = os.path.join(os.path.dirname(HERE), "fused_attention")


def test_simd_level():
    assert fa.simd_level() in ("avx512", "avx2", "neon", "portable")
    assert '"neon"' in fa.simd_level.__doc__


def _real_library():
    """The file of the library the tests use, symlinks resolved."""
    path = fa.library_path
    if not os.path.isabs(path):
        pytest.skip("the tests loaded %s from the system path; these tests need its file" % path)
    return os.path.realpath(path)


def _package_copy(tmp_path, with_library=None):
    """A copy of the package in tmp_path (without any bundled library, unless given)."""
    dest = tmp_path / "fused_attention"
    shutil.copytree(PACKAGE_SRC, dest, ignore=shutil.ignore_patterns(
        "__pycache__", "libfused_attention*", "*.dylib", "*.dll"))
    if with_library:
        shutil.copy(with_library, dest / "libfused_attention.so.0")
    return tmp_path


def _import_in_subprocess(pythonpath, env_overrides):
    env = {k: v for k, v in os.environ.items()
           if k not in (_library.ENV_VAR, "LD_LIBRARY_PATH", "PYTHONPATH")}
    env.update(env_overrides)
    env["PYTHONPATH"] = str(pythonpath)
    code = "import fused_attention as f; print(f.library_path); print(f.__version__)"
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=str(pythonpath),
                          capture_output=True, text=True, timeout=60)


def _system_has_library():
    """Whether the loader finds libfused_attention.so.0 by itself, asked in a fresh process (in
    this one the library is already loaded, and dlopen matches its SONAME)."""
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    code = "import ctypes; ctypes.CDLL('libfused_attention.so.0')"
    return subprocess.run([sys.executable, "-c", code], env=env,
                          capture_output=True).returncode == 0


def test_environment_variable_comes_first(tmp_path):
    lib = _real_library()
    root = _package_copy(tmp_path, with_library=lib)
    linked = tmp_path / "elsewhere.so"
    shutil.copy(lib, linked)
    r = _import_in_subprocess(root, {_library.ENV_VAR: str(linked)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == str(linked)


def test_library_next_to_the_package(tmp_path):
    root = _package_copy(tmp_path, with_library=_real_library())
    r = _import_in_subprocess(root, {})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == str(root / "fused_attention" / "libfused_attention.so.0")


def test_system_library_path(tmp_path):
    lib = _real_library()
    libdir = tmp_path / "lib"
    libdir.mkdir()
    shutil.copy(lib, libdir / "libfused_attention.so.0")
    root = _package_copy(tmp_path / "pkg")
    r = _import_in_subprocess(root, {"LD_LIBRARY_PATH": str(libdir)})
    assert r.returncode == 0, r.stderr
    assert "libfused_attention" in r.stdout.splitlines()[0]


def test_relative_environment_path_is_made_absolute(tmp_path):
    """A relative FUSED_ATTENTION_LIBRARY is taken from the current directory and becomes the
    absolute library_path; one that names no file says where it looked, and why."""
    root = _package_copy(tmp_path / "pkg")
    (tmp_path / "libs").mkdir()
    shutil.copy(_real_library(), tmp_path / "libs" / "libfused_attention.so.0")
    env = {k: v for k, v in os.environ.items()
           if k not in (_library.ENV_VAR, "LD_LIBRARY_PATH", "PYTHONPATH")}
    env["PYTHONPATH"] = str(root)
    code = "import fused_attention as f; print(f.library_path)"
    env[_library.ENV_VAR] = os.path.join("libs", "libfused_attention.so.0")
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(tmp_path),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "libs" / "libfused_attention.so.0")
    elsewhere = tmp_path / "pkg"
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(elsewhere),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: fused_attention: %s is 'libs/libfused_attention.so.0', "
                           "which resolves to %s (" % (
                               _library.ENV_VAR,
                               elsewhere / "libs" / "libfused_attention.so.0")), last
    assert "current directory, %s" % elsewhere in last and "no file is there" in last


def test_explicit_path_that_does_not_load_is_an_error(tmp_path):
    root = _package_copy(tmp_path, with_library=_real_library())
    missing = str(tmp_path / "no-such-library.so")
    r = _import_in_subprocess(root, {_library.ENV_VAR: missing})
    assert r.returncode != 0
    assert "ImportError" in r.stderr and _library.ENV_VAR in r.stderr and missing in r.stderr


def _loaded_path(soname):
    """The file a soname loaded into this process comes from (None when not found)."""
    ctypes.CDLL(soname)
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if os.path.basename(path) == soname or os.path.basename(path).startswith(
                    soname.split(".so")[0] + "."):
                if path.startswith("/"):
                    return path
    return None


def test_a_library_without_the_api_is_rejected(tmp_path):
    root = _package_copy(tmp_path)
    libm = ctypes.util.find_library("m")
    libm = libm and _loaded_path(libm)
    if not libm:
        pytest.skip("no libm file to stand in for a foreign library")
    r = _import_in_subprocess(root, {_library.ENV_VAR: libm})
    assert r.returncode != 0 and "ImportError" in r.stderr and "fas_" in r.stderr


def test_nothing_found_lists_every_place(tmp_path):
    if _system_has_library():
        pytest.skip("libfused_attention is installed on the system path, so it is always found")
    root = _package_copy(tmp_path)
    r = _import_in_subprocess(root, {})
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: fused_attention: could not load the C library")
    for place in (_library.ENV_VAR, str(root / "fused_attention"), "find_library",
                  "libfused_attention.so.0"):
        assert place in last, place


def test_ctypes_mirrors_match_the_c_layout():
    """CTest builds tests/abi_probe.c and passes its path; it prints offsetof/sizeof as the C
    compiler lays the header's structs out (and the 0.2.0 fas_options layout)."""
    probe = os.environ.get("FUSED_ATTENTION_ABI_PROBE")
    if not probe:
        pytest.skip("FUSED_ATTENTION_ABI_PROBE is not set (CTest sets it to the built abi_probe)")
    out = subprocess.run([probe], capture_output=True, text=True, check=True).stdout
    c = {}
    for line in out.splitlines():
        name, value = line.split()
        c[name] = int(value)
    assert c["fas_tensor.sizeof"] == ctypes.sizeof(_library.FasTensor)
    for field, _ in _library.FasTensor._fields_:
        assert c["fas_tensor." + field] == getattr(_library.FasTensor, field).offset, field
    assert c["fas_options.sizeof"] == ctypes.sizeof(_library.FasOptions)
    for field, _ in _library.FasOptions._fields_:
        assert c["fas_options." + field] == getattr(_library.FasOptions, field).offset, field
    assert _library.new_options().struct_size == ctypes.sizeof(_library.FasOptions)
