"""The U-Net baseline of the thesis's FLAIR-synthesis chapter, built on ``UNet``."""

from __future__ import annotations

from neurotrans.networks.blocks.sampling import EncoderBlock
from neurotrans.networks.layers import factories as F
from neurotrans.networks.nets.unet import UNet


def unet_flair(
    spatial_dims: int, in_channels: int, out_channels: int = 1, *, base: int = 16
) -> UNet:
    """The thesis's ch.-2 U-Net: 2 down blocks (two 3x3x3 convs + max-pooling, widths 16, 32),
    a bottleneck of two 64-wide convs, 2 up blocks (stride-2 2x2x2 deconvolution, skip
    concatenation, two 3x3x3 convs), ReLU, no normalisation, a linear 1x1x1 output.

    The text gives the encoder and the bottleneck but neither the decoder's conv widths nor
    the deconvolution kernel; its parameter count (375.6 K for 5 inputs) pins them. Among
    decoders of 16/32/64 widths, 2 or 3 deconvolution kernels and 1 or 3 output kernels
    (with or without batch norm) only one rounds to 375.6 K: deconvolutions to the skip's
    width (64 -> 32, 32 -> 16) with 2x2x2 kernels and 32-wide convs in *both* up blocks,
    375,585 parameters (the mirror-image decoder, 16 wide at the top, has 340,977). So the
    outermost decoder level's convolutions (and the head's input) are ``2 * base`` wide:
    the mirror U-Net is built, then that level's convolutions and the head are replaced.
    Keras/Theano defaults otherwise: biases everywhere, no batch norm (the thesis names none).

    Args:
        spatial_dims: 3 (thesis) or 2.
        in_channels: input sequences (5 in the thesis).
        out_channels: 1 (FLAIR).
        base: width of the first block (16); the others scale with it.

    Shapes: (B, C_in, H, W[, D]) -> (B, C_out, H, W[, D]); sizes divisible by 4.

    References: Wei 2020, PhD thesis ch. 2.2.3 (U-Net baseline) and 2.3.2 ("375.6K");
    Ronneberger et al. 2015 (U-Net).
    """
    F.check_positive(base, "base")
    net = UNet(
        spatial_dims, in_channels, out_channels, features=(base, 2 * base, 4 * base),
        convs_per_level=2, kernel_size=3, down_kernel_size=2, norm="none", activation="relu",
        up_activation="relu", downsample="maxpool", final_activation=None,
    )  # fmt: skip
    top = net.decoders[0]  # up-conv 2b -> b kept; its convs (b + b -> b -> b) widened to 2b
    top.convs = EncoderBlock(
        spatial_dims, 2 * base, 2 * base, n_convs=2, kernel_size=3, norm="none", activation="relu"
    )
    net.head = F.conv(spatial_dims, 2 * base, out_channels, kernel_size=1)
    return net
