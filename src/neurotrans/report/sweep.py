"""The age-sweep figure: regional SUVR of PETs generated at several ages (DUAL-GLOW Fig. 7 style).

References: Sun et al. 2019 (DUAL-GLOW, Fig. 7: mean ROI intensity with 95 % bands against
age, all test subjects).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from neurotrans.errors import InputError
from neurotrans.report.figures import COLOURS, plain

SWEEP_REQUIRED = ("subject", "age", "region", "suvr")


def read_sweep(path: Path) -> pd.DataFrame:
    """Read ``RUN/age_sweep.tsv`` (one row per subject, session, age and region)."""
    try:
        table = pd.read_csv(path, sep="\t", dtype={"subject": str, "session": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot be read as a tab-separated table ({type(err).__name__})",
                         "write it again with the dualglow_fdg experiment") from None
    missing = [c for c in SWEEP_REQUIRED if c not in table.columns]
    if missing:
        raise InputError(path, f"lacks column(s) {', '.join(missing)}", "write it again with the dualglow_fdg experiment")
    return table


def age_sweep_figure(table: pd.DataFrame, units: str = "SUVR") -> Figure:
    """One panel per region: each subject's generated ROI mean against age, the mean over
    subjects and a band of 1.96 SD across subjects.

    Args:
        table: rows ``subject, [session,] age, region, suvr``.
        units: y-axis units.
    """
    regions = list(dict.fromkeys(table["region"]))
    fig = Figure(figsize=(3.8 * max(len(regions), 1), 3.4), layout="constrained")
    axes = fig.subplots(1, max(len(regions), 1), squeeze=False)[0]
    keys = ["subject", "session"] if "session" in table.columns else ["subject"]
    for ax, region, colour in zip(axes, regions, COLOURS, strict=False):
        g = table[table["region"] == region]
        for _, s in g.groupby(keys, sort=False):
            s = s.sort_values("age")
            ax.plot(s["age"], s["suvr"], color=colour, alpha=0.25, linewidth=0.8)
        stats = g.groupby("age")["suvr"].agg(["mean", "std"]).sort_index()
        ages, mean, sd = stats.index.to_numpy(float), stats["mean"].to_numpy(), np.nan_to_num(stats["std"].to_numpy())
        ax.fill_between(ages, mean - 1.96 * sd, mean + 1.96 * sd, color=colour, alpha=0.2, linewidth=0)
        ax.plot(ages, mean, color=colour, linewidth=2, marker="o", markersize=3)
        ax.set_title(plain(region), fontsize=10)
        ax.set_xlabel("age given to the model (years)")
        ax.set_ylabel(f"generated PET ({plain(units)})")
        ax.grid(alpha=0.3)
    n = table[keys].drop_duplicates().shape[0]
    fig.suptitle(f"Age sweep: {n} subjects, mean and 95 % band (1.96 SD)", fontsize=11)
    return fig
