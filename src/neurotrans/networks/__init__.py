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
    UNIT,
    CFSAGANGenerator,
    CNN2Layer,
    DualGlow,
    Glow,
    MultiScaleDiscriminator,
    NoiseInput,
    NonOverlappingPatchDiscriminator,
    PatchDiscriminator,
    ResnetGenerator,
    UNet,
    VoxelMLP,
    cfsagan_discriminator,
    patch_classifier,
    unet_esit,
    unet_esit_paper,
    unet_flair,
    unet_pix2pix,
    unet_sketcher,
    unet_sketcher_z,
)

NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "unet": UNet,
    "unet_pix2pix": unet_pix2pix,
    "unet_esit": unet_esit,
    "unet_esit_paper": unet_esit_paper,
    "unet_sketcher": unet_sketcher,
    "unet_sketcher_z": unet_sketcher_z,
    "unet_flair": unet_flair,
    "patchgan": PatchDiscriminator,
    "patch_classifier": patch_classifier,
    "patch_discriminator": NonOverlappingPatchDiscriminator,
    "cfsagan_generator": CFSAGANGenerator,
    "cfsagan_discriminator": cfsagan_discriminator,
    "esit": ESIT,
    "fcn": FCN,
    "cnn2layer": CNN2Layer,
    "voxel_mlp": VoxelMLP,
    "unit": UNIT,
    "multiscale_discriminator": MultiScaleDiscriminator,
    "resnet_generator": ResnetGenerator,
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
    "CFSAGANGenerator",
    "CNN2Layer",
    "DualGlow",
    "Glow",
    "NoiseInput",
    "NonOverlappingPatchDiscriminator",
    "VoxelMLP",
    "NETWORKS",
    "PatchDiscriminator",
    "UNet",
    "build_network",
    "cfsagan_discriminator",
    "patch_classifier",
    "unet_esit",
    "unet_esit_paper",
    "unet_flair",
    "unet_pix2pix",
    "unet_sketcher",
    "UNIT",
    "MultiScaleDiscriminator",
    "ResnetGenerator",
    "unet_sketcher_z",
]
