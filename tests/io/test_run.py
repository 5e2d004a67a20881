"""The run contract: RunInfo round trips, RunFolder layout, BIDS-derivatives paths never leave their folder."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from neurotrans.errors import InputError
from neurotrans.io.manifest import Manifest
from neurotrans.io.run import PredictionFolder, RunFolder, RunInfo, TrainingOutcome, bids_label


def _info() -> RunInfo:
    return RunInfo(version="0.1.0", config={"name": "x"}, method="supervised", inputs=("T1w", "coords"),
                   input_channels=("T1w", "coords_x", "coords_y", "coords_z"), target="FDG", units="SUVR",
                   mask="brainmask", target_stats=({"kind": "suvr", "reference": 2.0, "region": "pons"},),
                   cohort_stats={}, grid={"shape": [2, 2, 2], "affine": [[1.0, 0, 0, 0]] * 4}, spatial_dims=2,
                   sampling={"kind": "slices", "planes": ["axial"], "context": 0}, in_channels=4, size_multiple=16,
                   split={"train": ["sub-01"], "val": [], "test": ["sub-02"]}, manifest="/m.tsv", simulated=True)


def test_run_info_round_trips_through_run_json(tmp_path):
    run = RunFolder(tmp_path)
    info = _info()
    assert run.read_info() is None and run.read_outcome() is None
    run.write_info(info)
    assert run.read_info() == info and run.read_outcome() is None
    run.write_info(info, TrainingOutcome(steps=5, stopped="finished", monitor="mae"))
    assert run.read_info() == info and run.read_outcome().steps == 5
    assert RunInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info
    assert info.test_subjects == ["sub-02"] and info.train_subjects == ["sub-01"]


def test_run_info_from_another_version_is_one_clear_error(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"method": "pix2pix", "test_subjects": []}))
    with pytest.raises(InputError, match="retrain"):
        RunFolder(tmp_path).read_info()
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        RunFolder(tmp_path).read_info()


def test_run_folder_layout(tmp_path):
    run = RunFolder(tmp_path)
    assert run.best_checkpoint() == run.checkpoint("last")
    run.checkpoints.mkdir()
    run.checkpoint("best").write_bytes(b"x")
    assert run.best_checkpoint() == tmp_path / "checkpoints" / "best.pt"
    assert run.variant_predictions(None) == run.predictions
    assert run.variant_predictions("planes-all").root == tmp_path / "predictions_planes-all"
    assert RunFolder.of_predictions(run.predictions.root) is None
    run.write_info(_info())
    assert RunFolder.of_predictions(run.predictions.root) == RunFolder(tmp_path.resolve())


@pytest.mark.parametrize("target, relative", [
    ("FDG", "sub-001/ses-baseline/pet/sub-001_ses-baseline_trc-FDG_desc-neurotrans_pet.nii.gz"),
    ("PIB", "sub-001/ses-baseline/pet/sub-001_ses-baseline_trc-PIB_desc-neurotrans_pet.nii.gz"),
    ("T2w", "sub-001/ses-baseline/anat/sub-001_ses-baseline_desc-neurotrans_T2w.nii.gz"),
    ("FLAIR", "sub-001/ses-baseline/anat/sub-001_ses-baseline_desc-neurotrans_FLAIR.nii.gz"),
    ("DTI_FA", "sub-001/ses-baseline/dwi/sub-001_ses-baseline_desc-neurotrans_DTIFA.nii.gz"),
])
def test_prediction_paths_follow_bids_derivatives(tmp_path, target, relative):
    folder = PredictionFolder(tmp_path)
    for subject, session in (("sub-001", "baseline"), ("001", "ses-baseline")):
        assert folder.path(subject, session, target) == tmp_path / relative
    path = folder.path("sub-001", "baseline", target)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    assert folder.scan(target) == [path]
    assert folder.sidecar(path).name == path.name.replace(".nii.gz", ".json")
    assert folder.sd_path("sub-001", "baseline", target).name.count("desc-neurotransSD") == 1


@pytest.mark.parametrize("subject", ["../sub-007", "sub-007/../../x", "a/b", "..", ".", "", "sub-", "sub 1",
                                     "sub-01\x00", "/etc", "sub-0\\1", "süb1", "sub-01_ses-02"])
def test_ids_that_are_not_bids_labels_are_refused(tmp_path, subject):
    with pytest.raises(InputError, match="BIDS subject label"):
        PredictionFolder(tmp_path).path(subject, "1", "FDG")
    with pytest.raises(InputError, match="BIDS"):
        bids_label(subject, "sub")
    table = pd.DataFrame({"subject": [subject], "session": ["1"]})
    with pytest.raises(InputError, match="subject"):
        Manifest(table, tmp_path)


@pytest.mark.parametrize("session", ["../ses-1", "t0/..", "ses-", "a b"])
def test_session_labels_are_checked_too(tmp_path, session):
    with pytest.raises(InputError, match="BIDS session label"):
        PredictionFolder(tmp_path).path("sub-1", session, "FDG")
