"""Regional means, stats, lesion contrast, myelin indices, OLS and the SVM against hand computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage, stats
from sklearn.linear_model import LinearRegression

from neurotrans.analysis.diagnosis import classify
from neurotrans.analysis.lesions import contrast_ratios, surrounding_nawm
from neurotrans.analysis.myelin import (
    control_reference,
    demyelinated_map,
    distance_from_csf,
    myelin_indices,
    roi_discrepancy,
)
from neurotrans.analysis.regional import regional_means, regional_summary, suvr
from neurotrans.analysis.regression import encode_sex, ols
from neurotrans.analysis.stats import bland_altman, dice, paired_tests


def test_regional_means_and_summary(rng):
    labels = rng.integers(0, 5, size=(8, 9, 7)).astype(np.int32)
    data = rng.random(labels.shape)
    names = {1: "A", 2: "B", 3: "C", 4: "D", 9: "absent"}
    means = regional_means(data, labels, names)
    assert set(means) == {"A", "B", "C", "D"}
    for v, n in names.items():
        if n in means:
            assert means[n] == pytest.approx(data[labels == v].mean())
    mask = data > 0.5
    assert regional_means(data, labels, names, mask)["B"] == pytest.approx(data[(labels == 2) & mask].mean())
    ref = labels == 1
    assert suvr(data, ref)[ref].mean() == pytest.approx(1.0, rel=1e-5)
    table = pd.DataFrame({"region": ["A"] * 4 + ["B"] * 4, "real": [1, 2, 3, 4, 1, 1, 1, 1.0],
                          "synthetic": [1.5, 2.5, 2.5, 4.5, 1, 1, 1, 1.0]})
    s = regional_summary(table).set_index("region")
    assert s.loc["A", "mae"] == pytest.approx(0.5) and s.loc["A", "bias"] == pytest.approx(0.25)
    assert s.loc["A", "pearson_r"] == pytest.approx(np.corrcoef([1, 2, 3, 4], [1.5, 2.5, 2.5, 4.5])[0, 1])
    assert np.isnan(s.loc["B", "pearson_r"]) and s.loc["B", "n"] == 4


def test_paired_tests_and_bland_altman(rng):
    a, b = rng.normal(1, 1, 12), rng.normal(0.5, 1, 12)
    res = paired_tests(a, b)
    assert res["t"] == pytest.approx(stats.ttest_rel(a, b).statistic)
    assert res["p_wilcoxon"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert res["mean_diff"] == pytest.approx(np.mean(a - b)) and res["n"] == 12
    a[0] = np.inf  # identical images give inf PSNR: dropped, not propagated
    assert paired_tests(a, b)["n"] == 11
    same = paired_tests(b, b)
    assert same["mean_diff"] == 0 and np.isnan(same["p_wilcoxon"])
    ba = bland_altman(b, a[1:].tolist() + [0.0])
    d = np.array(a[1:].tolist() + [0.0]) - b
    assert ba["bias"] == pytest.approx(d.mean())
    assert ba["loa_high"] - ba["loa_low"] == pytest.approx(2 * 1.96 * d.std(ddof=1))


def test_dice_and_lesion_ratios():
    a = np.zeros((6, 6, 6), bool)
    b = a.copy()
    a[1:3, 1:3, 1:3] = True
    b[2:4, 1:3, 1:3] = True
    assert dice(a, b) == pytest.approx(2 * 4 / 16)
    assert dice(a, a) == 1.0 and dice(np.zeros(3, bool), np.zeros(3, bool)) == 1.0
    img = np.full((20, 20, 20), 2.0)
    lesion = np.zeros(img.shape, bool)
    lesion[9:11, 9:11, 9:11] = True
    nawm = ~lesion
    dist = ndimage.distance_transform_cdt(~lesion, metric="taxicab")
    img[(dist > 0) & (dist <= 5)] = 1.6  # the ring around the lesion
    img[lesion] = 0.8
    ring = surrounding_nawm(lesion, nawm)
    assert np.array_equal(ring, (dist > 0) & (dist <= 5))  # 5 dilations with the 6-connected element
    cr = contrast_ratios(img, lesion, nawm)
    assert cr["ratio2"] == pytest.approx(0.8 / 1.6)
    assert cr["ratio1"] == pytest.approx(0.8 / img[nawm].mean())


def test_distance_reference_and_demyelination(rng):
    csf = np.zeros((15, 15, 15), bool)
    csf[7, 7, 7] = True
    d = distance_from_csf(csf, (3.0, 3.0, 3.0))
    ii = np.indices(csf.shape)
    assert np.allclose(d, 3.0 * np.sqrt(((ii - 7) ** 2).sum(0)))
    wm = d > 0
    dvr = [1.0 + 0.02 * d + 0.05 * rng.standard_normal(d.shape) for _ in range(3)]
    ref = control_reference(dvr, [wm] * 3, [d] * 3, bin_mm=3.0)
    k = (d[wm] / 3.0).astype(int)
    vals = np.stack([x[wm] for x in dvr])
    for b in (1, 3, 5):
        sel = vals[:, k == b].ravel()
        if sel.size >= 20:
            assert ref.mean[b] == pytest.approx(sel.mean()) and ref.sd[b] == pytest.approx(sel.std(ddof=1))
    lesions = wm & (d < 12)
    low = dvr[0] - 1.0  # far below every threshold
    assert np.array_equal(demyelinated_map(low, lesions, d, ref), lesions)
    assert not demyelinated_map(dvr[0] + 1.0, lesions, d, ref).any()


def test_myelin_indices_by_hand():
    les = np.zeros(10, bool)
    les[:8] = True
    d0 = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], bool)  # 4 demyelinated, 4 normal lesion voxels
    d1 = np.array([1, 0, 0, 0, 1, 0, 0, 0, 1, 0], bool)  # voxel 8 is outside the baseline lesions
    res = myelin_indices(d0, d1, les)
    assert res["fraction_t0"] == 0.5 and res["fraction_t1"] == 2 / 8
    assert res["global"] == pytest.approx(-0.25)
    assert res["dynamic_demyelination"] == 1 / 4 and res["dynamic_remyelination"] == 3 / 4
    assert res["remyelinating"].sum() == 3 and res["demyelinating"].sum() == 1
    real, synth = np.arange(10.0), np.arange(10.0) + np.linspace(0, 1, 10)
    assert roi_discrepancy(real, synth, les) == pytest.approx(abs(np.mean(real[:8] - synth[:8])))
    assert np.isnan(roi_discrepancy(real, synth, np.zeros(10, bool)))


def test_ols_matches_sklearn_and_hand(rng):
    n = 18
    x = pd.DataFrame({"index": rng.random(n), "age": rng.normal(31, 5, n), "sex": encode_sex(
        pd.Series(list("MF" * 9))), "lesion_load": rng.normal(5000, 2000, n)})
    y = 4 - 3 * x["index"] + 0.02 * x["age"] + rng.normal(0, 0.3, n)
    fit = ols(y.to_numpy(), x).set_index("term")
    lr = LinearRegression().fit(x, y)
    assert np.allclose(fit.loc[list(x.columns), "coef"], lr.coef_)
    assert fit.loc["intercept", "coef"] == pytest.approx(lr.intercept_)
    # hand: se from sigma^2 (X'X)^-1, p from the t distribution with n - 5 dof
    design = np.column_stack([np.ones(n), x.to_numpy(float)])
    resid = y.to_numpy() - design @ fit["coef"].to_numpy()
    cov = resid @ resid / (n - 5) * np.linalg.inv(design.T @ design)
    assert np.allclose(fit["se"], np.sqrt(np.diag(cov)))
    assert fit.loc["index", "p"] == pytest.approx(2 * stats.t.sf(abs(fit.loc["index", "t"]), n - 5))
    # standardised beta = coefficient of the regression on z-scored variables
    z = (x - x.mean()) / x.std(ddof=1)
    lz = LinearRegression().fit(z, (y - y.mean()) / y.std(ddof=1))
    assert np.allclose(fit.loc[list(x.columns), "beta_std"], lz.coef_)
    assert fit.loc["index", "coef"] < 0 and fit.loc["index", "p"] < 0.01
    with pytest.raises(ValueError, match="cannot fit"):
        ols(y.to_numpy()[:5], x.iloc[:5])
    with pytest.raises(ValueError, match="sex"):
        encode_sex(pd.Series(["M", "X"]))


def test_svm_subject_level_cv(rng):
    n = 16
    groups = np.array(["CN"] * 8 + ["AD"] * 8)
    subjects = np.repeat([f"s{i}" for i in range(n)], 2)
    base = rng.normal(0, 1, (n, 30)) + np.where(groups == "AD", -1.5, 0)[:, None] * (np.arange(30) < 10)
    feats = np.repeat(base, 2, axis=0) + 0.01 * rng.standard_normal((2 * n, 30))
    res = classify(feats, np.repeat(groups, 2), subjects)
    assert res.accuracy > 0.85 and res.n_subjects == 16 and res.folds == 5
    # two near-identical sessions per subject: without subject-level folds, pure noise would be
    # 'classified' by memorising the twin; grouped folds keep it near chance
    noise = np.repeat(rng.normal(0, 1, (n, 30)), 2, axis=0)
    assert classify(noise, np.repeat(groups, 2), subjects).accuracy < 0.8
    assert classify(noise, np.repeat(groups, 2), None).accuracy > 0.9
    with pytest.raises(ValueError, match="two groups"):
        classify(feats, np.repeat(["CN"] * n, 2), subjects)
