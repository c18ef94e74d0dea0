"""Shared fixtures. By default the package is imported from this source tree (python/), and the
library from FUSED_ATTENTION_LIBRARY when set (CTest sets it to the library it just built).

With FUSED_ATTENTION_TEST_INSTALLED=1 (CI's wheel step) the source tree is NOT put on sys.path:
the tests import the package pip installed, with the library inside it, and test_install.py
checks that this is what they got."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)
REPO_ROOT = os.path.dirname(PACKAGE_ROOT)
INSTALLED = os.environ.get("FUSED_ATTENTION_TEST_INSTALLED", "") not in ("", "0")
if not INSTALLED and PACKAGE_ROOT not in sys.path:
    sys.path.insert(0, PACKAGE_ROOT)
