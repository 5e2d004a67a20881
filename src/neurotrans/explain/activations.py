"""Record a network's intermediate activations with forward hooks, on the input's grid.

Every output of a module of the given types (by default each ``nn.LeakyReLU``, the layers
the ESIT paper analyses) is captured in forward order and named ``actv1``, ``actv2``, ...
together with the module's path in the network (``encoders.0.convs.0.2``). A module called
twice in one forward pass gives two activations (its path then carries ``#2``).

Activations of downsampled layers are resampled (bilinear / trilinear, ``align_corners=False``,
which puts output voxel j of a stride-2 layer at input position 2j + 0.5, where a 4x4 stride-2
convolution with padding 1 centres it) back onto the input's spatial grid, so that every layer
and every concept map align voxel for voxel. For whole volumes, :func:`activation_matrices` runs a 2D model
slice by slice (or a 3D model on the volume) and keeps only the voxels of a mask, as an
``(N, c)`` matrix per layer: the memory of a layer is then N x c, never c x X x Y x Z.

References: the ESIT paper ("Demystifying T1-MRI to FDG-PET translation", Sec. 3: activations
after every LeakyReLU, concatenated over the spatial dimensions).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as tnf
from torch import nn

ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (nn.LeakyReLU,)


@dataclass(frozen=True)
class LayerActivation:
    """One recorded activation.

    Args:
        name: ``actv<k>``, k counting from 1 in forward order.
        path: the module's dotted path in the network (``#<n>`` for its n-th call, n > 1).
        value: the (possibly transformed) output, e.g. ``(B, c, H, W[, D])``, on the CPU.
    """

    name: str
    path: str
    value: torch.Tensor


def activation_modules(
    model: nn.Module, module_types: Sequence[type[nn.Module]] = ACTIVATION_TYPES
) -> list[tuple[str, nn.Module]]:
    """The ``(path, module)`` pairs of ``model`` whose type is one of ``module_types``."""
    types = tuple(module_types)
    if not types:
        raise ValueError("module_types must name at least one module type")
    return [(p, m) for p, m in model.named_modules() if isinstance(m, types)]


@torch.no_grad()
def record_activations(
    model: nn.Module,
    x: torch.Tensor,
    *,
    module_types: Sequence[type[nn.Module]] = ACTIVATION_TYPES,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    forward: Callable[[nn.Module, torch.Tensor], object] | None = None,
) -> list[LayerActivation]:
    """Run ``model`` on ``x`` once and return every activation of the chosen module types.

    The model is run as it is (call ``model.eval()`` first for dropout / batch-norm layers),
    without gradients; hooks are removed afterwards, even on errors.

    Args:
        model: any ``nn.Module``.
        x: its input, e.g. ``(B, C, H, W[, D])``.
        module_types: module classes whose outputs are recorded (default LeakyReLU).
        transform: applied to each output inside the hook (e.g. resampling, voxel selection),
            so that large intermediate maps need not be kept; default: a detached CPU copy.
        forward: how to call the model (default ``model(x)``).

    Returns:
        the activations in forward order, named ``actv1``, ``actv2``, ...

    Raises:
        ValueError: the model has no module of those types, or none fired.
    """
    modules = activation_modules(model, module_types)
    if not modules:
        names = ", ".join(t.__name__ for t in module_types)
        raise ValueError(f"{type(model).__name__} has no module of type {names} to record")
    records: list[LayerActivation] = []
    calls: dict[str, int] = {}

    def hook_for(path: str) -> Callable[[nn.Module, object, torch.Tensor], None]:
        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            calls[path] = calls.get(path, 0) + 1
            name = path if calls[path] == 1 else f"{path}#{calls[path]}"
            # a copy: an in-place op later in the network must not change what was recorded
            value = transform(output.detach()) if transform is not None else output.detach()
            records.append(LayerActivation(f"actv{len(records) + 1}", name, value.cpu().clone()))

        return hook

    handles = [m.register_forward_hook(hook_for(p)) for p, m in modules]
    try:
        if forward is None:
            model(x)
        else:
            forward(model, x)
    finally:
        for h in handles:
            h.remove()
    if not records:
        raise ValueError(f"no {module_types} module of {type(model).__name__} ran in the forward pass")
    return records


def resample_activation(value: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resample ``(B, c, *spatial)`` to ``(B, c, *size)``: bilinear (2D) or trilinear (3D).

    Sizes already equal are returned unchanged; ``align_corners=False`` keeps voxel centres
    consistent with stride-2 downsampling (output voxel j sits at input 2j + 0.5).
    """
    size = tuple(int(s) for s in size)
    if value.dim() - 2 != len(size):
        raise ValueError(f"activation of shape {tuple(value.shape)} cannot be resampled to {size}")
    if tuple(value.shape[2:]) == size:
        return value
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(size)]
    return tnf.interpolate(value.float(), size=size, mode=mode, align_corners=False)


def sample_activation(value: torch.Tensor, points: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
    """Values of the upsampled activation at chosen input voxels, without the full upsampled map.

    Equal to ``resample_activation(value, size)`` read at ``points`` (same interpolation, edge
    clamping included), but the memory is that of the points only.

    Args:
        value: ``(B, c, *s)`` activation whose grid covers the input's field of view.
        points: per batch item, ``(n_b, d)`` voxel indices (float or int) on the input grid ``size``.
        size: the input's spatial size ``(H, W[, D])``.

    Returns:
        ``(sum n_b, c)`` float32, batch items in order.
    """
    size = tuple(int(s) for s in size)
    d = len(size)
    if value.dim() - 2 != d or len(points) != value.shape[0]:
        raise ValueError(f"activation {tuple(value.shape)} does not match {len(points)} point sets on {size}")
    scale = torch.tensor(size, dtype=torch.float32, device=value.device)
    out = []
    for b, pts in enumerate(points):
        pts = torch.as_tensor(pts, dtype=torch.float32, device=value.device).reshape(-1, d)
        # align_corners=False: voxel i of S is at (2i + 1) / S - 1; grid_sample wants (x=last dim, ...)
        grid = ((2.0 * pts + 1.0) / scale - 1.0).flip(-1).reshape(1, *([1] * (d - 1)), -1, d)
        s = tnf.grid_sample(value[b:b + 1].float(), grid, mode="bilinear", padding_mode="border",
                            align_corners=False)
        out.append(s.reshape(value.shape[1], -1).T)
    return torch.cat(out, dim=0)


def _pad_to_multiple(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


@torch.no_grad()
def activation_matrices(
    model: nn.Module,
    volume: np.ndarray,
    mask: np.ndarray,
    *,
    spatial_dims: int = 2,
    plane: str = "axial",
    multiple: int = 16,
    batch_size: int = 8,
    module_types: Sequence[type[nn.Module]] = ACTIVATION_TYPES,
    device: str | torch.device = "cpu",
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Activations of one subject as ``(N, c)`` matrices over the voxels of ``mask``.

    2D models run on every slice of ``plane`` that holds a mask voxel (zero-padded to a
    multiple of ``multiple``, as in training), 3D models on the whole padded volume. Each
    activation is upsampled to the padded input grid (:func:`sample_activation`, read only at
    the mask voxels) so that row n of every layer is the same voxel.

    Args:
        model: a network taking ``(B, C, H, W)`` (2D) or ``(B, C, X, Y, Z)`` (3D), in eval mode.
        volume: ``(C, X, Y, Z)`` normalised input channels (as prepared for training).
        mask: ``(X, Y, Z)`` bool, the voxels kept (e.g. brain and CSF, possibly subsampled).
        spatial_dims: 2 (slice-wise model) or 3.
        plane: slicing plane of a 2D model (``axial``, ``coronal``, ``sagittal``).
        multiple: spatial sizes are padded to a multiple of this (``2**depth`` for a U-Net).
        batch_size: slices per forward pass (2D).
        module_types: module classes recorded (default LeakyReLU).
        device: where the model runs.

    Returns:
        ``(matrices, paths)``: ``{"actv1": (N, c1), ...}`` float32 with rows in the C order of
        ``np.nonzero(mask)`` (the order of ``concept[mask]``), and ``{"actv1": module path}``.
    """
    from neurotrans.data.slicing import extract_slices, plane_axis, slice_shape

    volume = np.asarray(volume, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    if volume.ndim != 4 or mask.shape != volume.shape[1:]:
        raise ValueError(f"volume must be (C, X, Y, Z) and mask (X, Y, Z); got {volume.shape} and {mask.shape}")
    if not mask.any():
        raise ValueError("mask selects no voxel")
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    # rank of every mask voxel in C order, to put rows gathered slice by slice in place
    rank = np.full(mask.shape, -1, dtype=np.int64)
    rank[mask] = np.arange(int(mask.sum()))
    pieces: dict[str, list[np.ndarray]] = {}
    paths: dict[str, str] = {}
    order: list[np.ndarray] = []

    def run(batch: np.ndarray, points: list[np.ndarray]) -> None:
        """Record ``batch`` (B, C, *padded), keeping the activations at ``points`` (voxel indices)."""
        size = batch.shape[2:]
        pts = [torch.from_numpy(p) for p in points]
        records = record_activations(model, torch.from_numpy(batch).to(device), module_types=module_types,
                                     transform=lambda a: sample_activation(a, pts, size))
        for r in records:
            pieces.setdefault(r.name, []).append(r.value.numpy())
            paths.setdefault(r.name, r.path)

    if spatial_dims == 2:
        axis = plane_axis(plane)
        h, w = slice_shape(mask.shape, plane)
        pad = (_pad_to_multiple(h, multiple), _pad_to_multiple(w, multiple))
        slices = extract_slices(volume, plane, pad_to=pad)
        offset = np.array([(pad[0] - h) // 2, (pad[1] - w) // 2])
        keep_all = np.moveaxis(mask, axis, 0)  # (N, h, w)
        rank_all = np.moveaxis(rank, axis, 0)
        hit = np.flatnonzero(keep_all.reshape(len(keep_all), -1).any(axis=1))
        for start in range(0, len(hit), batch_size):
            idx = hit[start:start + batch_size]
            run(slices[idx], [np.argwhere(keep_all[i]) + offset for i in idx])
            order.extend(rank_all[i][keep_all[i]] for i in idx)
    else:
        shape = mask.shape
        pad = tuple(_pad_to_multiple(s, multiple) for s in shape)
        lo = np.array([(p - s) // 2 for p, s in zip(pad, shape, strict=True)])
        widths = [(0, 0)] + [(int(a), p - s - int(a)) for a, p, s in zip(lo, pad, shape, strict=True)]
        run(np.pad(volume, widths)[None], [np.argwhere(mask) + lo])
        order.append(rank[mask])
    perm = np.argsort(np.concatenate(order), kind="stable")
    matrices = {k: np.concatenate(v, axis=0)[perm] for k, v in pieces.items()}
    return matrices, paths
