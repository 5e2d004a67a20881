from __future__ import annotations

import gzip

import numpy as np
import pandas as pd

from neurotrans.cli import main
from neurotrans.data.check import check_manifest
from neurotrans.io.manifest import Manifest, write_manifest
from neurotrans.io.nifti import load_volume, save_volume


def test_clean_cohort_passes(cohort, capsys):
    report = check_manifest(cohort.source, progress=False)
    assert report.ok and len(report.table) == 4
    assert (report.table["images"] == 3).all() and (report.table["grid"] == "ok").all()
    assert report.table.loc[0, "shape"] == "20x24x20" and report.table.loc[0, "voxel_mm"] == "3x3x3"
    assert report.format().splitlines()[-1].startswith("OK: 4 subject/session rows, 12 images")
    assert main(["data", "check", str(cohort.source), "--quiet"]) == 0
    assert "OK:" in capsys.readouterr().out


def _break(cohort: Manifest, tmp_path):
    """Row 0: truncated T1w; row 1: FDG on another grid; row 2: NaN FDG + empty mask; row 3: 4D + missing."""
    root = cohort.root
    raw = gzip.decompress(cohort.path(0, "T1w").read_bytes())
    (root / "trunc.nii.gz").write_bytes(gzip.compress(raw[: len(raw) // 3]))
    save_volume(root / "coarse.nii.gz", np.arange(1200, dtype=np.float32).reshape(10, 12, 10),
                np.diag([6.0, 6, 6, 1]))
    fdg = load_volume(cohort.path(2, "FDG"))
    data = fdg.data.copy()
    data[1, 2, 3] = np.inf
    data[4, 5, 6] = np.nan
    save_volume(root / "nan.nii.gz", data, fdg.affine)
    save_volume(root / "empty.nii.gz", np.zeros(fdg.shape, np.float32), fdg.affine)
    import nibabel as nib
    nib.save(nib.Nifti1Image(np.ones((*fdg.shape, 2), np.float32), fdg.affine), str(root / "four_d.nii.gz"))
    t = cohort.table.copy()
    t.loc[0, "T1w"] = "trunc.nii.gz"
    t.loc[1, "FDG"] = "coarse.nii.gz"
    t.loc[2, "FDG"] = "nan.nii.gz"
    t.loc[2, "brainmask"] = "empty.nii.gz"
    t.loc[3, "T1w"] = "four_d.nii.gz"
    t.loc[3, "FDG"] = "gone.nii.gz"
    write_manifest(t, root / "bad.tsv")
    return root / "bad.tsv"


def test_each_problem_is_named_with_its_file_and_fix(cohort, tmp_path, capsys):
    path = _break(cohort, tmp_path)
    report = check_manifest(path, progress=False)
    assert not report.ok
    text = "\n".join(report.problems)
    for needle in ("trunc.nii.gz: cannot be read as NIfTI", "coarse.nii.gz: is on a different grid",
                   "nan.nii.gz: contains 2 NaN/Inf voxels", "empty.nii.gz: brainmask mask is empty",
                   "four_d.nii.gz: is 4D", "gone.nii.gz: file not found"):
        assert needle in text, needle
    assert text.count("Fix:") == len(report.problems) == 6
    assert report.table["status"].tolist() == ["FAIL"] * 4
    assert report.table.loc[1, "grid"] == "MISMATCH" and report.table.loc[2, "nan_inf"] == 2
    assert report.table.loc[2, "masks"] == "EMPTY"
    assert main(["data", "check", str(path), "--quiet"]) == 1
    assert "FAILED: 6 problem(s) in 4 of 4 rows" in capsys.readouterr().out


def test_extra_image_columns_are_checked_and_empty_lesions_allowed(cohort):
    t = cohort.table.copy()
    t["T1Gd"] = t["T1w"]
    t["lesions"] = "empty_lesions.nii.gz"
    save_volume(cohort.root / "empty_lesions.nii.gz", np.zeros((20, 24, 20), np.float32),
                load_volume(cohort.path(0, "T1w")).affine)
    report = check_manifest(Manifest(pd.DataFrame(t), cohort.root), progress=False)
    assert report.ok and (report.table["images"] == 5).all()
