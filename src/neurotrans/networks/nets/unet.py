"""U-Net generator, 2D and 3D: the pix2pix unet_256, the ESIT paper's variant, the thesis's 3D U-Net."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from neurotrans.networks.blocks.sampling import DOWNSAMPLE, DecoderBlock, Downsample, EncoderBlock
from neurotrans.networks.checks import check_divisible, check_input
from neurotrans.networks.layers import factories as F


class UNet(nn.Module):
    """U-Net with skip connections; ``spatial_dims`` picks 2D or 3D.

    Two topologies, chosen by ``convs_per_level``:

    * ``convs_per_level=0``, the pix2pix generator (``UnetSkipConnectionBlock``): level l is
      one stride-2 ``down_kernel_size`` convolution to ``features[l]`` (pre-activated:
      ``act -> conv -> norm``; no act on the first, no norm on the innermost), the skip is
      taken after it, and the decoder mirrors it with ``up_act -> transposed conv -> norm
      [-> dropout]``, the last one mapping to ``out_channels``. depth = ``len(features)``.
    * ``convs_per_level>=1``, the classic U-Net (Ronneberger): level l is ``convs_per_level``
      "same" convolutions to ``features[l]`` (the skip), then downsampling (strided conv or
      max-pooling); the bottleneck has ``features[-1]``; each decoder level is transposed
      conv, concatenation, convolutions; a 1x1 convolution gives ``out_channels``.
      depth = ``len(features) - 1``.

    Dropout goes into the ``dropout_blocks`` decoder blocks nearest the bottleneck (pix2pix
    counts the innermost up-convolution as part of the bottleneck, as its reference code does);
    ``dropout_blocks=None`` puts it after every convolution except the output one (thesis).

    Args:
        spatial_dims: 2 (slices) or 3 (volumes).
        in_channels: input channels C_in (sequences, tissue maps, 2.5D neighbours).
        out_channels: output channels C_out.
        features: channels per level, outermost first.
        convs_per_level: 0 for the pix2pix topology, else convolutions per level.
        kernel_size: kernel of the "same" convolutions (odd).
        down_kernel_size: kernel of strided and transposed convolutions (2, 3 or 4).
        norm: ``"batch"``, ``"instance"`` or ``"none"``.
        activation: encoder activation, ``"leakyrelu"`` or ``"relu"``.
        up_activation: decoder activation; ``None`` = ``activation``.
        negative_slope: LeakyReLU slope.
        downsample: ``"strided"`` or ``"maxpool"`` (max-pooling then a "same" conv in the
            pix2pix topology).
        dropout: dropout probability.
        dropout_blocks: decoder blocks with dropout, or ``None`` for everywhere.
        norm_after_activation: ``conv -> act -> norm`` (thesis) instead of ``conv -> norm -> act``.
        final_activation: ``None``, ``"tanh"``, ``"sigmoid"``, ``"leakyrelu"`` or ``"relu"``.
        encoder_convs: classic topology only: "same" convolutions of each encoder level before
            its downsampling; ``None`` = ``convs_per_level`` (bottleneck and decoder always have
            ``convs_per_level``). ``convs_per_level - 1`` makes the strided convolution
            *replace* the level's last convolution, as the ESIT paper's U-Net does.
        plain_up_conv: classic topology only: the decoder's transposed convolution is linear
            (no norm, no activation), Ronneberger's "up-convolution".

    Shapes: (B, C_in, H, W[, D]) -> (B, C_out, H, W[, D]); every spatial size must be
    divisible by 2**depth (``forward`` raises ``ValueError`` otherwise; pad first).

    References: Ronneberger et al. 2015 (U-Net); Isola et al. 2017 (pix2pix unet_256);
    the ESIT paper (IN, LeakyReLU, strided convolutions); Wei 2020 thesis ch. 3 (3D U-Net).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        *,
        features: Sequence[int] = (64, 128, 256, 512, 512, 512, 512, 512),
        convs_per_level: int = 0,
        kernel_size: int = 3,
        down_kernel_size: int = 4,
        norm: str = "batch",
        activation: str = "leakyrelu",
        up_activation: str | None = "relu",
        negative_slope: float = 0.2,
        downsample: str = "strided",
        dropout: float = 0.0,
        dropout_blocks: int | None = 0,
        norm_after_activation: bool = False,
        final_activation: str | None = None,
        encoder_convs: int | None = None,
        plain_up_conv: bool = False,
    ) -> None:
        super().__init__()
        F.check_spatial_dims(spatial_dims)
        F.check_positive(in_channels, "in_channels")
        F.check_positive(out_channels, "out_channels")
        features = tuple(features)
        for f in features:
            F.check_positive(f, "every entry of features")
        if (
            isinstance(convs_per_level, bool)
            or not isinstance(convs_per_level, int)
            or convs_per_level < 0
        ):
            raise ValueError(f"convs_per_level must be an int >= 0, got {convs_per_level!r}")
        min_len = 1 if convs_per_level == 0 else 2
        if len(features) < min_len:
            raise ValueError(
                f"features needs at least {min_len} entries for convs_per_level={convs_per_level}"
            )
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd ('same' padding), got {kernel_size}")
        if down_kernel_size not in (2, 3, 4):
            raise ValueError(f"down_kernel_size must be 2, 3 or 4, got {down_kernel_size!r}")
        F.check_choice(norm, F.NORMS, "norm")
        F.check_choice(activation, F.ACTIVATIONS, "activation")
        up_activation = activation if up_activation is None else up_activation
        F.check_choice(up_activation, F.ACTIVATIONS, "up_activation")
        F.check_choice(downsample, DOWNSAMPLE, "downsample")
        F.check_probability(dropout, "dropout")
        F.check_choice(final_activation, (None, *F.FINAL_ACTIVATIONS), "final_activation")
        if convs_per_level == 0 and norm_after_activation:
            raise ValueError(
                "norm_after_activation applies to convs_per_level >= 1; the pix2pix "
                "topology is pre-activated (act -> conv -> norm)"
            )
        if convs_per_level == 0 and (encoder_convs is not None or plain_up_conv):
            raise ValueError("encoder_convs and plain_up_conv apply to convs_per_level >= 1 "
                             "(the classic topology)")
        if encoder_convs is not None:
            F.check_positive(encoder_convs, "encoder_convs")
        self.depth = len(features) if convs_per_level == 0 else len(features) - 1
        if dropout_blocks is not None and not 0 <= dropout_blocks <= self.depth:
            raise ValueError(
                f"dropout_blocks must be in [0, depth={self.depth}] or None, got {dropout_blocks!r}"
            )
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.features = features
        self.convs_per_level = convs_per_level
        self.encoder_convs = convs_per_level if encoder_convs is None else encoder_convs
        self.plain_up_conv = bool(plain_up_conv)
        opts = dict(
            spatial_dims=spatial_dims, norm=norm, negative_slope=negative_slope, dropout=dropout,
            dropout_blocks=dropout_blocks, norm_after_activation=norm_after_activation,
            kernel_size=kernel_size, down_kernel_size=down_kernel_size, downsample=downsample,
        )  # fmt: skip
        if convs_per_level == 0:
            self._build_pix2pix(
                in_channels, out_channels, features, activation, up_activation, **opts
            )
        else:
            self._build_classic(
                in_channels, out_channels, features, activation, up_activation, **opts
            )
        self.final = (
            nn.Identity()
            if final_activation is None
            else F.activation(final_activation, negative_slope=negative_slope)
        )

    # -- pix2pix topology ---------------------------------------------------------------
    def _build_pix2pix(
        self, c_in: int, c_out: int, feats: tuple[int, ...], act: str, up_act: str, *,
        spatial_dims: int, norm: str, negative_slope: float, dropout: float,
        dropout_blocks: int | None, norm_after_activation: bool, kernel_size: int,
        down_kernel_size: int, downsample: str,
    ) -> None:  # fmt: skip
        depth, bias = len(feats), norm != "batch"

        def nrm(c: int) -> nn.Module:
            return F.norm(norm, spatial_dims, c)

        def a(name: str) -> nn.Module:
            return F.activation(name, negative_slope=negative_slope)

        downs, ups = [], []
        for lvl in range(depth):
            cin = c_in if lvl == 0 else feats[lvl - 1]
            if downsample == "strided":
                conv = [
                    F.down_conv(
                        spatial_dims, cin, feats[lvl], kernel_size=down_kernel_size, bias=bias
                    )
                ]
            else:
                conv = [F.pool("max", spatial_dims),
                        F.conv(spatial_dims, cin, feats[lvl], kernel_size=kernel_size, bias=bias)]  # fmt: skip
            layers = ([] if lvl == 0 else [a(act)]) + conv
            if 0 < lvl < depth - 1:
                layers.append(nrm(feats[lvl]))
            if dropout_blocks is None and 0 < lvl < depth - 1:
                layers.append(F.dropout(dropout))
            downs.append(nn.Sequential(*layers))
        for lvl in range(depth):
            cin = feats[lvl] if lvl == depth - 1 else 2 * feats[lvl]
            cout = c_out if lvl == 0 else feats[lvl - 1]
            up = F.up_conv(
                spatial_dims, cin, cout, kernel_size=down_kernel_size, bias=bias or lvl == 0
            )
            if lvl == 0:
                ups.append(nn.Sequential(a(up_act), up))
                continue
            # decoder block index counted outwards from the bottleneck (innermost up-conv excluded)
            k = depth - 2 - lvl
            use_dropout = dropout_blocks is None or (lvl < depth - 1 and k < dropout_blocks)
            layers = [a(up_act), up, nrm(cout)]
            if use_dropout:
                layers.append(F.dropout(dropout))
            ups.append(nn.Sequential(*layers))
        self.down = nn.ModuleList(downs)
        self.up = nn.ModuleList(ups)

    # -- classic topology -----------------------------------------------------------------
    def _build_classic(
        self, c_in: int, c_out: int, feats: tuple[int, ...], act: str, up_act: str, *,
        spatial_dims: int, norm: str, negative_slope: float, dropout: float,
        dropout_blocks: int | None, norm_after_activation: bool, kernel_size: int,
        down_kernel_size: int, downsample: str,
    ) -> None:  # fmt: skip
        depth = len(feats) - 1
        everywhere = dropout if dropout_blocks is None else 0.0
        kw = dict(kernel_size=kernel_size, norm=norm, negative_slope=negative_slope,
                  norm_after_activation=norm_after_activation)  # fmt: skip
        n = self.convs_per_level
        self.encoders = nn.ModuleList(
            EncoderBlock(spatial_dims, c_in if i == 0 else feats[i - 1], feats[i], n_convs=self.encoder_convs,
                         activation=act, dropout=everywhere, **kw)
            for i in range(depth)
        )  # fmt: skip
        self.downsamples = nn.ModuleList(
            Downsample(spatial_dims, feats[i], mode=downsample, kernel_size=down_kernel_size, norm=norm,
                       activation=act, negative_slope=negative_slope, dropout=everywhere,
                       norm_after_activation=norm_after_activation)
            for i in range(depth)
        )  # fmt: skip
        self.bottleneck = EncoderBlock(spatial_dims, feats[depth - 1], feats[depth], n_convs=n,
                                       activation=act, dropout=everywhere, **kw)  # fmt: skip
        decoders = []
        for i in range(depth):
            k = depth - 1 - i  # 0 = nearest the bottleneck
            p = dropout if dropout_blocks is None or k < dropout_blocks else 0.0
            decoders.append(
                DecoderBlock(
                    spatial_dims,
                    feats[i + 1],
                    feats[i],
                    feats[i],
                    n_convs=n,
                    up_kernel_size=down_kernel_size,
                    plain_up=self.plain_up_conv,
                    activation=up_act,
                    dropout=p,
                    **kw,
                )
            )
        self.decoders = nn.ModuleList(decoders)
        self.head = F.conv(spatial_dims, feats[0], c_out, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate ``x``.

        Args:
            x: (B, C_in, H, W[, D]), spatial sizes divisible by 2**depth.

        Returns:
            (B, C_out, H, W[, D]).
        """
        check_input(x, self.spatial_dims, self.in_channels, "UNet")
        check_divisible(x, self.depth, "UNet")
        if self.convs_per_level == 0:
            skips = []
            h = x
            for down in self.down:
                h = down(h)
                skips.append(h)
            h = self.up[-1](skips[-1])
            for lvl in range(self.depth - 2, -1, -1):
                h = self.up[lvl](torch.cat([skips[lvl], h], dim=1))
            return self.final(h)
        skips = []
        h = x
        for enc, down in zip(self.encoders, self.downsamples, strict=True):
            h = enc(h)
            skips.append(h)
            h = down(h)
        h = self.bottleneck(h)
        for i in range(self.depth - 1, -1, -1):
            h = self.decoders[i](h, skips[i])
        return self.final(self.head(h))


def _widths(base: int, depth: int, cap: int) -> tuple[int, ...]:
    return tuple(min(base * 2**i, cap) for i in range(depth))


def unet_pix2pix(
    spatial_dims: int, in_channels: int, out_channels: int, *, base: int = 64, depth: int = 8,
    norm: str = "batch", dropout: float = 0.5,
) -> UNet:  # fmt: skip
    """The pix2pix generator: ``unet_256`` for depth 8 (``unet_128`` for 7), tanh output.

    Widths base, 2base, 4base, 8base, 8base, ...; 4x4 stride-2 convolutions, BN,
    LeakyReLU(0.2) encoder / ReLU decoder, dropout 0.5 in the decoder blocks of width
    8 * base except the innermost, as the reference code (3 blocks for depth 8, 2 for 7,
    none below 6).

    References: Isola et al. 2017, "Image-to-image translation with conditional adversarial networks".
    """
    F.check_positive(depth, "depth")
    F.check_positive(base, "base")
    return UNet(
        spatial_dims, in_channels, out_channels, features=_widths(base, depth, 8 * base),
        convs_per_level=0, down_kernel_size=4, norm=norm, activation="leakyrelu", up_activation="relu",
        dropout=dropout, dropout_blocks=max(depth - 5, 0), final_activation="tanh",
    )  # fmt: skip


def unet_esit(
    spatial_dims: int, in_channels: int, out_channels: int, *, base: int = 64, depth: int = 4,
    final_activation: str | None = None,
) -> UNet:  # fmt: skip
    """The ESIT paper's U-Net: Ronneberger's U-Net (2 convs per level, widths doubling from
    ``base``) with instance norm, LeakyReLU and strided convolutions instead of max-pooling.

    References: the ESIT paper (T1-MRI to FDG-PET, CCA and ESIT); Ronneberger et al. 2015.
    """
    F.check_positive(depth, "depth")
    F.check_positive(base, "base")
    return UNet(
        spatial_dims, in_channels, out_channels, features=tuple(base * 2**i for i in range(depth + 1)),
        convs_per_level=2, kernel_size=3, down_kernel_size=4, norm="instance", activation="leakyrelu",
        up_activation="leakyrelu", downsample="strided", final_activation=final_activation,
    )  # fmt: skip


def unet_esit_paper(
    spatial_dims: int, in_channels: int, out_channels: int, *, base: int = 64, depth: int = 4,
    final_activation: str | None = None,
) -> UNet:  # fmt: skip
    """The ESIT paper's U-Net read literally: a strided conv *replaces* each level's second conv.

    The paper takes Ronneberger's U-Net and substitutes "those convolution layers followed by
    the maxpooling operation" with strided convolutions. Each encoder level is therefore one
    3x3 conv (its output is the skip) then one 4x4 stride-2 conv; the bottleneck and every
    decoder level keep two 3x3 convs; the up-convolution is linear, as in Ronneberger. IN and
    LeakyReLU(0.2) everywhere. With ``depth=4`` (Ronneberger's 4 poolings) this gives 18
    LeakyReLU activations, the paper's count; ``4 * depth + 2`` in general.

    Activation indices (``depth=4``; input size H; as named by
    :func:`neurotrans.explain.activations.record_activations`):

    ======== ===================================== ========== ==========
    actv     layer                                 resolution channels
    ======== ===================================== ========== ==========
    1, 2     level 1: 3x3 conv (skip), strided conv H, H/2    b, b
    3, 4     level 2                               H/2, H/4   2b, 2b
    5, 6     level 3                               H/4, H/8   4b, 4b
    7, 8     level 4                               H/8, H/16  8b, 8b
    9, 10    bottleneck, two 3x3 convs             H/16       16b
    11, 12   decoder level 4 (after up-conv+skip)  H/8        8b
    13, 14   decoder level 3                       H/4        4b
    15, 16   decoder level 2                       H/2        2b
    17, 18   decoder level 1, then the 1x1 head    H          b
    ======== ===================================== ========== ==========

    So the paper's "bottleneck" actv9-12 are the coarsest layers (H/16 and the first decoder
    level at H/8) and actv15 is decoder level 2. :func:`unet_esit` keeps both convs per level
    and adds the strided conv and an activated up-conv: 26 activations (level l: actv 3l-2,
    3l-1 convs, 3l strided; bottleneck 13-14; decoder level 4: 15 up-conv, 16-17 convs, ...,
    level 1: 24 up-conv, 25-26), so its indices do not line up with the paper's.

    References: the ESIT paper ("Demystifying T1-MRI to FDG-PET translation", Sec. 3 and
    Fig. 3); Ronneberger et al. 2015.
    """
    F.check_positive(depth, "depth")
    F.check_positive(base, "base")
    return UNet(
        spatial_dims, in_channels, out_channels, features=tuple(base * 2**i for i in range(depth + 1)),
        convs_per_level=2, encoder_convs=1, plain_up_conv=True, kernel_size=3, down_kernel_size=4,
        norm="instance", activation="leakyrelu", up_activation="leakyrelu", downsample="strided",
        final_activation=final_activation,
    )  # fmt: skip


def unet_sketcher(
    spatial_dims: int, in_channels: int, out_channels: int, *, base: int = 32, depth: int = 3,
    dropout: float = 0.5,
) -> UNet:  # fmt: skip
    """The thesis's Sketcher/Refiner 3D U-Net: 3 levels of two 3x3x3 convs + stride-2 conv,
    widths doubling from 32, LeakyReLU(0.2) then BN and dropout 0.5 after every activation,
    transposed-conv upsampling, LeakyReLU as the last layer.

    The Sketcher and the Refiner share this generator: the Sketcher with a noise input
    (``unet_sketcher_z``), the Refiner with ``in_channels`` = MRI channels + 1, fed
    ``torch.cat([mri, sketch], dim=1)`` (the sketch of the frozen Sketcher, detached).

    References: Wei 2020, PhD thesis ch. 3 (Fig. 3.2, Fig. 3.3 A).
    """
    F.check_positive(depth, "depth")
    F.check_positive(base, "base")
    return UNet(
        spatial_dims, in_channels, out_channels, features=tuple(base * 2**i for i in range(depth + 1)),
        convs_per_level=2, kernel_size=3, down_kernel_size=3, norm="batch", activation="leakyrelu",
        up_activation="leakyrelu", downsample="strided", dropout=dropout, dropout_blocks=None,
        norm_after_activation=True, final_activation="leakyrelu",
    )  # fmt: skip
