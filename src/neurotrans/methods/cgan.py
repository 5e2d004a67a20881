"""cGAN, the thesis's Sketcher: 3D U-Net generator with noise z + non-overlapping patch discriminator.

Trained alone it is the "cGAN" / "Sketcher" baseline of the thesis (Tables 3.1, 4.1), with
L1 or the lesion-weighted L1 ("Sketcher+L1W"); inside ``cascade`` the same game is its
first stage.

References: Wei et al. 2019, "Predicting PET-derived demyelination from multimodal MRI using
sketcher-refiner adversarial training" (thesis ch. 3: eq. 3.2, 3.4, 3.5; Adam 1e-4; whole
volumes); Bi et al. 2017 and Ben-Cohen et al. 2017 (the single cGAN it extends to 3D).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from neurotrans.methods.base import Batch, Method, MethodConfig, ModelIO, OptimGroup
from neurotrans.methods.gan_stage import GANLosses, GANStageConfig, build_gan, lcm_multiple


@dataclass(frozen=True)
class CGANConfig(GANStageConfig, MethodConfig):
    """``model`` section of ``method: cgan`` (fields: :class:`GANStageConfig`).

    Thesis ch. 3 defaults: generator ``unet_sketcher_z`` (32 base filters, BN, dropout 0.5,
    LeakyReLU 0.2, noise z), discriminator ``patch_classifier``, L1, Adam 1e-4, one D step
    per G step and hard labels (ch. 3 names neither label smoothing nor extra D steps).
    """

    method: ClassVar[str] = "cgan"
    lr: float | None = 1e-4

    def __post_init__(self) -> None:
        self.check_stage()

    def check_data(self, data: Any) -> None:
        self.check_stage_data(data)


class ConditionalGAN(Method):
    """A conditional GAN with a patch discriminator and a reconstruction term.

    Groups ``D`` and ``G``; the schedule is ``d_steps`` x ``D`` then ``G``, every step on
    a freshly generated fake (a new draw of the noise z and of dropout).

    Args:
        generator: (B, C, *S) -> (B, 1, *S).
        discriminator: (B, C + 1, *S) -> (B, 2, *grid) patch logits.
        losses: the GAN's objectives (:class:`GANLosses`).
        d_steps: discriminator steps per generator step.
        hparams: optimiser overrides of both groups (``lr``).
    """

    Config = CGANConfig
    summary: ClassVar[str] = ("3D cGAN: U-Net + noise z vs a non-overlapping patch discriminator, L1 or WL1 "
                              "(the Sketcher, papers/003 ch. 3)")

    def __init__(self, generator: nn.Module, discriminator: nn.Module, losses: GANLosses, *, d_steps: int = 1,
                 hparams: dict[str, Any] | None = None) -> None:
        super().__init__({"G": generator, "D": discriminator})
        if d_steps < 1:
            raise ValueError(f"d_steps must be >= 1, got {d_steps}")
        self.gan = losses
        self.d_steps = int(d_steps)
        self.hparams = dict(hparams or {})

    @classmethod
    def from_config(cls, config: GANStageConfig, io: ModelIO) -> ConditionalGAN:
        gen, disc, losses = build_gan(config, io)
        return cls(gen, disc, losses, d_steps=config.d_steps, hparams=config.hparams)

    def optimiser_groups(self) -> dict[str, OptimGroup]:
        return {"D": OptimGroup(("D",), dict(self.hparams)), "G": OptimGroup(("G",), dict(self.hparams))}

    def schedule(self, step: int = 0) -> list[str]:
        return ["D"] * self.d_steps + ["G"]

    def training_step(self, batch: Batch, group: str) -> dict[str, Tensor]:
        x, y = batch["input"], batch["target"]
        G, D = self.networks["G"], self.networks["D"]
        if group == "D":
            with torch.no_grad():
                fake = G(x)
            return self.gan.discriminator(D, x, y, fake)
        if group == "G":
            return self.gan.generator(D, x, G(x), batch)
        raise ValueError(f"{type(self).__name__} has groups D and G, not {group!r}")

    def predict(self, x: Tensor, covariates: Tensor | None = None) -> Tensor:
        return self.networks["G"](x)

    @property
    def size_multiple(self) -> int:
        return lcm_multiple(self.networks.values())
