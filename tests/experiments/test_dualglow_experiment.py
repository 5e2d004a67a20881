"""Pieces of the DUAL-GLOW experiment: fold splits, Table 1 layout, the SVM table."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from neurotrans.data.splits import fixed_split
from neurotrans.experiments.dualglow_fdg import ensemble_splits, markdown, svm_table, table1
from neurotrans.io.manifest import read_manifest
from neurotrans.io.run import PredictionFolder


def test_fold_models_share_the_test_subjects_and_partition_the_rest(fdg_cohort):
    manifest = fdg_cohort / "manifest.tsv"
    split = fixed_split(read_manifest(manifest), test_fraction=0.2, val_fraction=0.1, seed=0).to_dict()
    folds = ensemble_splits(manifest, split, 3)
    dev = set(split["train"]) | set(split["val"])
    assert all(f["test"] == split["test"] for f in folds)
    assert sorted(s for f in folds for s in f["val"]) == sorted(dev)  # every dev subject validates once
    for f in folds:
        assert set(f["train"]) | set(f["val"]) == dev and not set(f["train"]) & set(f["val"])


def test_table1_is_metric_by_method_with_mean_and_sd():
    rows = pd.DataFrame({"method": ["a", "a", "b", "b"], "pearson": [0.9, 0.8, 0.7, 0.5], "psnr": [20.0, 22.0, 18, 18],
                         "ssim": [0.8, 0.9, 0.7, 0.7], "mae": [0.1, 0.2, 0.3, 0.3]})
    t = table1(rows, ["a", "b"])
    assert list(t["metric"]) == ["CorCoef", "PSNR (dB)", "SSIM", "MAE (SUVR)"] and list(t.columns) == ["metric", "a", "b"]
    assert t.loc[1, "a"] == f"21.00 +- {np.std([20, 22], ddof=1):.2f}" and t.loc[0, "b"] == "0.600 +- 0.141"
    text = markdown(t)
    assert text.splitlines()[0] == "| metric | a | b |" and len(text.splitlines()) == 6


def test_svm_on_synthetic_pet_equal_to_the_real_pet_scores_the_same(fdg_cohort, tmp_path):
    manifest = read_manifest(fdg_cohort / "manifest.tsv")
    subjects = list(manifest.table["subject"].astype(str))
    test, dev = subjects[::3], [s for s in subjects if s not in subjects[::3]]
    folder = PredictionFolder(tmp_path / "copy")
    for i in range(len(manifest)):
        row = manifest.table.iloc[i]
        if str(row["subject"]) in test:
            path = folder.path(str(row["subject"]), str(row["session"]), "FDG")
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(manifest.path(i, "FDG"), path)
    table = svm_table(manifest, dev, test, {"copy": folder})
    real, copy = table.to_dict("records")
    assert real["data"] == "ground truth" and copy["data"] == "copy"
    assert {k: v for k, v in real.items() if k != "data"} == pytest.approx({k: v for k, v in copy.items() if k != "data"},
                                                                          nan_ok=True)
    groups = manifest.table.set_index("subject").loc[test, "group"]
    assert real["n_test"] == len(test) and real["n_impaired"] == int((groups != "CN").sum())
