"""The thesis's patch discriminator: the volume is cut into non-overlapping patches, each classified."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from neurotrans.networks.blocks.attention import SelfAttention
from neurotrans.networks.blocks.conv import ConvBlock
from neurotrans.networks.blocks.residual import ResDown
from neurotrans.networks.checks import check_input
from neurotrans.networks.layers import factories as F

PATCH_BLOCKS = ("conv", "residual")
PATCH_DOWNSAMPLE = ("maxpool", "avgpool")


def split_patches(x: torch.Tensor, patch_size: Sequence[int]) -> torch.Tensor:
    """Cut ``x`` into non-overlapping patches, batch-major then raster order.

    Args:
        x: (B, C, S_1, ..., S_d) with every S_i divisible by ``patch_size[i]``.
        patch_size: d patch sizes (P_1, ..., P_d).

    Returns:
        (B * N, C, P_1, ..., P_d) with N = prod(S_i / P_i); patch (b, n) is row b * N + n,
        n counting the patch grid in C order.
    """
    b, c, *sizes = x.shape
    if len(sizes) != len(patch_size) or any(s % p for s, p in zip(sizes, patch_size, strict=True)):
        raise ValueError(
            f"spatial size {tuple(sizes)} is not a multiple of the patch size {tuple(patch_size)}; "
            "pad or crop the volume to a multiple of it"
        )
    d = len(sizes)
    interleaved = [v for s, p in zip(sizes, patch_size, strict=True) for v in (s // p, p)]
    perm = [0, *(2 + 2 * i for i in range(d)), 1, *(3 + 2 * i for i in range(d))]
    return x.reshape(b, c, *interleaved).permute(perm).reshape(-1, c, *patch_size)


class NonOverlappingPatchDiscriminator(nn.Module):
    """Conditional patch discriminator: every non-overlapping patch gets real/fake logits.

    The input (condition MRI channels concatenated with the real or synthetic PET) is cut
    into a grid of ``patch_size`` patches; one shared classifier scores each patch on its
    own: ``len(features)`` levels of [3x3x3 stride-1 conv + norm + LeakyReLU + 2x
    downsampling] (``block="conv"``, thesis ch. 3) or of ResDown blocks (``block=
    "residual"``, the CF-SAGAN discriminator of ch. 4), an optional flexible self-attention
    after ``attention_level`` levels, then a fully connected layer to 2 logits (fake, real;
    softmax = the thesis's 2-node softmax). Patches never see each other's voxels, but in
    training mode batch norm pools its statistics over all patches of the batch (eval mode
    makes them fully independent).

    Args:
        spatial_dims: 2 or 3 (1 works too).
        in_channels: C_in = condition channels + image channels.
        patch_size: patch side in voxels (int, or one per axis); each must be divisible by
            ``2**len(features)``. Not given in the thesis; 32 splits a 64^3 training patch
            into 8 and a 128x160x128 volume into 80.
        features: channels of each level (their count is the number of downsamplings).
        block: ``"conv"`` or ``"residual"``.
        downsample: ``"maxpool"`` or ``"avgpool"`` after each ``"conv"`` level (ResDown
            downsamples with strided convolutions itself).
        norm: ``"batch"``, ``"instance"`` or ``"none"``.
        negative_slope: LeakyReLU slope.
        attention_level: None (no attention) or the number of levels (1..len(features))
            before the flexible self-attention.
        attention_pool: pooling size p of that attention.
        attention_reduction: C / C' of its key, query and value.

    Shapes: (B, C_in, S_1, ..., S_d) -> (B, 2, S_1/P_1, ..., S_d/P_d) logits; channel 0 =
    fake, 1 = real (use ``adversarial_loss(..., mode="softmax")``). Every S_i must be a
    multiple of P_i (``forward`` raises ``ValueError`` otherwise).

    References: Wei et al. 2019, "Predicting PET-derived demyelination from multimodal MRI
    using sketcher-refiner adversarial training" (thesis ch. 3, Fig. 3.3 B); Wei et al.
    2020, CF-SAGAN (thesis ch. 4, Fig. 4.2 c).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        *,
        patch_size: int | Sequence[int] = 32,
        features: Sequence[int] = (32, 64, 128),
        block: str = "conv",
        downsample: str = "maxpool",
        norm: str = "batch",
        negative_slope: float = 0.2,
        attention_level: int | None = None,
        attention_pool: int = 1,
        attention_reduction: int = 8,
    ) -> None:
        super().__init__()
        F.check_spatial_dims(spatial_dims)
        F.check_positive(in_channels, "in_channels")
        features = tuple(features)
        if not features:
            raise ValueError("features needs at least one level")
        for f in features:
            F.check_positive(f, "every entry of features")
        F.check_choice(block, PATCH_BLOCKS, "block")
        F.check_choice(downsample, PATCH_DOWNSAMPLE, "downsample")
        F.check_choice(norm, F.NORMS, "norm")
        sizes = (patch_size,) * spatial_dims if isinstance(patch_size, int) else tuple(patch_size)
        if len(sizes) != spatial_dims:
            raise ValueError(f"patch_size needs {spatial_dims} entries, got {patch_size!r}")
        for s in sizes:
            F.check_positive(s, "patch_size")
        n = len(features)
        if any(s % 2**n for s in sizes):
            raise ValueError(
                f"patch_size {sizes} must be divisible by 2**len(features) = {2**n} "
                f"(one halving per level)"
            )
        if attention_level is not None:
            if not 1 <= attention_level <= n:
                raise ValueError(f"attention_level must be None or in [1, {n}], got {attention_level!r}")
            F.check_positive(attention_pool, "attention_pool")
            if any(s // 2**attention_level < attention_pool for s in sizes):
                raise ValueError(
                    f"attention_pool={attention_pool} exceeds the feature size "
                    f"{tuple(s // 2**attention_level for s in sizes)} at attention_level={attention_level}"
                )
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.patch_size = sizes
        layers: list[nn.Module] = []
        cin = in_channels
        for level, cout in enumerate(features, start=1):
            if block == "conv":
                layers += [
                    ConvBlock(spatial_dims, cin, cout, kernel_size=3, norm=norm,
                              activation="leakyrelu", negative_slope=negative_slope),
                    F.pool("max" if downsample == "maxpool" else "avg", spatial_dims),
                ]  # fmt: skip
            else:
                layers.append(ResDown(spatial_dims, cin, cout, norm=norm, negative_slope=negative_slope))
            if level == attention_level:
                layers.append(
                    SelfAttention(spatial_dims, cout, reduction=attention_reduction, pool=attention_pool)
                )
            cin = cout
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(features[-1] * math.prod(s // 2**n for s in sizes), 2)

    @property
    def size_multiple(self) -> int:
        """Inputs must be a whole number of patches along every axis (``Method.size_multiple``)."""
        return math.lcm(*self.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Real/fake logits of every patch.

        Args:
            x: (B, C_in, S_1, ..., S_d), condition and image concatenated on channels.

        Returns:
            (B, 2, S_1/P_1, ..., S_d/P_d) logits (fake, real) on the patch grid.
        """
        check_input(x, self.spatial_dims, self.in_channels, "NonOverlappingPatchDiscriminator")
        grid = [s // p for s, p in zip(x.shape[2:], self.patch_size, strict=True)]
        tiles = split_patches(x, self.patch_size)
        logits = self.head(self.body(tiles).flatten(1))  # (B * N, 2)
        return logits.view(x.shape[0], *grid, 2).movedim(-1, 1)


def patch_classifier(
    spatial_dims: int, in_channels: int, *, patch_size: int | Sequence[int] = 32,
    features: Sequence[int] = (32, 64, 128), norm: str = "batch",
) -> NonOverlappingPatchDiscriminator:  # fmt: skip
    """The Sketcher-Refiner discriminator (thesis ch. 3): conv + BN + LeakyReLU(0.2) + max-pool
    levels on non-overlapping patches, a 2-node fully connected layer, no attention.

    References: Wei et al. 2019 (thesis ch. 3, Fig. 3.3 B).
    """
    return NonOverlappingPatchDiscriminator(
        spatial_dims, in_channels, patch_size=patch_size, features=features, block="conv",
        downsample="maxpool", norm=norm, negative_slope=0.2,
    )  # fmt: skip
