"""Noise input z for a conditional generator: G(x, z) = net(cat(x, z)); the noisy Sketcher."""

from __future__ import annotations

import torch
from torch import nn

from neurotrans.networks.layers import factories as F
from neurotrans.networks.nets.unet import unet_sketcher


class NoiseInput(nn.Module):
    """Feed Gaussian noise z to ``net`` as extra input channels: ``net(cat([x, z], dim=1))``.

    The thesis keeps a noise input z for the Sketcher (it "marginally improved" results and
    gives "some slight variation in the generated images") and drops it for the Refiner,
    whose output must be deterministic; the dropout layers are there in both, so z is an
    input of its own, not pix2pix's dropout-as-noise. How z enters the 3D U-Net is not
    stated: here it is ``noise_channels`` N(0, std^2) channels concatenated to the MRI
    channels, drawn per voxel (``per_voxel=True``) or once per sample and tiled over the
    volume (``per_voxel=False``, a "noise vector").

    Args:
        net: the generator; it must take ``in_channels + noise_channels`` input channels.
        noise_channels: channels of z.
        std: standard deviation of z.
        per_voxel: independent noise per voxel, or one value per sample and channel.
        noise_at_eval: draw z in eval mode too (the cGAN's G(x, z)); ``False`` feeds z = 0
            in eval mode, for a deterministic prediction.

    Shapes: x (B, C_in, H, W[, D]), z (B, noise_channels, H, W[, D]) or None ->
    the output of ``net``.

    References: Wei et al. 2019 (Sketcher-Refiner GANs, thesis ch. 3, eq. 3.2-3.4 and Sec.
    3.3.1); Mirza & Osindero 2014 (cGAN).
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        noise_channels: int = 1,
        std: float = 1.0,
        per_voxel: bool = True,
        noise_at_eval: bool = True,
    ) -> None:
        super().__init__()
        F.check_positive(noise_channels, "noise_channels")
        if not float(std) > 0:
            raise ValueError(f"std must be > 0, got {std!r}")
        self.net = net
        self.noise_channels = noise_channels
        self.std = float(std)
        self.per_voxel = per_voxel
        self.noise_at_eval = noise_at_eval

    @property
    def size_multiple(self) -> int:
        """Spatial sizes ``net`` needs (a U-Net: 2**depth), for ``Method.size_multiple``."""
        m = getattr(self.net, "size_multiple", None)
        if isinstance(m, int):
            return m
        depth = getattr(self.net, "depth", None)
        return 2 ** int(depth) if isinstance(depth, int) else 1

    def sample_noise(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw z for input ``x`` (global RNG, or ``generator`` on x's device)."""
        b, _, *sizes = x.shape
        shape = (b, self.noise_channels, *(sizes if self.per_voxel else [1] * len(sizes)))
        z = torch.randn(shape, generator=generator, device=x.device, dtype=x.dtype) * self.std
        return z.expand(b, self.noise_channels, *sizes)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """Run ``net`` on ``x`` and noise ``z`` (drawn when not given).

        Args:
            x: (B, C_in, H, W[, D]) condition.
            z: optional (B, noise_channels, H, W[, D]) noise; given, the output is
                deterministic (up to dropout in training mode).
        """
        if z is None:
            if self.training or self.noise_at_eval:
                z = self.sample_noise(x)
            else:
                z = x.new_zeros((x.shape[0], self.noise_channels, *x.shape[2:]))
        elif z.shape[0] != x.shape[0] or z.shape[1] != self.noise_channels or z.shape[2:] != x.shape[2:]:
            raise ValueError(
                f"z must be (B, {self.noise_channels}, *spatial) matching x {tuple(x.shape)}, "
                f"got {tuple(z.shape)}"
            )
        return self.net(torch.cat([x, z.to(x.dtype)], dim=1))


def unet_sketcher_z(
    spatial_dims: int, in_channels: int, out_channels: int, *, base: int = 32, depth: int = 3,
    dropout: float = 0.5, noise_channels: int = 1, noise_std: float = 1.0, noise_at_eval: bool = True,
) -> NoiseInput:  # fmt: skip
    """The thesis's Sketcher generator G_S(I_M, z): ``unet_sketcher`` with a noise input z.

    ``in_channels`` counts the MRI channels only; the U-Net inside takes ``in_channels +
    noise_channels``. The Refiner needs no wrapper: it is ``unet_sketcher`` with
    ``in_channels`` = MRI channels + 1, fed ``torch.cat([mri, sketch], dim=1)``.
    ``noise_at_eval=False`` feeds z = 0 (the noise's mean) in eval mode: predictions, and
    the sketches a Refiner trains on behind the frozen Sketcher, become deterministic.

    References: Wei et al. 2019 (thesis ch. 3, Fig. 3.2, Sec. 3.3.1).
    """
    F.check_positive(in_channels, "in_channels")
    F.check_positive(noise_channels, "noise_channels")
    net = unet_sketcher(spatial_dims, in_channels + noise_channels, out_channels, base=base,
                        depth=depth, dropout=dropout)  # fmt: skip
    return NoiseInput(net, noise_channels=noise_channels, std=noise_std, noise_at_eval=noise_at_eval)
