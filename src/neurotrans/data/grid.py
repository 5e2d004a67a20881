"""Image grids: a shape and an affine; the MNI grids of the papers; the one same-grid rule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from neurotrans.errors import InputError

if TYPE_CHECKING:
    from neurotrans.io.nifti import Volume

# Two affines closer than this (every entry, mm) describe the same grid: float32 header storage
# of a 100 mm offset is exact to ~1e-5 mm, while any real misregistration is far larger.
GRID_ATOL_MM = 1e-4

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
                and np.allclose(self.affine, other.affine, atol=GRID_ATOL_MM))

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


def grid_mismatch(volume: Volume, reference: Volume) -> InputError | None:
    """The error of ``volume`` lying on another grid than ``reference`` (``None``: same grid).

    The one rule for the images of one subject and session, used by ``data check`` and by
    every preparation for training and prediction (also when they are resampled onto a
    working grid afterwards): resampling goes by world coordinates, so images whose grids
    disagree (a PET with a shifted affine, a T2w of another field of view) would be
    combined at the wrong places without any error. They must be co-registered onto one
    grid first.
    """
    grid, ref = Grid(tuple(volume.shape), volume.affine), Grid(tuple(reference.shape), reference.affine)  # type: ignore[arg-type]
    if grid == ref:
        return None
    if tuple(grid.shape) == tuple(ref.shape) and np.allclose(grid.affine[:3, :3], ref.affine[:3, :3], atol=GRID_ATOL_MM):
        shift = np.round(grid.affine[:3, 3] - ref.affine[:3, 3], 3).tolist()
        how = f"is on a grid shifted by {shift} mm from that of {reference.path} (same shape and voxel size)"
    else:
        how = (f"is on a different grid ({volume.shape}, voxel {np.round(grid.voxel_size, 3).tolist()} mm) than "
               f"{reference.path} ({reference.shape}, voxel {np.round(ref.voxel_size, 3).tolist()} mm)")
    return InputError(volume.path or "image", how, "co-register the subject's images and resample them onto one grid "
                      "(e.g. the first input's) before use: they are combined voxel by voxel")
