"""MS evaluation on a small hand-built longitudinal cohort with a known remyelination-EDSS link."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from neurotrans.errors import InputError
from neurotrans.io.nifti import save_volume
from neurotrans.io.run import PredictionFolder
from neurotrans.metrics.evaluate_ms import evaluate_ms, format_ms

SHAPE = (24, 24, 24)
AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])


def _anatomy():
    ii = np.indices(SHAPE) - 11.5
    r = np.sqrt((ii**2).sum(0))
    csf = r < 3
    wm = (r >= 3) & (r < 9)
    return csf, wm, r


def make_ms_cohort(root: Path, n_patients: int = 10, n_controls: int = 4, seed: int = 0) -> Path:
    """Patients (t0, t1) and controls; EDSS = 6 - 6 x remyelination rate + noise."""
    rng = np.random.default_rng(seed)
    csf, wm, r = _anatomy()
    rows, parts = [], []

    def save(name, data):
        save_volume(root / name, np.asarray(data, np.float32), AFFINE)
        return name

    for k in range(n_patients + n_controls):
        subj, patient = f"sub-{k:02d}", k < n_patients
        base = np.where(csf, 0.8, np.where(wm, 1.5 + 0.02 * r, 1.1))  # DVR rises away from CSF
        lesions = np.zeros(SHAPE, bool)
        if patient:
            for _ in range(3):
                c = rng.integers(0, 24, 3)
                while not wm[tuple(c)]:
                    c = rng.integers(0, 24, 3)
                lesions[tuple(slice(max(x - 1, 0), x + 2) for x in c)] = True
            lesions &= wm
        demy0 = lesions & (rng.random(SHAPE) < 0.5)
        remyelination, demyelination = rng.uniform(0.05, 0.9), rng.uniform(0.05, 0.5)
        demy1 = (demy0 & (rng.random(SHAPE) > remyelination)) | (lesions & ~demy0 & (rng.random(SHAPE) < demyelination))
        age, sex = float(rng.integers(20, 46)), "MF"[k % 2]
        edss = 6 - 6 * remyelination + rng.normal(0, 0.3) if patient else 0.0
        parts.append({"participant_id": subj, "EDSS": edss, "age": age, "sex": sex,
                      "group": "MS" if patient else "HC"})
        masks = {"lesions": save(f"{subj}_lesions.nii.gz", lesions), "NAWM": save(f"{subj}_nawm.nii.gz", wm & ~lesions),
                 "WM": save(f"{subj}_wm.nii.gz", wm), "CSF": save(f"{subj}_csf.nii.gz", csf)}
        for ses, demy in (("t0", demy0), ("t1", demy1)) if patient else (("t0", demy0),):
            pib = np.where(demy, 1.0, base) + 0.03 * rng.standard_normal(SHAPE)
            rows.append({"subject": subj, "session": ses, "PIB": save(f"{subj}_{ses}_PIB.nii.gz", pib), **masks})
    pd.DataFrame(rows).to_csv(root / "manifest.tsv", sep="\t", index=False)
    pd.DataFrame(parts).to_csv(root / "participants.tsv", sep="\t", index=False)
    return root / "manifest.tsv"


@pytest.fixture(scope="module")
def ms_manifest(tmp_path_factory) -> Path:
    return make_ms_cohort(tmp_path_factory.mktemp("ms"))


def _predict(manifest: Path, out: Path, noise: float, seed: int = 1) -> Path:
    table = pd.read_csv(manifest, sep="\t")
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    import nibabel as nib
    for _, row in table.iterrows():
        data = np.asarray(nib.load(manifest.parent / row["PIB"]).dataobj)
        if noise:
            data = ndimage.gaussian_filter(data, 0.7) + noise * rng.standard_normal(data.shape)
        save_volume(PredictionFolder(out).path(row["subject"], row["session"], "PIB"), data, AFFINE)
    return out


def test_true_against_true(ms_manifest, tmp_path):
    pred = _predict(ms_manifest, tmp_path / "pred", noise=0)
    t = evaluate_ms(ms_manifest, pred)
    les, idx, reg = t.lesions, t.indices, t.edss_regression
    patients = les[les.group == "MS"]
    assert len(patients) == 20 and (patients.demyelination_dice == 1).all()
    assert (patients.ratio1_real < 1).all() and (patients.ratio2_real < 1).all()  # lesion DVR below NAWM
    assert (patients.demyelinated_fraction_real.between(0.2, 0.9)).all()
    assert len(idx) == 10
    for col in ("dice_t0", "dice_t1", "dice_dynamic_demyelination", "dice_dynamic_remyelination"):
        assert (idx[col] == 1).all()
    assert np.allclose(idx.dynamic_remyelination_real, idx.dynamic_remyelination_synthetic)
    assert np.allclose(t.bland_altman.bias, 0) and np.allclose(t.myelin_discrepancy["mean"], 0)
    rem = reg[(reg.term == "dynamic_remyelination")].set_index("data")
    assert rem.loc["real", "coef"] < 0 and rem.loc["real", "p"] < 0.05 and rem.loc["real", "beta_std"] < -0.5
    assert rem.loc["real", "coef"] == pytest.approx(rem.loc["synthetic", "coef"])
    assert list(reg.columns) == ["data", "index", "term", "coef", "se", "t", "p", "beta_std"]
    assert not (tmp_path / "evaluation").exists()  # computing writes nothing
    assert any(line.startswith("EDSS ~ dynamic_remyelination (real)") for line in format_ms(t))


def test_noisy_prediction_disagrees_partly(ms_manifest, tmp_path):
    pred = _predict(ms_manifest, tmp_path / "pred", noise=0.15)
    t = evaluate_ms(ms_manifest, pred)
    dice = t.lesions.query("group == 'MS'").demyelination_dice
    assert 0.3 < dice.mean() < 1.0
    assert (t.myelin_discrepancy["mean"] > 0).all()


def test_missing_columns_and_controls(ms_manifest, tmp_path):
    table = pd.read_csv(ms_manifest, sep="\t")
    table.drop(columns="CSF").to_csv(ms_manifest.parent / "no_csf.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match="CSF"):
        evaluate_ms(ms_manifest.parent / "no_csf.tsv", tmp_path)
    parts = pd.read_csv(ms_manifest.parent / "participants.tsv", sep="\t")
    sub = tmp_path / "c"
    sub.mkdir()
    patients = table[table.subject.isin(parts.participant_id[parts.group == "MS"])].copy()
    for col in ("PIB", "lesions", "NAWM", "WM", "CSF"):
        patients[col] = [str(ms_manifest.parent / p) for p in patients[col]]
    patients.to_csv(sub / "manifest.tsv", sep="\t", index=False)
    parts.to_csv(sub / "participants.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match="controls"):
        evaluate_ms(sub / "manifest.tsv", _predict(ms_manifest, tmp_path / "p", 0))


def test_evaluate_command_runs_the_ms_analyses(ms_manifest, tmp_path, capsys):
    from neurotrans.metrics.evaluate import evaluate_command

    pred = _predict(ms_manifest, tmp_path / "run" / "predictions", noise=0.05)
    train = tmp_path / "train.txt"
    train.write_text("sub-12\nsub-13\n")  # two controls as the other-subjects reference keep it quick
    res = evaluate_command(pred, ms_manifest, "PIB", train_subjects=train)
    out = tmp_path / "run" / "evaluation"
    for name in ("per_subject", "summary", "tests", "lesions", "indices", "edss_regression", "myelin_discrepancy",
                 "bland_altman"):
        assert (out / f"{name}.tsv").is_file(), name
    ba = pd.read_csv(out / "bland_altman.tsv", sep="\t")
    assert list(ba.quantity) == ["regional_mean", "mean_in_volume", "WM_NAWM_DVR", "lesion_DVR"]
    assert set(res.ms.tables()) == {"lesions", "indices", "edss_regression", "myelin_discrepancy"}
    assert "EDSS ~" in capsys.readouterr().out
    conv = json.loads((out / "conventions.json").read_text())
    assert conv["target"] == "PIB" and "distance_transform_edt" in conv["ms"]["distance"]


def test_phantom_summary_and_ms_evaluation_read_scans_alike(ms_manifest, tmp_path):
    # one scan loader for both: the summary's numbers are the evaluation's real-PIB numbers
    from neurotrans.io.manifest import read_manifest
    from neurotrans.phantom.summary import myelin_indices

    summary = myelin_indices(read_manifest(ms_manifest)).set_index("subject")
    t = evaluate_ms(ms_manifest, _predict(ms_manifest, tmp_path / "pred", noise=0.1))
    t0 = t.lesions.query("group == 'MS' and session == 't0'").set_index("subject").loc[summary.index]
    assert np.allclose(summary.lesion_dvr, t0.lesion_real, equal_nan=True)
    assert np.allclose(summary.nawm_dvr, t0.wm_real) and (t0.wm_roi == "NAWM").all()
    assert (summary.lesion_voxels == t0.lesion_voxels).all()
    assert np.allclose(summary.pct_demyelinated_t0 / 100, t0.demyelinated_fraction_real, equal_nan=True)
    idx = t.indices.set_index("subject").loc[summary.index]
    assert np.allclose(summary.remyelination_index, idx.dynamic_remyelination_real, equal_nan=True)
    assert np.allclose(summary.demyelination_index, idx.dynamic_demyelination_real, equal_nan=True)
