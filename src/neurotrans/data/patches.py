"""3D patch grids of configurable size and overlap, and weighted reassembly.

Patch positions come from MONAI's ``dense_patch_slices`` (the grid its sliding-window
inference uses: a stride of ``patch * (1 - overlap)``, the last patch flush with the
border) and Gaussian weights from MONAI's ``compute_importance_map``, so training patches
and sliding-window prediction agree. Volumes smaller than a patch are zero-padded at the
far end and cropped back on reassembly.

References:
    CF-SAGAN (64^3 patches with 50 % overlap); MONAI sliding-window inference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

WEIGHTINGS = ("uniform", "gaussian")


def _interval(patch_size: Sequence[int], overlap: float) -> tuple[int, ...]:
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must lie in [0, 1), got {overlap}")
    return tuple(max(1, int(round(p * (1 - overlap)))) for p in patch_size)


def patch_starts(shape: Sequence[int], patch_size: Sequence[int], overlap: float = 0.0) -> list[tuple[int, int, int]]:
    """Start corners of a patch grid covering a volume.

    Args:
        shape: spatial shape ``(X, Y, Z)``.
        patch_size: ``(D, H, W)`` voxels.
        overlap: fraction of a patch shared with its neighbour, in ``[0, 1)``.

    Returns:
        list of ``(x, y, z)`` start indices.
    """
    from monai.data.utils import dense_patch_slices

    shape = tuple(int(s) for s in shape[-3:])
    patch = tuple(int(p) for p in patch_size)
    if len(patch) != 3 or min(patch) < 1:
        raise ValueError(f"patch_size must be 3 positive ints, got {patch_size}")
    padded = tuple(max(s, p) for s, p in zip(shape, patch, strict=True))
    slices = dense_patch_slices(padded, patch, _interval(patch, overlap))
    return [tuple(int(s.start) for s in sl) for sl in slices]  # type: ignore[misc]


def patch_weights(patch_size: Sequence[int], weighting: str = "uniform", sigma_scale: float = 0.125) -> np.ndarray:
    """Blending weights of one patch, float32 ``(D, H, W)`` (MONAI's importance map)."""
    import torch
    from monai.data.utils import compute_importance_map

    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    mode = "constant" if weighting == "uniform" else "gaussian"
    w = compute_importance_map(tuple(int(p) for p in patch_size), mode=mode, sigma_scale=sigma_scale,
                               device=torch.device("cpu"))
    return w.numpy().astype(np.float32)


def extract_patches(volume: np.ndarray, patch_size: Sequence[int],
                    overlap: float = 0.0) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Cut a volume into a grid of patches.

    Args:
        volume: ``(C, X, Y, Z)``.
        patch_size: ``(D, H, W)``.
        overlap: fraction in ``[0, 1)``.

    Returns:
        patches ``(N, C, D, H, W)`` float32 and their start corners.
    """
    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim != 4:
        raise ValueError(f"volume must be (C, X, Y, Z), got shape {volume.shape}")
    patch = tuple(int(p) for p in patch_size)
    pad = [(0, 0)] + [(0, max(0, p - s)) for s, p in zip(volume.shape[1:], patch, strict=True)]
    padded = np.pad(volume, pad)
    starts = patch_starts(volume.shape[1:], patch, overlap)
    out = np.stack([padded[(slice(None), *(slice(a, a + p) for a, p in zip(st, patch, strict=True)))]
                    for st in starts])
    return out, starts


def assemble_patches(patches: np.ndarray, starts: Sequence[Sequence[int]], shape: Sequence[int],
                     weighting: str = "uniform", sigma_scale: float = 0.125) -> np.ndarray:
    """Weighted average of overlapping patches back into a volume.

    Args:
        patches: ``(N, C, D, H, W)``.
        starts: their start corners (from :func:`extract_patches` / :func:`patch_starts`).
        shape: spatial shape ``(X, Y, Z)`` of the volume.
        weighting: ``"uniform"`` or ``"gaussian"`` (centre voxels count more; fewer seams).
        sigma_scale: Gaussian sigma as a fraction of the patch size.

    Returns:
        float32 ``(C, X, Y, Z)``.
    """
    patches = np.asarray(patches, dtype=np.float32)
    if patches.ndim != 5 or len(patches) != len(starts):
        raise ValueError(f"patches must be (N, C, D, H, W) with one start each, got {patches.shape}, {len(starts)}")
    shape = tuple(int(s) for s in shape[-3:])
    patch = patches.shape[2:]
    padded = tuple(max(s, p) for s, p in zip(shape, patch, strict=True))
    acc = np.zeros((patches.shape[1], *padded), dtype=np.float64)
    norm = np.zeros(padded, dtype=np.float64)
    w = patch_weights(patch, weighting, sigma_scale).astype(np.float64)
    for p, st in zip(patches, starts, strict=True):
        region = tuple(slice(a, a + s) for a, s in zip(st, patch, strict=True))
        acc[(slice(None), *region)] += p * w
        norm[region] += w
    if (norm <= 0).any():
        raise ValueError("the patches do not cover the whole volume")
    out = acc / norm
    return out[(slice(None), *(slice(0, s) for s in shape))].astype(np.float32)
