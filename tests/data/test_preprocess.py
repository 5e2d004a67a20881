from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neurotrans.data.grid import Grid
from neurotrans.data.normalize import normaliser_from_dict
from neurotrans.data.preprocess import prepare_subject, restore_prediction, to_original_grid
from neurotrans.data.resample import resample_to_grid
from neurotrans.errors import InputError
from neurotrans.io.manifest import Manifest
from neurotrans.io.nifti import load_volume, save_volume

NORM = {"T1w": "minmax", "FDG": "zscore"}


def test_native_grid_shapes_stats_and_inverse(cohort):
    s = prepare_subject(cohort, 1, ["T1w"], "FDG", grid=None, normalisation=NORM)
    assert s.key == "sub-01_1" and s.subject == "sub-01" and s.session == "1"
    assert s.inputs.shape == (1, 20, 24, 20) and s.inputs.dtype == np.float32
    assert s.target.shape == (1, 20, 24, 20) and s.mask.dtype == bool and s.mask.shape == (20, 24, 20)
    assert s.inputs.min() == 0 and s.inputs.max() == pytest.approx(1)
    assert s.stats["T1w"]["kind"] == "minmax" and s.stats["FDG"]["kind"] == "zscore"
    fdg = load_volume(cohort.path(1, "FDG"))
    # identity back-mapping on the native grid, in original units
    np.testing.assert_allclose(restore_prediction(s.target, s), fdg.data, rtol=1e-5, atol=1e-3)
    mask = load_volume(cohort.path(1, "brainmask")).data > 0.5
    np.testing.assert_array_equal(s.mask, mask)
    assert s.covariates["age"] == 61 and s.covariates["group"] == "AD"


def test_coords_channels_are_world_mm_over_100(cohort, small_grid):
    s = prepare_subject(cohort, 0, ["T1w", "coords"], None, grid=None, normalisation=NORM)
    assert s.inputs.shape[0] == 4 and s.target is None
    assert s.input_names == ("T1w", "coords_x", "coords_y", "coords_z")
    ijk = np.array([3, 5, 7, 1.0])
    xyz = small_grid.affine @ ijk
    np.testing.assert_allclose(s.inputs[1:, 3, 5, 7], xyz[:3] / 100, atol=1e-6)


def test_resampling_to_a_grid_and_back(cohort, small_grid):
    coarse = Grid((10, 12, 10), small_grid.affine @ np.diag([2.0, 2.0, 2.0, 1.0]))
    s = prepare_subject(cohort, 0, ["T1w"], "FDG", grid=coarse, normalisation=NORM)
    assert s.inputs.shape == (1, 10, 12, 10) and s.grid == coarse
    assert s.reference.shape == (20, 24, 20)
    np.testing.assert_allclose(s.reference.affine, small_grid.affine)
    back = restore_prediction(s.target, s)
    assert back.shape == (20, 24, 20)
    # equals resampling the working-grid volume (in original units) by world coordinates
    units = normaliser_from_dict(s.stats["FDG"]).invert(s.target[0])
    np.testing.assert_allclose(back, resample_to_grid(units, coarse.affine, small_grid), atol=1e-4)
    # masks are resampled by nearest neighbour: still binary
    assert set(np.unique(s.mask)) <= {False, True}
    np.testing.assert_allclose(to_original_grid(np.ones(coarse.shape, np.float32), s)[:18, :22, :18], 1)


def test_mask_falls_back_to_nonzero_of_first_input(cohort):
    table = cohort.table.drop(columns="brainmask")
    m = Manifest(table, cohort.root)
    s = prepare_subject(m, 0, ["T1w"], "FDG", grid=None, normalisation=NORM)
    t1 = load_volume(cohort.path(0, "T1w")).data
    np.testing.assert_array_equal(s.mask, t1 != 0)
    assert prepare_subject(m, 0, ["T1w"], None, grid=None, normalisation=NORM, mask=None).mask is None


def _with(cohort: Manifest, column: str, data: np.ndarray, affine: np.ndarray | None = None) -> Manifest:
    path = cohort.root / f"bad_{column}.nii.gz"
    save_volume(path, data, cohort_affine(cohort) if affine is None else affine)
    table = cohort.table.copy()
    table.loc[0, column] = path.name
    return Manifest(table, cohort.root)


def cohort_affine(cohort: Manifest) -> np.ndarray:
    return load_volume(cohort.path(0, "T1w")).affine


def test_mri_and_pet_on_different_grids_without_resampling(cohort):
    affine = cohort_affine(cohort) @ np.diag([2.0, 2.0, 2.0, 1.0])
    bad = _with(cohort, "FDG", np.ones((10, 12, 10), np.float32), affine)
    with pytest.raises(InputError, match=r"bad_FDG\.nii\.gz.*different grid.*Fix: co-register"):
        prepare_subject(bad, 0, ["T1w"], "FDG", grid=None, normalisation=NORM)


def test_empty_mask_and_missing_entries(cohort):
    bad = _with(cohort, "brainmask", np.zeros((20, 24, 20), np.float32))
    with pytest.raises(InputError, match=r"bad_brainmask\.nii\.gz: mask is empty"):
        prepare_subject(bad, 0, ["T1w"], "FDG", grid=None, normalisation=NORM)
    table = cohort.table.copy()
    table.loc[0, "FDG"] = np.nan
    with pytest.raises(InputError, match="no FDG image"):
        prepare_subject(Manifest(table, cohort.root), 0, ["T1w"], "FDG", grid=None, normalisation=NORM)
    table.loc[0, "FDG"] = "nowhere/FDG.nii.gz"
    with pytest.raises(InputError, match=r"nowhere/FDG\.nii\.gz: file not found"):
        prepare_subject(Manifest(table, cohort.root), 0, ["T1w"], "FDG", grid=None, normalisation=NORM)


def test_nan_voxels_are_refused(cohort):
    data = load_volume(cohort.path(0, "T1w")).data.copy()
    data[3, 3, 3] = np.nan
    with pytest.raises(InputError, match=r"bad_T1w\.nii\.gz: contains 1 NaN/Inf"):
        prepare_subject(_with(cohort, "T1w", data), 0, ["T1w"], "FDG", grid=None, normalisation=NORM)


def test_duplicate_subjects_are_refused(cohort):
    table = pd.concat([cohort.table, cohort.table.iloc[[0]]], ignore_index=True)
    with pytest.raises(InputError, match="duplicate subject/session rows: sub-00/1"):
        Manifest(table, cohort.root, cohort.root / "manifest.tsv")
