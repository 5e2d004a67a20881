"""Atlases and PET reference regions on any grid (AAL2, AICHA, pons, cerebellum+pons)."""

from __future__ import annotations

from functools import lru_cache

import nibabel as nib
import numpy as np
import pandas as pd

from neurotrans.data.grid import Grid
from neurotrans.data.resample import resample_to_grid
from neurotrans.resources import clinica_file

ATLASES = ("AAL2", "AICHA")
REFERENCE_REGIONS = ("pons", "cerebellumPons")


@lru_cache(maxsize=8)
def _atlas_on_grid(name: str, shape: tuple[int, int, int], affine_key: tuple[float, ...]) -> np.ndarray:
    img = nib.load(str(clinica_file(name)))
    labels = np.asarray(img.dataobj).astype(np.int32)
    grid = Grid(shape, np.asarray(affine_key, dtype=np.float64).reshape(4, 4))
    out = resample_to_grid(labels, img.affine, grid, order=0).astype(np.int32)
    out.setflags(write=False)
    return out


def load_atlas(name: str = "AAL2", grid: Grid | None = None) -> tuple[np.ndarray, dict[int, str]]:
    """Atlas labels on ``grid`` (nearest neighbour) and the label -> region-name table.

    Args:
        name: ``"AAL2"`` (120 regions) or ``"AICHA"``.
        grid: destination grid; ``None`` keeps the atlas's own 1.5 mm MNI grid.

    Returns:
        ``labels`` (int32, read-only, shape of the grid) and ``{label: name}`` without background.

    References:
        Rolls et al., NeuroImage 2015 (AAL2); files from the clinica wheel.
    """
    from neurotrans.names import check_name

    check_name(name, ATLASES, "atlas")
    table = pd.read_csv(clinica_file(f"{name}_labels"), sep="\t")
    names = {int(v): str(n).strip() for v, n in zip(table.iloc[:, 0], table.iloc[:, 1], strict=True) if int(v) != 0}
    if grid is None:
        img = nib.load(str(clinica_file(name)))
        grid = Grid(tuple(img.shape[:3]), img.affine)
    labels = _atlas_on_grid(name, tuple(grid.shape), tuple(np.asarray(grid.affine, dtype=np.float64).ravel()))
    return labels, names


def region_mask(labels: np.ndarray, names: dict[int, str], *patterns: str) -> np.ndarray:
    """Boolean mask of all regions whose name starts with any of ``patterns``."""
    keep = [v for v, n in names.items() if any(n.startswith(p) for p in patterns)]
    return np.isin(labels, keep)


def reference_mask(name: str = "pons", grid: Grid | None = None) -> np.ndarray:
    """A PET reference region (clinica's eroded pons or cerebellum+pons mask) on ``grid``.

    References:
        clinica's pet-linear / pet-volume pipelines (SUVR normalisation).
    """
    from neurotrans.names import check_name

    check_name(name, REFERENCE_REGIONS, "reference region")
    img = nib.load(str(clinica_file(name)))
    data = np.asarray(img.dataobj, dtype=np.float32)
    if grid is None:
        return data > 0.5
    # trilinear then threshold: the mask comes from a 2 mm grid with a slight rotation
    return resample_to_grid(data, img.affine, grid, order=1) > 0.5
