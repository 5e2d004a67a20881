"""History of generated images shown to a discriminator (CycleGAN's image buffer)."""

from __future__ import annotations

import torch
from torch import Tensor


class ImagePool:
    """Keep up to ``size`` past fakes; answer each new fake with it or with an old one.

    Until the pool is full every image is stored and returned. Then each image of the
    batch is, with probability 1/2, swapped with a random stored image (the stored one is
    returned, the new one kept), else returned as is. The discriminator thus sees fakes
    from earlier generators too, which damps oscillation. Draws come from a seeded CPU
    generator, so runs reproduce.

    Args:
        size: capacity (50 in CycleGAN); 0 disables the pool (fakes pass through).
        seed: seed of the draws.

    References: Shrivastava et al. 2017 (history of refined images); Zhu et al. 2017
    (CycleGAN, ``ImagePool`` of the reference code).
    """

    def __init__(self, size: int = 50, *, seed: int = 0) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"size must be a non-negative integer, got {size!r}")
        self.size = size
        self.images: list[Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    def query(self, images: Tensor) -> Tensor:
        """A batch of fakes for the discriminator, shaped like ``images`` (B, C, ...), detached."""
        images = images.detach()
        if self.size == 0:
            return images
        if self.images and self.images[0].device != images.device:  # restored from a CPU-mapped checkpoint
            self.images = [image.to(images.device) for image in self.images]
        out = []
        for image in images:
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.generator).item() > 0.5:
                k = int(torch.randint(len(self.images), (), generator=self.generator))
                out.append(self.images[k].clone())
                self.images[k] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)
