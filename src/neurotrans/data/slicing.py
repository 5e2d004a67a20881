"""2D slices of 3D volumes in the three planes (with 2.5D context) and their reassembly.

Planes, for a volume ``(C, X, Y, Z)`` in RAS-like voxel order:

- ``axial``: along Z, slices ``(X, Y)``;
- ``coronal``: along Y, slices ``(X, Z)``;
- ``sagittal``: along X, slices ``(Y, Z)``.

2.5D context ``k`` stacks the ``k`` neighbouring slices on each side as extra channels
(edge slices replicated), offset-major: channels ``[c0..cC-1 at -k, ..., at 0, ..., at +k]``,
so the centre slice's channels are ``k*C .. (k+1)*C - 1``.

References:
    Sikka et al., "MRI to FDG-PET: cross-modal synthesis using 3D U-Net / pix2pix" (axial vs.
    three-plane training and 3D reassembly).
"""

from __future__ import annotations

import numpy as np

from neurotrans.names import check_name

PLANES = ("axial", "coronal", "sagittal")
# spatial axis (0 = X, 1 = Y, 2 = Z) each plane slices along
PLANE_AXIS = {"axial": 2, "coronal": 1, "sagittal": 0}


def plane_axis(plane: str) -> int:
    """Spatial axis (0 = X, 1 = Y, 2 = Z) that ``plane`` slices along."""
    return PLANE_AXIS[check_name(plane, PLANES, "plane")]


def slice_shape(shape: tuple[int, ...], plane: str) -> tuple[int, int]:
    """In-plane size ``(H, W)`` of slices of a volume of spatial ``shape`` (X, Y, Z)."""
    axis = plane_axis(plane)
    hw = [s for a, s in enumerate(shape[-3:]) if a != axis]
    return int(hw[0]), int(hw[1])


def _pad_amounts(hw: tuple[int, int], pad_to: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    (h, w), (ph, pw) = hw, pad_to
    if ph < h or pw < w:
        raise ValueError(f"pad_to {pad_to} is smaller than the slices {hw}")
    return ((ph - h) // 2, ph - h - (ph - h) // 2), ((pw - w) // 2, pw - w - (pw - w) // 2)


def get_slice(volume: np.ndarray, plane: str, index: int, *, context: int = 0,
              pad_to: tuple[int, int] | None = None) -> np.ndarray:
    """One slice with its 2.5D context.

    Args:
        volume: ``(C, X, Y, Z)`` array (numpy or a read-only memmap).
        plane: ``"axial"``, ``"coronal"`` or ``"sagittal"``.
        index: slice position along the plane's axis.
        context: neighbouring slices ``k`` on each side (edge-replicated).
        pad_to: ``(H, W)``: centre zero-pad the slice to this size.

    Returns:
        float32 array ``(C * (2k + 1), H, W)``.
    """
    axis = plane_axis(plane) + 1
    n = volume.shape[axis]
    if not 0 <= index < n:
        raise IndexError(f"slice {index} out of range for {plane} (0..{n - 1})")
    # a basic slice (a view, cheap on memory maps of any memory order) then edge replication;
    # fancy indexing (np.take) would copy far more from a memory map
    lo, hi = max(0, index - context), min(n, index + context + 1)
    region = [slice(None)] * 4
    region[axis] = slice(lo, hi)
    block = np.asarray(volume[tuple(region)], dtype=np.float32)
    if hi - lo < 2 * context + 1:
        widths = [(0, 0)] * 4
        widths[axis] = (lo - (index - context), index + context + 1 - hi)
        block = np.pad(block, widths, mode="edge")
    block = np.moveaxis(block, axis, 0)  # (2k+1, C, H, W)
    out = np.asarray(block, dtype=np.float32).reshape(-1, *block.shape[2:])
    if pad_to is not None:
        (a, b), (c, d) = _pad_amounts(out.shape[1:], tuple(pad_to))
        out = np.pad(out, ((0, 0), (a, b), (c, d)))
    return np.ascontiguousarray(out)


def extract_slices(volume: np.ndarray, plane: str, context: int = 0,
                   pad_to: tuple[int, int] | None = None) -> np.ndarray:
    """All slices of a volume in one plane.

    Args:
        volume: ``(C, X, Y, Z)``.
        plane: ``"axial"`` (N = Z), ``"coronal"`` (N = Y) or ``"sagittal"`` (N = X).
        context: 2.5D context ``k``.
        pad_to: ``(H, W)`` common size (centre zero padding).

    Returns:
        float32 ``(N, C * (2k + 1), H, W)``.
    """
    volume = np.asarray(volume)
    if volume.ndim != 4:
        raise ValueError(f"volume must be (C, X, Y, Z), got shape {volume.shape}")
    if context < 0:
        raise ValueError(f"context must be >= 0, got {context}")
    axis = plane_axis(plane) + 1
    n = volume.shape[axis]
    # one padded copy along the slicing axis, then a strided view gives every window
    idx = np.clip(np.arange(-context, n + context), 0, n - 1)
    padded = np.moveaxis(np.take(volume, idx, axis=axis), axis, 0).astype(np.float32)  # (n+2k, C, H, W)
    windows = np.stack([padded[j:j + n] for j in range(2 * context + 1)], axis=1)  # (n, 2k+1, C, H, W)
    out = windows.reshape(n, -1, *padded.shape[2:])
    if pad_to is not None:
        (a, b), (c, d) = _pad_amounts(out.shape[2:], tuple(pad_to))
        out = np.pad(out, ((0, 0), (0, 0), (a, b), (c, d)))
    return np.ascontiguousarray(out)


def assemble_slices(slices: np.ndarray, plane: str, shape: tuple[int, ...]) -> np.ndarray:
    """Stack slices back into a volume, cropping any centre padding.

    Args:
        slices: ``(N, C, H, W)`` (e.g. per-slice predictions, no context channels).
        plane: the plane they were taken in.
        shape: spatial shape ``(X, Y, Z)`` of the volume (a leading channel entry is ignored).

    Returns:
        float32 ``(C, X, Y, Z)``.
    """
    slices = np.asarray(slices, dtype=np.float32)
    if slices.ndim != 4:
        raise ValueError(f"slices must be (N, C, H, W), got shape {slices.shape}")
    shape = tuple(int(s) for s in shape[-3:])
    axis = plane_axis(plane)
    if slices.shape[0] != shape[axis]:
        raise ValueError(f"{slices.shape[0]} {plane} slices cannot fill a volume of shape {shape}")
    h, w = slice_shape(shape, plane)
    (a, _), (c, _) = _pad_amounts((h, w), slices.shape[2:])
    cropped = slices[:, :, a:a + h, c:c + w]  # (N, C, h, w)
    return np.ascontiguousarray(np.moveaxis(cropped, 0, axis + 1))
