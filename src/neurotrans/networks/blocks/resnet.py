"""The residual block of image-translation generators: ``y = x + body(x)``, no activation after."""

from __future__ import annotations

import torch
from torch import nn

from neurotrans.networks.layers import factories as F

PADDING_MODES = ("zeros", "reflect", "replicate")
DROPOUT_POSITIONS = ("middle", "end")

_REFLECT = {1: nn.ReflectionPad1d, 2: nn.ReflectionPad2d, 3: nn.ReflectionPad3d}
_REPLICATE = {1: nn.ReplicationPad1d, 2: nn.ReplicationPad2d, 3: nn.ReplicationPad3d}


def padded_conv(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    *,
    kernel_size: int,
    padding_mode: str = "zeros",
    bias: bool = True,
) -> nn.Module:
    """Size-keeping convolution with zero, reflection or replication padding.

    Reflection/replication is an explicit padding layer followed by an unpadded
    convolution, as in the CycleGAN reference (``ReflectionPad2d(3)`` + ``Conv2d(k=7)``).

    Args:
        spatial_dims: 1, 2 or 3.
        in_channels, out_channels: C_in, C_out.
        kernel_size: odd kernel.
        padding_mode: ``"zeros"``, ``"reflect"`` or ``"replicate"``.
        bias: conv bias.

    Shapes: (B, C_in, H, W[, D]) -> (B, C_out, H, W[, D]); reflection needs every spatial
    size > (kernel_size - 1) / 2.
    """
    F.check_choice(padding_mode, PADDING_MODES, "padding_mode")
    if kernel_size % 2 == 0:
        raise ValueError(f"padded_conv needs an odd kernel_size, got {kernel_size}")
    if padding_mode == "zeros":
        return F.conv(spatial_dims, in_channels, out_channels, kernel_size=kernel_size, bias=bias)
    pad = (_REFLECT if padding_mode == "reflect" else _REPLICATE)[F.check_spatial_dims(spatial_dims)]
    conv = F.conv(
        spatial_dims, in_channels, out_channels, kernel_size=kernel_size, padding=0, bias=bias
    )
    return nn.Sequential(pad((kernel_size - 1) // 2), conv)


class ResnetBlock(nn.Module):
    """Identity-shortcut residual block without post-activation: ``y = x + body(x)``.

    body = conv -> norm -> act [-> dropout, "middle"] -> conv -> norm [-> dropout, "end"].
    This is the block of the CycleGAN ResNet generator (reflection padding, instance norm,
    ReLU, dropout between the convolutions when used) and of UNIT's encoders and
    generators (zero padding, batch norm, ReLU, dropout 0.5 after the second norm in the
    UNIT reference and in the Keras code of Welander et al.). It differs from
    :class:`~neurotrans.networks.blocks.conv.ResidualBlock` (which applies an activation
    after the sum and may project the shortcut), so the sum is unbounded and the block can
    be the identity when the body outputs zero.

    Args:
        spatial_dims: 1, 2 or 3.
        channels: C (kept).
        kernel_size: odd kernel of both convolutions.
        norm: ``"batch"``, ``"instance"`` or ``"none"``.
        activation: ``"relu"`` or ``"leakyrelu"`` (between the convolutions).
        negative_slope: LeakyReLU slope.
        dropout: dropout probability in [0, 1).
        dropout_position: ``"middle"`` (CycleGAN) or ``"end"`` (UNIT).
        padding_mode: ``"zeros"``, ``"reflect"`` or ``"replicate"``.
        bias: conv biases; ``None`` = only without batch norm (the CycleGAN rule: a bias
            before instance norm is kept, as in the reference's parameter count).

    Shapes: (B, C, H, W[, D]) -> (B, C, H, W[, D]).

    References: He et al. 2016 (ResNet); Zhu et al. 2017 (CycleGAN); Liu et al. 2017
    (UNIT, Table 3); Welander et al. 2018 (GAN-MRI UNIT code).
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        *,
        kernel_size: int = 3,
        norm: str = "batch",
        activation: str = "relu",
        negative_slope: float = 0.01,
        dropout: float = 0.0,
        dropout_position: str = "end",
        padding_mode: str = "zeros",
        bias: bool | None = None,
    ) -> None:
        super().__init__()
        F.check_positive(channels, "channels")
        F.check_choice(activation, F.ACTIVATIONS, "activation")
        F.check_choice(dropout_position, DROPOUT_POSITIONS, "dropout_position")
        F.check_choice(norm, F.NORMS, "norm")
        use_bias = (norm != "batch") if bias is None else bias

        def conv() -> nn.Module:
            return padded_conv(spatial_dims, channels, channels, kernel_size=kernel_size,
                               padding_mode=padding_mode, bias=use_bias)  # fmt: skip

        layers = [
            conv(),
            F.norm(norm, spatial_dims, channels),
            F.activation(activation, negative_slope=negative_slope),
        ]
        if dropout_position == "middle":
            layers.append(F.dropout(dropout))
        layers += [conv(), F.norm(norm, spatial_dims, channels)]
        if dropout_position == "end":
            layers.append(F.dropout(dropout))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)
