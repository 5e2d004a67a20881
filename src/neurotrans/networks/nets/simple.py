"""The thesis's small networks: 3D FCN, the 2-layer 7x7x7 CNN and the voxel-wise MLP."""

from __future__ import annotations

from torch import nn

from neurotrans.networks.layers import factories as F

PADDINGS = ("same", "valid")


def _check_odd(kernel_size: int) -> None:
    if (
        isinstance(kernel_size, bool)
        or not isinstance(kernel_size, int)
        or kernel_size < 1
        or kernel_size % 2 == 0
    ):
        raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")


def _relu_stack(
    spatial_dims: int, widths: list[int], kernels: list[int], padding: str = "same"
) -> list[nn.Module]:
    """Convolutions ``widths[i] -> widths[i + 1]`` with ReLU between them, the last one linear."""
    F.check_spatial_dims(spatial_dims)
    F.check_choice(padding, PADDINGS, "padding")
    layers: list[nn.Module] = []
    for i, k in enumerate(kernels):
        pad = None if padding == "same" else 0
        layers.append(F.conv(spatial_dims, widths[i], widths[i + 1], kernel_size=k, padding=pad))
        if i < len(kernels) - 1:
            layers.append(nn.ReLU())
    return layers


class FCN(nn.Sequential):
    """3D fully convolutional net: ``hidden_layers`` convs of ``features`` filters + ReLU, then
    a linear ``features -> out_channels`` conv of the same kernel ("same" padding throughout).

    The default is the thesis's FLAIR-synthesis FCN: three 3x3x3 hidden layers of 64 filters
    and a 3x3x3 output layer. Table 2.1's parameter counts fix three hidden layers: with 5
    input sequences this gives 60,577 (F=32, thesis "60.6 K") and 513,505 (F=96, "513.5 K")
    parameters; F=64 gives 231,745, where the thesis prints "213.7 K" (digits transposed:
    no depth of this family gives 213.7 K, two hidden layers give 121,089). The thesis's depth
    study L = 2, 3, 4, 6 is ``hidden_layers``. The output is linear since the target is
    z-scored (negative values allowed).

    Args:
        spatial_dims: 3 (the thesis) or 2.
        in_channels: input sequences C_in (5 in the thesis: T1-w, T2-w, PD, T1SE, DIR).
        out_channels: C_out (1: FLAIR).
        features: filters F of every hidden layer (32, 64, 96 in Table 2.1).
        hidden_layers: number of ReLU conv layers before the output conv (2, 3, 4, 6).
        kernel_size: odd kernel (3).

    Shapes: (B, C_in, H, W[, D]) -> (B, C_out, H, W[, D]).

    References: Wei et al. 2019, "Fluid-attenuated inversion recovery MRI synthesis from
    multisequence MRI using three-dimensional fully convolutional networks for multiple
    sclerosis" (Wei 2020 PhD thesis ch. 2, Fig. 2.2, Table 2.1).
    """

    def __init__(
        self, spatial_dims: int, in_channels: int, out_channels: int = 1, *, features: int = 64,
        hidden_layers: int = 3, kernel_size: int = 3,
    ) -> None:  # fmt: skip
        F.check_positive(in_channels, "in_channels")
        F.check_positive(out_channels, "out_channels")
        F.check_positive(features, "features")
        F.check_positive(hidden_layers, "hidden_layers")
        _check_odd(kernel_size)
        widths = [in_channels] + [features] * hidden_layers + [out_channels]
        super().__init__(*_relu_stack(spatial_dims, widths, [kernel_size] * (hidden_layers + 1)))


class CNN2Layer(nn.Sequential):
    """The 2-layer CNN of Li et al.: two ``kernel_size`` conv layers of ``features`` maps with
    ReLU, then a 1x1x1 output layer mapping them to ``out_channels``.

    Li et al. 2014 map a 15^3 MRI patch to a 3^3 PET patch with two valid 7^3 convolutions
    (15 -> 9 -> 3) of 10 maps each and an output layer connecting the 10 maps at each voxel
    (a 1^3 convolution): 37,761 parameters for one input. The thesis (ch. 3) keeps the two
    7x7x7 layers with 64 maps. ``padding="same"`` (default) zero-pads so that whole volumes
    map to whole volumes; it equals Li's valid network more than 6 voxels from the border.
    ``padding="valid"`` is Li's patch-to-patch form (output smaller by 2 * (kernel_size - 1)).
    Li et al. do not state the hidden activation here; ReLU as in the thesis's other nets.

    Args:
        spatial_dims: 3 or 2.
        in_channels: C_in.
        out_channels: C_out.
        features: maps per hidden layer (64 in the thesis; 10 in Li et al. 2014).
        kernel_size: odd kernel of the two hidden layers (7).
        padding: ``"same"`` or ``"valid"``.

    Shapes: (B, C_in, H, W[, D]) -> (B, C_out, H, W[, D]) for "same", each spatial size
    minus 2 * (kernel_size - 1) for "valid".

    References: Li et al. 2014, "Deep learning based imaging data completion for improved
    brain disease diagnosis" (MICCAI); Wei 2020 PhD thesis ch. 3.3.2.
    """

    def __init__(
        self, spatial_dims: int, in_channels: int, out_channels: int = 1, *, features: int = 64,
        kernel_size: int = 7, padding: str = "same",
    ) -> None:  # fmt: skip
        F.check_positive(in_channels, "in_channels")
        F.check_positive(out_channels, "out_channels")
        F.check_positive(features, "features")
        _check_odd(kernel_size)
        widths = [in_channels, features, features, out_channels]
        super().__init__(*_relu_stack(spatial_dims, widths, [kernel_size, kernel_size, 1], padding))


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
        F.check_positive(in_channels, "in_channels")
        F.check_positive(out_channels, "out_channels")
        if not hidden:
            raise ValueError("hidden needs at least one width")
        for h in hidden:
            F.check_positive(h, "every hidden width")
        widths = [in_channels, *hidden, out_channels]
        super().__init__(*_relu_stack(spatial_dims, widths, [1] * (len(hidden) + 1)))
