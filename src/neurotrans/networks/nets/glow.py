"""Multi-scale Glow: L levels of (squeeze, K flow steps, split), 1D/2D/3D.

References: Kingma & Dhariwal 2018 (Glow, Fig. 2b); Dinh et al. 2017 (Real NVP, multi-scale
architecture); Sun et al. 2019 (DUAL-GLOW, Sec. 3 and Fig. 3).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from neurotrans.networks.blocks.flow import COUPLING_SCALES, FlowStep, squeeze, unsqueeze
from neurotrans.networks.checks import check_input
from neurotrans.networks.layers import factories as F


def padded_size(size: Sequence[int], levels: int) -> tuple[int, ...]:
    """Smallest spatial size >= ``size`` that a Glow of ``levels`` levels accepts.

    Every spatial size is rounded up to a multiple of 2**levels (each level squeezes by 2),
    e.g. the 3 mm MNI grid (61, 73, 61) -> (64, 80, 64) for 4 levels. Pad volumes with
    ``neurotrans.data.crop.crop_or_pad`` and crop the outputs back.
    """
    F.check_positive(levels, "levels")
    m = 2**levels
    return tuple(-(-int(s) // m) * m for s in size)


def check_size(size: Sequence[int], levels: int, what: str = "Glow") -> None:
    """Raise ``ValueError`` naming the padded size unless every size divides by 2**levels."""
    size = tuple(int(s) for s in size)
    if any(s % 2**levels for s in size):
        raise ValueError(
            f"{what} with {levels} levels needs spatial sizes divisible by 2**{levels} = "
            f"{2**levels}, got {size}: pad the input to {padded_size(size, levels)} "
            "(neurotrans.networks.nets.glow.padded_size) and crop the output back"
        )


class Glow(nn.Module):
    """Multi-scale Glow flow x -> (z_1, ..., z_{L-1}, z_L) with exact inverse and log|det|.

    Level l (1..L) squeezes (space -> channels, x2**n channels), applies K steps of actnorm
    (data-dependent init on the first training batch) -> invertible 1x1(x1) convolution (LU)
    -> affine coupling, and after levels 1..L-1 splits off half of the channels as that
    level's latent z_l; the rest goes on. z_L is the top. The log-determinant of the whole
    map is returned per sample; squeeze and split are volume-preserving.

    Coupling scale: ``"exp"`` is the paper's exp(s) (DUAL-GLOW eq. 13); ``"sigmoid"`` is
    sigmoid(s + 2), bounded in (0, 1), used by the Glow and DUAL-GLOW code because exp(s) can
    blow up early in training (a coupling can only contract, so the log-det cannot run off to
    +inf and the inverse cannot overflow). Both start at the identity up to sigmoid(2).

    Args:
        spatial_dims: 1, 2 or 3.
        in_channels: C of the image.
        levels: L (paper 4).
        steps: K flow steps per level (paper 16).
        hidden: width of the coupling networks (paper: 512, the Glow/DUAL-GLOW code default).
        scale: coupling scale, ``"exp"`` (paper), ``"sigmoid"`` or ``"additive"`` (scale 1).
        checkpointing: recompute each step in backward (torch.utils.checkpoint) to save
            memory; the paper's "memory efficient" gradients (Chen et al. 2016).

    Shapes: x (B, C, H, W[, D]) with every spatial size S divisible by 2**L -> latents, a list
    of L tensors (``latent_shapes``; 3D, C = 1, L = 4: (B, 4, S/2), (B, 16, S/4), (B, 64, S/8)
    and the top (B, 512, S/16)), and logdet (B,) in nats.

    References: Kingma & Dhariwal 2018 (Glow); Sun et al. 2019 (DUAL-GLOW, Fig. 3).
    """

    def __init__(
        self, spatial_dims: int, in_channels: int = 1, *, levels: int = 4, steps: int = 16,
        hidden: int = 512, scale: str = "exp", checkpointing: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        F.check_spatial_dims(spatial_dims)
        for value, what in [(in_channels, "in_channels"), (levels, "levels"), (steps, "steps"),
                            (hidden, "hidden")]:  # fmt: skip
            F.check_positive(value, what)
        F.check_choice(scale, COUPLING_SCALES, "scale")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.n_levels = levels
        self.checkpointing = bool(checkpointing)
        self.levels = nn.ModuleList()
        c = in_channels
        for level in range(levels):
            c *= 2**spatial_dims
            self.levels.append(nn.ModuleList(
                FlowStep(spatial_dims, c, hidden=hidden, scale=scale) for _ in range(steps)
            ))  # fmt: skip
            if level < levels - 1:
                c -= c // 2  # the kept part; the split-off part has c // 2 channels

    @property
    def size_multiple(self) -> int:
        """Every spatial size of the input must be a multiple of this (2**levels)."""
        return 2**self.n_levels

    @property
    def initialized(self) -> bool:
        """Whether every actnorm has had its data-dependent initialisation."""
        return all(step.actnorm.is_initialized for level in self.levels for step in level)

    def latent_shapes(self, size: Sequence[int]) -> list[tuple[int, ...]]:
        """Shapes (C_l, *spatial_l) of the latents for an input of spatial ``size``."""
        check_size(size, self.n_levels)
        shapes, c, size = [], self.in_channels, tuple(size)
        for level in range(self.n_levels):
            c *= 2**self.spatial_dims
            size = tuple(s // 2 for s in size)
            if level < self.n_levels - 1:
                shapes.append((c // 2, *size))
                c -= c // 2
        shapes.append((c, *size))
        return shapes

    def _step(self, step: FlowStep, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # the first (initialising) call runs plainly: actnorm's in-place init must not be
        # replayed by the recomputation
        if (self.checkpointing and self.training and torch.is_grad_enabled()
                and step.actnorm.is_initialized):  # fmt: skip
            return checkpoint(step, h, use_reentrant=False)
        return step(h)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Encode ``x`` (B, C, *spatial) -> (latents [z_1, ..., z_L], logdet (B,))."""
        check_input(x, self.spatial_dims, self.in_channels, "Glow")
        check_size(x.shape[2:], self.n_levels)
        logdet = x.new_zeros(x.shape[0])
        latents: list[torch.Tensor] = []
        h = x
        for i, level in enumerate(self.levels):
            h = squeeze(h)
            for step in level:
                h, ld = self._step(step, h)
                logdet = logdet + ld
            if i < self.n_levels - 1:
                keep = h.shape[1] - h.shape[1] // 2
                latents.append(h[:, keep:])
                h = h[:, :keep]
        latents.append(h)
        return latents, logdet

    def inverse(self, latents: Sequence[torch.Tensor]) -> torch.Tensor:
        """Decode [z_1, ..., z_L] -> x (exact inverse of :meth:`forward`)."""
        if len(latents) != self.n_levels:
            raise ValueError(f"Glow.inverse expects {self.n_levels} latents, got {len(latents)}")
        h = latents[-1]
        for i in reversed(range(self.n_levels)):
            if i < self.n_levels - 1:
                h = torch.cat([h, latents[i]], dim=1)
            for step in reversed(self.levels[i]):
                h = step.inverse(h)
            h = unsqueeze(h, spatial_dims=self.spatial_dims)
        return h
