"""Age-sweep summaries and SD-vs-error correlations against hand computations and scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import linregress, pearsonr, spearmanr

from neurotrans.analysis.age_sweep import (
    cohort_slopes,
    falls_monotonically,
    roi_means,
    sweep_summary,
)
from neurotrans.analysis.uncertainty import regional_sd_error, sd_error_correlation


@pytest.mark.parametrize("values, expected", [([3, 2, 1], True), ([3, 3, 1], False), ([1, 2, 0], False),
                                              ([5], False), ([2.0, 1.999], True)])
def test_falls_monotonically(values, expected):
    assert falls_monotonically(values) is expected


def test_roi_means_are_means_over_the_union_of_regions():
    labels = np.zeros((4, 4, 4), dtype=np.int32)
    labels[0], labels[1], labels[2] = 1, 2, 3
    names = {1: "Cingulate_Post_L", 2: "Precuneus_R", 3: "Cingulate_Ant_L"}
    volume = np.arange(64, dtype=np.float32).reshape(4, 4, 4)
    mask = np.ones_like(labels, dtype=bool)
    mask[1, 0] = False
    got = roi_means(volume, labels, names, mask=mask)
    post = np.concatenate([volume[0].ravel(), volume[1][mask[1]].ravel()])
    assert got["posterior cingulate/precuneus"] == pytest.approx(post.mean())
    assert got["anterior cingulate"] == pytest.approx(volume[2].mean())
    assert np.isnan(roi_means(volume, labels, {1: "Other"})["anterior cingulate"])
    with pytest.raises(ValueError, match="atlas grid"):
        roi_means(volume[:3], labels, names)


def test_sweep_summary_counts_falling_subjects_and_fits_slopes():
    ages = [60.0, 70.0, 80.0, 90.0]
    curves = {"a": [1.3, 1.2, 1.1, 1.0], "b": [1.3, 1.25, 1.26, 1.1], "c": [1.0, 1.0, 1.1, 1.2]}
    table = pd.DataFrame([{"subject": s, "session": "1", "age": a, "region": "r", "suvr": v}
                          for s, vs in curves.items() for a, v in zip(ages, vs, strict=True)])
    (row,) = sweep_summary(table).to_dict("records")
    slopes = [10 * linregress(ages, vs).slope for vs in curves.values()]
    assert row["n"] == 3 and row["falling"] == 1 and row["fraction_falling"] == pytest.approx(1 / 3)
    assert row["slope_per_decade"] == pytest.approx(np.mean(slopes))
    assert row["slope_sd"] == pytest.approx(np.std(slopes, ddof=1))
    assert row["first"] == pytest.approx(np.mean([1.3, 1.3, 1.0])) and row["last"] == pytest.approx(1.1)


def test_cohort_slopes_are_least_squares_across_subjects(rng):
    age = rng.uniform(55, 90, 30)
    suvr = 1.4 - 0.004 * age + rng.normal(0, 0.01, 30)
    table = pd.DataFrame({"subject": [f"s{i}" for i in range(30)], "age": age, "region": "r", "suvr": suvr})
    (row,) = cohort_slopes(table).to_dict("records")
    fit = linregress(age, suvr)
    assert row["slope_per_decade"] == pytest.approx(10 * fit.slope) and row["r"] == pytest.approx(fit.rvalue)


def test_sd_error_correlation_voxelwise_and_regional(rng):
    shape = (6, 6, 6)
    real = rng.random(shape)
    sd = rng.random(shape) * 0.1
    prediction = real + sd * rng.choice([-1.0, 1.0], shape) * 2 + rng.normal(0, 0.01, shape)
    mask = np.ones(shape, dtype=bool)
    mask[0] = False
    labels = np.repeat(np.arange(1, 7), 36).reshape(shape).astype(np.int32)
    names = {i: f"R{i}" for i in range(1, 7)}
    table = sd_error_correlation(sd, prediction, real, mask, labels, names, min_voxels=5)
    err = np.abs(prediction - real)
    voxel = table[table["scope"] == "voxel"].iloc[0]
    assert voxel["pearson"] == pytest.approx(pearsonr(sd[mask], err[mask])[0])
    assert voxel["spearman"] == pytest.approx(spearmanr(sd[mask], err[mask])[0]) and voxel["n"] == mask.sum()
    assert voxel["pearson"] > 0.9  # the error was built from the SD
    reg = regional_sd_error(sd, err, labels, names, mask, min_voxels=5)
    assert list(reg["region"]) == [f"R{i}" for i in range(2, 7)]  # region 1 lies outside the mask
    expected = [sd[labels == i].mean() for i in range(2, 7)]
    np.testing.assert_allclose(reg["sd"], expected)
    region = table[table["scope"] == "region"].iloc[0]
    assert region["n"] == 5 and region["pearson"] == pytest.approx(pearsonr(reg["sd"], reg["abs_error"])[0])


def test_a_constant_sd_map_has_no_correlation():
    shape = (4, 4, 4)
    table = sd_error_correlation(np.zeros(shape), np.ones(shape), np.zeros(shape), np.ones(shape, bool))
    assert np.isnan(table["pearson"].iloc[0])
