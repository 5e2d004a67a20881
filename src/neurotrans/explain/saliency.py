"""Gradient saliency of image-to-image models: P3S (per input sequence) and visual attention.

References: Simonyan et al. 2014, "Deep inside convolutional networks: visualising image
classification models and saliency maps"; Wei 2020 PhD thesis ch. 2.2.2 (P3S map,
eq. 2.3) and ch. 3.2.3 (visual attention saliency map, eq. 3.7).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as TF
from torch import nn

REDUCTIONS = ("max", None)


@contextmanager
def _eval_mode(model: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Dropout off and batch-norm statistics fixed while differentiating; mode restored."""
    if not isinstance(model, nn.Module):
        yield
        return
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


def _input_gradient(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    if x.dim() < 3:
        raise ValueError(f"x must be (B, C, H, W[, D]), got shape {tuple(x.shape)}")
    xi = x.detach().clone().requires_grad_(True)
    with _eval_mode(model), torch.enable_grad():
        pred = model(xi)
        if pred.shape != y.shape:
            raise ValueError(f"model output {tuple(pred.shape)} and target {tuple(y.shape)} differ")
        (grad,) = torch.autograd.grad(loss(pred, y.to(pred)), xi)
    return grad


def _mask_weights(mask: torch.Tensor | None, y: torch.Tensor) -> torch.Tensor | None:
    if mask is None:
        return None
    m = torch.as_tensor(mask, device=y.device)
    try:
        return torch.broadcast_to(m.to(y.dtype), y.shape)
    except RuntimeError as err:
        raise ValueError(
            f"mask {tuple(m.shape)} does not broadcast to the target {tuple(y.shape)}"
        ) from err


def p3s_saliency(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pulse-sequence-specific saliency: ``|d ||y - f(x)||^2 / d x|``, one map per input channel.

    The squared error is summed over every voxel (inside ``mask`` only, if given) and
    differentiated with respect to each input voxel of each channel; a channel the model
    ignores gets exactly 0. ``nn.Module`` models run in eval mode (their mode is restored)
    and their parameter gradients are left untouched.

    Args:
        model: image-to-image callable, ``(B, C, *S) -> (B, C_out, *S)``, 2D or 3D.
        x: input ``(B, C, H, W[, D])``; each batch item is one subject (items stay
            independent in eval mode).
        y: ground truth ``(B, C_out, H, W[, D])``.
        mask: bool/0-1 tensor broadcastable to ``y`` (e.g. the brain mask ``(B, 1, *S)``)
            restricting the error; ``None`` = everywhere.

    Returns:
        ``(B, C, H, W[, D])`` saliency, >= 0, same dtype as ``x``.
    """
    weights = _mask_weights(mask, y)

    def squared_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        err = (target - pred) ** 2
        return (err if weights is None else err * weights).sum()

    return _input_gradient(model, x, y, squared_error).abs()


def attention_saliency(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = TF.l1_loss,
    reduce: str | None = "max",
) -> torch.Tensor:
    """Visual attention saliency: ``|d loss(f(x), y) / d x|``, max over input channels.

    The thesis (ch. 3) differentiates the generator's training loss (L1 or its weighted
    L1) with respect to the input images; as Simonyan et al., one map per voxel is the
    maximum over channels.

    Args:
        model: image-to-image callable, 2D or 3D.
        x: input ``(B, C, H, W[, D])``.
        y: target ``(B, C_out, H, W[, D])``.
        loss: ``loss(pred, target) -> scalar`` (default mean L1; pass the weighted L1 to
            see the lesion-weighted model's attention).
        reduce: ``"max"`` over channels, or ``None`` to keep every channel.

    Returns:
        ``(B, H, W[, D])`` for ``"max"``, else ``(B, C, H, W[, D])``; >= 0.
    """
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    grad = _input_gradient(model, x, y, loss).abs()
    return grad.amax(dim=1) if reduce == "max" else grad


@dataclass(frozen=True)
class ChannelRanking:
    """Input channels ordered by mean saliency.

    Args:
        mean_map: ``(C, *S)`` per-channel saliency averaged over subjects.
        scores: ``(C,)`` mean saliency of each channel (inside the masks), averaged over
            subjects; input order.
        order: channel indices, most salient first.
        names: channel names in ``order``.
    """

    mean_map: np.ndarray
    scores: np.ndarray
    order: tuple[int, ...]
    names: tuple[str, ...]


def rank_channels(
    maps: Sequence[np.ndarray | torch.Tensor],
    masks: Sequence[np.ndarray | torch.Tensor] | None = None,
    names: Sequence[str] | None = None,
) -> ChannelRanking:
    """Average per-subject P3S maps and rank the input channels by mean saliency.

    Args:
        maps: one ``(C, *S)`` map per subject (e.g. ``p3s_saliency(...)[0]``), one grid.
        masks: per subject bool ``(*S)`` (brain) over which a channel's score is averaged;
            ``None`` = every voxel. The mean map is not masked.
        names: channel names (``"0"``, ``"1"``, ... if ``None``).

    Returns:
        the :class:`ChannelRanking`.
    """
    arrays = [np.asarray(m.detach().cpu() if isinstance(m, torch.Tensor) else m, np.float64)
              for m in maps]  # fmt: skip
    if not arrays:
        raise ValueError("rank_channels needs at least one saliency map")
    shape = arrays[0].shape
    if any(a.shape != shape for a in arrays) or len(shape) < 2:
        raise ValueError(f"maps must share one (C, *S) shape, got {[a.shape for a in arrays]}")
    n_ch = shape[0]
    names = tuple(str(i) for i in range(n_ch)) if names is None else tuple(names)
    if len(names) != n_ch:
        raise ValueError(f"{len(names)} names for {n_ch} channels")
    if masks is not None and len(masks) != len(arrays):
        raise ValueError(f"{len(masks)} masks for {len(arrays)} maps")
    per_subject = []
    for i, a in enumerate(arrays):
        if masks is None:
            per_subject.append(a.reshape(n_ch, -1).mean(1))
            continue
        m = np.asarray(masks[i].detach().cpu() if isinstance(masks[i], torch.Tensor) else masks[i],
                       bool)  # fmt: skip
        if m.shape != shape[1:] or not m.any():
            raise ValueError(f"mask {i} must be a non-empty {shape[1:]} array, got {m.shape}")
        per_subject.append(a[:, m].mean(1))
    scores = np.mean(per_subject, axis=0)
    order = tuple(int(i) for i in np.argsort(-scores, kind="stable"))
    return ChannelRanking(
        mean_map=np.mean(arrays, axis=0).astype(np.float32),
        scores=scores,
        order=order,
        names=tuple(names[i] for i in order),
    )
