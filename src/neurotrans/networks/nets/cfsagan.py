"""CF-SAGAN: residual U-Net generator and residual patch discriminator with flexible self-attention."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from neurotrans.networks.blocks.attention import SelfAttention
from neurotrans.networks.blocks.conv import ConvBlock
from neurotrans.networks.blocks.residual import ResDown, ResUp
from neurotrans.networks.checks import check_divisible, check_input
from neurotrans.networks.layers import factories as F
from neurotrans.networks.nets.patch_classifier import NonOverlappingPatchDiscriminator


class CFSAGANGenerator(nn.Module):
    """CF-SAGAN generator: conv + ResDown encoder, ResUp decoder, long skips, flexible attention.

    Encoder: a 3x3x3 conv (+ norm + LeakyReLU) to ``features[0]``, then one ResDown per
    further entry of ``features`` (16 -> 32 -> 64 -> 128 -> 256 in the thesis: "starts from
    16 and doubles after each convolutional layer or ResDown block"). Decoder: one ResUp
    per level back up; its output is concatenated with the encoder features of the same
    level (long skips at every level, U-Net style), and a 3x3x3 conv maps the last
    concatenation to ``out_channels``. One flexible self-attention sits in the encoder and
    one in the decoder at the same level ``attention_level`` (0 = full resolution, k =
    after k ResDown; the decoder's acts on the ResUp output before the concatenation).
    The thesis places them "between" the residual blocks without saying where (its Fig. 4.2
    is not in the text): level 2 of 4 is our reading, where a 64^3 training patch gives
    16^3 positions and pooling by 2 makes the attention map 512 x 512.

    Args:
        spatial_dims: 2 or 3 (1 works too).
        in_channels: C_in (MRI sequences; + 1 for the sketch in a Refiner).
        out_channels: C_out.
        features: channels of each level, outermost first (at least 2 entries).
        attention_level: None (no attention) or a level in [0, len(features) - 2].
        attention_pool: pooling size p of the flexible self-attention.
        attention_reduction: C / C' of key, query and value (8 in the thesis).
        norm: ``"batch"``, ``"instance"`` or ``"none"``.
        negative_slope: LeakyReLU slope (0.2 in the thesis).
        dropout: dropout rate inside every residual block (the thesis's 50 %; where exactly
            is not stated, this follows ch. 3's "after each LeakyReLU").
        final_activation: ``None`` (linear output for z-scored targets) or a name from
            ``FINAL_ACTIVATIONS``.

    Shapes: (B, C_in, H, W[, D]) -> (B, C_out, H, W[, D]); every spatial size must be
    divisible by 2**(len(features) - 1).

    References: Wei et al. 2020, "Predicting PET-derived myelin content from multisequence
    MRI for individual longitudinal analysis in multiple sclerosis" (CF-SAGAN, thesis ch. 4,
    Sec. 4.2.2 and 4.2.6, Fig. 4.2); He et al. 2016; Zhang et al. 2019 (SAGAN).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int = 1,
        *,
        features: Sequence[int] = (16, 32, 64, 128, 256),
        attention_level: int | None = 2,
        attention_pool: int = 2,
        attention_reduction: int = 8,
        norm: str = "batch",
        negative_slope: float = 0.2,
        dropout: float = 0.5,
        final_activation: str | None = None,
    ) -> None:
        super().__init__()
        F.check_spatial_dims(spatial_dims)
        F.check_positive(in_channels, "in_channels")
        F.check_positive(out_channels, "out_channels")
        features = tuple(features)
        if len(features) < 2:
            raise ValueError(f"features needs at least 2 entries (one ResDown), got {features!r}")
        for f in features:
            F.check_positive(f, "every entry of features")
        F.check_choice(norm, F.NORMS, "norm")
        F.check_probability(dropout, "dropout")
        F.check_choice(final_activation, (None, *F.FINAL_ACTIVATIONS), "final_activation")
        depth = len(features) - 1
        if attention_level is not None:
            if isinstance(attention_level, bool) or not 0 <= attention_level < depth:
                raise ValueError(
                    f"attention_level must be None or in [0, {depth - 1}], got {attention_level!r}"
                )
            F.check_positive(attention_pool, "attention_pool")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.depth = depth
        self.attention_level = attention_level
        opts = dict(norm=norm, negative_slope=negative_slope, dropout=dropout)
        self.stem = ConvBlock(spatial_dims, in_channels, features[0], kernel_size=3, **opts)
        self.downs = nn.ModuleList(
            ResDown(spatial_dims, features[i], features[i + 1], **opts) for i in range(depth)
        )
        self.ups = nn.ModuleList(
            ResUp(spatial_dims, features[depth] if i == depth - 1 else 2 * features[i + 1],
                  features[i], **opts)
            for i in range(depth)
        )  # fmt: skip
        if attention_level is None:
            self.enc_attention = self.dec_attention = None
        else:
            c = features[attention_level]
            kw = dict(reduction=attention_reduction, pool=attention_pool)
            self.enc_attention = SelfAttention(spatial_dims, c, **kw)
            self.dec_attention = SelfAttention(spatial_dims, c, **kw)
        self.head = F.conv(spatial_dims, 2 * features[0], out_channels, kernel_size=3)
        self.final = (
            nn.Identity()
            if final_activation is None
            else F.activation(final_activation, negative_slope=negative_slope)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate ``x``.

        Args:
            x: (B, C_in, H, W[, D]), spatial sizes divisible by 2**(len(features) - 1).

        Returns:
            (B, C_out, H, W[, D]).
        """
        check_input(x, self.spatial_dims, self.in_channels, "CFSAGANGenerator")
        check_divisible(x, self.depth, "CFSAGANGenerator")
        h = self.stem(x)
        skips = []
        for level in range(self.depth + 1):
            if level > 0:
                h = self.downs[level - 1](h)
            if level == self.attention_level:
                h = self.enc_attention(h)
            skips.append(h)
        for level in range(self.depth - 1, -1, -1):
            h = self.ups[level](h)
            if level == self.attention_level:
                h = self.dec_attention(h)
            h = torch.cat([skips[level], h], dim=1)
        return self.final(self.head(h))


def cfsagan_discriminator(
    spatial_dims: int, in_channels: int, *, patch_size: int | Sequence[int] = 32,
    features: Sequence[int] = (32, 64, 128), attention_level: int | None = 1,
    attention_pool: int = 2, norm: str = "batch",
) -> NonOverlappingPatchDiscriminator:  # fmt: skip
    """CF-SAGAN discriminator: the ch. 3 patch discriminator with every downsampling a ResDown
    block and a flexible self-attention after ``attention_level`` of them (thesis: "each
    downsampling operation is realized by a ResDown block", "the flexible self-attention unit
    is added"; widths and the attention's position are not given: 32-64-128 and level 1,
    pool 2, are ours).

    References: Wei et al. 2020 (CF-SAGAN, thesis ch. 4, Sec. 4.2.6, Fig. 4.2 c).
    """
    return NonOverlappingPatchDiscriminator(
        spatial_dims, in_channels, patch_size=patch_size, features=features, block="residual",
        norm=norm, negative_slope=0.2, attention_level=attention_level,
        attention_pool=attention_pool,
    )  # fmt: skip
