"""Crop and pad volumes while keeping world coordinates: the affine moves with the voxels.

A crop or pad is a change of grid by whole voxels, so the cropped grid can also be given
to :func:`~neurotrans.data.preprocess.prepare_subject` as its working grid (resampling by
an integer shift is exact), and predictions map back with ``to_original_grid``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from neurotrans.data.grid import Grid


def shifted_grid(grid: Grid, start: Sequence[int], shape: Sequence[int]) -> Grid:
    """The grid of the box starting at voxel ``start`` (may be negative: padding) with ``shape``."""
    affine = np.array(grid.affine, dtype=np.float64)
    affine[:3, 3] = grid.affine[:3, :3] @ np.asarray(start, dtype=np.float64) + grid.affine[:3, 3]
    return Grid(tuple(int(s) for s in shape), affine)  # type: ignore[arg-type]


def crop_or_pad(data: np.ndarray, start: Sequence[int], shape: Sequence[int], fill: float = 0.0) -> np.ndarray:
    """Extract the box ``[start, start + shape)`` of ``data`` (X, Y, Z), padding with ``fill`` outside."""
    out = np.full(tuple(int(s) for s in shape), fill, dtype=data.dtype)
    src, dst = [], []
    for a, (s0, n) in enumerate(zip(start, shape, strict=True)):
        lo, hi = max(0, s0), min(data.shape[a], s0 + n)
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - s0, hi - s0))
    out[tuple(dst)] = data[tuple(src)]
    return out


def mask_box(mask: np.ndarray, margin: int = 0, multiple: int = 1) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Bounding box ``(start, shape)`` of a non-empty mask, with ``margin`` voxels around it,
    grown symmetrically to a multiple of ``multiple`` (network down-sampling factors)."""
    if not mask.any():
        raise ValueError("the mask is empty: no bounding box")
    start, shape = [], []
    for a in range(3):
        idx = np.flatnonzero(mask.any(axis=tuple(b for b in range(3) if b != a)))
        lo, hi = int(idx[0]) - margin, int(idx[-1]) + 1 + margin
        n = -(-(hi - lo) // multiple) * multiple
        lo -= (n - (hi - lo)) // 2
        start.append(lo)
        shape.append(n)
    return tuple(start), tuple(shape)


def crop_to_mask(data: np.ndarray, grid: Grid, mask: np.ndarray, margin: int = 4,
                 multiple: int = 1) -> tuple[np.ndarray, Grid]:
    """Crop ``data`` (X, Y, Z) on ``grid`` to the bounding box of ``mask`` (same grid).

    Args:
        data: the volume.
        grid: its grid.
        mask: brain mask (X, Y, Z), bool.
        margin: voxels kept around the mask.
        multiple: make every side a multiple of this (padding where the box leaves the volume).

    Returns:
        the cropped volume and its grid (same world coordinates voxel for voxel).
    """
    start, shape = mask_box(mask, margin, multiple)
    return crop_or_pad(data, start, shape), shifted_grid(grid, start, shape)


def apply_mask(data: np.ndarray, mask: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """Set voxels outside ``mask`` to ``fill`` (brain masking)."""
    return np.where(mask, data, np.asarray(fill, dtype=data.dtype)).astype(data.dtype, copy=False)
