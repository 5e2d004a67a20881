from __future__ import annotations

import numpy as np
import pytest

from neurotrans.data.crop import apply_mask, crop_or_pad, crop_to_mask, mask_box, shifted_grid
from neurotrans.data.grid import mni_grid
from neurotrans.data.preprocess import prepare_subject, restore_prediction
from neurotrans.data.resample import resample_to_grid
from neurotrans.io.nifti import load_volume


def test_crop_keeps_world_coordinates(small_grid, rng):
    data = rng.normal(size=small_grid.shape).astype(np.float32)
    mask = np.zeros(small_grid.shape, bool)
    mask[5:9, 6:15, 4:7] = True
    out, grid = crop_to_mask(data, small_grid, mask, margin=1, multiple=4)
    assert all(s % 4 == 0 for s in grid.shape) and out.shape == grid.shape
    # every voxel of the crop sits at the same world position as in the original
    world = grid.world_coordinates()[:, 0, 0, 0]
    ijk = np.linalg.solve(small_grid.affine, [*world, 1])[:3]
    x, y, z = np.round(ijk).astype(int)
    np.testing.assert_array_equal(out[1:3, 1:3, 1:3], data[x + 1:x + 3, y + 1:y + 3, z + 1:z + 3])
    # resampling onto the shifted grid is the same crop (integer shift: exact)
    np.testing.assert_allclose(resample_to_grid(data, small_grid.affine, grid), out, atol=1e-5)


def test_pad_outside_and_box():
    data = np.arange(27, dtype=np.float32).reshape(3, 3, 3)
    out = crop_or_pad(data, (-1, -1, -1), (5, 5, 5))
    assert out.shape == (5, 5, 5) and out[1:4, 1:4, 1:4].tolist() == data.tolist() and out[0].sum() == 0
    assert crop_or_pad(data, (10, 0, 0), (2, 2, 2)).sum() == 0
    mask = np.zeros((10, 10, 10), bool)
    mask[2:5, 3, 4:9] = True
    assert mask_box(mask) == ((2, 3, 4), (3, 1, 5))
    with pytest.raises(ValueError, match="empty"):
        mask_box(np.zeros((2, 2, 2), bool))
    np.testing.assert_array_equal(apply_mask(data, data > 13), np.where(data > 13, data, 0))
    g = shifted_grid(mni_grid(3.0), (1, 2, 3), (4, 4, 4))
    np.testing.assert_allclose(g.affine[:3, 3], [-87.0, -120.0, -63.0])


def test_cropped_grid_as_working_grid_round_trips(cohort, small_grid):
    full = prepare_subject(cohort, 0, ["T1w"], "FDG", grid=None, normalisation={"FDG": "zscore"})
    _, grid = crop_to_mask(full.inputs[0], small_grid, full.mask, margin=0, multiple=2)
    s = prepare_subject(cohort, 0, ["T1w"], "FDG", grid=grid, normalisation={"FDG": "zscore"})
    assert s.inputs.shape[1:] == grid.shape
    assert np.prod(grid.shape) < np.prod(small_grid.shape)
    # the crop holds the whole brain, so mapping back restores every brain voxel (original units)
    back = restore_prediction(s.target, s)
    fdg = load_volume(cohort.path(0, "FDG")).data
    np.testing.assert_allclose(back[full.mask], fdg[full.mask], rtol=1e-4, atol=1e-3)
