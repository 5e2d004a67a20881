"""Building blocks: conv units, residual blocks, U-Net encoder/decoder levels."""

from __future__ import annotations

from neurotrans.networks.blocks.conv import ConvBlock, ResidualBlock
from neurotrans.networks.blocks.sampling import DOWNSAMPLE, DecoderBlock, Downsample, EncoderBlock

__all__ = ["DOWNSAMPLE", "ConvBlock", "DecoderBlock", "Downsample", "EncoderBlock", "ResidualBlock"]
