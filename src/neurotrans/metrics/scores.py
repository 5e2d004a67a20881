"""Image metrics of prediction/target pairs, their summary and paired tests between methods.

Every pair is scored on the whole volume and on the middle axial slice, in normalised
units (min-max of the target inside the mask; the same transform applied to the
prediction; PSNR with the fixed range 1) and, for PET, in original units (SUVR/DVR; PSNR
with the target's maximum).

References:
    Lan et al./pix2pix MRI->PET (Table 1); Wei, PhD thesis 2020 (PSNR with MAX, Eq. 3.9).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from neurotrans.analysis.stats import paired_tests
from neurotrans.errors import InputError
from neurotrans.metrics import image as im
from neurotrans.metrics.pairing import ImagePair

METRIC_NAMES = ("mae", "mse", "psnr", "ssim", "pearson")
PER_SUBJECT_COLUMNS = ["subject", "session", "group", "method", "scope", "units", *METRIC_NAMES]
SUMMARY_COLUMNS = ["method", "scope", "units", "metric", "mean", "std", "min", "max", "n"]
TESTS_COLUMNS = ["method_a", "method_b", "scope", "units", "metric", "mean_diff", "t", "p_t",
                 "wilcoxon_w", "p_wilcoxon", "n"]


def normalise(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Min-max of the target (inside the mask), the same affine map applied to the prediction."""
    vals = target[mask] if mask is not None else target
    lo, hi = float(vals.min()), float(vals.max())
    scale = hi - lo if hi > lo else 1.0
    return (pred - lo) / scale, (target - lo) / scale


def image_metrics(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None, units: str) -> dict[str, float]:
    """The five metrics of one image pair under the evaluation's conventions.

    Args:
        pred: prediction, shape ``(X, Y[, Z])``, already in the units named by ``units``.
        target: real image, same shape.
        mask: boolean mask or ``None``.
        units: ``"normalised"`` (PSNR and SSIM with range 1) or ``"original"`` (PSNR with the
            target's maximum inside the mask, SSIM with the target's max - min inside it).
    """
    if units == "normalised":
        psnr = im.psnr(pred, target, mask, data_range=1.0, convention="fixed")
        ssim = im.ssim(pred, target, mask, data_range=1.0)
    else:
        psnr = im.psnr(pred, target, mask, convention="max")
        ssim = im.ssim(pred, target, mask)
    return {"mae": im.mae(pred, target, mask), "mse": im.mse(pred, target, mask), "psnr": psnr,
            "ssim": ssim, "pearson": im.pearson(pred, target, mask)}


def pair_metrics(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None, pet: bool) -> list[dict]:
    """Metrics of one pair for every scope (volume, middle axial slice) and units.

    Args:
        pred: prediction, shape ``(X, Y, Z)``.
        target: real image, same shape.
        mask: boolean mask or ``None``.
        pet: add original units (SUVR/DVR) to the normalised ones.

    Returns:
        one dict per (scope, units): ``scope``, ``units`` and the metrics of :data:`METRIC_NAMES`
        (NaN for a middle slice the mask does not touch: visible, not dropped).
    """
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    rows = []
    z = target.shape[2] // 2
    pn, tn = normalise(pred, target, mask)
    variants = [("normalised", pn, tn)] + ([("original", pred, target)] if pet else [])
    for units, p, t in variants:
        rows.append({"scope": "volume", "units": units, **image_metrics(p, t, mask, units)})
        ms = None if mask is None else mask[:, :, z]
        if ms is not None and not ms.any():
            rows.append({"scope": "mid_axial", "units": units, **dict.fromkeys(METRIC_NAMES, float("nan"))})
            continue
        rows.append({"scope": "mid_axial", "units": units, **image_metrics(p[:, :, z], t[:, :, z], ms, units)})
    return rows


def per_subject_table(rows: list[dict], with_group: bool) -> pd.DataFrame:
    """Rows of per-subject metrics as the ``per_subject`` table (``group`` only when known)."""
    table = pd.DataFrame(rows, columns=PER_SUBJECT_COLUMNS)
    return table if with_group else table.drop(columns="group")


def image_metrics_table(pairs: Sequence[ImagePair], method: str, pet: bool) -> pd.DataFrame:
    """Per-subject metrics of the model: one row per pair, scope and units.

    Args:
        pairs: the read pairs (:func:`neurotrans.metrics.pairing.load_pairs`).
        method: the model's row label.
        pet: add original units.
    """
    rows = []
    for p in pairs:
        info = {"subject": p.subject, "session": p.session, "group": p.group or "", "method": method}
        try:
            rows += [{**info, **r} for r in pair_metrics(p.prediction, p.target.data, p.mask, pet)]
        except ValueError as err:  # e.g. an image smaller than the SSIM window: the images are at fault
            if isinstance(err, InputError):
                raise
            raise InputError(p.target.path or p.subject, f"cannot be scored ({err})",
                             "evaluate whole images (at least 11 voxels along each axis)") from None
    return per_subject_table(rows, with_group=any(p.group is not None for p in pairs))


def summarise(per_subject: pd.DataFrame) -> pd.DataFrame:
    """Mean, SD (ddof 1), min, max and n of every metric per method, scope and units.

    An ``inf`` PSNR (identical images) makes the mean ``inf``: it is reported, not hidden.
    """
    rows = []
    for (method, scope, units), g in per_subject.groupby(["method", "scope", "units"], sort=False):
        for metric in METRIC_NAMES:
            v = g[metric].to_numpy(float)
            with np.errstate(invalid="ignore"):
                std = float(np.std(v, ddof=1)) if len(v) > 1 and np.isfinite(v).all() else float("nan")
            rows.append({"method": method, "scope": scope, "units": units, "metric": metric,
                         "mean": float(np.mean(v)), "std": std, "min": float(np.min(v)),
                         "max": float(np.max(v)), "n": len(v)})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def method_tests(per_subject: pd.DataFrame) -> pd.DataFrame:
    """Paired t and Wilcoxon tests between every two methods on the subjects both have."""
    rows = []
    methods = list(dict.fromkeys(per_subject["method"]))
    for a, b in combinations(methods, 2):
        keys = ["subject", "session", "scope", "units"]
        merged = per_subject[per_subject.method == a].merge(per_subject[per_subject.method == b],
                                                            on=keys, suffixes=("_a", "_b"))
        for (scope, units), g in merged.groupby(["scope", "units"], sort=False):
            for metric in METRIC_NAMES:
                res = paired_tests(g[f"{metric}_a"].to_numpy(), g[f"{metric}_b"].to_numpy())
                rows.append({"method_a": a, "method_b": b, "scope": scope, "units": units, "metric": metric, **res})
    return pd.DataFrame(rows, columns=TESTS_COLUMNS)


__all__ = ["METRIC_NAMES", "PER_SUBJECT_COLUMNS", "SUMMARY_COLUMNS", "TESTS_COLUMNS", "image_metrics",
           "image_metrics_table", "method_tests", "normalise", "pair_metrics", "per_subject_table", "summarise"]
