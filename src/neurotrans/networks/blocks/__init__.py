"""Building blocks: conv units, residual blocks, U-Net levels, self-attention, Glow steps,
DUAL-GLOW relation nets and side heads."""

from __future__ import annotations

from neurotrans.networks.blocks.attention import SelfAttention
from neurotrans.networks.blocks.conv import ConvBlock, ResidualBlock
from neurotrans.networks.blocks.flow import (
    ActNorm,
    AffineCoupling,
    FlowStep,
    InvertibleConv,
    squeeze,
    unsqueeze,
)
from neurotrans.networks.blocks.latent_heads import (
    SIDE_KINDS,
    LatentMean,
    RelationNet,
    SideHead,
    side_loss,
)
from neurotrans.networks.blocks.residual import ResDown, ResUp
from neurotrans.networks.blocks.resnet import ResnetBlock, padded_conv
from neurotrans.networks.blocks.sampling import DOWNSAMPLE, DecoderBlock, Downsample, EncoderBlock

__all__ = [
    "DOWNSAMPLE", "ConvBlock", "DecoderBlock", "Downsample", "EncoderBlock", "ResDown", "ResUp",
    "ResidualBlock", "SelfAttention", "ActNorm", "AffineCoupling", "FlowStep", "InvertibleConv",
    "squeeze", "unsqueeze", "ResnetBlock", "padded_conv", "SIDE_KINDS", "LatentMean", "RelationNet", "SideHead", "side_loss",
]  # fmt: skip
