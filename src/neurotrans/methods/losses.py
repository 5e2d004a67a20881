"""The losses the methods use, from the shared :mod:`neurotrans.losses` registry."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from neurotrans.losses import adversarial_loss, build_loss

LossFn = Callable[[Tensor, Tensor], Tensor]


def reconstruction_loss(name: str) -> LossFn:
    """The pixel-wise loss ``name`` (``l1``, ``mse``, ``charbonnier``), mean over voxels."""
    return build_loss(name)


def gan_loss(logits: Tensor, real: bool) -> Tensor:
    """Vanilla (BCE-with-logits) GAN loss of discriminator ``logits`` against all-real or all-fake.

    References: Goodfellow et al. 2014; Isola et al., pix2pix (CVPR 2017).
    """
    return adversarial_loss(logits, real, mode="bce")
