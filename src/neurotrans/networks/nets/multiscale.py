"""Multi-scale discriminator: one small conv net per image scale (UNIT's)."""

from __future__ import annotations

import torch
from torch import nn

from neurotrans.networks.checks import check_input
from neurotrans.networks.layers import factories as F
from neurotrans.networks.layers.init import apply_spectral_norm, init_weights


class MultiScaleDiscriminator(nn.Module):
    """Discriminators on the image and on 2x, 4x, ... average-pooled copies of it.

    Each scale is ``n_layers`` stride-2 3x3 convolutions of ``base * 2**i`` channels with
    LeakyReLU(0.01) and no normalisation, then a 1x1 convolution to one logit per position
    (64-128-256-512-1 in the GAN-MRI code of Welander et al., which the T1<->T2 report
    reused). Scale ``s`` sees the input average-pooled ``s`` times with 2x2(x2) windows.
    Outputs are raw logits (the reference's sigmoid belongs to the loss: use a
    with-logits loss, or LSGAN on the raw values).

    Args:
        spatial_dims: 2 (the paper) or 3.
        in_channels: C_in.
        base: channels of the first convolution (64).
        n_layers: stride-2 convolutions per scale (4).
        n_scales: number of scales (3).
        negative_slope: LeakyReLU slope (0.01).
        spectral_norm: spectral normalisation of every convolution (the report's +SN).

    Shapes: (B, C_in, H, W[, D]) -> a list of ``n_scales`` logit maps, the s-th (0-based)
    of shape (B, 1, ceil(floor(H / 2**s) / 2**n_layers), ...); finest scale first. Any
    size >= 2**(n_scales - 1) works (the stride-2 convolutions pad by 1).

    References: Liu et al. 2017 (UNIT, multi-scale discriminators); Wang et al. 2018
    (pix2pixHD); Welander et al. 2018 (GAN-MRI code); Miyato et al. 2018.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int = 1,
        *,
        base: int = 64,
        n_layers: int = 4,
        n_scales: int = 3,
        negative_slope: float = 0.01,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        F.check_spatial_dims(spatial_dims)
        for value, what in ((in_channels, "in_channels"), (base, "base"),
                            (n_layers, "n_layers"), (n_scales, "n_scales")):  # fmt: skip
            F.check_positive(value, what)
        if negative_slope < 0:
            raise ValueError(f"negative_slope must be >= 0, got {negative_slope}")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.n_scales = n_scales

        def scale_net() -> nn.Sequential:
            layers: list[nn.Module] = []
            c_in = in_channels
            for i in range(n_layers):
                c_out = base * 2**i
                layers += [F.down_conv(spatial_dims, c_in, c_out, kernel_size=3),
                           nn.LeakyReLU(negative_slope)]  # fmt: skip
                c_in = c_out
            layers.append(F.conv(spatial_dims, c_in, 1, kernel_size=1))
            return nn.Sequential(*layers)

        self.scales = nn.ModuleList([scale_net() for _ in range(n_scales)])
        self.downsample = F.pool("avg", spatial_dims, kernel_size=2)
        init_weights(self, scheme="normal", gain=0.02)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logit maps, finest scale first.

        Args:
            x: (B, C_in, H, W[, D]).

        Returns:
            ``n_scales`` tensors (B, 1, h_s, w_s[, d_s]).
        """
        check_input(x, self.spatial_dims, self.in_channels, "MultiScaleDiscriminator")
        need = 2 ** (self.n_scales - 1)
        if any(s < need for s in x.shape[2:]):
            raise ValueError(
                f"MultiScaleDiscriminator: spatial size {tuple(x.shape[2:])} too small for "
                f"{self.n_scales} scales; each side needs at least {need} voxels"
            )
        outputs = []
        for i, net in enumerate(self.scales):
            if i:
                x = self.downsample(x)
            outputs.append(net(x))
        return outputs
