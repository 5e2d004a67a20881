"""PatchGAN discriminator (pix2pix's 70x70 by default), 2D and 3D."""

from __future__ import annotations

import torch
from torch import nn

from neurotrans.networks.checks import check_input
from neurotrans.networks.layers import factories as F


def patchgan_receptive_field(n_layers: int, kernel_size: int = 4) -> int:
    """Receptive field (pixels along one axis) of one PatchGAN output.

    ``n_layers`` stride-2 convolutions, then two stride-1 ones, all ``kernel_size``:
    r = 1 + (k - 1) * (1 + 1 + 2**n_layers - 1 + ... ) -> 70 for n_layers=3, k=4.
    """
    strides = [2] * n_layers + [1, 1]
    r, jump = 1, 1
    for s in strides:
        r += (kernel_size - 1) * jump
        jump *= s
    return r


class PatchDiscriminator(nn.Module):
    """Fully convolutional discriminator scoring every (overlapping) patch as real or fake.

    pix2pix's ``NLayerDiscriminator``: ``C(base) s2`` (no norm), then ``n_layers - 1`` blocks
    ``C(min(2**n, 8) * base) s2 + norm``, one ``C s1 + norm``, and a 1-channel ``C s1``;
    4x4(x4) kernels, padding 1, LeakyReLU(0.2). Each output logit sees a 70x70 patch for
    ``n_layers=3`` (34 for 2, 16 for 1, 142 for 4). In 3D it is the patch discriminator of
    the thesis's cGANs (overlapping rather than the thesis's non-overlapping patches, which
    is the PatchGAN's convolutional form). The output is raw logits (use a with-logits loss).

    MONAI's ``PatchDiscriminator`` builds the same layers for ``n_layers <= 3`` (checked in
    tests by copying weights), but it returns a list of every intermediate feature map, does
    not cap the width at 8 * base for deeper stacks and re-initialises weights itself; this
    class returns one tensor and keeps the pix2pix topology for any depth.

    Args:
        spatial_dims: 2 or 3 (1 works too).
        in_channels: C_in (condition + image channels for a conditional GAN).
        base: channels of the first layer.
        n_layers: stride-2 layers (3 = 70x70 PatchGAN).
        norm: ``"batch"``, ``"instance"`` or ``"none"``.
        kernel_size: kernel of every convolution (4 in pix2pix).
        negative_slope: LeakyReLU slope.

    Shapes: (B, C_in, H, W[, D]) -> (B, 1, H', W'[, D']) with H' = H / 2**n_layers - 2 for
    H divisible by 2**n_layers; every spatial size must be at least ``min_size()``
    (24 for n_layers=3, 12 for 2).

    References: Isola et al. 2017 (pix2pix, PatchGAN); Wei et al. 2019 / thesis ch. 3 (3D).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        *,
        base: int = 64,
        n_layers: int = 3,
        norm: str = "batch",
        kernel_size: int = 4,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        F.check_spatial_dims(spatial_dims)
        F.check_positive(in_channels, "in_channels")
        F.check_positive(base, "base")
        F.check_positive(n_layers, "n_layers")
        F.check_positive(kernel_size, "kernel_size")
        F.check_choice(norm, F.NORMS, "norm")
        if kernel_size < 2:
            raise ValueError(f"kernel_size must be >= 2, got {kernel_size}")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.n_layers = n_layers
        self.receptive_field = patchgan_receptive_field(n_layers, kernel_size)
        bias = norm != "batch"

        def conv(cin: int, cout: int, stride: int, b: bool) -> nn.Module:
            return F.conv(
                spatial_dims, cin, cout, kernel_size=kernel_size, stride=stride, padding=1, bias=b
            )

        def act() -> nn.Module:
            return nn.LeakyReLU(negative_slope)

        layers: list[nn.Module] = [conv(in_channels, base, 2, True), act()]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [
                conv(base * prev, base * mult, 2, bias),
                F.norm(norm, spatial_dims, base * mult),
                act(),
            ]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [
            conv(base * prev, base * mult, 1, bias),
            F.norm(norm, spatial_dims, base * mult),
            act(),
        ]
        layers.append(conv(base * mult, 1, 1, True))
        self.model = nn.Sequential(*layers)

    def output_size(self, size: int) -> int:
        """Output length along an axis of input length ``size`` (0 if too small)."""
        for m in self.model:
            if isinstance(m, nn.modules.conv._ConvNd):
                size = (size + 2 * m.padding[0] - m.kernel_size[0]) // m.stride[0] + 1
                if size < 1:
                    return 0
        return size

    def min_size(self) -> int:
        """Smallest input length along an axis giving one output logit."""
        size = 1
        while self.output_size(size) < 1:
            size += 1
        return size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Patch logits.

        Args:
            x: (B, C_in, H, W[, D]).

        Returns:
            (B, 1, H', W'[, D']) logits, one per patch.
        """
        check_input(x, self.spatial_dims, self.in_channels, "PatchDiscriminator")
        need = self.min_size()
        if any(s < need for s in x.shape[2:]):
            raise ValueError(
                f"PatchDiscriminator: spatial size {tuple(x.shape[2:])} too small for n_layers="
                f"{self.n_layers}; each side needs at least {need} voxels "
                "(use fewer layers or larger patches)"
            )
        return self.model(x)
