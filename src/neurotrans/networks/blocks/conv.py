"""Convolution + normalisation + activation (+ dropout): the unit every network repeats."""

from __future__ import annotations

import torch
from torch import nn

from neurotrans.networks.layers import factories as F


class ConvBlock(nn.Sequential):
    """``conv -> norm -> act -> dropout`` (or ``conv -> act -> norm -> dropout``).

    Args:
        spatial_dims: 1, 2 or 3.
        in_channels: input channels C_in.
        out_channels: output channels C_out.
        kernel_size: odd kernel, "same" padding.
        stride: 1 keeps the size.
        norm: ``"batch"``, ``"instance"`` or ``"none"``.
        activation: ``"leakyrelu"`` or ``"relu"``.
        negative_slope: LeakyReLU slope.
        dropout: dropout probability in [0, 1).
        norm_after_activation: ``conv -> act -> norm`` as in the thesis's 3D U-Net
            ("batch normalization and dropout are applied after each LeakyReLU").
        bias: conv bias; ``None`` = no bias before batch norm (it would be cancelled).

    Shapes: (B, C_in, H, W[, D]) -> (B, C_out, H/stride, W/stride[, D/stride]).

    References: Wei 2020 (PhD thesis, ch. 3); Isola et al. 2017 (pix2pix).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 3,
        stride: int = 1,
        norm: str = "batch",
        activation: str = "leakyrelu",
        negative_slope: float = 0.2,
        dropout: float = 0.0,
        norm_after_activation: bool = False,
        bias: bool | None = None,
    ) -> None:
        F.check_choice(activation, F.ACTIVATIONS, "activation")
        use_bias = (norm != "batch") if bias is None else bias
        layers = [
            F.conv(
                spatial_dims,
                in_channels,
                out_channels,
                kernel_size=kernel_size,
                stride=stride,
                bias=use_bias,
            ),
        ]
        n, a = (
            F.norm(norm, spatial_dims, out_channels),
            F.activation(activation, negative_slope=negative_slope),
        )
        layers += [a, n] if norm_after_activation else [n, a]
        layers.append(F.dropout(dropout))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """Two "same" convolutions with an identity shortcut: ``act(x + norm(conv(act(norm(conv(x))))))``.

    A 1x1 convolution projects the shortcut when ``in_channels != out_channels``.

    Args:
        spatial_dims: 1, 2 or 3.
        in_channels: C_in.
        out_channels: C_out.
        kernel_size: odd kernel.
        norm: ``"batch"``, ``"instance"`` or ``"none"``.
        activation: ``"leakyrelu"`` or ``"relu"``.
        dropout: dropout between the two convolutions.

    Shapes: (B, C_in, H, W[, D]) -> (B, C_out, H, W[, D]).

    References: He et al. 2016 (ResNet); Wei 2020 (thesis ch. 4, CF-SAGAN residual blocks).
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
            raise ValueError(f"ResidualBlock needs an odd kernel_size, got {kernel_size}")
        self.body = nn.Sequential(
            ConvBlock(spatial_dims, in_channels, out_channels, kernel_size=kernel_size, norm=norm,
                      activation=activation, negative_slope=negative_slope, dropout=dropout),
            F.conv(spatial_dims, out_channels, out_channels, kernel_size=kernel_size, bias=norm != "batch"),
            F.norm(norm, spatial_dims, out_channels),
        )  # fmt: skip
        self.shortcut = (
            nn.Identity() if in_channels == out_channels
            else F.conv(spatial_dims, in_channels, out_channels, kernel_size=1)
        )  # fmt: skip
        self.act = F.activation(activation, negative_slope=negative_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shortcut(x) + self.body(x))
