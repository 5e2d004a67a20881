"""`neurotrans data check`: every image of a manifest loads, grids agree, no NaN/Inf, masks non-empty.

Images of one subject/session must share a grid (they are fed to a network voxel by
voxel); different subjects may lie on different grids (real data is resampled per
subject or kept native). The ``lesions`` mask may be empty (healthy controls); every
other mask must hold at least one voxel; a modality image must not be constant (a blank
export). The same-grid rule is :func:`neurotrans.data.grid.grid_mismatch`, shared with the
preparation of training and prediction data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from neurotrans.data.grid import grid_mismatch
from neurotrans.errors import InputError
from neurotrans.io.manifest import Manifest, read_manifest
from neurotrans.io.nifti import Volume, load_volume
from neurotrans.names import IMAGE_COLUMNS, MASKS

# masks that may legitimately be empty (a healthy control has no lesion)
MAY_BE_EMPTY = ("lesions",)


@dataclass
class CheckReport:
    """Result of :func:`check_manifest`.

    Args:
        table: one row per subject/session: images, shape, voxel size, grid, NaN/Inf, masks, status.
        problems: one ``InputError``-style message per problem found.
        source: the manifest checked.
    """

    table: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    source: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self) -> str:
        """The per-subject table, the problems with their fixes, and a one-line verdict."""
        lines = [self.table.to_string(index=False)]
        if self.problems:
            lines += ["", "problems:"] + [f"  - {p}" for p in self.problems]
        n_rows = len(self.table)
        n_img = int(self.table["images"].sum()) if n_rows else 0
        verdict = (f"OK: {n_rows} subject/session rows, {n_img} images: all load, grids agree, "
                   "no NaN/Inf, no constant image, masks non-empty" if self.ok else
                   f"FAILED: {len(self.problems)} problem(s) in "
                   f"{int((self.table['status'] != 'ok').sum())} of {n_rows} rows (see above)")
        return "\n".join([*lines, "", verdict])


def image_columns(manifest: Manifest) -> list[str]:
    """Known modality/mask columns plus any extra column holding NIfTI paths (e.g. ``T1Gd``)."""
    extra = []
    for c in manifest.table.columns:
        if c in IMAGE_COLUMNS or c in ("subject", "session"):
            continue
        values = manifest.table[c].dropna().astype(str)
        if len(values) and values.str.contains(r"\.nii(?:\.gz)?$", regex=True).all():
            extra.append(c)
    return manifest.image_columns + extra


def _check_row(manifest: Manifest, i: int, columns: list[str]) -> tuple[dict, list[str]]:
    problems: list[str] = []
    first: Volume | None = None
    shapes, nonfinite, n_images, grid_ok, masks_ok = set(), 0, 0, True, True
    voxel = ""
    for c in columns:
        path = manifest.path(i, c)
        if path is None:
            continue
        n_images += 1
        try:
            vol = load_volume(path, allow_nonfinite=True)
        except InputError as err:
            problems.append(str(err))
            continue
        shapes.add("x".join(map(str, vol.shape)))
        if first is None:
            first = vol
            voxel = "x".join(f"{v:g}" for v in np.round(vol.voxel_size, 2))
        elif (mismatch := grid_mismatch(vol, first)) is not None:
            grid_ok = False
            problems.append(str(mismatch))
        bad = int((~np.isfinite(vol.data)).sum())
        if bad:
            nonfinite += bad
            problems.append(str(InputError(path, f"contains {bad} NaN/Inf voxels",
                                           "replace them (e.g. `fslmaths in -nan out`) or mask them out")))
        elif c not in MASKS and vol.data.size and vol.data.min() == vol.data.max():
            # a blank export (all zero) or a placeholder carries no image: training on it learns nothing
            problems.append(str(InputError(path, f"is constant (every voxel {float(vol.data.flat[0]):g}): a blank "
                                           "or placeholder image", "replace it with the real image or leave the cell "
                                           "empty")))
        if c in MASKS and c not in MAY_BE_EMPTY and not (vol.data > 0.5).any():
            masks_ok = False
            problems.append(str(InputError(path, f"{c} mask is empty (no voxel above 0.5)",
                                           "regenerate the mask or leave the cell empty")))
    row = manifest.table.iloc[i]
    summary = {"subject": row["subject"], "session": row["session"], "images": n_images,
               "shape": ",".join(sorted(shapes)) or "-", "voxel_mm": voxel or "-",
               "grid": "ok" if grid_ok else "MISMATCH", "nan_inf": nonfinite,
               "masks": "ok" if masks_ok else "EMPTY", "status": "ok" if not problems else "FAIL"}
    if n_images == 0:
        problems.append(str(InputError(manifest.source or manifest.root, f"row {manifest.key(i)} lists no image",
                                       "fill its image columns or drop the row")))
        summary["status"] = "FAIL"
    return summary, problems


def check_manifest(path: str | Path | Manifest, progress: bool = True) -> CheckReport:
    """Load every image of a manifest and report per subject/session.

    Args:
        path: ``manifest.tsv`` (or its folder), or a :class:`Manifest`.
        progress: show a tqdm progress bar.

    Returns:
        a :class:`CheckReport` (``.ok``, ``.table``, ``.format()``).
    """
    from tqdm.auto import tqdm

    manifest = path if isinstance(path, Manifest) else read_manifest(path)
    columns = image_columns(manifest)
    rows, problems = [], []
    for i in tqdm(range(len(manifest)), desc="checking", unit="row", disable=not progress):
        summary, found = _check_row(manifest, i, columns)
        rows.append(summary)
        problems.extend(found)
    if not columns:
        problems.append(str(InputError(manifest.source or manifest.root, "has no image column",
                                       f"add columns named after modalities/masks ({', '.join(IMAGE_COLUMNS)})")))
    return CheckReport(pd.DataFrame(rows), problems, manifest.source)
