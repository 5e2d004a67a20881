"""CF-SAGAN: conditional flexible self-attention GAN, trained on overlapping 3D patches.

The game of :class:`~neurotrans.methods.cgan.ConditionalGAN` with the CF-SAGAN networks
(residual U-Net generator and residual patch discriminator, each with a flexible
self-attention) and the training settings of thesis ch. 4: label smoothing (real labels in
[0.9, 1], fake in [0, 0.1]), two discriminator updates per generator update, Adam 1e-4.
The data side of the protocol is the data config's: 64^3 patches with 50 % overlap
(``data.patch_size``, ``data.patch_overlap``) and rotation / scaling augmentation
(``data.augment: [rot90, scale]``). Table 4.1's "CF-SAGAN" is this model with L1 (its
MSE equals Table 4.2's CF-SAGAN + L1); ``loss: nwl1`` gives Table 4.2's NWL1 variant.

References: Wei et al. 2020, "Predicting PET-derived myelin content from multisequence MRI
for individual longitudinal analysis in multiple sclerosis" (thesis ch. 4, Sec. 4.2.2,
4.2.6, 4.3.1); Zhang et al. 2019 (SAGAN).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from neurotrans.methods.base import MethodConfig
from neurotrans.methods.cgan import ConditionalGAN
from neurotrans.methods.gan_stage import GANStageConfig


@dataclass(frozen=True)
class CFSAGANConfig(GANStageConfig, MethodConfig):
    """``model`` section of ``method: cfsagan`` (fields: :class:`GANStageConfig`, ch. 4 defaults)."""

    method: ClassVar[str] = "cfsagan"
    generator: str = "cfsagan_generator"
    discriminator: str = "cfsagan_discriminator"
    d_steps: int = 2
    real_range: tuple[float, float] = (0.9, 1.0)
    fake_range: tuple[float, float] = (0.0, 0.1)
    lr: float | None = 1e-4

    def __post_init__(self) -> None:
        self.check_stage()

    def check_data(self, data: Any) -> None:
        self.check_stage_data(data)


class CFSAGAN(ConditionalGAN):
    """CF-SAGAN: :class:`ConditionalGAN` built from :class:`CFSAGANConfig` (its ch. 4 defaults)."""

    Config = CFSAGANConfig
    summary: ClassVar[str] = ("CF-SAGAN: residual U-Net + flexible self-attention vs a residual patch "
                              "discriminator, smoothed labels, 2 D steps (papers/003 ch. 4)")
