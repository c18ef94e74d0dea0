"""format_cast: ND arrays <-> FRACTAL_NZ storage arrays, checked against an NZ layout built in the
test from the definition."""

import numpy as np
import pytest

import fa_reference as ref
import fused_attention as fa

SHAPES = [(), (1,), (5,), (17,), (1, 1), (3, 40), (16, 16), (33, 17), (2, 31, 5),
          (2, 3, 20, 47), (1, 2, 1, 2, 18, 3)]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.uint8])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_to_nz_matches_definition_and_round_trips(shape, dtype):
    rng = np.random.default_rng(len(shape) * 100 + int(np.prod(shape)))
    if dtype == np.uint8:
        a = rng.integers(0, 256, shape).astype(dtype)
    else:
        a = rng.uniform(-100, 100, shape).astype(dtype)
    nz = fa.format_cast(a, "nz")
    assert nz.dtype == a.dtype
    assert nz.shape == fa.nz_storage_shape(shape)
    assert np.array_equal(nz, ref.nz_layout(a)), "NZ bytes differ from the definition"
    back = fa.format_cast(nz, "nd", shape)
    assert back.shape == a.shape and back.dtype == a.dtype
    assert np.array_equal(back, a)
    flat = fa.format_cast(nz.ravel(), "nd", shape)
    assert np.array_equal(flat, a)


def test_storage_shape_convention():
    assert fa.nz_storage_shape((24, 16, 512, 64)) == (24, 16, 4, 32, 16, 16)
    assert fa.nz_storage_shape((33, 17)) == (2, 3, 16, 16)
    assert fa.nz_storage_shape((5,)) == (1, 1, 16, 16)
    assert fa.nz_storage_shape((40,)) == (1, 3, 16, 16)
    assert fa.nz_storage_shape(()) == (1, 1, 16, 16)


def test_acl_format_ids_name_the_formats():
    a = np.arange(40, dtype=np.float16).reshape(5, 8)
    assert np.array_equal(fa.format_cast(a, 29), fa.format_cast(a, "nz"))
    assert np.array_equal(fa.format_cast(fa.format_cast(a, 29), 2, a.shape), a)
    for bad in (3, True, None, [29], "NZ"):
        with pytest.raises(fa.FusedAttentionError) as e:
            fa.format_cast(a, bad)
        assert e.value.status == "FAS_ERR_FORMAT"


def test_nd_without_shape_gives_the_padded_matrix():
    a = np.arange(20 * 7, dtype=np.float32).reshape(20, 7)
    padded = fa.format_cast(fa.format_cast(a, "nz"), "nd")
    assert padded.shape == (32, 16)
    assert np.array_equal(padded[:20, :7], a)
    assert (padded[20:] == 0).all() and (padded[:, 7:] == 0).all()


def test_padding_of_nz_input_is_not_read():
    a = np.ones((5, 3), np.float16)
    nz = fa.format_cast(a, "nz")
    nz[0, 0, 5:, :] = np.nan  # padding rows
    nz[0, 0, :, 3:] = np.nan  # padding columns
    assert np.array_equal(fa.format_cast(nz, "nd", (5, 3)), a)


def test_non_contiguous_input():
    a = np.arange(64 * 40, dtype=np.float32).reshape(64, 40)[::2, 1::3]
    assert np.array_equal(fa.format_cast(fa.format_cast(a, "nz"), "nd", a.shape), a)


def test_errors():
    a = np.zeros((4, 4), np.float32)
    with pytest.raises(fa.FusedAttentionError) as e:
        fa.format_cast(a, "zz")
    assert e.value.status == "FAS_ERR_FORMAT"
    with pytest.raises(fa.FusedAttentionError) as e:
        fa.format_cast(np.zeros((1, 1, 16, 16), np.float32), "nd", (40, 3))
    assert e.value.status == "FAS_ERR_SHAPE" and "stored as (1, 3, 16, 16)" in str(e.value)
    with pytest.raises(fa.FusedAttentionError) as e:
        fa.format_cast(np.zeros((3, 16), np.float32), "nd")
    assert e.value.status == "FAS_ERR_SHAPE"
    with pytest.raises(fa.FusedAttentionError) as e:
        fa.format_cast(a.astype(np.float64), "nz")
    assert e.value.status == "FAS_ERR_DTYPE"
    assert e.value.library_message == "src: dtype 11 (ACL DOUBLE) is not supported (FLOAT16 = 1, FLOAT = 0, BF16 = 27; UINT8 = 4 for drop masks)"
    with pytest.raises(fa.FusedAttentionError) as e:
        fa.format_cast(np.zeros((3, 0), np.float32), "nz")
    assert e.value.status == "FAS_ERR_SHAPE"
    assert str(e.value) == "src: dims[1] is 0, dims must be >= 1"
    with pytest.raises(fa.FusedAttentionError) as e:
        fa.format_cast(np.zeros((1,) * 9, np.float32), "nz")
    assert str(e.value) == "src: ndim is 9, outside 0..8"
    with pytest.raises(fa.FusedAttentionError) as e:
        fa.format_cast(np.zeros((1, 1, 16, 16), np.float32), "nd", (0, 3))
    assert str(e.value) == "src: dims[0] is 0, dims must be >= 1"


@pytest.mark.parametrize("to", ["nz", "nd"])
def test_unsupported_dtype_is_named(to):
    """A dtype ACL knows but the cast does not take is named (ACL and numpy) as not supported;
    the library's sentence stays in library_message."""
    a = np.zeros((1, 1, 16, 16) if to == "nd" else (3, 5), np.float64)
    with pytest.raises(fa.FusedAttentionError) as e:
        fa.format_cast(a, to, (5, 3) if to == "nd" else None)
    assert e.value.status == "FAS_ERR_DTYPE"
    assert str(e.value) == ("src: dtype 11 (ACL DOUBLE, Python float64) is not supported; pass "
                            "float16 (ACL FLOAT16, 1), float32 (FLOAT, 0), bfloat16 (BF16, 27) "
                            "or uint8 (UINT8, 4)")
    assert e.value.library_message == "src: dtype 11 (ACL DOUBLE) is not supported (FLOAT16 = 1, FLOAT = 0, BF16 = 27; UINT8 = 4 for drop masks)"
