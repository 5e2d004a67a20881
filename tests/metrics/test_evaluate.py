"""`neurotrans evaluate` on a tiny atlas-built FDG cohort: ideal values, ordering, problems, files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from neurotrans.cli import main
from neurotrans.errors import InputError
from neurotrans.io.nifti import save_volume
from neurotrans.metrics.evaluate import evaluate, evaluate_command

COLUMNS = {
    "per_subject.tsv": "subject session group method scope units mae mse psnr ssim pearson",
    "summary.tsv": "method scope units metric mean std min max n",
    "tests.tsv": "method_a method_b scope units metric mean_diff t p_t wilcoxon_w p_wilcoxon n",
    "regional.tsv": "subject session group region real synthetic",
    "regional_summary.tsv": "region mae bias pearson_r n",
    "diagnosis.tsv": "data accuracy fnr fpr n_subjects folds",
    "bland_altman.tsv": "quantity bias loa_low loa_high n",
}


def test_real_against_itself_is_ideal(fdg_manifest, predictions, tmp_path, capsys):
    pred = predictions(fdg_manifest, tmp_path / "run" / "pred", sigma=0)
    train = tmp_path / "train.txt"
    train.write_text("sub-00\nsub-01\nsub-11\n")
    assert main(["evaluate", "--pred", str(pred), "--manifest", str(fdg_manifest), "--target", "FDG",
                 "--mask", "brainmask", "--train-subjects", str(train)]) == 0
    printed = capsys.readouterr().out
    out = tmp_path / "run" / "evaluation"
    for name, cols in COLUMNS.items():
        assert list(pd.read_csv(out / name, sep="\t").columns) == cols.split(), name
    per = pd.read_csv(out / "per_subject.tsv", sep="\t")
    model = per[per.method == "model"]
    assert len(model) == 12 * 2 * 2  # subjects x scopes x units
    assert (model.mae == 0).all() and (model.mse == 0).all()
    assert np.allclose(model.ssim, 1.0) and np.allclose(model.pearson, 1.0)
    assert np.isinf(model.psnr).all()  # MSE 0: inf, written as 'inf' and read back as such
    other = per[per.method == "other_subjects"]
    assert len(other) == len(model) and (other.mae > 0).all() and (other.ssim < 0.99).all()
    summary = pd.read_csv(out / "summary.tsv", sep="\t")
    assert set(summary.method) == {"model", "other_subjects"}
    conv = json.loads((out / "conventions.json").read_text())
    assert conv["units"]["normalised"]["psnr"] == {"convention": "fixed", "data_range": 1.0}
    assert conv["units"]["original"]["psnr"]["convention"] == "max"
    assert conv["ssim"]["sigma"] == 1.5 and conv["mask"] == "brainmask"
    assert str(train) in conv["other_subjects"]["train_subjects"]
    reg = pd.read_csv(out / "regional.tsv", sep="\t")
    assert np.allclose(reg.real, reg.synthetic)
    ba = pd.read_csv(out / "bland_altman.tsv", sep="\t")
    assert np.allclose(ba.bias, 0, atol=1e-6)
    diag = pd.read_csv(out / "diagnosis.tsv", sep="\t").set_index("data")
    print(diag)
    assert diag.loc["real", "accuracy"] > 0.75  # AD vs CN separable well above chance (0.5)
    assert diag.loc["synthetic", "accuracy"] == diag.loc["real", "accuracy"]
    assert "other_subjects" in printed and "SVM CN/AD" in printed
    # no overwrite of existing results without being asked
    with pytest.raises(InputError, match="already holds"):
        evaluate_command(pred, fdg_manifest, "FDG", mask="brainmask", train_subjects=train)


def test_more_blur_gives_worse_scores(fdg_manifest, predictions, tmp_path):
    res = {}
    for sigma in (0.7, 2.0):
        pred = predictions(fdg_manifest, tmp_path / f"s{sigma}", sigma=sigma, subjects=["sub-00", "sub-07"])
        r = evaluate(pred, fdg_manifest, "FDG", mask="brainmask", other_subjects=False)
        res[sigma] = r.summary.set_index(["scope", "units", "metric"])["mean"].sort_index()
        assert len(r.problems) == 10  # the ten rows without a prediction are listed
    for scope in ("volume", "mid_axial"):
        for units in ("normalised", "original"):
            a, b = res[0.7][scope, units], res[2.0][scope, units]
            assert a["mae"] < b["mae"] and a["mse"] < b["mse"], (scope, units)
            assert a["ssim"] > b["ssim"] and a["psnr"] > b["psnr"], (scope, units)


def test_problems_are_listed_not_skipped(fdg_manifest, predictions, tmp_path, capsys):
    pred = predictions(fdg_manifest, tmp_path / "run" / "pred", sigma=1.0, subjects=["sub-00", "sub-01"])
    save_volume(pred / "sub-01_ses-1_FDG.nii.gz", np.zeros((10, 10, 10)), np.eye(4), overwrite=True)
    save_volume(pred / "sub-99_ses-1_FDG.nii.gz", np.zeros((10, 10, 10)), np.eye(4))
    (tmp_path / "run" / "run.json").write_text(json.dumps({"method": "pix2pix", "train_subjects": ["sub-05"]}))
    evaluate_command(pred, fdg_manifest, "FDG")
    problems = pd.read_csv(tmp_path / "run" / "evaluation" / "problems.tsv", sep="\t", keep_default_na=False)
    text = " ".join(problems.problem)
    assert "grid" in text and "without a manifest row" in text
    assert (problems.problem == "no prediction for this row").sum() == 10
    per = pd.read_csv(tmp_path / "run" / "evaluation" / "per_subject.tsv", sep="\t")
    assert set(per.subject) == {"sub-00"} and set(per.method) == {"pix2pix", "other_subjects"}
    tests = pd.read_csv(tmp_path / "run" / "evaluation" / "tests.tsv", sep="\t")
    assert (tests.n == 1).all()  # one subject: the tests say so instead of inventing p-values
    assert "problem:" in capsys.readouterr().out


def test_training_rows_are_not_problems_when_the_run_names_its_test_set(fdg_manifest, predictions, tmp_path):
    # run.json names the test subjects: rows of the other subjects are expected to lack predictions,
    # but a test subject without a prediction is still reported
    pred = predictions(fdg_manifest, tmp_path / "run" / "pred", sigma=1.0, subjects=["sub-00"])
    (tmp_path / "run" / "run.json").write_text(json.dumps(
        {"method": "pix2pix", "train_subjects": ["sub-05", "sub-06"], "test_subjects": ["sub-00", "sub-01"]}))
    result = evaluate(pred, fdg_manifest, "FDG")
    assert list(result.problems.subject) == ["sub-01"]
    assert list(result.problems.problem) == ["no prediction for this row"]


def test_bad_inputs_name_the_fix(fdg_manifest, tmp_path):
    with pytest.raises(InputError, match="prediction folder not found"):
        evaluate(tmp_path / "nope", fdg_manifest, "FDG")
    with pytest.raises(InputError, match="no 'PIB' column"):
        evaluate(tmp_path, fdg_manifest, "PIB")
    with pytest.raises(InputError, match="unknown target"):
        evaluate(tmp_path, fdg_manifest, "FGD")
