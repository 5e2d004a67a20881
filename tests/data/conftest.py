"""Fixtures of the data tests: a tiny cohort of NIfTI files written to tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from neurotrans.data.grid import Grid
from neurotrans.io.manifest import Manifest, write_manifest
from neurotrans.io.nifti import save_volume


def smooth_volume(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 100.0) -> np.ndarray:
    """A smooth positive random volume inside an ellipsoid 'brain' (zero outside)."""
    vol = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
    vol = (vol - vol.min()) / (vol.max() - vol.min()) * scale + scale / 2
    idx = np.indices(shape, dtype=float)
    centre = (np.array(shape) - 1) / 2
    r = sum(((idx[a] - centre[a]) / (0.4 * shape[a])) ** 2 for a in range(3))
    return np.where(r <= 1, vol, 0).astype(np.float32)


def write_cohort(root: Path, rng: np.random.Generator, grid: Grid, n: int = 4,
                 columns: tuple[str, ...] = ("T1w", "FDG"), groups: tuple[str, ...] = ("CN", "AD"),
                 mask: bool = True) -> Manifest:
    """Write ``n`` subjects of smooth volumes on ``grid`` and their manifest.tsv."""
    rows = []
    for s in range(n):
        row = {"subject": f"sub-{s:02d}", "session": "1", "age": 60 + s, "group": groups[s % len(groups)]}
        base = smooth_volume(rng, grid.shape)
        for c in columns:
            data = base * (1.0 + 0.5 * columns.index(c)) + (base > 0) * rng.normal(0, 1, grid.shape)
            rel = f"sub-{s:02d}/{c}.nii.gz"
            save_volume(root / rel, data.astype(np.float32), grid.affine)
            row[c] = rel
        if mask:
            rel = f"sub-{s:02d}/brainmask.nii.gz"
            save_volume(root / rel, (base > 0).astype(np.uint8), grid.affine, dtype=np.uint8)
            row["brainmask"] = rel
        rows.append(row)
    table = pd.DataFrame(rows)
    write_manifest(table, root / "manifest.tsv")
    return Manifest(table, root, root / "manifest.tsv")


@pytest.fixture
def small_grid() -> Grid:
    """A 3 mm grid cropped to 20x24x20 around the MNI origin region (fast)."""
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = (-30.0, -40.0, -30.0)
    return Grid((20, 24, 20), affine)


@pytest.fixture
def cohort(tmp_path: Path, rng: np.random.Generator, small_grid: Grid) -> Manifest:
    return write_cohort(tmp_path / "cohort", rng, small_grid)


@pytest.fixture
def cohort_writer():
    """:func:`write_cohort`, for tests that need other columns or sizes."""
    return write_cohort
