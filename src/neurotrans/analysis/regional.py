"""Atlas-region means of PET images, SUVR, and per-region agreement of real vs. synthetic."""

from __future__ import annotations

import numpy as np
import pandas as pd

from neurotrans.analysis.stats import bland_altman


def regional_means(data: np.ndarray, labels: np.ndarray, names: dict[int, str],
                   mask: np.ndarray | None = None) -> dict[str, float]:
    """Mean of ``data`` in every atlas region that has voxels on this grid.

    Args:
        data: image, shape ``(X, Y, Z)`` (e.g. SUVR).
        labels: integer atlas labels on the same grid (``load_atlas``).
        names: ``{label: region name}``.
        mask: optional boolean mask intersected with each region.

    Returns:
        ``{region name: mean}``, in atlas order; regions with no voxel are left out.

    References:
        Rolls et al., NeuroImage 2015 (AAL2); Sun et al., DUAL-GLOW, ICCV 2019 (ROI features).
    """
    if data.shape != labels.shape:
        raise ValueError(f"image shape {data.shape} differs from the atlas grid {labels.shape}")
    lab = labels if mask is None else np.where(mask, labels, 0)
    flat, vals = lab.ravel(), np.asarray(data, dtype=np.float64).ravel()
    n = int(max(names) + 1 if names else 1)
    counts = np.bincount(flat, minlength=n)
    sums = np.bincount(flat, weights=vals, minlength=n)
    return {name: float(sums[v] / counts[v]) for v, name in names.items() if v < len(counts) and counts[v] > 0}


def suvr(data: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Standardised uptake value ratio: ``data`` divided by its mean in the reference region.

    Args:
        data: PET image, shape ``(X, Y, Z)``.
        reference: boolean reference-region mask (e.g. ``reference_mask("pons", grid)``).
    """
    ref = np.asarray(reference, dtype=bool)
    if not ref.any():
        raise ValueError("the reference region has no voxel on this grid")
    mean = float(np.mean(data[ref]))
    if mean <= 0:
        raise ValueError(f"mean in the reference region is {mean:.4g}; SUVR needs a positive reference")
    return np.asarray(data, dtype=np.float32) / np.float32(mean)


def regional_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per-region error and correlation across subjects.

    Args:
        table: long table with columns ``region``, ``real``, ``synthetic`` (one row per
            subject, session and region).

    Returns:
        columns ``region, mae, bias, pearson_r, n``: mean |synthetic - real|, mean
        (synthetic - real), Pearson r across subjects (NaN below 3 subjects or for a
        constant region), number of subjects.
    """
    rows = []
    for region, g in table.groupby("region", sort=False):
        r, s = g["real"].to_numpy(float), g["synthetic"].to_numpy(float)
        ok = len(r) >= 3 and r.std() > 0 and s.std() > 0
        rows.append({"region": region, "mae": float(np.mean(np.abs(s - r))),
                     "bias": bland_altman(r, s)["bias"],
                     "pearson_r": float(np.corrcoef(r, s)[0, 1]) if ok else float("nan"), "n": len(r)})
    return pd.DataFrame(rows, columns=["region", "mae", "bias", "pearson_r", "n"])
