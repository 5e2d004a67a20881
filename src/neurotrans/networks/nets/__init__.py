"""Complete networks: U-Nets, PatchGAN, ESIT, Glow / DUAL-GLOW, the thesis's small baselines, patch
classifiers, CF-SAGAN, UNIT and CycleGAN's generator."""

from __future__ import annotations

from neurotrans.networks.nets.cfsagan import CFSAGANGenerator, cfsagan_discriminator
from neurotrans.networks.nets.dualglow import DualGlow
from neurotrans.networks.nets.esit import ESIT
from neurotrans.networks.nets.glow import Glow, padded_size
from neurotrans.networks.nets.multiscale import MultiScaleDiscriminator
from neurotrans.networks.nets.noise import NoiseInput, unet_sketcher_z
from neurotrans.networks.nets.patch_classifier import (
    NonOverlappingPatchDiscriminator,
    patch_classifier,
    split_patches,
)
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
from neurotrans.networks.nets.unet_presets_flair import unet_flair
from neurotrans.networks.nets.unit import UNIT

__all__ = [
    "ESIT", "FCN", "UNIT", "CFSAGANGenerator", "CNN2Layer", "DualGlow", "Glow", "MultiScaleDiscriminator",
    "NoiseInput", "padded_size",
    "NonOverlappingPatchDiscriminator", "PatchDiscriminator", "ResnetGenerator", "UNet", "VoxelMLP",
    "cfsagan_discriminator", "patch_classifier", "patchgan_receptive_field", "split_patches", "unet_esit",
    "unet_esit_paper", "unet_flair", "unet_pix2pix", "unet_sketcher", "unet_sketcher_z",
]  # fmt: skip
