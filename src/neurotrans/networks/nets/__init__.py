"""Complete networks: U-Net, PatchGAN, ESIT and the thesis's small baselines."""

from __future__ import annotations

from neurotrans.networks.nets.patchgan import PatchDiscriminator, patchgan_receptive_field
from neurotrans.networks.nets.unet import UNet, unet_esit, unet_pix2pix, unet_sketcher

__all__ = [
    "PatchDiscriminator",
    "UNet",
    "patchgan_receptive_field",
    "unet_esit",
    "unet_pix2pix",
    "unet_sketcher",
]
