"""Residual down- and up-sampling blocks (CF-SAGAN's ResDown / ResUp)."""

from __future__ import annotations

import torch
from torch import nn

from neurotrans.networks.blocks.conv import ConvBlock
from neurotrans.networks.layers import factories as F


class ResDown(nn.Module):
    """Residual block halving the size: ``act(main(x) + shortcut(x))``.

    main = stride-2 conv -> norm -> act (-> dropout) -> 3x3 conv -> norm; shortcut = stride-2
    1x1 convolution. The thesis's Fig. 4.2 (not in the extracted text) shows ResDown blocks
    with strided convolutions and short skip connections; this is our reading of it.

    Args:
        spatial_dims: 1, 2 or 3.
        in_channels: C_in.
        out_channels: C_out.
        kernel_size: odd kernel of the convolutions (3 in the thesis).
        norm, activation, negative_slope, dropout: as ``ConvBlock``.

    Shapes: (B, C_in, H, W[, D]) -> (B, C_out, H/2, W/2[, D/2]) for even sizes.

    References: He et al. 2016; Wei et al. 2020 (CF-SAGAN, thesis ch. 4).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 3,
        norm: str = "batch",
        activation: str = "leakyrelu",
        negative_slope: float = 0.2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        opts = dict(norm=norm, activation=activation, negative_slope=negative_slope)
        self.main = nn.Sequential(
            ConvBlock(spatial_dims, in_channels, out_channels, kernel_size=kernel_size, stride=2,
                      dropout=dropout, **opts),
            F.conv(spatial_dims, out_channels, out_channels, kernel_size=kernel_size, bias=norm != "batch"),
            F.norm(norm, spatial_dims, out_channels),
        )  # fmt: skip
        self.shortcut = F.conv(spatial_dims, in_channels, out_channels, kernel_size=1, stride=2)
        self.act = F.activation(activation, negative_slope=negative_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(s % 2 for s in x.shape[2:]):
            raise ValueError(f"ResDown needs even spatial sizes, got {tuple(x.shape[2:])}")
        return self.act(self.main(x) + self.shortcut(x))


class ResUp(nn.Module):
    """Residual block doubling the size: ``act(main(x) + shortcut(x))``.

    main = stride-2 transposed conv -> norm -> act (-> dropout) -> 3x3 conv -> norm;
    shortcut = stride-2 transposed convolution with a 2x2(x2) kernel.

    Args:
        spatial_dims: 1, 2 or 3.
        in_channels: C_in.
        out_channels: C_out.
        up_kernel_size: kernel of the transposed conv (2, 3 or 4).
        kernel_size: odd kernel of the second convolution.
        norm, activation, negative_slope, dropout: as ``ConvBlock``.

    Shapes: (B, C_in, H, W[, D]) -> (B, C_out, 2H, 2W[, 2D]).

    References: He et al. 2016; Wei et al. 2020 (CF-SAGAN, thesis ch. 4).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        *,
        up_kernel_size: int = 4,
        kernel_size: int = 3,
        norm: str = "batch",
        activation: str = "leakyrelu",
        negative_slope: float = 0.2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        bias = norm != "batch"
        self.main = nn.Sequential(
            F.up_conv(
                spatial_dims, in_channels, out_channels, kernel_size=up_kernel_size, bias=bias
            ),
            F.norm(norm, spatial_dims, out_channels),
            F.activation(activation, negative_slope=negative_slope),
            F.dropout(dropout),
            F.conv(spatial_dims, out_channels, out_channels, kernel_size=kernel_size, bias=bias),
            F.norm(norm, spatial_dims, out_channels),
        )
        self.shortcut = F.up_conv(spatial_dims, in_channels, out_channels, kernel_size=2)
        self.act = F.activation(activation, negative_slope=negative_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.main(x) + self.shortcut(x))
