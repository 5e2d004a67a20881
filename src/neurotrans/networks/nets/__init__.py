"""Complete networks: U-Net, PatchGAN, ESIT, Glow / DUAL-GLOW and the thesis's small baselines."""

from __future__ import annotations

from neurotrans.networks.nets.dualglow import DualGlow
from neurotrans.networks.nets.esit import ESIT
from neurotrans.networks.nets.glow import Glow, padded_size
from neurotrans.networks.nets.patchgan import PatchDiscriminator, patchgan_receptive_field
from neurotrans.networks.nets.simple import FCN, CNN2Layer, VoxelMLP
from neurotrans.networks.nets.unet import UNet, unet_esit, unet_pix2pix, unet_sketcher

__all__ = [
    "ESIT", "FCN", "CNN2Layer", "DualGlow", "Glow", "PatchDiscriminator", "UNet", "VoxelMLP",
    "padded_size", "patchgan_receptive_field", "unet_esit", "unet_pix2pix", "unet_sketcher",
]  # fmt: skip
