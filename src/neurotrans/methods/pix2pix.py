"""pix2pix: conditional GAN (PatchGAN on (input, output) pairs) + lambda * L1.

References: Isola et al., Image-to-image translation with conditional adversarial
networks (CVPR 2017); its use for MRI -> FDG-PET on axial or three-plane slices
(papers/001).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from neurotrans.losses import adversarial_loss, build_loss
from neurotrans.methods.base import (
    Batch,
    Method,
    MethodConfig,
    ModelIO,
    OptimGroup,
    build_net,
    check_network_name,
)
from neurotrans.methods.supervised import check_reconstruction_loss, initialise


@dataclass(frozen=True)
class Pix2PixConfig(MethodConfig):
    """``model`` section of ``method: pix2pix``.

    Args:
        generator: translator network key (a U-Net).
        generator_args: its keyword arguments besides dims and channels.
        discriminator: critic network key (``patchgan``).
        discriminator_args: its keyword arguments.
        loss: reconstruction loss (``l1`` in the paper).
        lambda_rec: weight of the reconstruction loss next to the adversarial one (100).
        d_steps: discriminator steps per generator step (1 in the paper).
        init: weight initialisation of both networks (``normal``: N(0, 0.02), the paper's).
    """

    method: ClassVar[str] = "pix2pix"
    generator: str = "unet"
    generator_args: dict[str, Any] = field(default_factory=dict)
    discriminator: str = "patchgan"
    discriminator_args: dict[str, Any] = field(default_factory=dict)
    loss: str = "l1"
    lambda_rec: float = 100.0
    d_steps: int = 1
    init: str | None = "normal"

    def __post_init__(self) -> None:
        check_network_name(self.generator, "model.generator")
        check_network_name(self.discriminator, "model.discriminator")
        check_reconstruction_loss(self.loss, "model.loss")
        if self.d_steps < 1:
            raise ValueError(f"model.d_steps must be >= 1, got {self.d_steps}")
        if self.lambda_rec < 0:
            raise ValueError(f"model.lambda_rec must be >= 0, got {self.lambda_rec}")


class Pix2Pix(Method):
    """Generator G(x) trained against a conditional discriminator D(x, y).

    On each batch the trainer steps ``D`` ``d_steps`` times, then ``G`` (the schedule).
    The generator's output computed for the first D step is reused by the G step of
    the same batch, as in the reference implementation (one G forward per batch).

    Args:
        generator: (B, C, H, W) -> (B, 1, H, W).
        discriminator: (B, C + 1, H, W) -> patch logits (B, 1, h, w).
        lambda_rec: weight of the L1 term (100 in the paper).
        loss: reconstruction loss name (``l1`` in the paper).
        d_steps: discriminator steps per generator step.
    """

    Config = Pix2PixConfig
    summary: ClassVar[str] = "U-Net generator + PatchGAN, cGAN + 100 L1, on slices (Isola 2017; papers/001)"

    def __init__(self, generator: nn.Module, discriminator: nn.Module, *, lambda_rec: float = 100.0,
                 loss: str = "l1", d_steps: int = 1) -> None:
        super().__init__({"G": generator, "D": discriminator})
        if d_steps < 1:
            raise ValueError(f"d_steps must be >= 1, got {d_steps}")
        self.lambda_rec = float(lambda_rec)
        self.d_steps = int(d_steps)
        self.rec_loss = build_loss(loss)
        self._cache: tuple[int, Tensor] | None = None

    @classmethod
    def from_config(cls, config: Pix2PixConfig, io: ModelIO) -> Pix2Pix:
        gen = build_net(config.generator, config.generator_args, where="model.generator_args",
                        spatial_dims=io.spatial_dims, in_channels=io.in_channels, out_channels=1)
        disc = build_net(config.discriminator, config.discriminator_args, where="model.discriminator_args",
                         spatial_dims=io.spatial_dims, in_channels=io.in_channels + 1)
        return cls(initialise(gen, config.init), initialise(disc, config.init), lambda_rec=config.lambda_rec,
                   loss=config.loss, d_steps=config.d_steps)

    def optimiser_groups(self) -> dict[str, OptimGroup]:
        return {"D": OptimGroup(("D",)), "G": OptimGroup(("G",))}

    def schedule(self, step: int = 0) -> list[str]:
        return ["D"] * self.d_steps + ["G"]

    def _fake(self, batch: Batch) -> Tensor:
        key = id(batch["input"])
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        fake = self.networks["G"](batch["input"])
        self._cache = (key, fake)
        return fake

    def training_step(self, batch: Batch, group: str) -> dict[str, Tensor]:
        x, y = batch["input"], batch["target"]
        D = self.networks["D"]
        if group == "D":
            fake = self._fake(batch)
            loss_real = adversarial_loss(D(torch.cat([x, y], 1)), True, mode="bce")
            loss_fake = adversarial_loss(D(torch.cat([x, fake.detach()], 1)), False, mode="bce")
            loss = 0.5 * (loss_real + loss_fake)  # halved as in pix2pix: D learns slower than G
            return {"loss": loss, "d_real": loss_real.detach(), "d_fake": loss_fake.detach()}
        if group == "G":
            fake = self._fake(batch)
            self._cache = None  # the graph must not outlive this step
            for p in D.parameters():
                p.requires_grad_(False)
            try:
                adv = adversarial_loss(D(torch.cat([x, fake], 1)), True, mode="bce")
            finally:
                for p in D.parameters():
                    p.requires_grad_(True)
            rec = self.rec_loss(fake, y)
            return {"loss": adv + self.lambda_rec * rec, "g_adv": adv.detach(), "g_rec": rec.detach()}
        raise ValueError(f"pix2pix has groups D and G, not {group!r}")

    def predict(self, x: Tensor, covariates: Tensor | None = None) -> Tensor:
        return self.networks["G"](x)
