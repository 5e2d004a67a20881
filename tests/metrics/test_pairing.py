"""Pairing predictions with targets: every case of the problems table, on 6-voxel volumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neurotrans.errors import InputError
from neurotrans.io.manifest import read_manifest
from neurotrans.io.nifti import save_volume
from neurotrans.io.run import PredictionFolder
from neurotrans.metrics.pairing import PAIR_COLUMNS, PROBLEM_COLUMNS, load_pairs, pair_predictions

SHAPE = (6, 6, 6)
AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])
SUBJECTS = [f"sub-0{k}" for k in range(1, 5)]  # sub-04 has no FDG image


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    rows = []
    for k, s in enumerate(SUBJECTS):
        save_volume(root / f"{s}_mask.nii.gz", np.pad(np.ones((4, 4, 4)), 1), AFFINE)
        row = {"subject": s, "session": "M00", "group": "CN", "FDG": "", "brainmask": f"{s}_mask.nii.gz"}
        if s != "sub-04":
            save_volume(root / f"{s}_FDG.nii.gz", np.full(SHAPE, 1.0 + k), AFFINE)
            row["FDG"] = f"{s}_FDG.nii.gz"
        rows.append(row)
    pd.DataFrame(rows).to_csv(root / "manifest.tsv", sep="\t", index=False)
    return read_manifest(root / "manifest.tsv")


def _write(folder: PredictionFolder, subject: str, data=None, affine=AFFINE) -> Path:
    path = folder.path(subject, "M00", "FDG")
    save_volume(path, np.full(SHAPE, 2.0) if data is None else data, affine)
    return path


def _garbage(folder: PredictionFolder, subject: str) -> Path:
    path = folder.path(subject, "M00", "FDG")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a nifti file")
    return path


CASES = {
    # name: (write predictions, subject under test, kinds expected for it, paired?)
    "paired": (lambda f: _write(f, "sub-01"), "sub-01", [], True),
    "missing_prediction": (lambda f: None, "sub-01", ["missing_prediction"], False),
    "no_target": (lambda f: _write(f, "sub-04"), "sub-04", ["no_target"], False),
    "grid_shape": (lambda f: _write(f, "sub-01", np.ones((6, 6, 5))), "sub-01", ["grid_mismatch"], False),
    "grid_affine": (lambda f: _write(f, "sub-01", affine=AFFINE + np.diag([0, 0, 0.01, 0])), "sub-01",
                    ["grid_mismatch"], False),
    "grid_within_tolerance": (lambda f: _write(f, "sub-01", affine=AFFINE + 1e-5), "sub-01", [], True),
    "unreadable": (lambda f: _garbage(f, "sub-01"), "sub-01", ["unreadable"], False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_problem_cases(manifest, tmp_path, case):
    setup, subject, kinds, paired = CASES[case]
    folder = PredictionFolder(tmp_path / "predictions")
    setup(folder)
    others = [s for s in SUBJECTS if s != subject]  # as the run's training subjects: not expected
    res = pair_predictions(folder, manifest, "FDG", not_expected=others)
    assert list(res.problems.columns) == PROBLEM_COLUMNS and list(res.pairs.columns) == PAIR_COLUMNS
    assert list(res.problems.kind) == kinds and set(res.problems.subject) <= {subject}
    assert list(res.pairs.subject) == ([subject] if paired else [])
    if kinds and kinds[0] != "missing_prediction":
        assert list(res.problems.file) == [str(folder.path(subject, "M00", "FDG"))]


def test_training_rows_need_no_prediction_and_theirs_are_in_sample(manifest, tmp_path):
    folder = PredictionFolder(tmp_path / "predictions")
    _write(folder, "sub-01")
    _write(folder, "sub-02")
    res = pair_predictions(folder, manifest, "FDG", not_expected=["sub-02", "sub-03"])
    assert sorted(zip(res.problems.subject, res.problems.kind, strict=True)) == [
        ("sub-02", "in_sample"), ("sub-04", "missing_prediction")]
    assert list(res.pairs.subject) == ["sub-01"] and list(res.pairs.row) == [0]
    # without a run every row expects a prediction
    res = pair_predictions(folder, manifest, "FDG")
    assert list(res.pairs.subject) == ["sub-01", "sub-02"]
    assert sorted(res.problems.subject) == ["sub-03", "sub-04"]


def test_prediction_without_a_manifest_row(manifest, tmp_path):
    folder = PredictionFolder(tmp_path / "predictions")
    extra = _write(folder, "sub-99")
    _write(folder, "sub-01")
    res = pair_predictions(folder, manifest, "FDG", not_expected=SUBJECTS[1:])
    assert res.problems.to_dict("records") == [{"subject": "", "session": "", "kind": "no_manifest_row",
                                                "file": str(extra), "problem": "prediction without a manifest row"}]


def test_load_pairs_reads_voxels_and_mask(manifest, tmp_path):
    folder = PredictionFolder(tmp_path / "predictions")
    _write(folder, "sub-02", np.full(SHAPE, 5.0))
    res = pair_predictions(folder, manifest, "FDG", not_expected=["sub-01", "sub-03", "sub-04"])
    (pair,) = load_pairs(res.pairs, manifest, "brainmask")
    assert (pair.subject, pair.session, pair.group) == ("sub-02", "M00", "CN")
    assert np.all(pair.prediction == 5.0) and np.all(pair.target.data == 2.0)
    assert pair.mask.sum() == 64 and not pair.mask[0].any()
    (unmasked,) = load_pairs(res.pairs, manifest)
    assert unmasked.mask is None


def test_unreadable_target_is_an_error_naming_it(manifest, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "FDG.nii.gz").write_bytes(b"junk")
    table = manifest.table.copy()
    table["FDG"] = [str(broken / "FDG.nii.gz")] * len(table)
    table.to_csv(broken / "manifest.tsv", sep="\t", index=False)
    folder = PredictionFolder(tmp_path / "predictions")
    _write(folder, "sub-01")
    with pytest.raises(InputError, match="FDG.nii.gz.*cannot be read"):
        pair_predictions(folder, read_manifest(broken / "manifest.tsv"), "FDG")
