"""Regional PET of a side-information sweep: the DUAL-GLOW age experiment (paper Fig. 6-7).

A sweep generates one PET per age for the same MRI; the regional means of those PETs against
age show what the model learned about aging. Tables are long: one row per subject, session,
age and region (:data:`SWEEP_COLUMNS`).

References: Sun et al. 2019 (DUAL-GLOW, Sec. 4.3 "Adjusting for Age with Conditioning",
Fig. 7: mean ROI intensity with 95 % bands against age for all test subjects).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

# AAL2 name prefixes of the regions the fdg phantom's aging and AD patterns act on
SWEEP_REGIONS: dict[str, tuple[str, ...]] = {
    "posterior cingulate/precuneus": ("Cingulate_Post", "Precuneus"),
    "anterior cingulate": ("Cingulate_Ant",),
}
SWEEP_COLUMNS = ["subject", "session", "age", "region", "suvr"]
SUMMARY_COLUMNS = ["region", "n", "falling", "fraction_falling", "slope_per_decade", "slope_sd", "first", "last"]


def roi_means(volume: np.ndarray, labels: np.ndarray, names: Mapping[int, str],
              regions: Mapping[str, Sequence[str]] = SWEEP_REGIONS,
              mask: np.ndarray | None = None) -> dict[str, float]:
    """Mean of ``volume`` over each named union of atlas regions.

    Args:
        volume: (X, Y, Z) image (e.g. SUVR).
        labels: atlas labels on the same grid.
        names: label -> region name.
        regions: output name -> region-name prefixes (``SWEEP_REGIONS``).
        mask: optional brain mask intersected with each region.

    Returns:
        ``{name: mean}``; NaN where the union has no voxel.
    """
    from neurotrans.data.atlas import region_mask

    if volume.shape != labels.shape:
        raise ValueError(f"volume shape {volume.shape} differs from the atlas grid {labels.shape}")
    out = {}
    for name, prefixes in regions.items():
        sel = region_mask(labels, dict(names), *prefixes)
        if mask is not None:
            sel &= np.asarray(mask, dtype=bool)
        out[name] = float(np.asarray(volume, dtype=np.float64)[sel].mean()) if sel.any() else float("nan")
    return out


def falls_monotonically(values: Sequence[float]) -> bool:
    """Every step lower than the one before (values in increasing age order)."""
    v = np.asarray(values, dtype=np.float64)
    return bool(len(v) >= 2 and np.all(np.diff(v) < 0))


def sweep_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per region: subjects, how many fall monotonically with age, slope and end points.

    Args:
        table: :data:`SWEEP_COLUMNS` rows.

    Returns:
        :data:`SUMMARY_COLUMNS`: ``falling`` subjects whose ROI mean falls at every age step,
        their fraction, the mean (and SD across subjects) of the least-squares slope in SUVR per
        10 years, and the mean ROI value at the first and last age.
    """
    rows = []
    for region, g in table.groupby("region", sort=False):
        slopes, falling, firsts, lasts = [], 0, [], []
        for _, s in g.groupby(["subject", "session"], sort=False):
            s = s.sort_values("age")
            ages, values = s["age"].to_numpy(float), s["suvr"].to_numpy(float)
            falling += falls_monotonically(values)
            slopes.append(10.0 * np.polyfit(ages, values, 1)[0] if len(ages) >= 2 else np.nan)
            firsts.append(values[0])
            lasts.append(values[-1])
        n = len(slopes)
        rows.append({"region": region, "n": n, "falling": int(falling), "fraction_falling": falling / max(n, 1),
                     "slope_per_decade": float(np.nanmean(slopes)),
                     "slope_sd": float(np.nanstd(slopes, ddof=1)) if n > 1 else float("nan"),
                     "first": float(np.mean(firsts)), "last": float(np.mean(lasts))})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def cohort_slopes(table: pd.DataFrame) -> pd.DataFrame:
    """Cross-sectional slope of real regional SUVR on age, per region (the cohort's own aging).

    Args:
        table: rows ``subject, age, region, suvr`` (one per subject and region, real PET).

    Returns:
        ``region, n, slope_per_decade, r, p`` (least squares and Pearson across subjects).
    """
    from scipy.stats import linregress

    rows = []
    for region, g in table.groupby("region", sort=False):
        fit = linregress(g["age"].to_numpy(float), g["suvr"].to_numpy(float))
        rows.append({"region": region, "n": len(g), "slope_per_decade": 10.0 * fit.slope, "r": fit.rvalue,
                     "p": fit.pvalue})
    return pd.DataFrame(rows, columns=["region", "n", "slope_per_decade", "r", "p"])
