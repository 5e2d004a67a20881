"""Report figures: box plots per method, Bland-Altman, regional bars, training curves.

Each function takes tables or arrays and returns a :class:`matplotlib.figure.Figure`
built without pyplot (no global state, Agg canvas), so figures can be made in any
thread and are freed when dropped. Montages live in :mod:`neurotrans.report.montage`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from neurotrans.io.run import REFERENCE_LABEL

METRICS = ("mae", "mse", "psnr", "ssim", "pearson")
METRIC_LABELS = {"mae": "MAE (lower is better)", "mse": "MSE (lower is better)", "psnr": "PSNR dB (higher is better)",
                 "ssim": "SSIM (higher is better)", "pearson": "Pearson r (higher is better)"}
REFERENCE_CAPTION = "other subjects\n(reference)"  # how the reference is labelled on a plot
# colour-blind safe (Okabe-Ito)
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


def plain(text: object) -> str:
    """Text from a file, shown literally: a ``$`` would otherwise start matplotlib mathtext."""
    return str(text).replace("$", r"\$")


def method_order(methods: list[str] | np.ndarray) -> list[str]:
    """Methods in order of appearance, the other-subjects reference last."""
    unique = list(dict.fromkeys(str(m) for m in methods))
    return [m for m in unique if m != REFERENCE_LABEL] + [m for m in unique if m == REFERENCE_LABEL]


def metric_boxplots(per_subject: pd.DataFrame, scope: str = "volume", units: str = "normalised",
                    metrics: tuple[str, ...] = METRICS) -> Figure:
    """Box plots of each metric across subjects, one box per method (pix2pix paper, Fig. 1).

    Args:
        per_subject: rows of evaluation/per_subject.tsv (``method``, ``scope``, ``units``, metric columns).
        scope: ``volume`` or ``mid_axial``.
        units: ``normalised`` or ``original``.
        metrics: metric columns to plot, one panel each.

    References:
        Inferring PET from MRI with pix2pix (Fig. 1).
    """
    rows = per_subject[(per_subject["scope"] == scope) & (per_subject["units"] == units)]
    metrics = tuple(m for m in metrics if m in rows.columns and rows[m].notna().any())
    methods = method_order(rows["method"].to_numpy())
    fig = Figure(figsize=(2.6 * max(len(metrics), 1) + 0.6, 3.6), layout="constrained")
    axes = fig.subplots(1, max(len(metrics), 1), squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=False):
        values = [rows.loc[rows["method"] == m, metric].dropna().to_numpy(dtype=float) for m in methods]
        # an infinite PSNR (identical images) cannot be drawn: say so instead of dropping it silently
        data = [v[np.isfinite(v)] for v in values]
        n_inf = sum(int((~np.isfinite(v)).sum()) for v in values)
        if n_inf:
            ax.text(0.5, 0.98, f"{n_inf} infinite value(s) not drawn", transform=ax.transAxes, ha="center",
                    va="top", fontsize=7, color="#a31515")
        labels = [REFERENCE_CAPTION if m == REFERENCE_LABEL else plain(m) for m in methods]
        box = ax.boxplot(data, tick_labels=labels, patch_artist=True, widths=0.6,
                         medianprops={"color": "black", "gid": "median"}, flierprops={"markersize": 3})
        for patch, m in zip(box["boxes"], methods, strict=True):
            patch.set_facecolor("#BBBBBB" if m == REFERENCE_LABEL else COLOURS[methods.index(m) % len(COLOURS)])
            patch.set_alpha(0.8)
        ax.set_title(METRIC_LABELS.get(metric, metric), fontsize=10)
        ax.tick_params(axis="x", labelsize=8, rotation=20 if len(methods) > 2 else 0)
        ax.grid(axis="y", alpha=0.3)
    n = rows["subject"].nunique() if "subject" in rows else len(rows)
    fig.suptitle(plain(f"{scope.replace('_', ' ')}, {units} units ({n} subjects)"), fontsize=11)
    return fig


def bland_altman_stats(real: np.ndarray, synthetic: np.ndarray) -> tuple[float, float, float]:
    """Bias and 95 % limits of agreement of ``synthetic - real``.

    Returns:
        ``(bias, low, high)`` with limits ``bias -+ 1.96 SD`` (SD with ddof=1).

    References:
        Bland & Altman (1986); thesis ch. 4 (Bland-Altman of the myelin indices).
    """
    diff = np.asarray(synthetic, dtype=float) - np.asarray(real, dtype=float)
    bias = float(diff.mean())
    sd = float(diff.std(ddof=1)) if diff.size > 1 else 0.0
    return bias, bias - 1.96 * sd, bias + 1.96 * sd


def bland_altman(regional: pd.DataFrame, units: str = "") -> Figure:
    """Bland-Altman plot of regional means: (real + synthetic) / 2 against synthetic - real.

    Args:
        regional: rows of evaluation/regional.tsv (``subject``, ``region``, ``real``, ``synthetic``,
            optional ``group``); one point per subject and region.
        units: label of the values (e.g. ``SUVR``).
    """
    regional = regional.dropna(subset=["real", "synthetic"])
    real = regional["real"].to_numpy(dtype=float)
    synth = regional["synthetic"].to_numpy(dtype=float)
    mean, diff = (real + synth) / 2, synth - real
    bias, low, high = bland_altman_stats(real, synth)
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    groups = regional["group"].astype(str).to_numpy() if "group" in regional else np.full(len(regional), "")
    for i, g in enumerate(dict.fromkeys(groups)):
        sel = groups == g
        ax.scatter(mean[sel], diff[sel], s=8, alpha=0.5, color=COLOURS[i % len(COLOURS)], label=plain(g) or None)
    for y, style, text in ((bias, "-", f"bias {bias:.3g}"), (low, "--", f"-1.96 SD {low:.3g}"),
                           (high, "--", f"+1.96 SD {high:.3g}")):
        ax.axhline(y, color="black", linestyle=style, linewidth=1)
        ax.annotate(text, (1.0, y), xycoords=("axes fraction", "data"), xytext=(-4, 3),
                    textcoords="offset points", ha="right", fontsize=8,
                    bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1})
    suffix = f" ({plain(units)})" if units else ""
    ax.set_xlabel(f"mean of real and synthetic{suffix}")
    ax.set_ylabel(f"synthetic - real{suffix}")
    ax.set_title(f"Regional means: {regional['subject'].nunique()} subjects x {regional['region'].nunique()} regions",
                 fontsize=10)
    if "group" in regional and len(set(groups)) > 1:
        ax.legend(fontsize=8, markerscale=2)
    ax.grid(alpha=0.3)
    return fig


def regional_errors(regional: pd.DataFrame) -> pd.DataFrame:
    """Per region: mean real, mean synthetic and mean absolute error over subjects, worst first."""
    table = regional.assign(abs_error=(regional["synthetic"] - regional["real"]).abs())
    out = table.groupby("region", sort=False).agg(real=("real", "mean"), synthetic=("synthetic", "mean"),
                                                   mae=("abs_error", "mean"), n=("real", "size"))
    return out.sort_values("mae", ascending=False, kind="stable")


def regional_bars(regional: pd.DataFrame, n_regions: int = 20, units: str = "") -> Figure:
    """Bar chart of real vs synthetic regional means for the regions with the largest error.

    Args:
        regional: rows of evaluation/regional.tsv (``subject``, ``region``, ``real``, ``synthetic``).
        n_regions: how many regions (largest mean absolute error first).
        units: label of the values.
    """
    top = regional_errors(regional).head(n_regions).iloc[::-1]  # worst at the top of a horizontal chart
    fig = Figure(figsize=(7.5, 0.28 * len(top) + 1.4), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(top))
    ax.barh(y + 0.2, top["real"], height=0.4, color=COLOURS[0], label="real")
    ax.barh(y - 0.2, top["synthetic"], height=0.4, color=COLOURS[1], label="synthetic")
    ax.set_yticks(y, [plain(r) for r in top.index], fontsize=8)
    ax.set_xlabel(f"mean over subjects{f' ({plain(units)})' if units else ''}")
    ax.set_title(f"The {len(top)} regions with the largest mean absolute error", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return fig


# bookkeeping fields of log.jsonl that are not curves
NOT_CURVES = {"step", "epoch", "batch_in_epoch", "elapsed_s", "best_step", "best_score", "time", "seconds"}
MAX_VALIDATION_PANELS = 5


def curve_columns(log: pd.DataFrame) -> tuple[list[str], list[str]]:
    """``(losses, validation metrics)``: numeric log columns; ``val*`` ones are validation metrics.

    Loss components without "loss" in their name (``generator/g_adv``, ``discriminator/d_real``)
    count as losses; learning rates and bookkeeping fields are left out.
    """
    numeric = [c for c in log.columns if str(c) not in NOT_CURVES and pd.api.types.is_numeric_dtype(log[c])
               and not pd.api.types.is_bool_dtype(log[c]) and log[c].notna().any()
               and not str(c).split("/")[-1].lower().startswith("lr")]
    val = [c for c in numeric if str(c).lower().startswith("val")]
    return [c for c in numeric if c not in val], val


def training_curves(log: pd.DataFrame) -> Figure:
    """Loss curves (first panel) and one panel per validation metric against the training step.

    Args:
        log: one row per log.jsonl line with ``step`` and numeric columns (see :func:`curve_columns`).
    """
    losses, val = curve_columns(log)
    panels = ([(losses, "training losses")] if losses else []) + [([c], str(c)) for c in val[:MAX_VALIDATION_PANELS]]
    ncols = min(len(panels), 3) or 1
    nrows = -(-len(panels) // ncols) or 1
    fig = Figure(figsize=(4.4 * ncols, 3.3 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    for ax, (columns, title) in zip(axes, panels, strict=False):
        for i, c in enumerate(columns):
            rows = log[["step", c]].dropna()
            marker = "o" if len(rows) < 30 else None
            ax.plot(rows["step"], rows[c], label=plain(c), color=COLOURS[i % len(COLOURS)], marker=marker,
                    markersize=3, linewidth=1.2)
        values = log[columns].to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        if len(columns) > 1 and finite.size and finite.min() > 0 and finite.max() / finite.min() > 30:
            ax.set_yscale("log")  # losses spanning decades read better on a log axis
        ax.set_xlabel("step")
        ax.set_title(plain(title), fontsize=10)
        if len(columns) > 1:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return fig
