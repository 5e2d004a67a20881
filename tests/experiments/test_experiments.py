"""Experiment glue: demo summary from an evaluation, comparison table, real-data manifest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neurotrans.errors import InputError
from neurotrans.experiments.compare_fdg import format_table, per_subject_rows, table
from neurotrans.experiments.demo import run_demo, summary_from_evaluation
from neurotrans.experiments.realdata import realdata_manifest
from neurotrans.io.manifest import read_manifest


def _summary_rows(method, units, mae, psnr, ssim):
    return [{"method": method, "scope": "volume", "units": units, "metric": m, "mean": v, "std": 0.1, "min": v,
             "max": v, "n": 8} for m, v in (("mae", mae), ("psnr", psnr), ("ssim", ssim))]


def test_demo_summary_prefers_original_units(tmp_path):
    rows = (_summary_rows("pix2pix", "original", 0.1, 25.0, 0.9) + _summary_rows("other_subjects", "original",
                                                                                  0.2, 20.0, 0.8)
            + _summary_rows("pix2pix", "normalised", 0.05, 30.0, 0.95)
            + [{**r, "scope": "mid_axial", "mean": -1.0} for r in _summary_rows("pix2pix", "original", 0, 0, 0)])
    pd.DataFrame(rows).to_csv(tmp_path / "summary.tsv", sep="\t", index=False)
    s = summary_from_evaluation(tmp_path, "pix2pix")
    assert s == {"units": "original", "test": {"mae": 0.1, "psnr": 25.0, "ssim": 0.9},
                 "reference_other_subjects": {"mae": 0.2, "psnr": 20.0, "ssim": 0.8}}


def test_demo_refuses_to_overwrite(tmp_path):
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(InputError, match="overwrite"):
        run_demo(tmp_path, minutes=0.01)
    with pytest.raises(InputError, match="subjects"):
        run_demo(tmp_path / "new", subjects=3)


def _evaluation(folder, label, maes, ref_offset=0.0):
    folder.mkdir(parents=True)
    rows = [{"subject": f"s{i}", "session": "1", "method": m, "scope": "volume", "units": "original",
             "mae": v if m == label else 5.0 + i + ref_offset, "mse": v, "psnr": 20.0 + v, "ssim": 0.5 + v / 10,
             "pearson": 0.9} for i, v in enumerate(maes) for m in (label, "other_subjects")]
    pd.DataFrame(rows).to_csv(folder / "per_subject.tsv", sep="\t", index=False)
    return folder


def test_comparison_table_mean_and_std_pooled_and_over_folds(tmp_path):
    evaluations = {"a": [_evaluation(tmp_path / "a0", "a", [1.0, 2.0, 3.0])],
                   "b": [_evaluation(tmp_path / "b0", "b", [2.0, 2.0, 2.0])]}
    df = table(per_subject_rows(evaluations))
    assert list(df["model"]) == ["a", "b", "other_subjects"]
    a = df.iloc[0]
    assert a["mae_mean"] == pytest.approx(2.0) and a["mae_std"] == pytest.approx(1.0) and a["n"] == 3
    assert df.iloc[2]["mae_mean"] == 6.0 and df.iloc[1]["mae_std"] == 0.0
    assert "| a | 3 | 2.0000 +- 1.0000 | 22.00 +- 1.00 |" in format_table(df)
    # two folds: subjects pooled, and the SD of the fold means beside it
    folds = {"a": [_evaluation(tmp_path / "f0", "a", [1.0, 1.0]), _evaluation(tmp_path / "f1", "a", [3.0, 3.0])]}
    df = table(per_subject_rows(folds))
    a = df.iloc[0]
    assert a["n"] == 4 and a["folds"] == 2 and a["mae_mean"] == pytest.approx(2.0)
    assert a["mae_fold_std"] == pytest.approx(np.std([1.0, 3.0], ddof=1))
    assert "(folds" in format_table(df)


def test_realdata_manifest(realdata, tmp_path):
    man = read_manifest(realdata_manifest(realdata, tmp_path))
    assert len(man) == 3 and {"T1w", "T2w", "FLAIR"} <= set(man.image_columns)
    assert all(man.path(i, "FLAIR").is_file() for i in range(len(man)))


def test_model_tests_pair_the_models_and_the_reference_by_subject(tmp_path):
    from scipy import stats

    from neurotrans.experiments.compare_fdg import model_tests

    maes = {"a": [1.0, 2.0, 3.0], "b": [2.5, 2.9, 4.6]}
    evaluations = {name: [_evaluation(tmp_path / name, name, v)] for name, v in maes.items()}
    tests = model_tests(per_subject_rows(evaluations))
    mae = tests[tests.metric == "mae"].set_index(["method_a", "method_b"])
    assert set(mae.index) == {("a", "other_subjects"), ("a", "b"), ("other_subjects", "b")}
    row = mae.loc[("a", "b")]
    assert row["n"] == 3 and row["mean_diff"] == pytest.approx(-1.0 / 3 * 4.0)
    assert row["p_t"] == pytest.approx(stats.ttest_rel(maes["a"], maes["b"]).pvalue)
