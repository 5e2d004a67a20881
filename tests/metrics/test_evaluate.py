"""`neurotrans evaluate` on a tiny atlas-built FDG cohort: ideal values, ordering, problems, files."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from fake_run_info import write_run_json

from neurotrans.cli import main
from neurotrans.errors import InputError
from neurotrans.io.nifti import save_volume
from neurotrans.io.run import PredictionFolder
from neurotrans.metrics import evaluate as evaluate_module
from neurotrans.metrics.evaluate import evaluate, evaluate_command, write_evaluation
from neurotrans.metrics.tables import EVALUATION_FILES, REQUIRED_COLUMNS

COLUMNS = {
    "per_subject.tsv": "subject session group method scope units mae mse psnr ssim pearson",
    "summary.tsv": "method scope units metric mean std min max n",
    "tests.tsv": "method_a method_b scope units metric mean_diff t p_t wilcoxon_w p_wilcoxon n",
    "problems.tsv": "subject session kind file problem",
    "regional.tsv": "subject session group region real synthetic",
    "regional_summary.tsv": "region mae bias pearson_r n",
    "diagnosis.tsv": "data accuracy fnr fpr n_subjects folds",
    "bland_altman.tsv": "quantity bias loa_low loa_high n",
}
SUBJECTS = [f"sub-{k:02d}" for k in range(12)]


def test_real_against_itself_is_ideal(fdg_manifest, predictions, tmp_path, capsys):
    pred = predictions(fdg_manifest, tmp_path / "run" / "pred", sigma=0)
    train = tmp_path / "train.txt"
    train.write_text("sub-00\nsub-01\nsub-11\n")
    assert main(["evaluate", "--pred", str(pred), "--manifest", str(fdg_manifest), "--target", "FDG",
                 "--mask", "brainmask", "--train-subjects", str(train)]) == 0
    printed = capsys.readouterr().out
    out = tmp_path / "run" / "evaluation"
    for name, cols in COLUMNS.items():
        table = pd.read_csv(out / name, sep="\t")
        assert list(table.columns) == cols.split(), name
        assert set(REQUIRED_COLUMNS[name.removesuffix(".tsv")]) <= set(table.columns), name
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
    assert list(ba.quantity) == ["regional_mean", "mean_in_mask"] and np.allclose(ba.bias, 0, atol=1e-6)
    diag = pd.read_csv(out / "diagnosis.tsv", sep="\t").set_index("data")
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
        assert list(r.problems.kind) == ["missing_prediction"] * 10  # the ten rows without a prediction
    for scope in ("volume", "mid_axial"):
        for units in ("normalised", "original"):
            a, b = res[0.7][scope, units], res[2.0][scope, units]
            assert a["mae"] < b["mae"] and a["mse"] < b["mse"], (scope, units)
            assert a["ssim"] > b["ssim"] and a["psnr"] > b["psnr"], (scope, units)


def test_problems_are_listed_not_skipped(fdg_manifest, predictions, tmp_path, capsys):
    pred = predictions(fdg_manifest, tmp_path / "run" / "predictions", sigma=1.0, subjects=["sub-00", "sub-01"])
    folder = PredictionFolder(pred)
    save_volume(folder.path("sub-01", "ses-1", "FDG"), np.zeros((10, 10, 10)), np.eye(4), overwrite=True)
    save_volume(folder.path("sub-99", "ses-1", "FDG"), np.zeros((10, 10, 10)), np.eye(4))
    write_run_json(tmp_path / "run", method="pix2pix", train=["sub-05"])
    evaluate_command(pred, fdg_manifest, "FDG")
    problems = pd.read_csv(tmp_path / "run" / "evaluation" / "problems.tsv", sep="\t", keep_default_na=False)
    assert Counter(problems.kind) == {"missing_prediction": 9, "grid_mismatch": 1, "no_manifest_row": 1}
    assert "sub-05" not in set(problems.subject)  # a training subject needs no prediction
    per = pd.read_csv(tmp_path / "run" / "evaluation" / "per_subject.tsv", sep="\t")
    assert set(per.subject) == {"sub-00"} and set(per.method) == {"pix2pix", "other_subjects"}
    tests = pd.read_csv(tmp_path / "run" / "evaluation" / "tests.tsv", sep="\t")
    assert (tests.n == 1).all()  # one subject: the tests say so instead of inventing p-values
    assert "problem:" in capsys.readouterr().out


def test_run_split_decides_what_is_expected(fdg_manifest, predictions, tmp_path):
    # train/val rows need no prediction; a test subject without one is a problem; a prediction
    # of a training subject is in-sample: listed, left out of the numbers
    pred = predictions(fdg_manifest, tmp_path / "run" / "predictions", sigma=1.0, subjects=["sub-00", "sub-05"])
    write_run_json(tmp_path / "run", train=SUBJECTS[2:10], val=SUBJECTS[10:], test=SUBJECTS[:2])
    result = evaluate(pred, fdg_manifest, "FDG")
    assert sorted(zip(result.problems.subject, result.problems.kind, strict=True)) == [("sub-01", "missing_prediction"),
                                                                        ("sub-05", "in_sample")]
    assert set(result.per_subject.subject) == {"sub-00"}
    assert str(tmp_path / "run" / "run.json") in result.conventions["other_subjects"]["train_subjects"]


@pytest.mark.parametrize(("description", "run_method", "label"), [
    ({"label": "pix2pix_3plane_fdg (planes averaged)", "method": "pix2pix"}, "pix2pix",
     "pix2pix_3plane_fdg (planes averaged)"),
    (None, "unet", "unet"),
    ({"method": "esit"}, None, "model"),
])
def test_model_row_label(fdg_manifest, predictions, tmp_path, description, run_method, label):
    pred = predictions(fdg_manifest, tmp_path / "run" / "predictions", sigma=1.0, subjects=["sub-00", "sub-01"])
    if description is not None:
        PredictionFolder(pred).write_description({"Name": "neurotrans"}, {"neurotrans": description})
    if run_method is not None:
        write_run_json(tmp_path / "run", method=run_method, train=SUBJECTS[2:])
    result = evaluate(pred, fdg_manifest, "FDG", other_subjects=False)
    assert set(result.per_subject.method) == {label} and result.conventions["method"] == label


def test_nothing_evaluated_is_one_clear_error(fdg_manifest, predictions, tmp_path, capsys):
    empty = tmp_path / "run" / "predictions"
    empty.mkdir(parents=True)
    with pytest.raises(InputError, match=r"no prediction of FDG could be compared.*missing_prediction: 12; first: .*sub-00_ses-1_trc-FDG"):
        evaluate_command(empty, fdg_manifest, "FDG")
    assert not (tmp_path / "run" / "evaluation").exists()
    # predictions that all miss the grid: nothing evaluated either; the CLI says so in one line, exit 2
    folder = PredictionFolder(empty)
    for s in SUBJECTS[:2]:
        save_volume(folder.path(s, "ses-1", "FDG"), np.zeros((4, 4, 4)), np.eye(4))
    assert main(["evaluate", "--pred", str(empty), "--manifest", str(fdg_manifest), "--target", "FDG"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "grid_mismatch: 2" in err and "missing_prediction: 10" in err
    # a run that trained on every manifest subject has nothing to be tested on
    other = tmp_path / "run2" / "predictions"
    other.mkdir(parents=True)
    write_run_json(tmp_path / "run2", train=SUBJECTS)
    with pytest.raises(InputError, match="every manifest row is a training or validation subject"):
        evaluate(other, fdg_manifest, "FDG")


def test_writer_writes_each_file_once(fdg_manifest, predictions, tmp_path, monkeypatch):
    pred = predictions(fdg_manifest, tmp_path / "run" / "predictions", sigma=1.0, subjects=SUBJECTS[:9])
    result = evaluate(pred, fdg_manifest, "FDG", mask="brainmask", other_subjects=False)
    out = tmp_path / "evaluation"
    out.mkdir()
    (out / "lesions.tsv").write_text("from an earlier MS evaluation\n")
    calls = []
    real_write = evaluate_module.write_text_atomic
    monkeypatch.setattr(evaluate_module, "write_text_atomic", lambda p, t: calls.append(p.name) or real_write(p, t))
    written = write_evaluation(out, result)
    assert Counter(calls) == Counter(p.name for p in written) and max(Counter(calls).values()) == 1
    expected = {f"{n}.tsv" for n in result.tables()} | {"conventions.json"}
    assert set(calls) == expected and expected <= set(EVALUATION_FILES)
    assert {"per_subject.tsv", "regional.tsv", "diagnosis.tsv", "bland_altman.tsv"} <= expected
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)  # the stale MS table is gone
    back = pd.read_csv(out / "per_subject.tsv", sep="\t", dtype={"subject": str, "session": str})
    assert np.allclose(back.mae, result.per_subject.mae, rtol=1e-5)


def test_bad_inputs_name_the_fix(fdg_manifest, tmp_path):
    with pytest.raises(InputError, match="prediction folder not found"):
        evaluate(tmp_path / "nope", fdg_manifest, "FDG")
    with pytest.raises(InputError, match="no 'PIB' column"):
        evaluate(tmp_path, fdg_manifest, "PIB")
    with pytest.raises(InputError, match="unknown target"):
        evaluate(tmp_path, fdg_manifest, "FGD")
