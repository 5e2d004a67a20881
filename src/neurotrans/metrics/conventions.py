"""``conventions.json``: how every number of an evaluation was computed, so it can be reproduced."""

from __future__ import annotations

from neurotrans.metrics import image as im


def evaluation_conventions(target: str, method: str, mask: str | None, pet: bool, other_subjects: bool,
                           reference_source: str) -> dict:
    """The conventions of the image tables (the MS analyses add their own ``ms`` entry).

    Args:
        target: the predicted modality.
        method: the model's row label in the tables.
        mask: the mask column, or ``None``.
        pet: original units (SUVR/DVR) were scored too.
        other_subjects: the other-subjects reference was computed.
        reference_source: where its training subjects came from (a file, run.json, or all others).
    """
    return {
        "target": target, "method": method, "mask": mask,
        "mask_rule": "voxels where the mask image > 0.5; SSIM map averaged inside it without border crop"
                     if mask else "no mask: whole image; SSIM map averaged after cropping a 5-voxel border (as skimage)",
        "normalisation": "normalised = (x - min) / (max - min), min and max of the TARGET inside the mask, "
                         "the same transform applied to the prediction (not clipped)",
        "units": {"normalised": {"psnr": {"convention": "fixed", "data_range": 1.0}, "ssim_data_range": 1.0},
                  **({"original": {"psnr": {"convention": "max", "data_range": "max of the target inside the mask"},
                                   "ssim_data_range": "max - min of the target inside the mask",
                                   "quantity": "SUVR" if target == "FDG" else "DVR"}} if pet else {})},
        "psnr_formula": "10 log10(peak^2 / MSE); inf when MSE is 0 (identical images)",
        "ssim": {"window": "Gaussian", "sigma": im.SSIM_SIGMA, "truncate": im.SSIM_TRUNCATE,
                 "radius_voxels": im.SSIM_RADIUS, "K1": im.SSIM_K1, "K2": im.SSIM_K2,
                 "covariance": "population (use_sample_covariance=False)", "padding": "reflect",
                 "dimensionality": "3D window for 'volume', 2D for 'mid_axial'"},
        "scopes": {"volume": "whole 3D volume", "mid_axial": "axial slice z = Z // 2 (third voxel axis)"},
        "summary_std": "sample SD (ddof 1); NaN when any value is inf",
        "pairing": "predictions of the run's training/validation subjects are left out (problems.tsv, in_sample); "
                   "nothing is resampled: a prediction off the target's grid is a problem",
        "other_subjects": {"enabled": other_subjects, "train_subjects": reference_source,
                           "rule": "each test target vs. every training subject's target (other than itself), "
                                   "the other subject's image treated as the prediction, metrics averaged"},
        "tests": "paired two-sided t-test (scipy.stats.ttest_rel) and Wilcoxon signed-rank; non-finite pairs dropped",
        "regional": "AAL2 (clinica) resampled to the data grid, nearest neighbour; means in original units",
        "bland_altman": "bias = mean(synthetic - real); limits bias -/+ 1.96 SD (ddof 1)",
        "diagnosis": "RBF SVM (C=1, gamma='scale', class_weight='balanced': groups are unequal) on standardised AAL2 "
                     "means, CN vs AD, StratifiedGroupKFold by subject (<= 5 folds, seed 0); AD is positive",
    }


def ms_conventions(synthetic_threshold: bool) -> dict:
    """How the MS tables were computed (``conventions.json``'s ``ms`` entry)."""
    return {
        "masks": "lesions, NAWM, WM, CSF, brainmask images > 0.5; WM, NAWM and lesions inside the brain mask "
                 "when there is one; controls without lesion/NAWM images: no lesions, NAWM = WM",
        "ratio1": "mean(lesions) / mean(NAWM)", "ratio2": "mean(lesions) / mean(NAWM within 5 dilations of lesions)",
        "demyelinated": "lesion voxel with DVR < mean - 1 SD of controls' WM DVR in its distance-from-CSF bin",
        "distance": "scipy.ndimage.distance_transform_edt in mm; bins of one voxel size (<= 3 mm)",
        "synthetic_threshold_from": "controls' synthetic PIB" if synthetic_threshold else "controls' real PIB",
        "indices": "fractions of the baseline (first session) lesion mask; global = fraction_t1 - fraction_t0",
        "dice_of_empty_maps": 1.0,
        "edss_regression": "OLS EDSS ~ index + age + sex (1 = male) + lesion_load (mm3), one model per index",
    }


__all__ = ["evaluation_conventions", "ms_conventions"]
