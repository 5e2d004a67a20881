"""Voxel-wise regression losses (L1, MSE, Charbonnier) with optional masks and weights, and the
position-free histogram term (sorted L1, the 1-D Wasserstein distance of the intensities)."""

from __future__ import annotations

import torch
from torch import nn


def reduce_weighted(
    err: torch.Tensor, mask: torch.Tensor | None = None, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Weighted mean of a voxel-wise error: ``sum(w * m * err) / sum(w * m)`` (broadcast).

    An empty mask (or all-zero weights) gives a zero loss that keeps the graph, so a batch
    of background-only patches does not break training.

    Args:
        err: (B, C, H, W[, D]) non-negative voxel errors.
        mask: broadcastable to ``err``, 1 where the voxel counts (bool or float).
        weights: broadcastable to ``err``, non-negative voxel weights.
    """
    w = torch.ones((), dtype=err.dtype, device=err.device)
    if mask is not None:
        w = w * mask.to(err.dtype)
    if weights is not None:
        if (weights < 0).any():
            raise ValueError("loss weights must be non-negative")
        w = w * weights.to(err.dtype)
    if mask is None and weights is None:
        return err.mean()
    w = w.expand_as(err)
    total = w.sum()
    if total <= 0:
        return (err * 0.0).sum()
    return (w * err).sum() / total


def _check_shapes(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}"
        )


def l1_loss(pred: torch.Tensor, target: torch.Tensor, *, mask=None, weights=None) -> torch.Tensor:
    """Mean absolute error over the (masked, weighted) voxels.

    Args:
        pred, target: (B, C, H, W[, D]).
        mask, weights: optional, broadcastable to ``pred`` (see ``reduce_weighted``).

    References: Isola et al. 2017 (the L1 term of pix2pix).
    """
    _check_shapes(pred, target)
    return reduce_weighted((pred - target).abs(), mask, weights)


def mse_loss(pred: torch.Tensor, target: torch.Tensor, *, mask=None, weights=None) -> torch.Tensor:
    """Mean squared error over the (masked, weighted) voxels.

    Args:
        pred, target: (B, C, H, W[, D]).
        mask, weights: optional, broadcastable to ``pred``.

    References: Wei et al. 2019 (3D FCN, thesis ch. 2).
    """
    _check_shapes(pred, target)
    return reduce_weighted((pred - target).square(), mask, weights)


def charbonnier_loss(
    pred: torch.Tensor, target: torch.Tensor, *, eps: float = 1e-3, mask=None, weights=None
) -> torch.Tensor:
    """Charbonnier penalty ``sqrt((pred - target)**2 + eps**2)``, averaged: L1 far, L2 near 0.

    Args:
        pred, target: (B, C, H, W[, D]).
        eps: smoothing scale, in image units (> 0).
        mask, weights: optional, broadcastable to ``pred``.

    References: Charbonnier et al. 1994; the UNIT T1<->T2 report (Charbonnier variant).
    """
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    _check_shapes(pred, target)
    return reduce_weighted(torch.sqrt((pred - target).square() + eps * eps), mask, weights)


def sorted_l1_loss(pred: torch.Tensor, target: torch.Tensor, *, mask=None) -> torch.Tensor:
    """Histogram loss: the 1-D Wasserstein-1 distance between the intensities of ``pred`` and ``target``.

    Per sample, the voxels inside ``mask`` are sorted in both images and compared rank by rank,
    ``mean |sort(pred) - sort(target)|`` (the optimal transport between two equal-size samples on
    a line), then averaged over the samples that have a voxel in the mask. It ignores where an
    intensity sits, so it is zero for any rearrangement of the target and only penalises a wrong
    histogram: a voxel-wise loss alone regresses to the conditional mean and narrows the histogram
    (bright lesions and the tail come out dimmed), which this term resists. Add it to a voxel-wise
    loss with a weight; alone it does not place anything.

    Args:
        pred, target: (B, C, H, W[, D]).
        mask: optional, broadcastable to ``pred``, 1 (or True) where the voxel counts.

    References: Risser et al. 2017 (histogram losses for texture synthesis, by sorting); Villani
    2003, the quantile form of W1 on the line (``scipy.stats.wasserstein_distance`` in the tests).
    """
    _check_shapes(pred, target)
    keep = torch.ones_like(pred, dtype=torch.bool) if mask is None else (mask > 0).expand_as(pred)
    terms = []
    for p, t, m in zip(pred, target, keep, strict=True):
        if m.any():
            terms.append((torch.sort(p[m]).values - torch.sort(t[m]).values).abs().mean())
    if not terms:
        return (pred * 0.0).sum()  # no voxel in the mask: zero, keeping the graph
    return torch.stack(terms).mean()


class L1Loss(nn.Module):
    """Module form of :func:`l1_loss`: ``loss(pred, target, mask=None, weights=None)``."""

    def forward(self, pred, target, mask=None, weights=None) -> torch.Tensor:
        return l1_loss(pred, target, mask=mask, weights=weights)


class MSELoss(nn.Module):
    """Module form of :func:`mse_loss`."""

    def forward(self, pred, target, mask=None, weights=None) -> torch.Tensor:
        return mse_loss(pred, target, mask=mask, weights=weights)


class CharbonnierLoss(nn.Module):
    """Module form of :func:`charbonnier_loss` with a fixed ``eps``."""

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.eps = eps

    def forward(self, pred, target, mask=None, weights=None) -> torch.Tensor:
        return charbonnier_loss(pred, target, eps=self.eps, mask=mask, weights=weights)


class SortedL1Loss(nn.Module):
    """Module form of :func:`sorted_l1_loss` (the histogram term)."""

    def forward(self, pred, target, mask=None) -> torch.Tensor:
        return sorted_l1_loss(pred, target, mask=mask)
