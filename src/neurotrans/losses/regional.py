"""Region-weighted L1 losses of the thesis: weighted L1 (ch. 3) and normalised weighted L1 (ch. 4)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def lesion_regions(
    lesions: torch.Tensor, nawm: torch.Tensor, brain: torch.Tensor | None = None
) -> torch.Tensor:
    """Stack the three regions lesion / NAWM / other as (B, 3, ...) float masks.

    "other" is the rest of ``brain`` (or of the whole image) outside lesions and NAWM;
    NAWM is made disjoint from the lesions.

    Args:
        lesions, nawm, brain: (B, 1, H, W[, D]) binary masks.
    """
    les = lesions.bool()
    nawm_only = nawm.bool() & ~les
    rest = torch.ones_like(les) if brain is None else brain.bool()
    other = rest & ~les & ~nawm_only
    return torch.cat([les, nawm_only, other], dim=1).float()


def _check(pred: torch.Tensor, target: torch.Tensor, regions: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}"
        )
    if (
        regions.dim() != pred.dim()
        or regions.shape[0] != pred.shape[0]
        or regions.shape[2:] != pred.shape[2:]
    ):
        raise ValueError(
            f"regions must be (B, R, *spatial) matching the prediction {tuple(pred.shape)}, "
            f"got {tuple(regions.shape)}"
        )


def weighted_l1_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    regions: torch.Tensor,
    *,
    region_weights: Sequence[float] | None = None,
    per_image_voxels: bool = True,
) -> torch.Tensor:
    """Thesis eq. 3.5: per-region mean absolute errors, summed over regions, scaled by 1 / (N M).

    L = 1 / (N M) sum_i sum_R (1 / N_R) sum_{j in R} |I_ij - Î_ij|: each region's error is
    normalised by its own voxel count N_R (counted in image i), so a small lesion counts as
    much as the large "other" region; M is the number of voxels of one image (the product
    of the spatial sizes, i.e. of the training patch) and N the batch size.
    ``per_image_voxels=False`` drops the constant 1/M (the earlier convention here: it only
    rescales the loss against the adversarial term, i.e. lambda_R). ``region_weights``
    scales the regions further (default 1 each). Empty regions contribute nothing.
    Channels are averaged.

    Args:
        pred, target: (B, C, H, W[, D]).
        regions: (B, R, H, W[, D]) region masks (e.g. from :func:`lesion_regions`).
        region_weights: R non-negative weights.
        per_image_voxels: divide by M (thesis) or not.

    References: Wei et al. 2019, "Predicting PET-derived demyelination from multimodal MRI
    using sketcher-refiner adversarial training" (thesis ch. 3, eq. 3.5).
    """
    _check(pred, target, regions)
    n_regions = regions.shape[1]
    w = (
        torch.ones(n_regions)
        if region_weights is None
        else torch.as_tensor(region_weights, dtype=torch.float32)
    )
    if w.shape != (n_regions,) or (w < 0).any():
        raise ValueError(
            f"region_weights must be {n_regions} non-negative numbers, got {region_weights!r}"
        )
    w = w.to(pred.device, pred.dtype)
    err = (pred - target).abs().mean(dim=1, keepdim=True)  # (B, 1, ...) averaged over channels
    r = regions.to(pred.dtype)
    dims = tuple(range(2, pred.dim()))
    sums = (err * r).sum(dim=dims)  # (B, R)
    counts = r.sum(dim=dims)
    means = torch.where(counts > 0, sums / counts.clamp_min(1), torch.zeros_like(sums))
    loss = (means * w).sum(dim=1).mean()
    return loss / math.prod(pred.shape[2:]) if per_image_voxels else loss


def nwl1_loss(pred: torch.Tensor, target: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Normalised weighted L1: voxel weights ``1 - m_R / m`` for the region R holding the voxel.

    L = 1 / (2 n m) * sum_i sum_j w_j |I_ij - Î_ij|, with m the voxels of one image covered
    by the regions (the whole image when, as in the thesis, the three regions divide it),
    m_R those of region R in that image (so a patient's small lesion load gets a weight
    near 1, the large "other" region a small one), n the batch size. The 2 is the
    thesis's normaliser: the three region weights sum to 2 (R - 1 for R regions, used here
    so that other region counts keep the same scale).

    Args:
        pred, target: (B, C, H, W[, D]) (channels averaged).
        regions: (B, R, H, W[, D]) disjoint region masks.

    References: Wei et al. 2020 (CF-SAGAN), thesis ch. 4, eq. 4.4 (adaptive attention
    regularisation).
    """
    _check(pred, target, regions)
    if regions.shape[1] < 2:
        raise ValueError(f"nwl1_loss needs at least 2 regions, got {regions.shape[1]}")
    r = regions.to(pred.dtype)
    if (r.sum(dim=1) > 1).any():
        raise ValueError("nwl1_loss needs disjoint regions (a voxel lies in at most one region)")
    dims = tuple(range(2, pred.dim()))
    counts = r.sum(dim=dims, keepdim=True)  # (B, R, 1, ...)
    m = counts.sum(dim=1, keepdim=True).clamp_min(1)
    voxel_w = (r * (1 - counts / m)).sum(dim=1, keepdim=True)  # (B, 1, ...)
    err = (pred - target).abs().mean(dim=1, keepdim=True)
    per_image = (voxel_w * err).sum(dim=dims).squeeze(1) / ((regions.shape[1] - 1) * m.flatten())
    return per_image.mean()


class WeightedL1Loss(nn.Module):
    """Module form of :func:`weighted_l1_loss`: ``loss(pred, target, regions)``."""

    def __init__(
        self, region_weights: Sequence[float] | None = None, *, per_image_voxels: bool = True
    ) -> None:
        super().__init__()
        if region_weights is not None and any(float(x) < 0 for x in region_weights):
            raise ValueError(f"region_weights must be non-negative, got {region_weights!r}")
        self.region_weights = (
            None if region_weights is None else tuple(float(x) for x in region_weights)
        )
        self.per_image_voxels = per_image_voxels

    def forward(self, pred, target, regions) -> torch.Tensor:
        return weighted_l1_loss(pred, target, regions, region_weights=self.region_weights,
                                per_image_voxels=self.per_image_voxels)  # fmt: skip


class NWL1Loss(nn.Module):
    """Module form of :func:`nwl1_loss`: ``loss(pred, target, regions)``."""

    def forward(self, pred, target, regions) -> torch.Tensor:
        return nwl1_loss(pred, target, regions)
