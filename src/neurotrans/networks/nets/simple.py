"""The thesis's small networks: 3D FCN, the 2-layer 7x7x7 CNN and the voxel-wise MLP."""

from __future__ import annotations

from torch import nn

from neurotrans.networks.layers import factories as F


def _plain_stack(
    spatial_dims: int, c_in: int, c_out: int, width: int, n_layers: int, kernel_size: int
) -> list[nn.Module]:
    F.check_spatial_dims(spatial_dims)
    F.check_positive(c_in, "in_channels")
    F.check_positive(c_out, "out_channels")
    F.check_positive(width, "features")
    F.check_positive(n_layers, "n_layers")
    if kernel_size % 2 == 0 or kernel_size < 1:
        raise ValueError(
            f"kernel_size must be a positive odd int ('same' padding), got {kernel_size!r}"
        )
    layers: list[nn.Module] = []
    for i in range(n_layers - 1):
        layers += [
            F.conv(spatial_dims, c_in if i == 0 else width, width, kernel_size=kernel_size),
            nn.ReLU(),
        ]
    layers.append(
        F.conv(spatial_dims, c_in if n_layers == 1 else width, c_out, kernel_size=kernel_size)
    )
    return layers


class FCN(nn.Sequential):
    """Fully convolutional net: ``n_layers`` "same" convolutions, ReLU between them.

    Default = the thesis's FLAIR-synthesis FCN: three 3x3x3 layers of 64 filters with ReLU;
    the last layer outputs the prediction linearly (the target is z-scored, so it can be
    negative).

    Args:
        spatial_dims: 3 (the thesis) or 2.
        in_channels: input sequences C_in (5 in the thesis).
        out_channels: C_out.
        features: filters per hidden layer.
        n_layers: convolution layers including the output one.
        kernel_size: odd kernel.

    Shapes: (B, C_in, H, W[, D]) -> (B, C_out, H, W[, D]).

    References: Wei et al. 2019, "Fluid-attenuated inversion recovery MRI synthesis from
    multisequence MRI using 3D FCN" (thesis ch. 2).
    """

    def __init__(
        self, spatial_dims: int, in_channels: int, out_channels: int = 1, *, features: int = 64,
        n_layers: int = 3, kernel_size: int = 3,
    ) -> None:  # fmt: skip
        super().__init__(
            *_plain_stack(spatial_dims, in_channels, out_channels, features, n_layers, kernel_size)
        )


class CNN2Layer(nn.Sequential):
    """The 2-layer CNN baseline: 7x7x7 convolution (64 filters), ReLU, 7x7x7 convolution.

    Args:
        spatial_dims: 3 or 2.
        in_channels: C_in.
        out_channels: C_out.
        features: hidden filters (64 in the thesis; 10 in Li et al. 2014).
        kernel_size: 7.

    Shapes: (B, C_in, H, W[, D]) -> (B, C_out, H, W[, D]).

    References: Li et al. 2014 (deep learning for incomplete multi-modality data); thesis ch. 3.
    """

    def __init__(
        self, spatial_dims: int, in_channels: int, out_channels: int = 1, *, features: int = 64,
        kernel_size: int = 7,
    ) -> None:  # fmt: skip
        super().__init__(
            *_plain_stack(spatial_dims, in_channels, out_channels, features, 2, kernel_size)
        )


class VoxelMLP(nn.Sequential):
    """Voxel-wise MLP (1x1 convolutions): C_in -> 100 -> 100 -> C_out with ReLU.

    Each voxel is predicted from its own input intensities only, as the thesis's MLP
    baseline; written with 1x1(x1) convolutions so it runs on whole images.

    Args:
        spatial_dims: 1, 2 or 3.
        in_channels: C_in.
        out_channels: C_out.
        hidden: widths of the hidden layers (100, 100 in the thesis).

    Shapes: (B, C_in, H, W[, D]) -> (B, C_out, H, W[, D]).

    References: Wei 2020, PhD thesis ch. 2 (MLP baseline with 2 x 100 hidden units).
    """

    def __init__(
        self, spatial_dims: int, in_channels: int, out_channels: int = 1, *,
        hidden: tuple[int, ...] = (100, 100),
    ) -> None:  # fmt: skip
        F.check_spatial_dims(spatial_dims)
        F.check_positive(in_channels, "in_channels")
        F.check_positive(out_channels, "out_channels")
        if not hidden:
            raise ValueError("hidden needs at least one width")
        layers: list[nn.Module] = []
        c = in_channels
        for h in hidden:
            F.check_positive(h, "every hidden width")
            layers += [F.conv(spatial_dims, c, h, kernel_size=1), nn.ReLU()]
            c = h
        layers.append(F.conv(spatial_dims, c, out_channels, kernel_size=1))
        super().__init__(*layers)
