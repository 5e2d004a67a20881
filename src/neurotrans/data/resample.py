"""Resampling volumes onto a target grid (scipy), keeping world coordinates fixed."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from neurotrans.data.grid import Grid


def resample_to_grid(
    data: np.ndarray,
    affine: np.ndarray,
    grid: Grid,
    *,
    order: int = 1,
    fill: float = 0.0,
) -> np.ndarray:
    """Resample ``data`` (on ``affine``) onto ``grid`` by world coordinates.

    Args:
        data: source volume, shape ``(X, Y, Z)``.
        affine: source voxel -> world matrix ``(4, 4)``.
        grid: destination grid.
        order: spline order: 0 nearest neighbour (labels, masks), 1 trilinear, 3 cubic.
        fill: value outside the source field of view.

    Returns:
        float32 array of shape ``grid.shape`` (label images keep their integer values).
    """
    # destination voxel -> source voxel
    mapping = np.linalg.solve(affine, grid.affine)
    same = np.allclose(mapping, np.eye(4), atol=1e-6) and tuple(data.shape) == tuple(grid.shape)
    if same:
        return np.asarray(data, dtype=np.float32)
    src = np.asarray(data, dtype=np.float32 if order > 0 else data.dtype)
    out = ndimage.affine_transform(src, mapping[:3, :3], offset=mapping[:3, 3], output_shape=tuple(grid.shape),
                                   order=order, mode="constant", cval=fill, prefilter=order > 1)
    return out.astype(np.float32, copy=False)
