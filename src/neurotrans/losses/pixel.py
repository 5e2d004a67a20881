"""Voxel-wise regression losses (L1, MSE, Charbonnier) with optional masks and weights."""

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
