"""CycleGAN's ResNet generator (Johnson et al.'s architecture), 2D and 3D."""

from __future__ import annotations

import torch
from torch import nn

from neurotrans.networks.blocks.resnet import PADDING_MODES, ResnetBlock, padded_conv
from neurotrans.networks.checks import check_input
from neurotrans.networks.layers import factories as F
from neurotrans.networks.layers.init import init_weights

RESNET_FINAL_ACTIVATIONS = ("tanh", "sigmoid", "none")


class ResnetGenerator(nn.Module):
    """c7s1-64, d128, d256, n x R256, u128, u64, c7s1-C_out (+ tanh).

    ``c7s1-k``: 7x7 convolution with reflection padding, norm, ReLU; ``dk``: 3x3 stride-2
    convolution, norm, ReLU; ``Rk``: :class:`ResnetBlock` (reflection padding, norm, ReLU,
    no activation after the sum); ``uk``: 3x3 stride-2 transposed convolution, norm, ReLU;
    the last layer a 7x7 convolution (reflection padding, bias) and tanh. Convolutions
    before instance norm keep their bias, as in the reference, so ``in_channels =
    out_channels = 3``, ``n_blocks = 9`` has its 11,378,179 parameters. Weights start as
    N(0, 0.02) (the reference's ``init_type="normal"``).

    Args:
        spatial_dims: 2 (the paper) or 3.
        in_channels: C_in.
        out_channels: C_out.
        base: channels of the first layer (64).
        n_down: stride-2 down- (and up-) samplings (2).
        n_blocks: residual blocks (9 for 256-pixel images, 6 for 128 in the reference).
        norm: ``"instance"`` (CycleGAN), ``"batch"`` or ``"none"``.
        dropout: dropout in the residual blocks (0: the reference's CycleGAN default).
        padding_mode: padding of the 7x7 and residual convolutions (``"reflect"``).
        final_activation: ``"tanh"``, ``"sigmoid"`` or ``"none"``.

    Shapes: (B, C_in, H, W[, D]) -> (B, C_out, H, W[, D]) for sizes divisible by
    2**n_down and at least 2 * 2**n_down (reflection needs 2 voxels at the coarsest level).

    References: Zhu et al. 2017 (CycleGAN), ``ResnetGenerator`` of the reference code;
    Johnson et al. 2016 (perceptual losses, the architecture).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int = 1,
        out_channels: int = 1,
        *,
        base: int = 64,
        n_down: int = 2,
        n_blocks: int = 9,
        norm: str = "instance",
        dropout: float = 0.0,
        padding_mode: str = "reflect",
        final_activation: str = "tanh",
    ) -> None:
        super().__init__()
        F.check_spatial_dims(spatial_dims)
        for value, what in ((in_channels, "in_channels"), (out_channels, "out_channels"),
                            (base, "base"), (n_down, "n_down")):  # fmt: skip
            F.check_positive(value, what)
        if isinstance(n_blocks, bool) or not isinstance(n_blocks, int) or n_blocks < 0:
            raise ValueError(f"n_blocks must be a non-negative integer, got {n_blocks!r}")
        F.check_choice(norm, F.NORMS, "norm")
        F.check_probability(dropout, "dropout")
        F.check_choice(padding_mode, PADDING_MODES, "padding_mode")
        F.check_choice(final_activation, RESNET_FINAL_ACTIVATIONS, "final_activation")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.depth = n_down  # sizes must be multiples of 2**depth (Method.size_multiple)
        bias = norm != "batch"

        def norm_relu(c: int) -> list[nn.Module]:
            return [F.norm(norm, spatial_dims, c), nn.ReLU()]

        layers: list[nn.Module] = [
            padded_conv(spatial_dims, in_channels, base, kernel_size=7, padding_mode=padding_mode,
                        bias=bias),
            *norm_relu(base),
        ]  # fmt: skip
        c = base
        for _ in range(n_down):
            layers += [F.down_conv(spatial_dims, c, 2 * c, kernel_size=3, bias=bias), *norm_relu(2 * c)]
            c *= 2
        layers += [
            ResnetBlock(spatial_dims, c, norm=norm, activation="relu", dropout=dropout,
                        dropout_position="middle", padding_mode=padding_mode, bias=bias)
            for _ in range(n_blocks)
        ]  # fmt: skip
        for _ in range(n_down):
            layers += [F.up_conv(spatial_dims, c, c // 2, kernel_size=3, bias=bias), *norm_relu(c // 2)]
            c //= 2
        layers.append(
            padded_conv(spatial_dims, c, out_channels, kernel_size=7, padding_mode=padding_mode)
        )
        if final_activation != "none":
            layers.append(F.activation(final_activation))
        self.model = nn.Sequential(*layers)
        init_weights(self, scheme="normal", gain=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate ``x`` (B, C_in, H, W[, D]) -> (B, C_out, H, W[, D])."""
        check_input(x, self.spatial_dims, self.in_channels, "ResnetGenerator")
        m = 2**self.depth
        if any(s % m or s // m < 2 for s in x.shape[2:]):
            raise ValueError(
                f"ResnetGenerator needs spatial sizes divisible by {m} (2**n_down) and at least "
                f"{2 * m}, got {tuple(x.shape[2:])}; pad the images first"
            )
        return self.model(x)
