"""Image grids: a shape and an affine; the MNI grids of the papers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The 1.5 mm MNI grid of SPM-preprocessed ADNI data (and of clinica's AAL2 atlas).
MNI_ORIGIN_MM = (-90.0, -126.0, -72.0)
MNI_SHAPES = {1.5: (121, 145, 121), 3.0: (61, 73, 61)}


@dataclass(frozen=True)
class Grid:
    """A voxel grid: ``shape`` (X, Y, Z) and ``affine`` (4, 4) voxel -> world mm."""

    shape: tuple[int, int, int]
    affine: np.ndarray

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Grid) and tuple(self.shape) == tuple(other.shape)
                and np.allclose(self.affine, other.affine, atol=1e-4))

    def __hash__(self) -> int:
        return hash((tuple(self.shape), tuple(np.round(self.affine, 4).ravel())))

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))  # type: ignore[return-value]

    def world_coordinates(self) -> np.ndarray:
        """World (mm) coordinates of every voxel centre, shape ``(3, X, Y, Z)``."""
        idx = np.indices(self.shape, dtype=np.float64).reshape(3, -1)
        xyz = self.affine[:3, :3] @ idx + self.affine[:3, 3:4]
        return xyz.reshape(3, *self.shape)


def mni_grid(voxel_size: float = 1.5) -> Grid:
    """The papers' MNI grid: 121x145x121 at 1.5 mm, or 61x73x61 at 3 mm.

    Other voxel sizes cover the same field of view (180 x 216 x 180 mm).
    """
    voxel_size = float(voxel_size)
    if voxel_size <= 0:
        raise ValueError(f"voxel_size must be positive, got {voxel_size}")
    shape = MNI_SHAPES.get(voxel_size) or tuple(int(round(e / voxel_size)) + 1 for e in (180, 216, 180))
    affine = np.diag([voxel_size, voxel_size, voxel_size, 1.0])
    affine[:3, 3] = MNI_ORIGIN_MM
    return Grid(tuple(shape), affine)  # type: ignore[arg-type]
