"""MNI grids, resampling by world coordinates, atlases and reference masks on a grid."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from neurotrans.data.atlas import load_atlas, reference_mask, region_mask
from neurotrans.data.grid import Grid, mni_grid
from neurotrans.data.resample import resample_to_grid


@pytest.mark.parametrize(("voxel_size", "shape"), [(1.5, (121, 145, 121)), (3.0, (61, 73, 61))])
def test_mni_grid_matches_papers(voxel_size, shape):
    grid = mni_grid(voxel_size)
    assert grid.shape == shape
    assert grid.voxel_size == pytest.approx((voxel_size,) * 3)
    # the first voxel sits at the AAL2 origin, the last covers +90 mm in x
    xyz = grid.world_coordinates()
    assert xyz[:, 0, 0, 0] == pytest.approx((-90, -126, -72))
    assert xyz[0, -1, 0, 0] == pytest.approx(90)


def test_mni_grid_rejects_bad_voxel_size():
    with pytest.raises(ValueError, match="positive"):
        mni_grid(0)


def test_resample_identity_is_exact(rng):
    grid = mni_grid(3.0)
    data = rng.random(grid.shape).astype(np.float32)
    np.testing.assert_array_equal(resample_to_grid(data, grid.affine, grid), data)


def test_resample_matches_scipy_zoom_for_integer_downsampling(rng):
    # a 2x coarser grid whose voxel centres coincide with every other source voxel
    src = Grid((20, 20, 20), np.eye(4))
    dst_aff = np.diag([2.0, 2.0, 2.0, 1.0])
    dst = Grid((10, 10, 10), dst_aff)
    data = ndimage.gaussian_filter(rng.random(src.shape), 2).astype(np.float32)
    out = resample_to_grid(data, src.affine, dst, order=1)
    np.testing.assert_allclose(out, data[::2, ::2, ::2], atol=1e-6)


def test_resample_nearest_keeps_labels(rng):
    src = Grid((16, 16, 16), np.eye(4))
    labels = rng.integers(0, 5, src.shape)
    shifted = np.eye(4)
    shifted[:3, 3] = 0.4  # sub-voxel shift: nearest neighbour must not invent labels
    out = resample_to_grid(labels, src.affine, Grid(src.shape, shifted), order=0)
    assert set(np.unique(out)) <= set(np.unique(labels))


@pytest.mark.parametrize("voxel_size", [1.5, 3.0])
def test_aal2_on_grid(voxel_size):
    grid = mni_grid(voxel_size)
    labels, names = load_atlas("AAL2", grid)
    assert labels.shape == grid.shape
    assert len(names) == 120
    present = set(np.unique(labels)) - {0}
    assert present <= set(names)
    assert len(present) == 120  # every region survives even the 3 mm grid
    # left hippocampus lies left of the midline (negative x in RAS)
    hip_l = region_mask(labels, names, "Hippocampus_L")
    x = grid.world_coordinates()[0]
    assert hip_l.any() and x[hip_l].mean() < -10


def test_atlas_names_are_clean():
    _, names = load_atlas("AAL2")
    assert all(n == n.strip() for n in names.values())


@pytest.mark.parametrize("name", ["pons", "cerebellumPons"])
def test_reference_masks_are_inferior_and_central(name):
    grid = mni_grid(3.0)
    mask = reference_mask(name, grid)
    assert mask.sum() > 20
    xyz = grid.world_coordinates()
    assert abs(xyz[0][mask].mean()) < 5  # midline
    assert xyz[2][mask].mean() < -20  # brain stem / cerebellum level


def test_unknown_atlas_lists_choices():
    with pytest.raises(ValueError, match="AAL2"):
        load_atlas("AAL3")
