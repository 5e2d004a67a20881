"""Regional PET tables of an evaluation: AAL2 means, Bland-Altman agreement, SVM diagnosis.

References:
    Sun et al., DUAL-GLOW, ICCV 2019 (Table 2: regional agreement, diagnosis on synthetic
    PET); Bland & Altman, Lancet 1986.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from neurotrans.analysis.diagnosis import classify
from neurotrans.analysis.regional import regional_means
from neurotrans.analysis.stats import bland_altman
from neurotrans.metrics.pairing import ImagePair

REGIONAL_COLUMNS = ["subject", "session", "group", "region", "real", "synthetic"]
BLAND_ALTMAN_COLUMNS = ["quantity", "bias", "loa_low", "loa_high", "n"]
DIAGNOSIS_COLUMNS = ["data", "accuracy", "fnr", "fpr", "n_subjects", "folds"]
MIN_PER_GROUP = 3  # subjects per group below which a cross-validated SVM means nothing
ATLAS = "AAL2"


def regional_table(pairs: Sequence[ImagePair], atlas: str = ATLAS) -> pd.DataFrame:
    """Real and synthetic mean of every atlas region, per pair (original units).

    Args:
        pairs: the read pairs.
        atlas: atlas name (:func:`neurotrans.data.atlas.load_atlas`), resampled to each pair's grid.

    Returns:
        :data:`REGIONAL_COLUMNS`, one row per pair and region (``group`` empty when unknown).
    """
    from neurotrans.data.atlas import load_atlas
    from neurotrans.data.grid import Grid

    rows = []
    for p in pairs:
        labels, names = load_atlas(atlas, Grid(p.target.shape, p.target.affine))
        real = regional_means(p.target.data, labels, names)
        synthetic = regional_means(p.prediction, labels, names)
        for region, value in real.items():
            rows.append({"subject": p.subject, "session": p.session, "group": p.group or "", "region": region,
                         "real": value, "synthetic": synthetic[region]})
    return pd.DataFrame(rows, columns=REGIONAL_COLUMNS)


def bland_altman_table(regional: pd.DataFrame, pairs: Sequence[ImagePair], masked: bool) -> pd.DataFrame:
    """Bland-Altman agreement of the regional means and of each pair's global mean.

    Args:
        regional: :func:`regional_table`'s output.
        pairs: the read pairs (global mean inside their mask, else over the volume).
        masked: a mask was used (names the second row ``mean_in_mask``, else ``mean_in_volume``).
    """
    real, synthetic = [], []
    for p in pairs:
        sel = p.mask if p.mask is not None else np.ones(p.target.shape, bool)
        real.append(float(p.target.data[sel].mean()))
        synthetic.append(float(p.prediction[sel].mean()))
    rows = [{"quantity": "regional_mean", **bland_altman(regional["real"], regional["synthetic"])},
            {"quantity": "mean_in_mask" if masked else "mean_in_volume", **bland_altman(real, synthetic)}]
    return pd.DataFrame(rows, columns=BLAND_ALTMAN_COLUMNS)


def diagnosis_table(regional: pd.DataFrame) -> pd.DataFrame | None:
    """CN vs AD SVM on real and on synthetic regional means; ``None`` below 3 subjects per group.

    Args:
        regional: :func:`regional_table`'s output with groups.
    """
    sub = regional[regional["group"].isin(["CN", "AD"])]
    counts = sub.drop_duplicates("subject").groupby("group")["subject"].nunique()
    if len(counts) < 2 or counts.min() < MIN_PER_GROUP:
        return None
    rows = []
    for data in ("real", "synthetic"):
        wide = sub.pivot_table(index=["subject", "session", "group"], columns="region", values=data, sort=False)
        wide = wide.dropna(axis=1)
        res = classify(wide.to_numpy(), wide.index.get_level_values("group").to_numpy(),
                       wide.index.get_level_values("subject").to_numpy(), positive="AD")
        rows.append({"data": data, "accuracy": res.accuracy, "fnr": res.fnr, "fpr": res.fpr,
                     "n_subjects": res.n_subjects, "folds": res.folds})
    return pd.DataFrame(rows, columns=DIAGNOSIS_COLUMNS)


__all__ = ["BLAND_ALTMAN_COLUMNS", "DIAGNOSIS_COLUMNS", "REGIONAL_COLUMNS", "bland_altman_table",
           "diagnosis_table", "regional_table"]
