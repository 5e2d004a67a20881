"""Dimension-generic layer factories: one call gives the 1D, 2D or 3D layer.

Every network in :mod:`neurotrans.networks` builds its layers through these functions so
that one class serves 2D slices and 3D volumes (the ``spatial_dims`` convention of MONAI).

References: MONAI (Cardoso et al. 2022), ``monai.networks.layers.factories``.
"""

from __future__ import annotations

from torch import nn

NORMS = ("batch", "instance", "none")
ACTIVATIONS = ("leakyrelu", "relu")
FINAL_ACTIVATIONS = ("tanh", "sigmoid", "leakyrelu", "relu")
POOLS = ("max", "avg")

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONV_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_BATCH = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_INSTANCE = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}
_MAXPOOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVGPOOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}


def check_spatial_dims(spatial_dims: int) -> int:
    """Return ``spatial_dims`` if it is 1, 2 or 3, else raise ``ValueError``."""
    if spatial_dims not in _CONV:
        raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims!r}")
    return spatial_dims


def check_choice(value: str | None, allowed: tuple[str, ...], what: str) -> None:
    """Raise ``ValueError`` naming ``what`` if ``value`` is not one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


def check_positive(value: int, what: str) -> None:
    """Raise ``ValueError`` unless ``value`` is a positive int."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")


def check_probability(value: float, what: str) -> None:
    """Raise ``ValueError`` unless ``0 <= value < 1``."""
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{what} must be in [0, 1), got {value!r}")


def conv(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    *,
    kernel_size: int = 3,
    stride: int = 1,
    padding: int | None = None,
    bias: bool = True,
) -> nn.Module:
    """Convolution; ``padding=None`` keeps the size for stride 1 and odd kernels ("same")."""
    check_spatial_dims(spatial_dims)
    check_positive(in_channels, "in_channels")
    check_positive(out_channels, "out_channels")
    check_positive(kernel_size, "kernel_size")
    pad = (kernel_size - 1) // 2 if padding is None else padding
    return _CONV[spatial_dims](in_channels, out_channels, kernel_size, stride, pad, bias=bias)


def down_conv(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    *,
    kernel_size: int = 4,
    bias: bool = True,
) -> nn.Module:
    """Stride-2 convolution halving every even spatial size (kernel 2, 3 or 4)."""
    if kernel_size not in (2, 3, 4):
        raise ValueError(f"the downsampling kernel size must be 2, 3 or 4, got {kernel_size!r}")
    return conv(
        spatial_dims, in_channels, out_channels,
        kernel_size=kernel_size, stride=2, padding=(kernel_size - 1) // 2, bias=bias,
    )  # fmt: skip


def up_conv(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    *,
    kernel_size: int = 4,
    bias: bool = True,
) -> nn.Module:
    """Stride-2 transposed convolution doubling every spatial size (kernel 2, 3 or 4).

    The padding/output-padding pair is chosen so that the output is exactly ``2 * n``:
    out = (n - 1) * 2 - 2 * p + k + op.
    """
    check_spatial_dims(spatial_dims)
    if kernel_size not in (2, 3, 4):
        raise ValueError(f"the upsampling kernel size must be 2, 3 or 4, got {kernel_size!r}")
    check_positive(in_channels, "in_channels")
    check_positive(out_channels, "out_channels")
    return _CONV_T[spatial_dims](
        in_channels, out_channels, kernel_size, stride=2,
        padding=(kernel_size - 1) // 2, output_padding=kernel_size % 2, bias=bias,
    )  # fmt: skip


def norm(name: str, spatial_dims: int, channels: int) -> nn.Module:
    """Normalisation layer: ``"batch"``, ``"instance"`` (no affine, as pix2pix) or ``"none"``."""
    check_choice(name, NORMS, "norm")
    check_spatial_dims(spatial_dims)
    if name == "batch":
        return _BATCH[spatial_dims](channels)
    if name == "instance":
        return _INSTANCE[spatial_dims](channels, affine=False, track_running_stats=False)
    return nn.Identity()


def activation(name: str, *, negative_slope: float = 0.2) -> nn.Module:
    """Activation by name; LeakyReLU's default slope 0.2 is pix2pix's and the thesis's."""
    check_choice(name, FINAL_ACTIVATIONS, "activation")
    if name == "leakyrelu":
        return nn.LeakyReLU(negative_slope, inplace=False)
    if name == "relu":
        return nn.ReLU(inplace=False)
    if name == "tanh":
        return nn.Tanh()
    return nn.Sigmoid()


def dropout(p: float) -> nn.Module:
    """Element-wise dropout (``nn.Dropout`` works for any number of dims); identity for 0."""
    check_probability(p, "dropout")
    return nn.Dropout(p) if p > 0 else nn.Identity()


def pool(kind: str, spatial_dims: int, *, kernel_size: int = 2) -> nn.Module:
    """Pooling with stride = kernel size: ``"max"`` or ``"avg"``."""
    check_choice(kind, POOLS, "pool")
    check_spatial_dims(spatial_dims)
    table = _MAXPOOL if kind == "max" else _AVGPOOL
    return table[spatial_dims](kernel_size)
