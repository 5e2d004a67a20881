"""Figures of ``neurotrans explain``: CCA similarity curves (Fig. 3), canonical components, ESIT maps.

Figures are built without pyplot (no global state, Agg canvas) and returned as
:class:`matplotlib.figure.Figure`; :func:`figure_png` renders them with no timestamp, so the
same data give the same bytes. Volumes are shown in RAS voxel order (nibabel's closest
canonical orientation): axial slices anterior up, coronal superior up, the subject's right on
the viewer's right, as in the report's montages.

References: the ESIT paper ("Demystifying T1-MRI to FDG-PET translation", Fig. 3, Fig. 5,
Fig. S1-S2).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from scipy import ndimage

# the paper's Fig. 3a colours where it names them (GM green, PET orange); Okabe-Ito otherwise
CONCEPT_COLOURS = {"T1": "#555555", "PET": "#E69F00", "GM": "#009E73", "WM": "#0072B2", "CSF": "#56B4E9"}
PANEL_COLUMNS = 8


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """PNG bytes of ``fig`` (no timestamp in the metadata)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def to_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``data`` (X, Y, Z[, ...]) reordered to the closest RAS+ voxel order, with its new affine."""
    img = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.asarray(affine, float)))
    return np.asarray(img.dataobj), img.affine


def _plain(text: object) -> str:
    return str(text).replace("$", r"\$")


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of the True stretches of a 1D bool array."""
    out, start = [], None
    for i, f in enumerate([*flags, False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            out.append((start, i))
            start = None
    return out


def similarity_curves(summary: pd.DataFrame, title: str = "") -> Figure:
    """Per-layer CCA similarity as the paper's Fig. 3: (a) T1, PET and tissue maps, (b) regions.

    Args:
        summary: columns ``layer, scale, concept, kind, mean, sd, n`` (layers in forward order),
            e.g. :func:`neurotrans.explain.cca_run.summary_table`.
        title: figure title.

    The shaded band is +- 1 SD across runs (folds) when there are several; the grey background
    marks the coarsest layers (the bottleneck).
    """
    layers = list(dict.fromkeys(summary["layer"]))
    x = np.arange(len(layers))
    scale = summary.drop_duplicates("layer").set_index("layer")["scale"].reindex(layers).to_numpy()
    panels = [("(a) images and tissue maps", summary[summary["kind"] != "region"]),
              ("(b) brain regions", summary[summary["kind"] == "region"])]
    panels = [(t, p) for t, p in panels if len(p)]
    fig = Figure(figsize=(6.2 * len(panels) + 1.4, 4.4), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    region_cmap = colormaps["tab20"]
    for ax, (panel_title, rows) in zip(axes, panels, strict=True):
        for lo, hi in _runs(scale == scale.max()):
            ax.axvspan(lo - 0.5, hi - 0.5, color="#e6e6e6", zorder=0)
        for j, (concept, g) in enumerate(rows.groupby("concept", sort=False)):
            g = g.set_index("layer").reindex(layers)
            mean, sd = g["mean"].to_numpy(float), g["sd"].to_numpy(float)
            colour = CONCEPT_COLOURS.get(str(concept), region_cmap(j % 20))
            ax.plot(x, mean, marker="o", markersize=3, linewidth=1.4, color=colour, label=_plain(concept))
            if np.isfinite(sd).any():
                ax.fill_between(x, mean - np.nan_to_num(sd), mean + np.nan_to_num(sd), color=colour, alpha=0.18,
                                linewidth=0)
        ax.set_xticks(x, [f"{layer}\n1/{int(s)}" if s > 1 else layer for layer, s in zip(layers, scale, strict=True)],
                      fontsize=6, rotation=90)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("CCA similarity (first canonical correlation)")
        ax.set_title(panel_title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        if (rows["kind"] == "region").all():
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        else:
            ax.legend(fontsize=7, loc="lower left")
    n = int(summary["n"].max()) if "n" in summary else 1
    note = f"mean +- SD over {n} runs" if n > 1 else "one run"
    fig.suptitle(_plain(f"{title}: {note}; grey: coarsest layers (bottleneck)" if title else note), fontsize=10)
    return fig


def _slice(vol: np.ndarray, plane: str, index: int) -> np.ndarray:
    if plane == "axial":
        return vol[:, :, index].T
    if plane == "coronal":
        return vol[:, index, :].T
    raise ValueError(f"plane {plane!r}: axial or coronal")


def _centre(weights: np.ndarray) -> tuple[int, int, int]:
    w = np.clip(np.nan_to_num(weights), 0, None)
    if w.sum() <= 0:
        return tuple(s // 2 for s in w.shape)  # type: ignore[return-value]
    return tuple(int(round(c)) for c in ndimage.center_of_mass(w))  # type: ignore[return-value]


def _symmetric(vol: np.ndarray) -> float:
    values = np.abs(vol[np.isfinite(vol) & (vol != 0)])
    return float(np.percentile(values, 99)) if values.size else 1.0


def component_montage(items: Sequence[Mapping[str, Any]], affine: np.ndarray, title: str = "") -> Figure:
    """Concept maps next to the canonical components that read them out, axial and coronal.

    Args:
        items: per component ``{"layer", "concept", "similarity", "component", "concept_map"}``,
            volumes ``(X, Y, Z)`` on the grid of ``affine`` (see
            :func:`neurotrans.explain.cca_run.components`).
        affine: their voxel -> world matrix.
        title: figure title.
    """
    cols = [("concept", "axial"), ("component", "axial"), ("concept", "coronal"), ("component", "coronal")]
    fig = Figure(figsize=(2.2 * len(cols) + 0.6, 2.3 * len(items) + 0.5), layout="constrained")
    axes = fig.subplots(len(items), len(cols), squeeze=False)
    for r, item in enumerate(items):
        concept, _ = to_ras(item["concept_map"], affine)
        comp, _ = to_ras(item["component"], affine)
        centre = _centre(concept)
        lim = _symmetric(comp)
        for c, (what, plane) in enumerate(cols):
            ax = axes[r, c]
            idx = centre[2] if plane == "axial" else centre[1]
            if what == "concept":
                ax.imshow(_slice(concept, plane, idx), cmap="gray", origin="lower", interpolation="nearest")
            else:
                ax.imshow(_slice(comp, plane, idx), cmap="RdBu_r", vmin=-lim, vmax=lim, origin="lower",
                          interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(_plain(f"{item['layer']} vs {item['concept']}\nr = {item['similarity']:.2f}"),
                              fontsize=8)
            if r == 0:
                ax.set_title(f"{what}, {plane}", fontsize=8)
    fig.suptitle(_plain(f"{title}: leading canonical components (red: high)" if title else
                        "leading canonical components"), fontsize=10)
    return fig


def esit_montage(attention: np.ndarray, embeddings: np.ndarray, affine: np.ndarray, *, z_mm: float = 0.0,
                 title: str = "") -> Figure:
    """ESIT's regional attention channels and tissue embeddings on one axial slice (the paper's Fig. 5a).

    Args:
        attention: ``(R, X, Y, Z)`` attention maps (softmax over R; 0 outside the brain).
        embeddings: ``(R, X, Y, Z)`` tissue embeddings.
        affine: voxel -> world matrix of the volumes (MNI mm).
        z_mm: world z of the slice shown (the nearest one).
        title: figure title.
    """
    att, ras = to_ras(np.moveaxis(np.asarray(attention), 0, -1), affine)
    emb, _ = to_ras(np.moveaxis(np.asarray(embeddings), 0, -1), affine)
    k = int(np.clip(round((np.linalg.inv(ras) @ np.array([0.0, 0.0, z_mm, 1.0]))[2]), 0, att.shape[2] - 1))
    n = att.shape[-1]
    ncols = min(n, PANEL_COLUMNS)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(1.5 * ncols + 0.4, 1.75 * 2 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(2 * nrows, ncols, squeeze=False)
    for block, (name, vol) in enumerate((("attention", att), ("embedding", emb))):
        for r in range(n):
            ax = axes[block * nrows + r // ncols, r % ncols]
            plane = vol[:, :, k, r].T
            if name == "attention":
                ax.imshow(plane, cmap="viridis", vmin=0, vmax=1, origin="lower", interpolation="nearest")
            else:
                lim = _symmetric(vol[..., r])
                ax.imshow(plane, cmap="RdBu_r", vmin=-lim, vmax=lim, origin="lower", interpolation="nearest")
            ax.set_title(f"{name} #{r}", fontsize=7)
        for r in range(n, nrows * ncols):
            axes[block * nrows + r // ncols, r % ncols].set_axis_off()
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    z = float((ras @ np.array([0.0, 0.0, k, 1.0]))[2])
    note = f"axial z = {z:.0f} mm; attention 0-1, embeddings blue-red, own scale per channel"
    fig.suptitle(_plain(f"{title}\n{note}" if title else note), fontsize=9)
    return fig


__all__ = ["component_montage", "esit_montage", "figure_png", "similarity_curves", "to_ras"]
