"""Reconstruction and adversarial losses as used by the methods (thin lookups)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

LossFn = Callable[[Tensor, Tensor], Tensor]


def reconstruction_loss(name: str) -> LossFn:
    """The pixel-wise loss ``name`` (``l1``, ``mse``, ``charbonnier``), mean over voxels."""
    from neurotrans.names import check_name

    try:  # the shared registry, once it exists
        from neurotrans.losses import LOSSES
    except ImportError:
        LOSSES = {"l1": F.l1_loss, "mse": F.mse_loss, "charbonnier": _charbonnier}
    check_name(name, list(LOSSES), "loss")
    return LOSSES[name]


def _charbonnier(pred: Tensor, target: Tensor, eps: float = 1e-3) -> Tensor:
    return torch.sqrt((pred - target).square() + eps * eps).mean()


def gan_loss(logits: Tensor, real: bool) -> Tensor:
    """Vanilla (BCE-with-logits) GAN loss of discriminator ``logits`` against all-real or all-fake.

    References: Goodfellow et al. 2014; Isola et al., pix2pix (CVPR 2017).
    """
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)
