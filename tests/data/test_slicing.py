from __future__ import annotations

import numpy as np
import pytest

from neurotrans.data.slicing import PLANES, assemble_slices, extract_slices, get_slice


@pytest.mark.parametrize("plane", PLANES)
@pytest.mark.parametrize("pad_to", [None, (31, 33)])
def test_round_trip_is_exact(plane, pad_to, rng):
    vol = rng.normal(size=(2, 11, 13, 17)).astype(np.float32)
    slices = extract_slices(vol, plane, pad_to=pad_to)
    np.testing.assert_array_equal(assemble_slices(slices, plane, vol.shape), vol)


def test_planes_follow_the_documented_axes(rng):
    vol = rng.normal(size=(1, 5, 6, 7)).astype(np.float32)
    ax, co, sa = (extract_slices(vol, p) for p in PLANES)
    assert ax.shape == (7, 1, 5, 6) and co.shape == (6, 1, 5, 7) and sa.shape == (5, 1, 6, 7)
    np.testing.assert_array_equal(ax[3, 0], vol[0, :, :, 3])
    np.testing.assert_array_equal(co[2, 0], vol[0, :, 2, :])
    np.testing.assert_array_equal(sa[4, 0], vol[0, 4, :, :])


@pytest.mark.parametrize("plane", PLANES)
def test_context_stacks_neighbours_with_edge_replication(plane, rng):
    vol = rng.normal(size=(2, 5, 6, 7)).astype(np.float32)
    k = 2
    out = extract_slices(vol, plane, context=k)
    plain = extract_slices(vol, plane)
    n, c = plain.shape[:2]
    assert out.shape == (n, c * (2 * k + 1), *plain.shape[2:])
    for i in range(n):
        for j, off in enumerate(range(-k, k + 1)):
            src = min(max(i + off, 0), n - 1)
            np.testing.assert_array_equal(out[i, j * c:(j + 1) * c], plain[src])
        np.testing.assert_array_equal(get_slice(vol, plane, i, context=k), out[i])
    # the centre block reassembles the volume
    np.testing.assert_array_equal(assemble_slices(out[:, k * c:(k + 1) * c], plane, vol.shape[1:]), vol)


def test_padding_is_centred_and_errors(rng):
    vol = np.ones((1, 4, 4, 3), np.float32)
    out = extract_slices(vol, "axial", pad_to=(8, 7))
    assert out.shape == (3, 1, 8, 7)
    assert out[0, 0, 2:6, 1:5].all() and out.sum() == vol.sum()
    with pytest.raises(ValueError, match="smaller"):
        extract_slices(vol, "axial", pad_to=(2, 2))
    with pytest.raises(ValueError, match="plane"):
        extract_slices(vol, "transverse")
