"""Helpers shared by the tests: input generation and direct access to the library's error."""

import numpy as np

import fused_attention

MASK_FORMS = ["B1SS", "BNSS", "11SS", "1NSS", "B11S", "111S", "none"]


def mask_shape(form, b, n, sq, sk):
    """Logical shape of each accepted mask form ([B|1, N|1, Sq|1, Sk]); None for no mask."""
    return {
        "B1SS": (b, 1, sq, sk), "BNSS": (b, n, sq, sk), "11SS": (1, 1, sq, sk),
        "1NSS": (1, n, sq, sk), "B11S": (b, 1, 1, sk), "111S": (1, 1, 1, sk), "none": None,
    }[form]


def random_inputs(rng, b, n, sq, sk, d, dv, mask_form="B1SS", dtypes=None, qt=False, kt=False,
                  vt=False):
    """q, k, v, mask stored as the flags say (qt: q is [B,N,D,Sq]; kt: k is [B,N,D,Sk]; vt: v is
    [B,N,Dv,Sk]), of the given dtypes (default all float16). Values are moderate so that the
    softmax is neither flat nor one-hot."""
    dtypes = dtypes or (np.float16,) * 4
    q = rng.uniform(-1.5, 1.5, (b, n, d, sq) if qt else (b, n, sq, d)).astype(dtypes[0])
    k = rng.uniform(-1.5, 1.5, (b, n, d, sk) if kt else (b, n, sk, d)).astype(dtypes[1])
    v = rng.uniform(-1.0, 1.0, (b, n, dv, sk) if vt else (b, n, sk, dv)).astype(dtypes[2])
    shape = mask_shape(mask_form, b, n, sq, sk)
    mask = None if shape is None else rng.uniform(-3.0, 1.0, shape).astype(dtypes[3])
    return q, k, v, mask


def last_library_error():
    """The library's own fas_last_error() on this thread, read directly through ctypes."""
    return fused_attention._core._lib.fas_last_error().decode()
