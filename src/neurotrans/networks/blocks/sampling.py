"""Encoder (down) and decoder (up) blocks of a classic U-Net level."""

from __future__ import annotations

import torch
from torch import nn

from neurotrans.networks.blocks.conv import ConvBlock
from neurotrans.networks.layers import factories as F

DOWNSAMPLE = ("strided", "maxpool")


def _conv_stack(
    spatial_dims: int, in_channels: int, out_channels: int, n_convs: int, **kw
) -> nn.Sequential:
    return nn.Sequential(*[
        ConvBlock(spatial_dims, in_channels if i == 0 else out_channels, out_channels, **kw)
        for i in range(n_convs)
    ])  # fmt: skip


class Downsample(nn.Module):
    """Halve the spatial size: stride-2 conv (+ norm, act) or max-pooling; channels kept.

    Args:
        spatial_dims: 1, 2 or 3.
        channels: C.
        mode: ``"strided"`` (learned, as the ESIT paper's U-Net) or ``"maxpool"``.
        kernel_size: kernel of the strided conv (2, 3 or 4).
        norm, activation, negative_slope, dropout, norm_after_activation: as ``ConvBlock``.

    Shapes: (B, C, H, W[, D]) -> (B, C, H/2, W/2[, D/2]).

    References: Springenberg et al. 2015 (strided conv instead of pooling).
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        *,
        mode: str = "strided",
        kernel_size: int = 4,
        norm: str = "batch",
        activation: str = "leakyrelu",
        negative_slope: float = 0.2,
        dropout: float = 0.0,
        norm_after_activation: bool = False,
    ) -> None:
        super().__init__()
        F.check_choice(mode, DOWNSAMPLE, "downsample")
        if mode == "maxpool":
            self.op: nn.Module = F.pool("max", spatial_dims)
            return
        conv = F.down_conv(
            spatial_dims, channels, channels, kernel_size=kernel_size, bias=norm != "batch"
        )
        n, a = (
            F.norm(norm, spatial_dims, channels),
            F.activation(activation, negative_slope=negative_slope),
        )
        self.op = nn.Sequential(
            conv, *([a, n] if norm_after_activation else [n, a]), F.dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class EncoderBlock(nn.Module):
    """``n_convs`` "same" ConvBlocks; returns the features (the skip) before downsampling.

    Shapes: (B, C_in, H, W[, D]) -> (B, C_out, H, W[, D]).

    References: Ronneberger et al. 2015 (U-Net).
    """

    def __init__(
        self, spatial_dims: int, in_channels: int, out_channels: int, *, n_convs: int = 2, **kw
    ) -> None:
        super().__init__()
        F.check_positive(n_convs, "n_convs")
        self.convs = _conv_stack(spatial_dims, in_channels, out_channels, n_convs, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)


class DecoderBlock(nn.Module):
    """Transposed conv x2 (+ norm, act), concatenation with the skip, ``n_convs`` ConvBlocks.

    Args:
        spatial_dims: 1, 2 or 3.
        in_channels: channels of the coarse input C_in.
        skip_channels: channels of the skip connection C_s.
        out_channels: C_out (the up-convolution also outputs C_out).
        n_convs: ConvBlocks after the concatenation.
        up_kernel_size: kernel of the transposed conv (2, 3 or 4).
        **kw: ConvBlock options (kernel_size, norm, activation, negative_slope, dropout,
            norm_after_activation).

    Shapes: (B, C_in, H/2, W/2[, D/2]) and skip (B, C_s, H, W[, D]) -> (B, C_out, H, W[, D]).

    References: Ronneberger et al. 2015 (U-Net).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        *,
        n_convs: int = 2,
        up_kernel_size: int = 4,
        **kw,
    ) -> None:
        super().__init__()
        F.check_positive(n_convs, "n_convs")
        norm = kw.get("norm", "batch")
        up = F.up_conv(
            spatial_dims,
            in_channels,
            out_channels,
            kernel_size=up_kernel_size,
            bias=norm != "batch",
        )
        n = F.norm(norm, spatial_dims, out_channels)
        a = F.activation(
            kw.get("activation", "leakyrelu"), negative_slope=kw.get("negative_slope", 0.2)
        )
        self.up = nn.Sequential(up, *([a, n] if kw.get("norm_after_activation") else [n, a]),
                                F.dropout(kw.get("dropout", 0.0)))  # fmt: skip
        self.convs = _conv_stack(
            spatial_dims, out_channels + skip_channels, out_channels, n_convs, **kw
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.convs(torch.cat([skip, self.up(x)], dim=1))
