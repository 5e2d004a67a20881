"""Pair predicted volumes with the real targets of a manifest, and list what cannot be paired.

:func:`pair_predictions` reads headers only; :func:`load_pairs` then reads the voxels of
the pairs once, for every producer of the evaluation. Nothing is skipped silently: a
prediction that cannot be compared is a row of the problems table, with its ``kind``:

======================  ====================================================================
``missing_prediction``  a manifest row (not of the run's training/validation subjects) has no prediction
``no_manifest_row``     a prediction file matches no manifest row
``no_target``           the row has no target image to compare with
``grid_mismatch``       the prediction is not on the target's grid (nothing is resampled)
``unreadable``          the prediction cannot be read as NIfTI
``in_sample``           a prediction of a training or validation subject (left out of the numbers)
``no_reference``        no training subject on the test image's grid (other-subjects reference)
======================  ====================================================================
"""

from __future__ import annotations

import zlib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from neurotrans.errors import InputError
from neurotrans.io.manifest import Manifest
from neurotrans.io.nifti import Volume, load_volume
from neurotrans.io.run import PredictionFolder, RunInfo

PAIR_COLUMNS = ["row", "subject", "session", "group", "prediction", "target"]
PROBLEM_COLUMNS = ["subject", "session", "kind", "file", "problem"]
PROBLEM_KINDS = ("missing_prediction", "no_manifest_row", "no_target", "grid_mismatch", "unreadable",
                 "in_sample", "no_reference")
MASK_THRESHOLD = 0.5
GRID_ATOL_MM = 1e-3


@dataclass(frozen=True)
class Pairing:
    """Predictions paired with targets.

    Args:
        pairs: one row per comparable pair (:data:`PAIR_COLUMNS`: manifest row index,
            subject, session, group or ``None``, prediction path, target path).
        problems: one row per prediction or manifest row that cannot be compared
            (:data:`PROBLEM_COLUMNS`).
    """

    pairs: pd.DataFrame
    problems: pd.DataFrame


@dataclass(frozen=True)
class ImagePair:
    """One prediction and its target, read.

    Args:
        subject: subject id.
        session: session id.
        group: diagnostic group, ``None`` when the manifest has none.
        prediction: predicted volume, shape ``(X, Y, Z)``, float32.
        target: the real volume (its grid is the pair's grid).
        mask: boolean evaluation mask on that grid, or ``None``.
    """

    subject: str
    session: str
    group: str | None
    prediction: np.ndarray
    target: Volume
    mask: np.ndarray | None


def in_sample_subjects(info: RunInfo | None) -> set[str]:
    """Subjects a run trained or validated on (none without a run)."""
    if info is None:
        return set()
    return {str(s) for split in ("train", "val") for s in info.split.get(split, [])}


def problem(subject: str, session: str, kind: str, file: str | Path, text: str) -> dict[str, str]:
    """One row of the problems table."""
    if kind not in PROBLEM_KINDS:
        raise ValueError(f"unknown problem kind {kind!r}; known: {', '.join(PROBLEM_KINDS)}")
    return {"subject": subject, "session": session, "kind": kind, "file": str(file), "problem": text}


def problems_table(rows: list[dict[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=PROBLEM_COLUMNS)


def same_grid(shape_a: tuple[int, ...], affine_a: np.ndarray, shape_b: tuple[int, ...], affine_b: np.ndarray) -> bool:
    """Same voxel array shape and voxel-to-world matrix (within 1 micrometre)."""
    return tuple(shape_a) == tuple(shape_b) and np.allclose(affine_a, affine_b, atol=GRID_ATOL_MM)


def _grid(path: Path) -> tuple[tuple[int, ...], np.ndarray]:
    img = nib.load(str(path))  # the header only: voxels are read once, by load_pairs
    shape = tuple(int(s) for s in img.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    return shape, np.asarray(img.affine, dtype=np.float64)


def pair_predictions(predictions: PredictionFolder, manifest: Manifest, target: str,
                     not_expected: Collection[str] = ()) -> Pairing:
    """Pair every prediction of ``target`` in ``predictions`` with its manifest row.

    Args:
        predictions: the BIDS-derivatives folder of predictions.
        manifest: the cohort manifest holding the real targets (column ``target``).
        target: the predicted modality.
        not_expected: subject ids the run trained or validated on: their rows need no
            prediction, and a prediction of theirs is in-sample (a problem, left out).

    Raises:
        InputError: a target image cannot be read (the manifest is at fault, not the prediction).
    """
    not_expected = {str(s) for s in not_expected}
    has_group = "group" in manifest.table.columns
    pairs, problems, expected = [], [], set()
    for i, row in manifest.rows():
        subject, session = str(row["subject"]), str(row["session"])
        pred = predictions.path(subject, session, target)
        expected.add(pred)
        if not pred.is_file():
            if subject not in not_expected:
                problems.append(problem(subject, session, "missing_prediction", pred, "no prediction for this row"))
            continue
        if subject in not_expected:
            problems.append(problem(subject, session, "in_sample", pred,
                                    "prediction of a training/validation subject: left out (in-sample)"))
            continue
        real = manifest.path(i, target)
        if real is None:
            problems.append(problem(subject, session, "no_target", pred,
                                    f"manifest row has no {target} image to compare with"))
            continue
        try:
            pshape, paffine = _grid(pred)
        except (OSError, EOFError, zlib.error, ValueError, nib.filebasedimages.ImageFileError) as err:
            problems.append(problem(subject, session, "unreadable", pred,
                                    f"cannot be read as NIfTI ({type(err).__name__}): predict it again"))
            continue
        try:
            tshape, taffine = _grid(real)
        except (OSError, EOFError, zlib.error, ValueError, nib.filebasedimages.ImageFileError) as err:
            raise InputError(real, f"cannot be read as NIfTI ({type(err).__name__}: {err})",
                             "fix the manifest's target image") from None
        if not same_grid(pshape, paffine, tshape, taffine):
            problems.append(problem(subject, session, "grid_mismatch", pred,
                                    f"grid {pshape} differs from the target's {tshape} "
                                    "(not resampled: predict on the target's grid)"))
            continue
        group = str(row["group"]) if has_group and pd.notna(row["group"]) else ("" if has_group else None)
        pairs.append({"row": i, "subject": subject, "session": session, "group": group,
                      "prediction": pred, "target": real})
    for f in predictions.scan(target):
        if f not in expected:
            problems.append(problem("", "", "no_manifest_row", f, "prediction without a manifest row"))
    return Pairing(pd.DataFrame(pairs, columns=PAIR_COLUMNS), problems_table(problems))


def load_mask(manifest: Manifest, i: int, mask: str, target: Volume) -> np.ndarray:
    """The evaluation mask of row ``i`` (values > 0.5) on the target's grid.

    Raises:
        InputError: the row has no mask image, it lies on another grid, or it is empty.
    """
    path = manifest.path(i, mask)
    if path is None:
        raise InputError(manifest.source or manifest.root, f"row {manifest.key(i)} has no {mask} image",
                         "fill the mask column or drop --mask")
    vol = load_volume(path)
    if not same_grid(vol.shape, vol.affine, target.shape, target.affine):
        raise InputError(path, "mask grid differs from the target image's", "resample the mask onto it")
    selected = vol.data > MASK_THRESHOLD
    if not selected.any():
        raise InputError(path, "mask is empty", "check the mask image")
    return selected


def load_pairs(pairs: pd.DataFrame, manifest: Manifest, mask: str | None = None) -> list[ImagePair]:
    """Read the voxels of every pair of :func:`pair_predictions` (and the mask, when named)."""
    out = []
    for p in pairs.itertuples(index=False):
        real = load_volume(p.target)
        prediction = load_volume(p.prediction).data
        m = load_mask(manifest, int(p.row), mask, real) if mask else None
        out.append(ImagePair(str(p.subject), str(p.session), p.group, prediction, real, m))
    return out


__all__ = ["ImagePair", "PAIR_COLUMNS", "PROBLEM_COLUMNS", "PROBLEM_KINDS", "Pairing", "in_sample_subjects",
           "load_mask", "load_pairs",
           "pair_predictions", "problem", "problems_table", "same_grid"]
