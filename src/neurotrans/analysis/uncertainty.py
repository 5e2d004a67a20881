"""Does an uncertainty map point at the errors? SD map vs absolute error, voxel-wise and per region.

A useful SD map is high where the prediction is wrong: its correlation with the absolute
error |prediction - real| is reported voxel-wise (inside the brain mask, Pearson and Spearman)
and per atlas region (regional mean SD against regional mean absolute error, across regions).

References: Sun et al. 2019 (DUAL-GLOW: samples at a temperature); Lakshminarayanan et al. 2017
(deep ensembles); Kendall & Gal 2017 (uncertainty vs error as the check of a predictive SD).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

CORRELATION_COLUMNS = ["scope", "pearson", "spearman", "n"]


def _correlations(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    from scipy.stats import pearsonr, spearmanr

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan"), float("nan")
    return float(pearsonr(a, b)[0]), float(spearmanr(a, b)[0])


def sd_error_correlation(sd: np.ndarray, prediction: np.ndarray, real: np.ndarray, mask: np.ndarray,
                         labels: np.ndarray | None = None, names: Mapping[int, str] | None = None,
                         min_voxels: int = 10) -> pd.DataFrame:
    """Correlation of the SD map with the absolute error, voxel-wise and across regions.

    Args:
        sd: (X, Y, Z) SD map (target units).
        prediction: (X, Y, Z) the prediction the SD belongs to.
        real: (X, Y, Z) the real target.
        mask: (X, Y, Z) voxels to use (brain mask).
        labels, names: atlas on the same grid for the regional row (``None``: voxel-wise only).
        min_voxels: regions with fewer masked voxels are left out of the regional row.

    Returns:
        :data:`CORRELATION_COLUMNS` rows ``voxel`` (n = voxels) and ``region`` (n = regions).
    """
    mask = np.asarray(mask, dtype=bool)
    if not (sd.shape == prediction.shape == real.shape == mask.shape):
        raise ValueError(f"shapes differ: sd {sd.shape}, prediction {prediction.shape}, real {real.shape}, "
                         f"mask {mask.shape}")
    err = np.abs(np.asarray(prediction, np.float64) - np.asarray(real, np.float64))
    s = np.asarray(sd, np.float64)
    rows = [{"scope": "voxel", **dict(zip(("pearson", "spearman"), _correlations(s[mask], err[mask]), strict=True)),
             "n": int(mask.sum())}]
    if labels is not None and names is not None:
        reg = regional_sd_error(s, err, labels, names, mask, min_voxels)
        p, r = _correlations(reg["sd"].to_numpy(), reg["abs_error"].to_numpy())
        rows.append({"scope": "region", "pearson": p, "spearman": r, "n": len(reg)})
    return pd.DataFrame(rows, columns=CORRELATION_COLUMNS)


def regional_sd_error(sd: np.ndarray, abs_error: np.ndarray, labels: np.ndarray, names: Mapping[int, str],
                      mask: np.ndarray | None = None, min_voxels: int = 10) -> pd.DataFrame:
    """Mean SD and mean absolute error of every atlas region (``region, sd, abs_error, voxels``)."""
    lab = np.asarray(labels) if mask is None else np.where(mask, labels, 0)
    flat = lab.ravel()
    n = int(max(names) + 1) if names else 1
    counts = np.bincount(flat, minlength=n)
    sd_sum = np.bincount(flat, weights=np.asarray(sd, np.float64).ravel(), minlength=n)
    err_sum = np.bincount(flat, weights=np.asarray(abs_error, np.float64).ravel(), minlength=n)
    rows = [{"region": name, "sd": sd_sum[v] / counts[v], "abs_error": err_sum[v] / counts[v], "voxels": int(counts[v])}
            for v, name in names.items() if v < len(counts) and counts[v] >= min_voxels]
    return pd.DataFrame(rows, columns=["region", "sd", "abs_error", "voxels"])
