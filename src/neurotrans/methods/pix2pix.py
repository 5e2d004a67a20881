"""pix2pix: conditional GAN (PatchGAN on (input, output) pairs) + lambda * L1.

References: Isola et al., Image-to-image translation with conditional adversarial
networks (CVPR 2017); its use for MRI -> FDG-PET on axial or three-plane slices
(papers/001).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from neurotrans.methods.base import Batch, Method, OptimGroup
from neurotrans.methods.losses import gan_loss, reconstruction_loss


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

    def __init__(self, generator: nn.Module, discriminator: nn.Module, *, lambda_rec: float = 100.0,
                 loss: str = "l1", d_steps: int = 1) -> None:
        super().__init__({"G": generator, "D": discriminator})
        if d_steps < 1:
            raise ValueError(f"d_steps must be >= 1, got {d_steps}")
        self.lambda_rec = float(lambda_rec)
        self.d_steps = int(d_steps)
        self.rec_loss = reconstruction_loss(loss)
        self._cache: tuple[int, Tensor] | None = None

    def optimiser_groups(self) -> dict[str, OptimGroup]:
        return {"D": OptimGroup(("D",)), "G": OptimGroup(("G",))}

    def schedule(self) -> list[str]:
        return ["D"] * self.d_steps + ["G"]

    def _fake(self, batch: Batch, reuse: bool) -> Tensor:
        key = id(batch["input"])
        if reuse and self._cache is not None and self._cache[0] == key:
            fake = self._cache[1]
        else:
            fake = self.networks["G"](batch["input"])
        self._cache = (key, fake)
        return fake

    def training_step(self, batch: Batch, group: str) -> dict[str, Tensor]:
        x, y = batch["input"], batch["target"]
        D = self.networks["D"]
        if group == "D":
            fake = self._fake(batch, reuse=True)
            loss_real = gan_loss(D(torch.cat([x, y], 1)), True)
            loss_fake = gan_loss(D(torch.cat([x, fake.detach()], 1)), False)
            loss = 0.5 * (loss_real + loss_fake)  # halved as in pix2pix: D learns slower than G
            return {"loss": loss, "d_real": loss_real.detach(), "d_fake": loss_fake.detach()}
        if group == "G":
            fake = self._fake(batch, reuse=True)
            self._cache = None  # the graph must not outlive this step
            for p in D.parameters():
                p.requires_grad_(False)
            try:
                adv = gan_loss(D(torch.cat([x, fake], 1)), True)
            finally:
                for p in D.parameters():
                    p.requires_grad_(True)
            rec = self.rec_loss(fake, y)
            return {"loss": adv + self.lambda_rec * rec, "g_adv": adv.detach(), "g_rec": rec.detach()}
        raise ValueError(f"pix2pix has groups D and G, not {group!r}")

    def predict(self, x: Tensor) -> Tensor:
        return self.networks["G"](x)
