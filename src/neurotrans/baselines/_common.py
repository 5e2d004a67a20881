"""Shared checks, voxel sampling, patch features and state helpers of the classical baselines.

The baselines work on numpy volumes: inputs ``(C, X, Y, Z)``, targets ``(X, Y, Z)``,
brain masks ``(X, Y, Z)`` bool, every subject on one grid, intensities already normalised
by the caller (the thesis z-scores each sequence over the cohort).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

STATE_VERSION = 1


def check_cohort(
    inputs: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    masks: Sequence[np.ndarray] | None,
    *,
    same_grid: bool = True,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Validate a training cohort; return float32 inputs/targets and bool masks (all-true if None).

    ``same_grid=False`` admits subjects on different grids (native-grid real scans), for
    models whose features are local to a voxel (random forest, voxel MLP).

    Raises:
        ValueError: no subject, unequal list lengths, wrong dimensions, channel or grid
            mismatch, non-finite values, or an empty mask; the message names the subject.
    """
    if len(inputs) == 0:
        raise ValueError("fit needs at least one training subject")
    if len(targets) != len(inputs) or (masks is not None and len(masks) != len(inputs)):
        raise ValueError(
            f"inputs, targets and masks must have one entry per subject, got {len(inputs)}, "
            f"{len(targets)}, {'None' if masks is None else len(masks)}"
        )
    xs, ys, ms = [], [], []
    first = check_input(inputs[0], None, n_channels=None, what="training subject 0")
    for i, x in enumerate(inputs):
        x = check_input(x, None, n_channels=first.shape[0],
                        shape=first.shape[1:] if same_grid else None,
                        what=f"training subject {i}")  # fmt: skip
        y = np.asarray(targets[i], dtype=np.float32)
        if y.shape != x.shape[1:]:
            raise ValueError(
                f"training subject {i}: target shape {y.shape} differs from the input grid "
                f"{x.shape[1:]}"
            )
        if not np.isfinite(y).all():
            raise ValueError(f"training subject {i}: the target has NaN or infinite values")
        xs.append(x)
        ys.append(y)
        ms.append(
            as_mask(None if masks is None else masks[i], x.shape[1:], f"training subject {i}")
        )
    return xs, ys, ms


def check_input(
    x: np.ndarray,
    mask: np.ndarray | None,
    *,
    n_channels: int | None,
    shape: tuple[int, ...] | None = None,
    what: str = "input",
) -> np.ndarray:
    """Validate one ``(C, X, Y, Z)`` input volume and return it as float32."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"{what}: inputs must be (C, X, Y, Z), got shape {x.shape}")
    if n_channels is not None and x.shape[0] != n_channels:
        raise ValueError(f"{what}: expected {n_channels} input channels, got {x.shape[0]}")
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(f"{what}: grid {x.shape[1:]} differs from the training grid {shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: the inputs have NaN or infinite values")
    if mask is not None:
        as_mask(mask, x.shape[1:], what)
    return x


def as_mask(mask: np.ndarray | None, shape: tuple[int, ...], what: str) -> np.ndarray:
    """Bool mask of ``shape``: all-true for ``None``; raise if its shape differs or it is empty."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    m = np.asarray(mask).astype(bool)
    if m.shape != tuple(shape):
        raise ValueError(f"{what}: mask shape {m.shape} differs from the grid {tuple(shape)}")
    if not m.any():
        raise ValueError(f"{what}: the mask is empty")
    return m


def sample_voxels(
    masks: Sequence[np.ndarray], n_samples: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Flat indices of about ``n_samples`` voxels drawn without replacement inside the masks,
    spread evenly over subjects (a subject with fewer mask voxels gives all of them)."""
    per = max(1, n_samples // len(masks))
    out = []
    for m in masks:
        idx = np.flatnonzero(m)
        out.append(np.sort(rng.choice(idx, size=per, replace=False)) if idx.size > per else idx)
    return out


def patch_offsets(radius: int) -> np.ndarray:
    """The ``(2r+1)^3`` integer offsets of a cubic patch, ``(n, 3)`` in C order."""
    r = np.arange(-radius, radius + 1)
    return np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)


def patch_features(x: np.ndarray, flat_idx: np.ndarray, radius: int) -> np.ndarray:
    """Concatenated cubic patches of every channel around the given voxels.

    Voxels beyond the border repeat the edge value (no artificial zero contrast there).

    Args:
        x: ``(C, X, Y, Z)``.
        flat_idx: flat indices into ``(X, Y, Z)``, ``(n,)``.
        radius: patch half-width r (1: 3x3x3).

    Returns:
        float32 ``(n, C * (2r+1)^3)``, channel-major (all offsets of channel 0 first).
    """
    r = radius
    padded = np.pad(x, ((0, 0), (r, r), (r, r), (r, r)), mode="edge")
    i, j, k = np.unravel_index(flat_idx, x.shape[1:])
    offs = patch_offsets(r)
    feats = np.empty((flat_idx.size, x.shape[0], len(offs)), dtype=np.float32)
    for o, (a, b, c) in enumerate(offs):
        feats[:, :, o] = padded[:, i + r + a, j + r + b, k + r + c].T
    return feats.reshape(flat_idx.size, -1)


def fill_volume(shape: tuple[int, ...], flat_idx: np.ndarray, values: np.ndarray) -> np.ndarray:
    """float32 volume of ``shape``: ``values`` at ``flat_idx``, 0 elsewhere."""
    out = np.zeros(int(np.prod(shape)), dtype=np.float32)
    out[flat_idx] = values
    return out.reshape(shape)


def check_positive_int(value: Any, what: str) -> None:
    """Raise ``ValueError`` unless ``value`` is a positive int."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")


def check_nonnegative_int(value: Any, what: str) -> None:
    """Raise ``ValueError`` unless ``value`` is an int >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{what} must be an integer >= 0, got {value!r}")


def to_tensor(a: np.ndarray) -> torch.Tensor:
    """numpy -> CPU tensor for a ``weights_only`` state (torch refuses numpy arrays there)."""
    return torch.from_numpy(np.ascontiguousarray(a))


def to_numpy(t: Any, what: str) -> np.ndarray:
    """A state entry back to numpy; raise ``ValueError`` unless it is a tensor."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"state entry {what!r} must be a tensor, got {type(t).__name__}")
    return t.detach().cpu().numpy()


def hyper_parameters(model: Any) -> dict[str, Any]:
    """The constructor arguments of a baseline dataclass (not ``dataclasses.asdict``, which
    would deep-copy the fitted model too)."""
    return {f.name: getattr(model, f.name) for f in dataclasses.fields(model) if f.init}


def check_state(state: Any, kind: str) -> dict[str, Any]:
    """Raise ``ValueError`` unless ``state`` is a dict made by ``kind``'s ``state()``."""
    if not isinstance(state, dict) or state.get("kind") != kind:
        got = state.get("kind") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"not a {kind} state (kind {got!r})")
    if state.get("version") != STATE_VERSION:
        raise ValueError(
            f"{kind} state version {state.get('version')!r} is not {STATE_VERSION}; refit the model"
        )
    if not isinstance(state.get("params"), dict):
        raise ValueError(f"{kind} state has no params dict")
    return state
