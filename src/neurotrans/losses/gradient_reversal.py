"""Gradient reversal: identity forward, gradient multiplied by -lambda backward."""

from __future__ import annotations

import torch
from torch import nn


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


def grad_reverse(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Return ``x`` unchanged; in backward, multiply the incoming gradient by ``-scale``.

    A classifier placed after it learns to predict the side information while the features
    before it learn to remove it (adversarial feature learning).

    Args:
        x: any tensor.
        scale: lambda >= 0.

    References: Ganin & Lempitsky 2015 (domain-adversarial training); Sun et al. 2019
    (DUAL-GLOW side information).
    """
    if scale < 0:
        raise ValueError(f"scale must be >= 0, got {scale}")
    return _GradientReversal.apply(x, float(scale))


class GradientReversal(nn.Module):
    """Module form of :func:`grad_reverse`."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        if scale < 0:
            raise ValueError(f"scale must be >= 0, got {scale}")
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad_reverse(x, self.scale)
