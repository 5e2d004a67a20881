"""Cohort fdg: the testable properties of PHANTOM.md on a simulated 3 mm cohort."""

from __future__ import annotations

import numpy as np
from scipy import ndimage, stats

from neurotrans.io.manifest import read_manifest
from neurotrans.io.nifti import load_volume
from neurotrans.phantom import fdg_measures, format_summary


def test_groups_and_participants(fdg_cohort):
    m = read_manifest(fdg_cohort)
    assert m.table["group"].value_counts().to_dict() == {"CN": 5, "MCI": 4, "AD": 3}
    assert set(m.table["session"]) == {"baseline"}
    assert m.table["age"].between(55, 90).all()
    assert {"T1w", "FDG", "brainmask", "GM", "WM", "CSF", "GM_true", "WM_true", "CSF_true"} <= set(m.image_columns)


def test_ad_hypometabolic_and_atrophic(fdg_cohort):
    meas = fdg_measures(read_manifest(fdg_cohort))
    cn, ad = meas[meas["group"] == "CN"], meas[meas["group"] == "AD"]
    # posterior cingulate + precuneus SUVR: AD < CN, every AD below the CN mean
    assert ad["pcc_precuneus_suvr"].mean() < 0.9 * cn["pcc_precuneus_suvr"].mean()
    assert stats.ttest_ind(ad["pcc_precuneus_suvr"], cn["pcc_precuneus_suvr"], equal_var=False).pvalue < 0.05
    # hippocampal GM volume: AD < CN by more than 10 % (PHANTOM.md: 15-25 %; 3 AD are too few for a t-test)
    assert ad["hippocampus_gm_ml"].mean() < 0.9 * cn["hippocampus_gm_ml"].mean()
    # MCI in between
    mci = meas[meas["group"] == "MCI"]
    assert ad["pcc_precuneus_suvr"].mean() < mci["pcc_precuneus_suvr"].mean() < cn["pcc_precuneus_suvr"].mean()


def test_anterior_cingulate_declines_with_age(fdg_cohort):
    meas = fdg_measures(read_manifest(fdg_cohort))
    r, p = stats.pearsonr(meas["age"], meas["acc_suvr"])
    assert r < -0.5 and p < 0.05


def _high_frequency_fraction(volume: np.ndarray, brain: np.ndarray) -> float:
    """Share of the within-brain variance left after removing a 1-voxel Gaussian blur."""
    inner = ndimage.binary_erosion(brain, iterations=3)  # away from the skull-stripping edge
    x = volume / volume[inner].mean()
    detail = x - ndimage.gaussian_filter(x, 1.0)
    return float((detail[inner] ** 2).mean() / x[inner].var())


def test_pet_smoother_than_t1(fdg_cohort):
    m = read_manifest(fdg_cohort)
    for i in range(3):
        brain = load_volume(m.path(i, "brainmask")).data > 0.5
        t1 = _high_frequency_fraction(load_volume(m.path(i, "T1w")).data, brain)
        pet = _high_frequency_fraction(load_volume(m.path(i, "FDG")).data, brain)
        assert pet < 0.7 * t1


def test_suvr_reference_and_tissue_contrast(fdg_cohort):
    from neurotrans.data.atlas import reference_mask
    from neurotrans.data.grid import mni_grid

    m = read_manifest(fdg_cohort)
    pons = reference_mask("pons", mni_grid(3.0))
    for i in range(2):
        fdg = load_volume(m.path(i, "FDG")).data
        brain = load_volume(m.path(i, "brainmask")).data > 0.5
        t1 = load_volume(m.path(i, "T1w")).data
        # the generative maps: the SUVR reference and the tissue contrasts are defined on them
        gm = load_volume(m.path(i, "GM_true")).data
        wm = load_volume(m.path(i, "WM_true")).data
        # SUVR: the mean over the pons tissue is 1
        np.testing.assert_allclose(fdg[pons & brain & (gm + wm > 0.5)].mean(), 1.0, rtol=1e-4)
        csf = load_volume(m.path(i, "CSF_true")).data
        pure = {k: (v > t) & brain for k, v, t in (("gm", gm, 0.6), ("wm", wm, 0.9), ("csf", csf, 0.7))}
        assert t1[pure["wm"]].mean() > t1[pure["gm"]].mean() > t1[pure["csf"]].mean()  # WM > GM > CSF on T1
        assert np.all(t1[~brain] == 0) and np.all(fdg[~brain] == 0)  # skull-stripped
        assert 1.4 < fdg[pure["gm"]].mean() / fdg[pure["wm"]].mean() < 3.6  # GM:WM 3-4:1, lowered by the PSF


def test_summary_reports_group_effects(fdg_cohort):
    text = format_summary(fdg_cohort)
    assert "PCC+precuneus SUVR" in text and "hippocampal GM" in text
    assert "AD vs CN" in text and text.count("(AD < CN)") == 2 and "; hippocampal GM" in text
    assert "not patient data" in text


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def test_tissue_inputs_are_segmented_from_t1_not_the_truth(fdg_cohort):
    from neurotrans.data.grid import mni_grid
    from neurotrans.data.segment import mni152_tissue_priors, segment_tissues

    m = read_manifest(fdg_cohort)
    prior = mni152_tissue_priors(mni_grid(3.0))
    for i in range(2):
        brain = load_volume(m.path(i, "brainmask")).data > 0.5
        seg = np.stack([load_volume(m.path(i, c)).data for c in ("CSF", "GM", "WM")])
        true = np.stack([load_volume(m.path(i, f"{c}_true")).data for c in ("CSF", "GM", "WM")])
        # probabilities: sum to 1 in the brain, 0 outside; and they are not the true fractions
        np.testing.assert_allclose(seg[:, brain].sum(axis=0), 1.0, atol=1e-5)
        assert np.all(seg[:, ~brain] == 0) and np.all(true[:, ~brain] == 0)
        assert np.abs(seg - true)[:, brain].mean() > 0.05
        # the written maps are exactly what segmenting the written T1 gives
        again = segment_tissues(load_volume(m.path(i, "T1w")).data, brain, prior=prior)
        np.testing.assert_allclose(again, seg, atol=1e-5)
        # and agree with the truth as a 3 mm segmentation does (measured: GM 0.85, WM 0.90)
        ls, lt = seg.argmax(axis=0)[brain], true.argmax(axis=0)[brain]
        assert _dice(ls == 1, lt == 1) > 0.78 and _dice(ls == 2, lt == 2) > 0.82
