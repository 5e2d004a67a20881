"""Ordinary least squares with the statistics of the thesis' Table 4.3."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

REGRESSION_COLUMNS = ["term", "coef", "se", "t", "p", "beta_std"]


def ols(y: np.ndarray, x: pd.DataFrame) -> pd.DataFrame:
    """Least-squares fit ``y ~ 1 + x`` with standard errors, t, two-sided p and standardised betas.

    Args:
        y: response, shape ``(N,)`` (e.g. EDSS).
        x: predictors, one column each, ``N`` rows (numeric; code sex as 0/1).

    Returns:
        columns ``term, coef, se, t, p, beta_std``; the first row is the ``intercept``
        (``beta_std`` NaN). ``beta_std = coef * SD(x) / SD(y)`` (ddof 1), the
        coefficient of the regression on z-scored variables.

    References:
        Wei, PhD thesis 2020, Table 4.3; Bodini et al., Ann. Neurol. 2016.
    """
    y = np.asarray(y, dtype=np.float64)
    xv = x.to_numpy(dtype=np.float64)
    n, k = xv.shape
    if len(y) != n:
        raise ValueError(f"{len(y)} responses for {n} rows of predictors")
    if not (np.isfinite(y).all() and np.isfinite(xv).all()):
        raise ValueError("regression inputs contain NaN/inf; drop those subjects first")
    df = n - k - 1
    if df < 1:
        raise ValueError(f"{n} observations cannot fit {k + 1} coefficients with an error estimate")
    design = np.column_stack([np.ones(n), xv])
    if np.linalg.matrix_rank(design) < k + 1:
        raise ValueError("predictors are collinear (e.g. a constant column such as one sex only)")
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    sigma2 = float(resid @ resid) / df
    se = np.sqrt(np.diag(sigma2 * np.linalg.inv(design.T @ design)))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = coef / se
    p = 2 * stats.t.sf(np.abs(t), df)
    sd_y = y.std(ddof=1)
    beta = [float("nan")] + [float(c * xv[:, j].std(ddof=1) / sd_y) for j, c in enumerate(coef[1:])]
    return pd.DataFrame({"term": ["intercept", *x.columns], "coef": coef, "se": se, "t": t, "p": p,
                         "beta_std": beta}, columns=REGRESSION_COLUMNS)


def encode_sex(values: pd.Series) -> pd.Series:
    """Sex as 1 (male) / 0 (female) from M/F, male/female or 1/0."""
    s = values.astype(str).str.strip().str.lower()
    mapping = {"m": 1.0, "male": 1.0, "1": 1.0, "1.0": 1.0, "f": 0.0, "female": 0.0, "0": 0.0, "0.0": 0.0}
    out = s.map(mapping)
    if out.isna().any():
        bad = sorted(set(values[out.isna()].astype(str)))
        raise ValueError(f"unrecognised sex values {bad}; use M/F")
    return out
