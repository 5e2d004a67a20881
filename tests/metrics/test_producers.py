"""Each image producer of the evaluation on a hand-built in-memory cohort: the table it returns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from neurotrans.io.nifti import Volume
from neurotrans.io.run import REFERENCE_LABEL
from neurotrans.metrics.pairing import ImagePair
from neurotrans.metrics.reference import other_subjects_reference
from neurotrans.metrics.regional import (
    BLAND_ALTMAN_COLUMNS,
    DIAGNOSIS_COLUMNS,
    REGIONAL_COLUMNS,
    bland_altman_table,
    diagnosis_table,
    regional_table,
)
from neurotrans.metrics.scores import (
    METRIC_NAMES,
    PER_SUBJECT_COLUMNS,
    SUMMARY_COLUMNS,
    TESTS_COLUMNS,
    image_metrics_table,
    method_tests,
    summarise,
)
from neurotrans.metrics.tables import REQUIRED_COLUMNS

SHAPE = (12, 12, 12)  # the SSIM window is 11 voxels
AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])
rng = np.random.default_rng(0)
TARGETS = {s: rng.uniform(1.0, 2.0, SHAPE) for s in ("s1", "s2", "s3")}
CUBE = np.zeros(SHAPE, bool)
CUBE[3:9, 3:9, 3:9] = True


def _pair(subject: str, pred: np.ndarray, mask=None, group: str | None = "CN", affine=AFFINE) -> ImagePair:
    return ImagePair(subject, "t0", group, np.asarray(pred, np.float32),
                     Volume(TARGETS[subject].astype(np.float32), affine.copy()), mask)


@pytest.mark.parametrize("pet", [True, False])
@pytest.mark.parametrize("group", ["CN", None])
@pytest.mark.parametrize("mask", [None, CUBE])
def test_image_metrics_by_hand(pet, group, mask):
    t = TARGETS["s1"].astype(np.float32).astype(np.float64)
    pairs = [_pair("s1", t + 0.25, mask, group)]
    table = image_metrics_table(pairs, "unet", pet)
    assert list(table.columns) == [c for c in PER_SUBJECT_COLUMNS if group is not None or c != "group"]
    assert set(REQUIRED_COLUMNS["per_subject"]) <= set(table.columns)
    assert len(table) == (4 if pet else 2) and set(table.method) == {"unet"}
    vals = t[mask] if mask is not None else t
    expected = {"normalised": 0.25 / (vals.max() - vals.min()), "original": 0.25}
    for r in table.itertuples():
        assert r.mae == pytest.approx(expected[r.units], rel=1e-5)
        assert r.mse == pytest.approx(expected[r.units] ** 2, rel=1e-4)
        assert r.pearson == pytest.approx(1.0, abs=1e-6)
        if r.units == "original" and r.scope == "volume":
            assert r.psnr == pytest.approx(10 * np.log10(vals.max() ** 2 / 0.0625), rel=1e-4)
        if r.units == "normalised":
            assert r.psnr == pytest.approx(10 * np.log10(1 / expected["normalised"] ** 2), rel=1e-4)


def test_mid_axial_slice_outside_the_mask_is_nan_not_dropped():
    mask = np.zeros(SHAPE, bool)
    mask[3:9, 3:9, 0:2] = True  # the middle slice z = 6 is empty
    table = image_metrics_table([_pair("s1", TARGETS["s1"] * 1.1, mask)], "m", pet=False)
    mid = table[table.scope == "mid_axial"]
    assert len(mid) == 1 and mid[list(METRIC_NAMES)].isna().all(axis=None)


def test_other_subjects_reference_by_hand():
    pairs = [_pair("s1", TARGETS["s1"]), _pair("s2", TARGETS["s2"])]
    shifted = AFFINE.copy()
    shifted[0, 3] = 1.0
    refs = [("s1", Volume(TARGETS["s1"], AFFINE)), ("s2", Volume(TARGETS["s2"], AFFINE)),
            ("s3", Volume(TARGETS["s3"], AFFINE)), ("s4", Volume(TARGETS["s3"] * 9, shifted))]
    table, problems = other_subjects_reference(pairs, iter(refs), pet=True)
    assert len(problems) == 0 and set(table.method) == {REFERENCE_LABEL} and len(table) == 8
    for subject, others in (("s1", ("s2", "s3")), ("s2", ("s1", "s3"))):
        t = TARGETS[subject]
        # never the subject's own image, never an image on another grid
        mae = np.mean([np.abs(TARGETS[o] - t).mean() for o in others])
        rows = table[(table.subject == subject) & (table.scope == "volume")].set_index("units")
        assert rows.loc["original", "mae"] == pytest.approx(mae, rel=1e-6)
        assert rows.loc["normalised", "mae"] == pytest.approx(mae / (t.max() - t.min()), rel=1e-6)
    # a test image whose grid no other subject shares: listed, not invented
    alone = _pair("s3", TARGETS["s3"], affine=shifted)
    refs = [("s1", Volume(TARGETS["s1"], AFFINE)), ("s3", Volume(TARGETS["s3"], shifted))]
    table, problems = other_subjects_reference([alone], iter(refs), pet=False)
    assert table.empty and list(problems.kind) == ["no_reference"] and list(problems.subject) == ["s3"]


def _per_subject(values_a, values_b) -> pd.DataFrame:
    rows = []
    for method, values in (("a", values_a), ("b", values_b)):
        for k, v in enumerate(values):
            rows.append({"subject": f"s{k}", "session": "t0", "method": method, "scope": "volume",
                         "units": "original", **{m: v * (i + 1) for i, m in enumerate(METRIC_NAMES)}})
    return pd.DataFrame(rows)


def test_summarise_matches_pandas():
    per = _per_subject([1.0, 2.0, 4.0, 7.0], [1.5, 2.0, 3.0, 9.0])
    summary = summarise(per)
    assert list(summary.columns) == SUMMARY_COLUMNS and len(summary) == 2 * len(METRIC_NAMES)
    ref = per.groupby("method")[list(METRIC_NAMES)].agg(["mean", "std", "min", "max", "count"])
    for r in summary.itertuples():
        for stat in ("mean", "std", "min", "max"):
            assert getattr(r, stat) == pytest.approx(ref.loc[r.method, (r.metric, stat)])
        assert r.n == ref.loc[r.method, (r.metric, "count")]
    per.loc[0, "psnr"] = np.inf  # identical images: the mean says inf, the SD is undefined
    row = summarise(per).set_index(["method", "metric"]).loc[("a", "psnr")]
    assert np.isinf(row["mean"]) and np.isnan(row["std"])


def test_method_tests_match_scipy():
    a, b = [1.0, 2.0, 4.0, 7.0, 3.0], [1.5, 2.2, 3.0, 9.0, 3.5]
    tests = method_tests(_per_subject(a, b))
    assert list(tests.columns) == TESTS_COLUMNS and len(tests) == len(METRIC_NAMES)
    mae = tests.set_index("metric").loc["mae"]
    assert (mae.method_a, mae.method_b, mae.n) == ("a", "b", 5)
    assert mae.t == pytest.approx(stats.ttest_rel(a, b).statistic)
    assert mae.p_t == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert mae.p_wilcoxon == pytest.approx(stats.wilcoxon(a, b).pvalue)


def test_regional_table_and_bland_altman_by_hand():
    from neurotrans.data.atlas import load_atlas
    from neurotrans.data.grid import mni_grid

    grid = mni_grid(3)
    labels, names = load_atlas("AAL2", grid)
    real = (1.0 + (labels % 7) / 10.0 + 0.1 * np.indices(grid.shape)[0] / grid.shape[0]).astype(np.float32)
    brain = labels > 0
    pairs = [ImagePair(f"s{k}", "t0", None, real * (1.0 + 0.1 * k), Volume(real * (1.0 + 0.05 * k), grid.affine),
                       brain) for k in range(3)]
    regional = regional_table(pairs)
    assert list(regional.columns) == REGIONAL_COLUMNS and set(regional.group) == {""}
    assert len(regional) == 3 * len(set(np.unique(labels)) - {0})
    region = names[int(labels[labels > 0][0])]
    row = regional[(regional.subject == "s2") & (regional.region == region)].iloc[0]
    sel = labels == next(v for v, n in names.items() if n == region)
    assert row.real == pytest.approx(real[sel].mean() * 1.1, rel=1e-5)
    assert row.synthetic == pytest.approx(real[sel].mean() * 1.2, rel=1e-5)
    ba = bland_altman_table(regional, pairs, masked=True)
    assert list(ba.columns) == BLAND_ALTMAN_COLUMNS and list(ba.quantity) == ["regional_mean", "mean_in_mask"]
    d = regional.synthetic - regional.real
    assert ba.loc[0, "bias"] == pytest.approx(d.mean()) and ba.loc[0, "n"] == len(regional)
    assert ba.loc[0, "loa_high"] == pytest.approx(d.mean() + 1.96 * d.std(ddof=1))
    glob = [float(p.prediction[brain].mean() - p.target.data[brain].mean()) for p in pairs]
    assert ba.loc[1, "bias"] == pytest.approx(np.mean(glob), rel=1e-5)


def _regional(n_cn: int, n_ad: int) -> pd.DataFrame:
    gen = np.random.default_rng(1)
    rows = []
    for k in range(n_cn + n_ad):
        group = "CN" if k < n_cn else "AD"
        for r in range(6):
            value = 1.0 + 0.02 * gen.standard_normal() - (0.3 if group == "AD" and r < 3 else 0.0)
            rows.append({"subject": f"s{k}", "session": "t0", "group": group, "region": f"R{r}",
                         "real": value, "synthetic": value + 0.01})
    return pd.DataFrame(rows)


def test_diagnosis_table():
    table = diagnosis_table(_regional(8, 8))
    assert list(table.columns) == DIAGNOSIS_COLUMNS and list(table.data) == ["real", "synthetic"]
    assert (table.accuracy > 0.9).all() and (table.n_subjects == 16).all()  # AD is 0.3 lower: separable
    # a constant offset of the synthetic values is removed by the standardisation: same result
    assert table.accuracy.iloc[0] == table.accuracy.iloc[1]
    assert diagnosis_table(_regional(5, 2)) is None  # two AD subjects: no cross-validated SVM
