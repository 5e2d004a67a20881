"""The one MS scan loader: mask thresholds, brain mask, controls without lesion images, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from neurotrans.analysis.ms_scan import (
    control_reference,
    load_ms_scan,
    participants,
    reference_bin_mm,
)
from neurotrans.errors import InputError
from neurotrans.io.manifest import read_manifest
from neurotrans.io.nifti import save_volume

SHAPE = (10, 10, 10)


def _cohort(root, *, brainmask: bool, control_lesions: bool):
    rng = np.random.default_rng(0)
    ii = np.indices(SHAPE).sum(0)
    maps = {"WM": np.clip(ii / 27.0 + 0.2, 0, 1),  # a probability map crossing 0.5
            "CSF": (ii < 4).astype(float), "lesions": ((ii > 20) & (ii < 23)).astype(float) * 0.9,
            "NAWM": np.clip(ii / 27.0 + 0.2, 0, 1) * (ii <= 20), "brainmask": (ii < 24).astype(float)}
    rows = []
    for subj, group in (("sub-01", "MS"), ("sub-02", "HC")):
        row = {"subject": subj, "session": "t0", "group": group}
        pib = 1.5 + 0.05 * rng.standard_normal(SHAPE)
        save_volume(root / f"{subj}_PIB.nii.gz", pib, np.diag([2.0, 2.0, 2.0, 1.0]))
        row["PIB"] = f"{subj}_PIB.nii.gz"
        for name, data in maps.items():
            if name == "brainmask" and not brainmask:
                continue
            if name in ("lesions", "NAWM") and group == "HC" and not control_lesions:
                row[name] = ""
                continue
            save_volume(root / f"{subj}_{name}.nii.gz", data, np.diag([2.0, 2.0, 2.0, 1.0]))
            row[name] = f"{subj}_{name}.nii.gz"
        rows.append(row)
    pd.DataFrame(rows).to_csv(root / "manifest.tsv", sep="\t", index=False)
    return read_manifest(root / "manifest.tsv"), maps


@pytest.mark.parametrize("brainmask", [False, True])
def test_masks_follow_the_rules(tmp_path, brainmask):
    man, maps = _cohort(tmp_path, brainmask=brainmask, control_lesions=False)
    brain = maps["brainmask"] > 0.5 if brainmask else np.ones(SHAPE, bool)
    patient, control = (load_ms_scan(man, i, g) for i, g in ((0, "MS"), (1, "HC")))
    assert patient.patient and not control.patient
    assert np.array_equal(patient.wm, (maps["WM"] > 0.5) & brain)
    assert np.array_equal(patient.lesions, (maps["lesions"] > 0.5) & brain)
    assert np.array_equal(patient.nawm, (maps["NAWM"] > 0.5) & brain)
    assert np.array_equal(patient.wm_roi, patient.nawm) and np.array_equal(control.wm_roi, control.wm)
    # a control without lesion/NAWM images: no lesions, NAWM = WM
    assert not control.lesions.any() and np.array_equal(control.nawm, control.wm)
    expected = ndimage.distance_transform_edt(maps["CSF"] <= 0.5, sampling=(2.0, 2.0, 2.0))
    assert np.allclose(patient.distance, expected) and patient.voxel_mm3 == 8.0
    assert participants(man).loc["sub-01", "group"] == "MS"


@pytest.mark.parametrize(("voxel", "expected"), [((1.0, 1.0, 1.0), 1.0), ((2.0, 2.0, 2.0), 2.0),
                                                 ((3.0, 3.0, 3.0), 3.0), ((4.0, 4.0, 4.0), 3.0),
                                                 ((1.0, 1.0, 8.0), 2.0)])
def test_reference_bins(voxel, expected):
    assert reference_bin_mm(voxel) == pytest.approx(expected)


def test_control_reference_uses_wm_and_distance(tmp_path):
    man, _ = _cohort(tmp_path, brainmask=False, control_lesions=True)
    control = load_ms_scan(man, 1, "HC")
    ref = control_reference([control])
    assert ref.bin_mm == 2.0
    k = (control.distance[control.wm] / 2.0).astype(int)
    first = np.flatnonzero(ref.count >= 20)[0]
    assert ref.mean[first] == pytest.approx(control.pib[control.wm][k == first].mean())


def test_patient_without_lesions_and_empty_csf_are_errors(tmp_path):
    man, _ = _cohort(tmp_path, brainmask=False, control_lesions=False)
    with pytest.raises(InputError, match="no lesions image"):
        load_ms_scan(man, 1, "MS")  # the control's row read as a patient's
    save_volume(tmp_path / "sub-01_CSF.nii.gz", np.zeros(SHAPE), np.diag([2.0, 2.0, 2.0, 1.0]), overwrite=True)
    with pytest.raises(InputError, match="CSF mask is empty"):
        load_ms_scan(man, 0, "MS")
