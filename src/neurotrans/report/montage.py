"""Montages of input / real / synthetic / |error| in three planes, shown in RAS.

Volumes are first reoriented to the closest canonical RAS voxel order using their
affine, so that whatever the file's storage order, axial slices show anterior up,
coronal and sagittal slices superior up, and the subject's right on the viewer's
right (neurological convention, marked "R" on the panels).
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
from matplotlib.figure import Figure
from scipy import ndimage

from neurotrans.report.figures import plain

PLANES = ("axial", "coronal", "sagittal")


def to_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorder the axes (and flip them) of a volume to the closest RAS+ voxel order.

    Args:
        data: shape ``(X, Y, Z)``.
        affine: ``(4, 4)`` voxel-to-world matrix (RAS+, mm).

    Returns:
        ``(data, affine)`` where axis 0 runs left->right, 1 posterior->anterior, 2 inferior->superior.
    """
    ornt = nib.orientations.io_orientation(affine)
    target = nib.orientations.axcodes2ornt(("R", "A", "S"))
    transform = nib.orientations.ornt_transform(ornt, target)
    out = nib.orientations.apply_orientation(np.asarray(data), transform)
    new_affine = affine @ nib.orientations.inv_ornt_aff(transform, np.asarray(data).shape[:3])
    return np.ascontiguousarray(out), new_affine


def centre_of_mass(data: np.ndarray, mask: np.ndarray | None = None) -> tuple[int, int, int]:
    """Voxel nearest the intensity-weighted centre of the brain (negative values ignored).

    Args:
        data: shape ``(X, Y, Z)``.
        mask: optional brain mask; voxels outside get no weight.
    """
    weights = np.clip(np.asarray(data, dtype=float), 0, None)
    if mask is not None:
        weights = weights * (np.asarray(mask) > 0)
    if weights.sum() <= 0:
        return tuple(s // 2 for s in data.shape)  # type: ignore[return-value]
    com = ndimage.center_of_mass(weights)
    return tuple(int(np.clip(round(c), 0, s - 1)) for c, s in zip(com, data.shape, strict=True))  # type: ignore[return-value]


def plane_slice(data: np.ndarray, plane: str, centre: tuple[int, int, int]) -> np.ndarray:
    """2D slice of a RAS-ordered volume, as rows x columns for ``imshow(origin="lower")``.

    Axial: columns left->right, rows posterior->anterior (anterior up).
    Coronal: columns left->right, rows inferior->superior. Sagittal: columns
    posterior->anterior, rows inferior->superior.
    """
    i, j, k = centre
    if plane == "axial":
        return data[:, :, k].T
    if plane == "coronal":
        return data[:, j, :].T
    if plane == "sagittal":
        return data[i, :, :].T
    raise ValueError(f"unknown plane {plane!r}; choose from {', '.join(PLANES)}")


def _aspect(voxel: np.ndarray, plane: str) -> float:
    # imshow aspect = height of a pixel / its width, in mm
    cols, rows = {"axial": (0, 1), "coronal": (0, 2), "sagittal": (1, 2)}[plane]
    return float(voxel[rows] / voxel[cols])


def _window(data: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    values = data[np.isfinite(data) & (data != 0)]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, [low, high])
    return float(min(lo, 0.0) if lo >= 0 else lo), float(hi if hi > lo else lo + 1)


def montage(inputs: dict[str, np.ndarray], real: np.ndarray, synthetic: np.ndarray, affine: np.ndarray, *,
            target: str = "target", centre: tuple[int, int, int] | None = None,
            mask: np.ndarray | None = None, title: str = "") -> Figure:
    """Three planes (rows) of each input, the real and synthetic target and |synthetic - real| (columns).

    Real and synthetic share one grey scale (0.5-99.5th percentiles of the real image);
    the error has its own colour bar.

    Args:
        inputs: input modality name -> volume ``(X, Y, Z)`` on the target's grid.
        real: real target ``(X, Y, Z)``.
        synthetic: predicted target ``(X, Y, Z)``, same grid.
        affine: ``(4, 4)`` voxel-to-world matrix shared by all volumes.
        target: target modality name for the column titles.
        centre: slice indices in the RAS-reordered volume; default the centre of mass of ``real``.
        mask: optional brain mask for the centre of mass and error display.
        title: figure title (e.g. subject and its MAE).

    References:
        Inferring PET from MRI with pix2pix (real vs. synthetic slices in three planes).
    """
    for name, vol in [*inputs.items(), ("synthetic", synthetic)]:
        if np.shape(vol) != np.shape(real):
            raise ValueError(f"{name} has shape {np.shape(vol)}, the real target {np.shape(real)}")
    real_r, ras_affine = to_ras(real, affine)
    synth_r = to_ras(synthetic, affine)[0]
    inputs_r = {k: to_ras(v, affine)[0] for k, v in inputs.items()}
    mask_r = to_ras(mask, affine)[0] if mask is not None else None
    error = np.abs(synth_r - real_r)
    if mask_r is not None:
        error = error * (mask_r > 0)
    if centre is None:
        centre = centre_of_mass(real_r, mask_r)
    if len(centre) != 3 or not all(0 <= c < n for c, n in zip(centre, real_r.shape, strict=True)):
        raise ValueError(f"slice centre {tuple(centre)} is outside the RAS-ordered volume of shape {real_r.shape}")
    voxel = np.sqrt((ras_affine[:3, :3] ** 2).sum(axis=0))

    columns: list[tuple[str, np.ndarray, str, tuple[float, float]]] = [
        (name, vol, "gray", _window(vol)) for name, vol in inputs_r.items()]
    win = _window(real_r)
    columns += [(f"real {target}", real_r, "gray", win), (f"synthetic {target}", synth_r, "gray", win),
                ("|synthetic - real|", error, "magma", (0.0, max(_window(error, 0, 99.5)[1], 1e-6)))]

    # a fixed grid (not constrained layout): several times faster to draw, panels all the same size
    width = 2.0 * len(columns) + 0.9
    fig = Figure(figsize=(width, 2.0 * 3 + 0.55))
    axes = fig.subplots(3, len(columns), squeeze=False, gridspec_kw={
        "left": 0.35 / width, "right": 1 - 0.55 / width, "bottom": 0.01, "top": 0.9, "wspace": 0.04, "hspace": 0.06})
    for r, plane in enumerate(PLANES):
        for c, (name, vol, cmap, (vmin, vmax)) in enumerate(columns):
            ax = axes[r, c]
            im = ax.imshow(plane_slice(vol, plane, centre), cmap=cmap, vmin=vmin, vmax=vmax, origin="lower",
                           aspect=_aspect(voxel, plane), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(plain(name), fontsize=9)
            if c == 0:
                ax.set_ylabel(plane, fontsize=9)
            if plane in ("axial", "coronal"):
                ax.text(0.97, 0.03, "R", transform=ax.transAxes, color="yellow", fontsize=7, ha="right", va="bottom")
            else:
                ax.text(0.97, 0.03, "A", transform=ax.transAxes, color="yellow", fontsize=7, ha="right", va="bottom")
            if c == len(columns) - 1:
                fig.colorbar(im, cax=ax.inset_axes((1.04, 0.1, 0.06, 0.8))).ax.tick_params(labelsize=7)
    i, j, k = centre
    fig.suptitle(f"{plain(title)}  (slices x={i}, y={j}, z={k} in RAS voxel order)".strip(), fontsize=10, y=0.985)
    return fig
