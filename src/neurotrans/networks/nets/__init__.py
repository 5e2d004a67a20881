"""Complete networks: U-Net, PatchGAN, ESIT, the thesis's small baselines, UNIT and CycleGAN's."""

from __future__ import annotations

from neurotrans.networks.nets.esit import ESIT
from neurotrans.networks.nets.multiscale import MultiScaleDiscriminator
from neurotrans.networks.nets.patchgan import PatchDiscriminator, patchgan_receptive_field
from neurotrans.networks.nets.resnet_generator import ResnetGenerator
from neurotrans.networks.nets.simple import FCN, CNN2Layer, VoxelMLP
from neurotrans.networks.nets.unet import (
    UNet,
    unet_esit,
    unet_esit_paper,
    unet_pix2pix,
    unet_sketcher,
)
from neurotrans.networks.nets.unit import UNIT

__all__ = [
    "ESIT", "FCN", "CNN2Layer", "PatchDiscriminator", "UNet", "VoxelMLP",
    "patchgan_receptive_field", "unet_esit", "unet_esit_paper", "unet_pix2pix", "unet_sketcher",
    "MultiScaleDiscriminator", "ResnetGenerator", "UNIT",
]  # fmt: skip
