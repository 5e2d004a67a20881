"""The data layer on real scans (../shared/realdata): int16/uint8, negative values, non-MNI grids."""

from __future__ import annotations

import numpy as np
import pytest

from neurotrans.cli import main
from neurotrans.data.check import check_manifest
from neurotrans.data.datasets import PairedSliceDataset
from neurotrans.data.grid import mni_grid
from neurotrans.data.preprocess import prepare_subject, restore_prediction
from neurotrans.io.builders import build_manifest
from neurotrans.io.nifti import load_volume, save_volume


@pytest.fixture
def real_manifest(realdata, tmp_path):
    return build_manifest("folder", realdata, tmp_path / "manifest.tsv")


def test_manifest_and_check_pass_on_real_scans(real_manifest, tmp_path, capsys):
    assert real_manifest.subjects == ["TCGADU7294", "TCGAFG6692", "stroke"]  # folder names as BIDS labels
    assert real_manifest.image_columns == ["T1w", "T2w", "FLAIR"]
    assert "T1Gd" in real_manifest.table.columns
    report = check_manifest(tmp_path / "manifest.tsv", progress=False)
    assert report.ok, report.format()
    assert report.table["shape"].tolist() == ["240x240x155"] * 2 + ["124x160x140"]
    assert report.table["images"].tolist() == [4, 4, 3]
    assert main(["data", "check", str(tmp_path / "manifest.tsv"), "--quiet"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("OK: 3 subject/session rows, 11 images")


def test_real_glioma_native_grid_end_to_end(real_manifest, tmp_path):
    i = real_manifest.subjects.index("TCGADU7294")
    s = prepare_subject(real_manifest, i, ["T1w", "FLAIR"], "T2w", grid=None,
                        normalisation={"T1w": "minmax:robust", "FLAIR": "zscore:mask", "T2w": "minmax"})
    t1 = load_volume(real_manifest.path(i, "T1w"))
    assert t1.data.min() < 0  # interpolation left negative values in the int16 scan
    assert s.inputs.shape == (2, 240, 240, 155) and np.isfinite(s.inputs).all() and np.isfinite(s.target).all()
    np.testing.assert_array_equal(s.mask, t1.data != 0)  # no brainmask column: non-zero voxels
    assert 0 <= s.target.min() and s.target.max() <= 1
    item = PairedSliceDataset([s], plane="axial")[40]
    assert item["input"].shape == (2, 240, 240)
    back = restore_prediction(s.target, s)
    t2 = load_volume(real_manifest.path(i, "T2w"))
    np.testing.assert_allclose(back, t2.data, atol=1e-2 * np.abs(t2.data).max())


def test_real_stroke_resampled_to_mni_and_back(real_manifest, tmp_path):
    i = real_manifest.subjects.index("stroke")
    grid = mni_grid(3.0)
    s = prepare_subject(real_manifest, i, ["T1w", "coords"], "FLAIR", grid=grid,
                        normalisation={"T1w": "minmax", "FLAIR": "zscore:mask"})
    assert s.inputs.shape == (4, 61, 73, 61) and s.grid == grid and np.isfinite(s.inputs).all()
    flair = load_volume(real_manifest.path(i, "FLAIR"))
    assert flair.header.get_data_dtype() == np.uint8 and not np.allclose(flair.affine[:3, :3], np.diag([1, 1, 1]))
    back = restore_prediction(s.target, s)
    assert back.shape == flair.shape == (124, 160, 140)
    # a 3 mm round trip blurs but keeps the image: strong correlation inside the head
    inside = (flair.data > 0) & (back != 0)
    r = np.corrcoef(back[inside], flair.data[inside])[0, 1]
    assert inside.sum() > 10000 and r > 0.8
    # the prediction is written on the input's own grid
    written = load_volume(save_volume(tmp_path / "pred.nii.gz", back, s.reference.affine, s.reference.header))
    np.testing.assert_allclose(written.affine, flair.affine, atol=1e-5)
    assert written.shape == flair.shape
