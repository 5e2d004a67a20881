"""ESIT: explainable and simplified image translation (tissue maps x regional attention -> PET)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from neurotrans.networks.blocks.conv import ConvBlock
from neurotrans.networks.layers import factories as F


def _stack(
    spatial_dims: int, c_in: int, hidden: Sequence[int], c_out: int, kernel_size: int, norm: str,
    negative_slope: float,
) -> nn.Sequential:  # fmt: skip
    layers: list[nn.Module] = []
    for c in hidden:
        layers.append(ConvBlock(spatial_dims, c_in, c, kernel_size=kernel_size, norm=norm,
                                activation="leakyrelu", negative_slope=negative_slope))  # fmt: skip
        c_in = c
    layers.append(F.conv(spatial_dims, c_in, c_out, kernel_size=kernel_size))
    return nn.Sequential(*layers)


class ESIT(nn.Module):
    """Tissue embeddings modulated by coordinate-driven regional attention, then a 1x1 conv.

    The input stacks ``tissue_channels`` tissue maps (GM, WM, CSF) and ``coord_channels``
    spatial-encoding channels (each voxel's MNI coordinates, supplied by the data layer)
    along C, tissue first. The coordinate channels go through a conv stack ending in
    ``n_regions`` channels and a softmax over them: the regional attention maps A (they sum
    to 1 at every voxel). The tissue maps go through a shallow conv net to ``n_regions``
    tissue embeddings E. The PET is a 1x1 convolution of the channel-wise product A * E,
    i.e. at each voxel a region-weighted mix of region-specific tissue-to-PET mappings.

    The paper gives the structure but not every width in the text (its Fig. 5 shows at least
    ten attention channels); the defaults (10 regions, 32-channel hidden layers, 3x3 kernels)
    are ours and configurable.

    Args:
        spatial_dims: 2 (slices) or 3 (volumes).
        tissue_channels: tissue maps C_t (3: GM, WM, CSF).
        coord_channels: spatial-encoding channels C_s (3: x, y, z in MNI mm, scaled).
        out_channels: C_out (1: PET).
        n_regions: attention maps / embeddings R.
        features: hidden widths of the coordinate (attention) conv stack.
        tissue_features: hidden widths of the shallow tissue net.
        kernel_size: odd kernel of both stacks.
        norm: normalisation inside both stacks.
        negative_slope: LeakyReLU slope.

    Shapes: (B, C_t + C_s, H, W[, D]) -> (B, C_out, H, W[, D]); maps (B, R, H, W[, D]).

    References: the ESIT paper, "Demystifying T1-MRI to FDG-PET image translation via
    representational similarity" (Sec. 5, Fig. 4).
    """

    def __init__(
        self,
        spatial_dims: int,
        tissue_channels: int = 3,
        coord_channels: int = 3,
        out_channels: int = 1,
        *,
        n_regions: int = 10,
        features: Sequence[int] = (32, 32, 32),
        tissue_features: Sequence[int] = (32,),
        kernel_size: int = 3,
        norm: str = "none",
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        F.check_spatial_dims(spatial_dims)
        for value, what in [(tissue_channels, "tissue_channels"), (coord_channels, "coord_channels"),
                            (out_channels, "out_channels"), (n_regions, "n_regions")]:  # fmt: skip
            F.check_positive(value, what)
        for f in (*features, *tissue_features):
            F.check_positive(f, "every hidden width")
        if n_regions < 2:
            raise ValueError(
                f"n_regions must be >= 2 (a softmax over one region is constant), got {n_regions}"
            )
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        F.check_choice(norm, F.NORMS, "norm")
        self.spatial_dims = spatial_dims
        self.tissue_channels = tissue_channels
        self.coord_channels = coord_channels
        self.n_regions = n_regions
        self.attention = _stack(spatial_dims, coord_channels, tuple(features), n_regions, kernel_size, norm,
                                negative_slope)  # fmt: skip
        self.tissue = _stack(spatial_dims, tissue_channels, tuple(tissue_features), n_regions, kernel_size,
                             norm, negative_slope)  # fmt: skip
        self.head = F.conv(spatial_dims, n_regions, out_channels, kernel_size=1)

    def forward(
        self, x: torch.Tensor, return_maps: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Predict PET; with ``return_maps`` also the intermediate maps.

        Args:
            x: (B, C_t + C_s, H, W[, D]), tissue maps first, then coordinates.
            return_maps: also return ``{"attention", "embeddings", "product"}``, each
                (B, R, H, W[, D]); attention sums to 1 over R.

        Returns:
            (B, C_out, H, W[, D]), or ``(output, maps)``.
        """
        expected = self.tissue_channels + self.coord_channels
        if x.dim() != self.spatial_dims + 2 or x.shape[1] != expected:
            raise ValueError(
                f"ESIT expects (B, {self.tissue_channels} tissue + {self.coord_channels} coordinate "
                f"channels, ...) with {self.spatial_dims} spatial dims, got shape {tuple(x.shape)}"
            )
        tissue, coords = x[:, : self.tissue_channels], x[:, self.tissue_channels :]
        attention = torch.softmax(self.attention(coords), dim=1)
        embeddings = self.tissue(tissue)
        product = attention * embeddings
        out = self.head(product)
        if return_maps:
            return out, {"attention": attention, "embeddings": embeddings, "product": product}
        return out
