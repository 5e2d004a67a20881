"""Losses: voxel-wise, region-weighted, adversarial, flow likelihood, gradient reversal, UNIT and
CycleGAN objectives.

Plain functions first (``l1_loss``, ``nwl1_loss``, ``adversarial_loss``, ...); ``LOSSES``
maps names to their module forms, built by ``build_loss(name, **kwargs)``.
"""

from __future__ import annotations

from torch import nn

from neurotrans.losses.adversarial import (
    GAN_MODES,
    AdversarialLoss,
    adversarial_loss,
    frozen,
    gan_targets,
    multiscale_adversarial_loss,
    patch_cross_entropy,
)
from neurotrans.losses.cyclegan import (
    CYCLEGAN_OPTIMISER,
    CycleGANLossWeights,
    cyclegan_discriminator_losses,
    cyclegan_generator_losses,
)
from neurotrans.losses.flow import bits_per_voxel, dequantize, gaussian_log_prob
from neurotrans.losses.gradient_reversal import GradientReversal, grad_reverse
from neurotrans.losses.image_pool import ImagePool
from neurotrans.losses.pixel import (
    CharbonnierLoss,
    L1Loss,
    MSELoss,
    charbonnier_loss,
    l1_loss,
    mse_loss,
    reduce_weighted,
)
from neurotrans.losses.regional import (
    NWL1Loss,
    WeightedL1Loss,
    lesion_regions,
    nwl1_loss,
    weighted_l1_loss,
)
from neurotrans.losses.unit import (
    UNIT_OPTIMISER,
    UNITLossWeights,
    latent_kl_loss,
    unit_discriminator_losses,
    unit_generator_losses,
)
from neurotrans.names import check_name

LOSSES: dict[str, type[nn.Module]] = {
    "l1": L1Loss,
    "mse": MSELoss,
    "charbonnier": CharbonnierLoss,
    "weighted_l1": WeightedL1Loss,
    "nwl1": NWL1Loss,
    "adversarial": AdversarialLoss,
}


def build_loss(name: str, **kwargs) -> nn.Module:
    """Build the loss module registered as ``name``; ``ValueError`` with close matches if unknown."""
    check_name(name, tuple(LOSSES), "loss")
    return LOSSES[name](**kwargs)


__all__ = [
    "GAN_MODES", "LOSSES", "AdversarialLoss", "CharbonnierLoss", "GradientReversal", "L1Loss",
    "MSELoss", "NWL1Loss", "WeightedL1Loss", "adversarial_loss", "build_loss", "charbonnier_loss",
    "gan_targets", "grad_reverse", "l1_loss", "lesion_regions", "mse_loss", "nwl1_loss", "patch_cross_entropy",
    "reduce_weighted", "weighted_l1_loss", "bits_per_voxel", "dequantize", "gaussian_log_prob",
    "CYCLEGAN_OPTIMISER", "CycleGANLossWeights", "ImagePool", "UNITLossWeights", "UNIT_OPTIMISER",
    "cyclegan_discriminator_losses", "cyclegan_generator_losses", "frozen", "latent_kl_loss",
    "multiscale_adversarial_loss", "unit_discriminator_losses", "unit_generator_losses",
]  # fmt: skip
