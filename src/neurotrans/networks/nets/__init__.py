"""Complete networks: U-Net, PatchGAN, ESIT and the thesis's small baselines."""

from __future__ import annotations

from neurotrans.networks.nets.esit import ESIT
from neurotrans.networks.nets.patchgan import PatchDiscriminator, patchgan_receptive_field
from neurotrans.networks.nets.simple import FCN, CNN2Layer, VoxelMLP
from neurotrans.networks.nets.unet import UNet, unet_esit, unet_pix2pix, unet_sketcher
from neurotrans.networks.nets.unet_presets_flair import unet_flair

__all__ = [
    "ESIT", "FCN", "CNN2Layer", "PatchDiscriminator", "UNet", "VoxelMLP",
    "patchgan_receptive_field", "unet_esit", "unet_flair", "unet_pix2pix", "unet_sketcher",
]  # fmt: skip
