"""One version, and the installed package.

The version is single-sourced: the project() line of the top-level CMakeLists.txt gives the C
library's fas_version_string(), which is fused_attention.__version__, and pip's metadata
(python/pyproject.toml reads the same line). With FUSED_ATTENTION_TEST_INSTALLED=1 (CI's wheel
step: pip install ./python in a fresh venv, the tests run from outside the source tree) the
package must be the installed one, carrying its own library."""

import importlib.metadata
import os
import re
import subprocess
import sys

import pytest

import fused_attention as fa
from conftest import INSTALLED, PACKAGE_ROOT, REPO_ROOT
from fused_attention import _library


def _project_version():
    with open(os.path.join(REPO_ROOT, "CMakeLists.txt")) as f:
        return re.search(r"project\(FusedAttention\s+VERSION\s+(\d+\.\d+\.\d+)", f.read()).group(1)


def _distribution():
    """pip's record of the fused-attention distribution whose files hold this package, or None
    when this package was not installed by pip (the source tree on PYTHONPATH)."""
    try:
        dist = importlib.metadata.distribution("fused-attention")
    except importlib.metadata.PackageNotFoundError:
        return None
    here = os.path.realpath(os.path.dirname(fa.__file__))
    for f in dist.files or []:
        if f.name == "__init__.py" and f.parent.name == "fused_attention":
            if os.path.realpath(os.path.dirname(dist.locate_file(f))) == here:
                return dist
    if any(str(f).endswith(".pth") or "editable" in str(f) for f in dist.files or []):
        return dist  # an editable install: its files point at this source tree
    return None


def test_version_is_the_librarys_and_the_projects():
    library = fa._core._lib.fas_version_string().decode()
    assert fa.__version__ == library
    assert re.fullmatch(r"\d+\.\d+\.\d+", fa.__version__)
    if os.environ.get(_library.ENV_VAR) and not INSTALLED:
        assert fa.__version__ == _project_version()  # the library built from this tree
    elif os.path.dirname(fa.library_path) in _library._package_dirs():
        assert fa.__version__ == _project_version()  # the library pip built and installed


def test_pip_metadata_has_the_same_version():
    dist = _distribution()
    if dist is None:
        if INSTALLED:
            pytest.fail("FUSED_ATTENTION_TEST_INSTALLED is set but fused_attention (%s) was not "
                        "installed by pip" % fa.__file__)
        pytest.skip("fused_attention is imported from the source tree, not installed by pip: "
                    "no pip metadata to compare (CI's wheel step checks it)")
    assert dist.version == fa.__version__ == _project_version()


@pytest.mark.skipif(not INSTALLED, reason="FUSED_ATTENTION_TEST_INSTALLED is not set: the "
                    "tests use the source tree (CI's wheel step runs this against the wheel)")
def test_installed_package_carries_its_library():
    assert not os.environ.get(_library.ENV_VAR), "the installed package must need no variable"
    package_dir = os.path.realpath(os.path.dirname(fa.__file__))
    assert not package_dir.startswith(os.path.realpath(PACKAGE_ROOT) + os.sep), package_dir
    assert fa.library_path == os.path.join(package_dir, "libfused_attention.so.0")
    assert os.path.isfile(os.path.join(package_dir, "py.typed"))
    # exactly one copy of the library in the package
    libs = [n for n in os.listdir(package_dir) if n.startswith("libfused_attention")]
    assert libs == ["libfused_attention.so.0"]
    # the import works from any directory, with no variable
    env = {k: v for k, v in os.environ.items()
           if k not in (_library.ENV_VAR, "PYTHONPATH", "LD_LIBRARY_PATH")}
    r = subprocess.run([sys.executable, "-c", "import fused_attention as f; "
                        "print(f.library_path); print(f.__version__)"],
                       env=env, cwd="/", capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [fa.library_path, fa.__version__]


def test_public_api_is_typed():
    """Every public function has resolvable type hints for all its parameters and its return,
    and the package says it is typed (py.typed, PEP 561)."""
    import inspect
    import typing

    modules = [fa]
    try:
        import fused_attention.torch_npu as torch_npu
        modules.append(torch_npu)
    except ImportError:
        pass
    checked = 0
    for module in modules:
        for name in module.__all__:
            obj = getattr(module, name)
            if not inspect.isfunction(obj):
                continue
            hints = typing.get_type_hints(obj)
            params = inspect.signature(obj).parameters
            assert set(params) <= set(hints), (name, set(params) - set(hints))
            assert "return" in hints, name
            checked += 1
    assert checked >= 10
    assert os.path.isfile(os.path.join(os.path.dirname(fa.__file__), "py.typed"))
