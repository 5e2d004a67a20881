"""Augmentation of dataset items: random parameters, then a deterministic transform.

Each random transform samples its parameters (from a ``torch.Generator`` if given, else
torch's global generator, which the DataLoader seeds per worker) and calls a plain
deterministic function, so any augmentation can be replayed from its parameters (TorchIO
style). The same geometry is applied to ``input``, ``target`` and ``mask`` (the mask by
nearest neighbour), for 2D items ``(C, H, W)`` and 3D items ``(C, D, H, W)`` alike.
Intensity augmentation (:class:`RandomIntensity`: gamma and a smooth bias field) changes
the input channels only: the target's contrast is what the model learns, the inputs'
contrast is what varies between scanners.

References:
    CF-SAGAN (rotation and scaling augmentation of 3D patches); TorchIO (Perez-Garcia et al., 2021:
    RandomGamma, RandomBiasField).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

SPATIAL_KEYS = ("input", "target", "mask", "aux")
LABEL_KEYS = ("mask", "aux")  # resampled by nearest neighbour


def flip(item: dict[str, Any], axes: Sequence[int]) -> dict[str, Any]:
    """Flip the spatial ``axes`` (0 = first spatial axis) of every image in ``item``."""
    out = dict(item)
    for k in SPATIAL_KEYS:
        if k in item and axes:
            out[k] = torch.flip(item[k], dims=[a + 1 for a in axes])
    return out


def _rotation(angles: Sequence[float], dims: int) -> torch.Tensor:
    if dims == 2:
        (a,) = angles
        return torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    rot = torch.eye(3)
    for axis, a in enumerate(angles):  # rotations about the first, second, third spatial axis in turn
        c, s = math.cos(a), math.sin(a)
        i, j = [d for d in range(3) if d != axis]
        r = torch.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        rot = r @ rot
    return rot


def rotate_scale(item: dict[str, Any], angles: Sequence[float], scale: float) -> dict[str, Any]:
    """Rotate by ``angles`` (radians; one in 2D, three in 3D) and zoom by ``scale`` about the centre.

    Images are resampled bilinearly/trilinearly with zeros outside, the mask by nearest
    neighbour. Uses ``torch.nn.functional.affine_grid`` (normalised coordinates).
    """
    ref = item["input"]
    dims = ref.dim() - 1
    if len(angles) != (1 if dims == 2 else 3):
        raise ValueError(f"{dims}D items take {1 if dims == 2 else 3} angle(s), got {len(angles)}")
    # output voxel p samples the input at R^T p / scale, so the content turns by +angle (as torch.rot90)
    matrix = _rotation(angles, dims).T / float(scale)
    # affine_grid orders coordinates (x = last axis, ...): reverse the axes of the matrix
    perm = list(reversed(range(dims)))
    theta = torch.zeros(1, dims, dims + 1)
    theta[0, :, :dims] = matrix[perm][:, perm]
    size = (1, 1, *ref.shape[1:])
    grid = F.affine_grid(theta, list(size), align_corners=False)
    out = dict(item)
    for k in SPATIAL_KEYS:
        if k in item:
            x = item[k].float()[None]
            mode = "nearest" if k in LABEL_KEYS else "bilinear"
            out[k] = F.grid_sample(x, grid.expand(1, *grid.shape[1:]), mode=mode, padding_mode="zeros",
                                   align_corners=False)[0]
    return out


@dataclass(frozen=True)
class RandomFlip:
    """Flip each of ``axes`` with probability ``p``.

    Args:
        axes: spatial axes that may flip (e.g. ``(0,)``: left-right on axial/coronal slices).
        p: flip probability per axis.
    """

    axes: tuple[int, ...] = (0,)
    p: float = 0.5

    def sample(self, generator: torch.Generator | None = None) -> dict[str, Any]:
        draws = torch.rand(len(self.axes), generator=generator)
        return {"axes": [a for a, d in zip(self.axes, draws.tolist(), strict=True) if d < self.p]}

    def __call__(self, item: dict[str, Any], generator: torch.Generator | None = None) -> dict[str, Any]:
        return flip(item, **self.sample(generator))


@dataclass(frozen=True)
class RandomRotateScale:
    """Rotation by up to ``degrees`` and zoom within ``scales``, drawn uniformly.

    Args:
        degrees: maximum absolute angle per rotation axis, degrees.
        scales: ``(low, high)`` zoom range.
        spatial_dims: 2 (slices) or 3 (patches).
    """

    degrees: float = 10.0
    scales: tuple[float, float] = (0.9, 1.1)
    spatial_dims: int = 2

    def sample(self, generator: torch.Generator | None = None) -> dict[str, Any]:
        n = 1 if self.spatial_dims == 2 else 3
        u = torch.rand(n + 1, generator=generator).tolist()
        angles = [math.radians(self.degrees) * (2 * v - 1) for v in u[:n]]
        lo, hi = self.scales
        return {"angles": angles, "scale": lo + (hi - lo) * u[n]}

    def __call__(self, item: dict[str, Any], generator: torch.Generator | None = None) -> dict[str, Any]:
        return rotate_scale(item, **self.sample(generator))


@dataclass(frozen=True)
class RandomFlipRotateScale:
    """The papers' augmentations: left-right flip, in-plane 90/180/270 rotation, zoom 0.75/1.25.

    Each enabled transform is applied with probability ``p``; rotations turn the axial
    plane (the slice plane of 2D items, axes X-Y of 3D items). A 90 or 270 rotation of a
    non-square plane keeps the item's shape (content beyond the shorter side is cut,
    the rest zero-filled) so that items still batch together.

    Args:
        flip: enable the left-right flip (first spatial axis, X in RAS order).
        rot90: enable rotations by a random multiple of 90 degrees.
        scale: enable zooming by 0.75 or 1.25.
        p: probability of each enabled transform.
        spatial_dims: 2 (slices) or 3 (patches/volumes).

    References: CF-SAGAN (papers/003 ch. 4: rotation and scaling of 3D patches).
    """

    flip: bool = True
    rot90: bool = True
    scale: bool = True
    p: float = 0.5
    spatial_dims: int = 2

    def sample(self, generator: torch.Generator | None = None) -> dict[str, Any]:
        u = torch.rand(5, generator=generator).tolist()
        k = (1 + int(u[1] * 3)) if (self.rot90 and u[0] < self.p) else 0
        zoom = (0.75 if u[3] < 0.5 else 1.25) if (self.scale and u[2] < self.p) else 1.0
        return {"flipped": bool(self.flip and u[4] < self.p), "quarter_turns": k, "scale": zoom}

    def apply(self, item: dict[str, Any], flipped: bool, quarter_turns: int, scale: float) -> dict[str, Any]:
        """The deterministic transform of :meth:`sample`'s parameters."""
        if flipped:
            item = flip(item, [0])
        if quarter_turns or scale != 1.0:
            angle = quarter_turns * math.pi / 2
            angles = [angle] if self.spatial_dims == 2 else [0.0, 0.0, angle]
            item = rotate_scale(item, angles, scale)
        return item

    def __call__(self, item: dict[str, Any], generator: torch.Generator | None = None) -> dict[str, Any]:
        return self.apply(item, **self.sample(generator))


def _powers(dims: int, order: int) -> list[tuple[int, ...]]:
    """The exponents ``(i, j[, k])`` of every non-constant monomial of total degree <= ``order``."""
    return [p for p in itertools.product(range(order + 1), repeat=dims) if 0 < sum(p) <= order]


@functools.lru_cache(maxsize=8)
def _monomials(shape: tuple[int, ...], order: int) -> torch.Tensor:
    """Those monomials on ``shape``, coordinates in [-1, 1]: ``(M, *shape)``; cached, as every patch
    of a run has the same shape (callers must not modify it)."""
    axes = [torch.linspace(-1.0, 1.0, n) if n > 1 else torch.zeros(1) for n in shape]
    coords = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([math.prod(c ** e for c, e in zip(coords, p, strict=True)) for p in _powers(len(shape), order)])


def bias_field_terms(dims: int, order: int = 3) -> int:
    """Number of coefficients of a bias field of ``order`` in ``dims`` dimensions (constant term excluded)."""
    return len(_powers(dims, order))


def intensity(item: dict[str, Any], log_gammas: Sequence[float], coefficients: Sequence[Sequence[float]] | None = None,
              order: int = 3) -> dict[str, Any]:
    """Gamma and a smooth multiplicative bias field on each input channel of ``item``.

    Channel ``c`` is mapped to [0, 1] by its own minimum and maximum in the item, raised to
    ``exp(log_gammas[c])``, multiplied by ``exp(sum_k coefficients[c][k] * monomial_k)``
    (a polynomial of total degree ``order`` in coordinates spanning [-1, 1] over the item,
    no constant term) and mapped back to its range. The minimum (the background of a
    brain-extracted image) stays where it is; a channel with zero log-gamma and zero
    coefficients is returned unchanged.
    """
    x = item["input"].float()
    if len(log_gammas) != x.shape[0] or (coefficients is not None and len(coefficients) != x.shape[0]):
        raise ValueError(f"intensity augmentation got parameters for {len(log_gammas)} channel(s), "
                         f"the item has {x.shape[0]}")
    terms = _monomials(tuple(x.shape[1:]), order) if coefficients is not None else None
    channels = []
    for c in range(x.shape[0]):
        if log_gammas[c] == 0 and (coefficients is None or not any(coefficients[c])):
            channels.append(x[c])  # untouched, bit for bit
            continue
        lo, hi = x[c].min(), x[c].max()
        span = (hi - lo).clamp_min(1e-8)
        u = ((x[c] - lo) / span) ** math.exp(log_gammas[c])
        if terms is not None:
            u = u * torch.exp(torch.tensordot(torch.as_tensor(coefficients[c], dtype=u.dtype), terms, dims=1))
        channels.append(lo + u * span)
    return {**item, "input": torch.stack(channels)}


@dataclass(frozen=True)
class RandomIntensity:
    """Per input channel, with probability ``p`` each: a random gamma and a random bias field.

    Scanners differ in contrast and in coil shading; with a handful of training subjects
    the network otherwise learns the inputs' exact intensities. The target is not touched.
    Measured on the real scans (T1w + T2w -> FLAIR, two training patients, z-scored
    inputs) it cost 2-3 dB PSNR on the left-out patient (``fcn_realdata_flair``): where
    the z-scored intensities are themselves the signal, randomising them removes it.

    Args:
        gamma: log-gamma drawn from ``U(-gamma, gamma)`` (TorchIO's default 0.3); 0 disables.
        bias: bias-field coefficients drawn from ``U(-bias, bias)`` (TorchIO: 0.5 over a
            whole head; a patch sees a smaller part of the field); 0 disables.
        order: degree of the bias-field polynomial.
        p: probability of each of the two, per channel.
        spatial_dims: 2 (slices) or 3 (patches/volumes).
    """

    gamma: float = 0.3
    bias: float = 0.3
    order: int = 3
    p: float = 0.5
    spatial_dims: int = 3

    def sample(self, channels: int, generator: torch.Generator | None = None) -> dict[str, Any]:
        n = bias_field_terms(self.spatial_dims, self.order)
        u = torch.rand(channels, 2, generator=generator)
        g = (2 * torch.rand(channels, generator=generator) - 1) * self.gamma
        b = (2 * torch.rand(channels, n, generator=generator) - 1) * self.bias
        log_gammas = [float(v) if u[c, 0] < self.p else 0.0 for c, v in enumerate(g.tolist())]
        coefficients = [row if u[c, 1] < self.p else [0.0] * n for c, row in enumerate(b.tolist())]
        return {"log_gammas": log_gammas, "coefficients": coefficients if self.bias > 0 else None}

    def __call__(self, item: dict[str, Any], generator: torch.Generator | None = None) -> dict[str, Any]:
        return intensity(item, **self.sample(int(item["input"].shape[0]), generator), order=self.order)


@dataclass(frozen=True)
class Compose:
    """Apply transforms in order (each samples its own parameters)."""

    transforms: tuple[Any, ...]

    def __call__(self, item: dict[str, Any], generator: torch.Generator | None = None) -> dict[str, Any]:
        for t in self.transforms:
            item = t(item, generator)
        return item
