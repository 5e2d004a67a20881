"""Networks: plain ``nn.Module``s, 2D and 3D from one class (``spatial_dims``).

``layers/`` (dimension-generic factories) -> ``blocks/`` (conv units, U-Net levels) ->
``nets/`` (complete networks). ``NETWORKS`` is the explicit registry behind
``build_network(name, **kwargs)``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from neurotrans.names import check_name
from neurotrans.networks.nets import (
    ESIT,
    FCN,
    CNN2Layer,
    DualGlow,
    Glow,
    PatchDiscriminator,
    UNet,
    VoxelMLP,
    unet_esit,
    unet_pix2pix,
    unet_sketcher,
)

NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "unet": UNet,
    "unet_pix2pix": unet_pix2pix,
    "unet_esit": unet_esit,
    "unet_sketcher": unet_sketcher,
    "patchgan": PatchDiscriminator,
    "esit": ESIT,
    "fcn3d": FCN,
    "cnn2layer": CNN2Layer,
    "voxel_mlp": VoxelMLP,
}


def build_network(name: str, **kwargs) -> nn.Module:
    """Build the network registered as ``name`` with keyword arguments ``kwargs``.

    Raises:
        ValueError: unknown name (with close matches) or bad hyper-parameters.
    """
    check_name(name, tuple(NETWORKS), "network")
    return NETWORKS[name](**kwargs)


__all__ = [
    "ESIT",
    "FCN",
    "CNN2Layer",
    "DualGlow",
    "Glow",
    "VoxelMLP",
    "NETWORKS",
    "PatchDiscriminator",
    "UNet",
    "build_network",
    "unet_esit",
    "unet_pix2pix",
    "unet_sketcher",
]
