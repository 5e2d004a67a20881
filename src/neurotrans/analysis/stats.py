"""Paired tests between methods and Bland-Altman agreement, across subjects."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.shape} vs {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)  # PSNR is inf for identical images: not a pair to test
    return a[keep], b[keep]


def paired_tests(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Paired two-sided t-test and Wilcoxon signed-rank test of ``a - b``.

    Non-finite pairs are dropped (``n`` says how many remain). Statistics that cannot be
    computed (fewer than 2 pairs, all differences zero) are NaN rather than errors.

    Args:
        a: one value per subject for method A, shape ``(N,)``.
        b: the same subjects' values for method B, shape ``(N,)``.

    Returns:
        ``mean_diff`` (mean of a - b), ``t``, ``p_t``, ``wilcoxon_w``, ``p_wilcoxon``, ``n``.

    References:
        scipy.stats.ttest_rel and scipy.stats.wilcoxon (two-sided).
    """
    a, b = _paired(a, b)
    out = {"mean_diff": float(np.mean(a - b)) if len(a) else float("nan"), "t": float("nan"),
           "p_t": float("nan"), "wilcoxon_w": float("nan"), "p_wilcoxon": float("nan"), "n": int(len(a))}
    if len(a) < 2:
        return out
    d = a - b
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant differences: t is NaN, said by the value
        t = stats.ttest_rel(a, b)
    out["t"], out["p_t"] = float(t.statistic), float(t.pvalue)
    if np.any(d != 0):
        w = stats.wilcoxon(a, b)
        out["wilcoxon_w"], out["p_wilcoxon"] = float(w.statistic), float(w.pvalue)
    return out


def bland_altman(real: np.ndarray, synthetic: np.ndarray) -> dict[str, float]:
    """Bland-Altman bias (mean of synthetic - real) and 95 % limits of agreement.

    Args:
        real: reference measurements, shape ``(N,)``.
        synthetic: measurements from the synthetic images, shape ``(N,)``, same units.

    Returns:
        ``bias``, ``loa_low``, ``loa_high`` (bias -/+ 1.96 SD of the differences, ddof 1), ``n``.

    References:
        Bland & Altman, Lancet 1986; Wei, PhD thesis 2020, Fig. 3.7.
    """
    r, s = _paired(real, synthetic)
    d = s - r
    n = len(d)
    bias = float(d.mean()) if n else float("nan")
    sd = float(d.std(ddof=1)) if n > 1 else float("nan")
    return {"bias": bias, "loa_low": bias - 1.96 * sd, "loa_high": bias + 1.96 * sd, "n": n}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """DICE overlap 2|A and B| / (|A| + |B|) of two boolean maps; 1.0 when both are empty.

    Two empty maps agree perfectly (no voxel flagged by either), hence 1 rather than NaN.
    """
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"DICE of maps with different shapes: {a.shape} vs {b.shape}")
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else float(2 * np.logical_and(a, b).sum() / total)
