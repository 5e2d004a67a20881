"""Preprocess one manifest row into normalised arrays on a working grid, and map back.

``prepare_subject`` loads the input and target images of one subject/session, checks
they share a grid (or resamples them onto ``grid``), builds the brain mask, normalises
each channel and keeps everything needed to write a prediction back on the input's own
grid and in original units (``restore_prediction``).

Brain mask: the manifest's mask column (default ``brainmask``); when that column is
absent or empty for the row, the mask is the set of voxels where the first input is
non-zero (skull-stripped images have an exact-zero background).

The pseudo-input ``"coords"`` gives 3 channels: each voxel's world x, y, z in mm / 100
(MNI coordinates when the grid is an MNI grid), ESIT's spatial encoding.

References:
    ESIT (spatial encoding from MNI voxel coordinates); pix2pix MRI->PET (1.5 mm MNI grid).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import nibabel as nib
import numpy as np

from neurotrans.data.grid import Grid, grid_mismatch
from neurotrans.data.normalize import default_normalisation, fit_normaliser, normaliser_from_dict
from neurotrans.data.resample import resample_to_grid
from neurotrans.errors import InputError
from neurotrans.io.manifest import Manifest
from neurotrans.io.nifti import Volume, load_volume

COORDS = "coords"


@dataclass(frozen=True)
class GridReference:
    """The original grid of a subject's inputs, to write predictions back onto it.

    Args:
        shape: ``(X, Y, Z)`` of the input images.
        affine: their ``(4, 4)`` voxel -> world matrix.
        header: the first input's NIfTI header (copied into written predictions).
    """

    shape: tuple[int, int, int]
    affine: np.ndarray
    header: nib.Nifti1Header | None = None

    @property
    def grid(self) -> Grid:
        return Grid(tuple(self.shape), np.asarray(self.affine, dtype=np.float64))  # type: ignore[arg-type]


@dataclass(frozen=True)
class PreparedSubject:
    """One subject/session ready for sampling: normalised arrays on the working grid.

    Args:
        key: ``subject_session`` (output file names).
        subject: subject id (splits group by it).
        session: session id.
        inputs: ``(C, X, Y, Z)`` float32, normalised input channels.
        target: ``(1, X, Y, Z)`` float32 normalised target, or ``None`` (prediction only).
        mask: ``(X, Y, Z)`` bool brain mask, or ``None``.
        stats: per channel name, the normaliser's ``to_dict()`` (inputs and target).
        reference: the original input grid (shape, affine, header).
        grid: the working grid of the arrays.
        input_names: channel names in order (``"coords"`` expands to ``coords_x/y/z``).
        target_name: the target modality, or ``None``.
        covariates: the row's non-image manifest values (age, sex, group...).
        aux: ``(K, X, Y, Z)`` float32 extra masks (``aux_names``), or ``None``.
        aux_names: their manifest columns.
    """

    key: str
    subject: str
    session: str
    inputs: np.ndarray
    target: np.ndarray | None
    mask: np.ndarray | None
    stats: dict[str, dict[str, Any]]
    reference: GridReference
    grid: Grid
    input_names: tuple[str, ...] = ()
    target_name: str | None = None
    covariates: dict[str, Any] = field(default_factory=dict)
    aux: np.ndarray | None = None
    aux_names: tuple[str, ...] = ()

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape of the working grid."""
        return tuple(self.inputs.shape[1:])  # type: ignore[return-value]


def coordinate_channels(grid: Grid) -> np.ndarray:
    """World coordinates of every voxel in mm / 100, float32 ``(3, X, Y, Z)`` (ESIT encoding)."""
    return (grid.world_coordinates() / 100.0).astype(np.float32)


def _require(manifest: Manifest, i: int, column: str) -> Volume:
    path = manifest.path(i, column)
    if path is None:
        raise InputError(manifest.source or manifest.root, f"row {manifest.key(i)} has no {column} image",
                         f"fill the {column} column for this row or leave the subject out")
    return load_volume(path)


def _grid_of(vol: Volume) -> Grid:
    return Grid(tuple(vol.shape), vol.affine)  # type: ignore[arg-type]


def prepare_subject(
    manifest: Manifest,
    i: int,
    inputs: list[str],
    target: str | None,
    *,
    grid: Grid | None,
    normalisation: dict[str, str],
    mask: str | None = "brainmask",
    aux: list[str] | tuple[str, ...] = (),
    fitted: dict[str, dict[str, Any]] | None = None,
) -> PreparedSubject:
    """Load, check, resample and normalise row ``i`` of ``manifest``.

    Args:
        manifest: the cohort table.
        i: row index.
        inputs: input columns in channel order (``"coords"`` adds 3 coordinate channels).
        target: target column, or ``None`` for prediction only.
        grid: working grid; ``None`` keeps the subject's native grid. All images of the
            row must share one grid either way (:func:`~neurotrans.data.grid.grid_mismatch`,
            the rule of ``data check``); they are resampled onto ``grid`` trilinearly, masks
            by nearest neighbour.
        normalisation: per column a spec (``"minmax"``, ``"zscore:mask"``, ``"suvr:pons"``...;
            see :mod:`neurotrans.data.normalize`); absent columns get
            :func:`default_normalisation` (min-max for MRI, SUVR pons for PET).
        mask: mask column; absent/empty -> non-zero voxels of the first input; ``None`` -> no mask.
        aux: extra mask columns (nearest-neighbour resampling, values > 0.5), e.g. lesions.
        fitted: column -> normaliser statistics fitted beforehand on the training cohort
            (``zscore:cohort``); used as they are instead of fitting on this image.

    Returns:
        a :class:`PreparedSubject`.
    """
    if not inputs:
        raise ValueError("inputs must name at least one column")
    row = manifest.table.iloc[i]
    images = [c for c in inputs if c != COORDS]
    loaded = {c: _require(manifest, i, c) for c in images}
    if target is not None:
        loaded[target] = _require(manifest, i, target)
    mask_vol = None
    if mask is not None and mask in manifest.table.columns and manifest.path(i, mask) is not None:
        mask_vol = load_volume(manifest.path(i, mask))  # type: ignore[arg-type]
        if not (mask_vol.data > 0.5).any():
            raise InputError(mask_vol.path or mask, "mask is empty (no voxel above 0.5)",
                             "regenerate the mask or leave the column empty to use the non-zero voxels")

    if not loaded:
        raise InputError(manifest.source or manifest.root, "only 'coords' was asked for as input",
                         "add at least one image column to the inputs")
    first = loaded[images[0]] if images else next(iter(loaded.values()))
    reference = GridReference(tuple(first.shape), first.affine.copy(), first.header)  # type: ignore[arg-type]
    aux_vols = [_require(manifest, i, c) for c in aux]
    # one rule with `data check`, whether or not a working grid follows: resampling by world
    # coordinates would silently combine misregistered images
    for vol in [*loaded.values(), *([mask_vol] if mask_vol is not None else []), *aux_vols]:
        if (mismatch := grid_mismatch(vol, first)) is not None:
            raise mismatch
    work = _grid_of(first) if grid is None else grid

    def on_grid(vol: Volume, order: int) -> np.ndarray:
        return resample_to_grid(vol.data, vol.affine, work, order=order)

    arrays = {c: on_grid(v, 1) for c, v in loaded.items()}
    if mask_vol is not None:
        brain = on_grid(mask_vol, 0) > 0.5
    elif mask is not None:
        brain = arrays[images[0]] != 0 if images else None
    else:
        brain = None
    if brain is not None and not brain.any():
        raise InputError(first.path or "image", "the brain mask is empty on the working grid",
                         "check that the images overlap the grid, or give a brainmask column")

    fitted = dict(fitted or {})

    def normaliser(c: str) -> Any:
        if c in fitted:
            return normaliser_from_dict(fitted[c])
        return fit_normaliser(normalisation.get(c, default_normalisation(c)), arrays[c], mask=brain, grid=work,
                              where=str(loaded[c].path))

    stats: dict[str, dict[str, Any]] = {}
    channels: list[np.ndarray] = []
    names: list[str] = []
    for c in inputs:
        if c == COORDS:
            channels.append(coordinate_channels(work))
            names.extend(("coords_x", "coords_y", "coords_z"))
            continue
        norm = normaliser(c)
        stats[c] = norm.to_dict()
        channels.append(norm.apply(arrays[c])[None])
        names.append(c)
    target_arr = None
    if target is not None:
        norm = normaliser(target)
        stats[target] = norm.to_dict()
        target_arr = norm.apply(arrays[target])[None]
    aux_arr = None
    if aux:
        aux_arr = np.stack([on_grid(v, 0) > 0.5 for v in aux_vols]).astype(np.float32)
    covariates = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()
                  if k not in manifest.image_columns and k not in ("subject", "session")
                  and not str(v).endswith((".nii", ".nii.gz"))}
    return PreparedSubject(
        key=manifest.key(i), subject=str(row["subject"]), session=str(row["session"]),
        inputs=np.concatenate(channels, axis=0).astype(np.float32), target=target_arr, mask=brain,
        stats=stats, reference=reference, grid=work, input_names=tuple(names), target_name=target,
        covariates=covariates, aux=aux_arr, aux_names=tuple(aux),
    )


def to_original_grid(volume: np.ndarray, subject: PreparedSubject, *, order: int = 1) -> np.ndarray:
    """Resample a volume on the working grid back onto the subject's original input grid.

    Args:
        volume: ``(X, Y, Z)`` on ``subject.grid``.
        subject: the prepared subject it belongs to.
        order: 1 trilinear (images), 0 nearest (labels/masks).

    Returns:
        float32 ``(X', Y', Z')`` on ``subject.reference`` (identity when the grids agree).
    """
    volume = np.asarray(volume, dtype=np.float32)
    if volume.shape != tuple(subject.grid.shape):
        raise ValueError(f"volume shape {volume.shape} is not the working grid {subject.grid.shape}")
    return resample_to_grid(volume, subject.grid.affine, subject.reference.grid, order=order)


def restore_prediction(prediction: np.ndarray, subject: PreparedSubject, name: str | None = None) -> np.ndarray:
    """Undo the target normalisation and resample onto the original grid.

    Args:
        prediction: ``(X, Y, Z)`` or ``(1, X, Y, Z)`` normalised prediction on the working grid.
        subject: the prepared subject.
        name: channel whose statistics to invert (default ``subject.target_name``).

    Returns:
        float32 ``(X', Y', Z')`` in original units on the input's own grid (write it with
        ``save_volume(path, out, subject.reference.affine, subject.reference.header)``).
    """
    name = name or subject.target_name
    prediction = np.asarray(prediction, dtype=np.float32)
    if prediction.ndim == 4:
        prediction = prediction[0]
    if name is not None and name in subject.stats:
        prediction = normaliser_from_dict(subject.stats[name]).invert(prediction)
    return to_original_grid(prediction, subject)
