"""Shared fixtures. The package is imported from this source tree (python/), and the library from
FUSED_ATTENTION_LIBRARY when set (CTest sets it to the library it just built)."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)
REPO_ROOT = os.path.dirname(PACKAGE_ROOT)
if PACKAGE_ROOT not in sys.path:
    sys.path.insert(0, PACKAGE_ROOT)
