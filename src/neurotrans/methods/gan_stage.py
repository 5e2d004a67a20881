"""One conditional GAN of the MS thesis's myelin models: its config, networks and losses.

The Sketcher, each Refiner and CF-SAGAN are the same game: a generator G(c) of PIB DVR
from a condition c (the MRI sequences, plus the previous stage's output for a Refiner)
and a discriminator D(mri, pet) on non-overlapping patches with a 2-class softmax,

    loss_D = CE(D(mri, pet), real) + CE(D(mri, G(c)), fake)     (smoothed labels optional)
    loss_G = CE(D(mri, G(c)), real) + lambda * {L1 | WL1 | NWL1}(G(c), pet)

with the cross-entropy summed over the patches of an image (thesis ch. 3). D always sees
the MRI and a PET (eq. 3.2-3.3: D_R(I_M, I_P)), never the sketch. The discriminator takes
``d_steps`` steps per generator step, each on a fresh fake (a new draw of z and dropout).
``cgan``, ``cfsagan`` and ``cascade`` compose this module; none subclasses another's game.

References: Wei et al. 2019, Sketcher-Refiner GANs (thesis ch. 3, eq. 3.1-3.6, Sec. 3.2.4);
Wei et al. 2020, CF-SAGAN (thesis ch. 4, Sec. 4.3.1: label smoothing 0-0.1 / 0.9-1, two D
updates per G update); Mirza & Osindero 2014 (cGAN).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from neurotrans.losses import AdversarialLoss, frozen
from neurotrans.methods.base import Batch, ModelIO, build_net, check_network_name
from neurotrans.methods.regions import STAGE_LOSSES, Reconstruction, check_region_data


def _check_range(value: tuple[float, float], key: str) -> None:
    if len(value) != 2 or not 0.0 <= value[0] <= value[1] <= 1.0:
        raise ValueError(f"{key} must be [low, high] with 0 <= low <= high <= 1, got {list(value)}")


@dataclass(frozen=True)
class GANStageConfig:
    """One conditional GAN (the fields shared by ``cgan``, ``cfsagan`` and each cascade stage).

    Args:
        generator: generator network key (``unet_sketcher_z``: the Sketcher's U-Net with
            noise z; ``unet_sketcher``: the Refiner's; ``cfsagan_generator``).
        generator_args: its keyword arguments besides dims and channels.
        discriminator: patch discriminator key (``patch_classifier``, ``cfsagan_discriminator``).
        discriminator_args: its keyword arguments (``patch_size``, ``features``...).
        loss: reconstruction term, ``l1``, ``wl1`` or ``nwl1`` (the region losses need
            ``data.aux: [lesions, NAWM]``).
        lambda_rec: weight of the reconstruction term (the thesis's lambda_S / lambda_R are
            not given; 100 as in pix2pix, whose L1 + cGAN objective the thesis adopts).
        d_steps: discriminator steps per generator step (ch. 4: 2).
        real_range: real-class label of D's real samples, drawn uniformly per patch
            (ch. 4: [0.9, 1.0]; [1, 1] = no smoothing).
        fake_range: real-class label of D's fake samples (ch. 4: [0.0, 0.1]).
        lr: learning rate of this GAN's two optimisers (Sketcher 1e-4, Refiner 5e-5);
            ``None`` = ``optim.lr`` / ``optim.group_lr``.
    """

    generator: str = "unet_sketcher_z"
    generator_args: dict[str, Any] = field(default_factory=dict)
    discriminator: str = "patch_classifier"
    discriminator_args: dict[str, Any] = field(default_factory=dict)
    loss: str = "l1"
    lambda_rec: float = 100.0
    d_steps: int = 1
    real_range: tuple[float, float] = (1.0, 1.0)
    fake_range: tuple[float, float] = (0.0, 0.0)
    lr: float | None = None

    def check_stage(self, where: str = "model.") -> None:
        """``ValueError`` for a bad value (called by the configs' ``__post_init__``)."""
        check_network_name(self.generator, f"{where}generator")
        check_network_name(self.discriminator, f"{where}discriminator")
        if self.loss not in STAGE_LOSSES:
            raise ValueError(f"{where}loss = {self.loss!r}; choose one of {', '.join(STAGE_LOSSES)}")
        if not self.lambda_rec >= 0:
            raise ValueError(f"{where}lambda_rec must be >= 0, got {self.lambda_rec}")
        if self.d_steps < 1:
            raise ValueError(f"{where}d_steps must be >= 1, got {self.d_steps}")
        _check_range(self.real_range, f"{where}real_range")
        _check_range(self.fake_range, f"{where}fake_range")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"{where}lr must be a positive number or null, got {self.lr}")

    def check_stage_data(self, data: Any, where: str = "model.") -> None:
        """Refuse a region loss without the lesion / NAWM masks in ``data.aux``."""
        check_region_data(self.loss, tuple(data.aux), f"{where}loss")

    @property
    def hparams(self) -> dict[str, Any]:
        """Optimiser overrides of this GAN's groups."""
        return {} if self.lr is None else {"lr": float(self.lr)}


class GANLosses(nn.Module):
    """The two objectives of one conditional GAN (networks are passed in, not owned).

    Args:
        loss: reconstruction term (``l1``, ``wl1``, ``nwl1``).
        aux: ``batch["aux"]`` channel names (``ModelIO.aux``).
        lambda_rec: weight of the reconstruction term.
        real_range, fake_range: label-smoothing ranges of the discriminator's targets.
        seed: seed of the smoothed-label draws (their generator is in ``state_dict``).
    """

    def __init__(self, *, loss: str = "l1", aux: tuple[str, ...] = (), lambda_rec: float = 100.0,
                 real_range: tuple[float, float] = (1.0, 1.0), fake_range: tuple[float, float] = (0.0, 0.0),
                 seed: int = 0) -> None:
        super().__init__()
        self.adversarial = AdversarialLoss("softmax", real_range=tuple(real_range), fake_range=tuple(fake_range),
                                           seed=seed, reduction="sum")
        self.reconstruction = Reconstruction(loss, aux)
        self.lambda_rec = float(lambda_rec)

    def discriminator(self, D: nn.Module, mri: Tensor, real: Tensor, fake: Tensor) -> dict[str, Tensor]:
        """``loss_D`` on a real and a (detached) fake PET, both paired with the MRI."""
        loss_real = self.adversarial(D(torch.cat([mri, real], 1)), True)
        loss_fake = self.adversarial(D(torch.cat([mri, fake.detach()], 1)), False)
        return {"loss": loss_real + loss_fake, "d_real": loss_real.detach(), "d_fake": loss_fake.detach()}

    def generator(self, D: nn.Module, mri: Tensor, fake: Tensor, batch: Batch) -> dict[str, Tensor]:
        """``loss_G``: fool D (hard real labels) + lambda x reconstruction; D gets no gradient."""
        with frozen(D):
            adv = self.adversarial(D(torch.cat([mri, fake], 1)), True, smooth=False)
        rec = self.reconstruction(fake, batch)
        return {"loss": adv + self.lambda_rec * rec, "g_adv": adv.detach(), "g_rec": rec.detach()}


def build_gan(cfg: GANStageConfig, io: ModelIO, *, extra_in: int = 0,
              where: str = "model.") -> tuple[nn.Module, nn.Module, GANLosses]:
    """Generator, discriminator and losses of one GAN, shaped by the data.

    Args:
        cfg: the GAN's config.
        io: what the data give (channels, dimensionality, aux names).
        extra_in: generator input channels beyond the MRI (1 for a Refiner's sketch).
        where: config key prefix named in errors.
    """
    gen = build_net(cfg.generator, cfg.generator_args, where=f"{where}generator_args",
                    spatial_dims=io.spatial_dims, in_channels=io.in_channels + extra_in, out_channels=1)
    disc = build_net(cfg.discriminator, cfg.discriminator_args, where=f"{where}discriminator_args",
                     spatial_dims=io.spatial_dims, in_channels=io.in_channels + 1)
    # drawn from torch's generator, which the run seeded: the label draws follow trainer.seed
    seed = int(torch.randint(0, 2**62, ()))
    losses = GANLosses(loss=cfg.loss, aux=tuple(io.aux), lambda_rec=cfg.lambda_rec,
                       real_range=cfg.real_range, fake_range=cfg.fake_range, seed=seed)
    return gen, disc, losses


def net_multiple(net: nn.Module) -> int:
    """Spatial size multiple a network needs (``size_multiple``, else 2**depth, else 1)."""
    m = getattr(net, "size_multiple", None)
    if isinstance(m, int):
        return m
    depth = getattr(net, "depth", None)
    return 2 ** int(depth) if isinstance(depth, int) else 1


def lcm_multiple(nets: Any) -> int:
    """Least common multiple of the networks' size multiples (generators and patch grids)."""
    return math.lcm(*(net_multiple(n) for n in nets))
