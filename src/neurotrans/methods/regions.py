"""Reconstruction terms of the MS thesis's methods: L1, lesion-weighted L1 (WL1) and normalised WL1.

WL1 and NWL1 weight the error by region (MS lesions, NAWM, the rest of the image), so a
method using them needs the lesion and NAWM masks in every batch: ``data.aux`` must list
``lesions`` and ``NAWM`` (they arrive as ``batch["aux"]`` channels, cut and augmented like
the images). The regions cover the whole image, as in the thesis ("the whole image is
divided into three regions"): "other" is every voxel outside lesions and NAWM.

Scale: WL1 here is eq. 3.5 times M (the voxels of one image): the per-region mean errors
summed over the three regions, averaged over the batch. The thesis's 1/M makes the term
M / 3 times smaller than a voxel-mean L1 (M = 32^3 for a patch, 128 x 160 x 128 for the
thesis's volumes), which only rescales lambda_R (not given in the thesis); without it one
lambda suits L1, WL1 and NWL1 alike.
NWL1 is eq. 4.4 as written (a voxel mean with weights 1 - m_R / m, halved).

References: Wei et al. 2019, Sketcher-Refiner GANs (thesis ch. 3, eq. 3.4-3.5); Wei et al.
2020, CF-SAGAN (thesis ch. 4, eq. 4.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn.functional as TF
from torch import Tensor, nn

from neurotrans.losses import lesion_regions, nwl1_loss, weighted_l1_loss

REGION_LOSSES = ("wl1", "nwl1")
STAGE_LOSSES = ("l1", *REGION_LOSSES)
REGION_AUX = ("lesions", "NAWM")


def check_region_data(loss: str, aux: Sequence[str], where: str = "model.loss") -> None:
    """Refuse a region loss when the data do not carry the lesion and NAWM masks."""
    missing = [name for name in REGION_AUX if name not in tuple(aux)]
    if loss in REGION_LOSSES and missing:
        raise ValueError(f"{where} = {loss!r} weights lesions / NAWM / other, but data.aux lacks "
                         f"{', '.join(missing)}: set data.aux: [lesions, NAWM]")


class Reconstruction(nn.Module):
    """The reconstruction term of a batch: ``l1``, ``wl1`` or ``nwl1`` (lambda not included).

    Args:
        loss: ``l1`` (voxel mean, eq. 3.4 per voxel), ``wl1`` (eq. 3.5 without 1/M) or
            ``nwl1`` (eq. 4.4).
        aux: names of the ``batch["aux"]`` channels (``ModelIO.aux``); region losses need
            ``lesions`` and ``NAWM`` among them.

    ``forward(pred, batch)``: pred (B, 1, *S); batch with ``target`` (B, 1, *S) and, for
    the region losses, ``aux`` (B, K, *S).
    """

    def __init__(self, loss: str = "l1", aux: Sequence[str] = ()) -> None:
        super().__init__()
        if loss not in STAGE_LOSSES:
            raise ValueError(f"loss = {loss!r}; choose one of {', '.join(STAGE_LOSSES)}")
        check_region_data(loss, aux, "loss")
        self.loss = loss
        aux = tuple(aux)
        self.lesion_channel = aux.index("lesions") if "lesions" in aux else -1
        self.nawm_channel = aux.index("NAWM") if "NAWM" in aux else -1

    def regions(self, batch: dict[str, Any]) -> Tensor:
        """(B, 3, *S) masks of lesions, NAWM and the rest of the image."""
        aux = batch.get("aux")
        if aux is None:
            raise ValueError(f"{self.loss} needs batch['aux'] with the lesion and NAWM masks (data.aux)")
        les, nawm = self.lesion_channel, self.nawm_channel
        return lesion_regions(aux[:, les:les + 1], aux[:, nawm:nawm + 1])

    def forward(self, pred: Tensor, batch: dict[str, Any]) -> Tensor:
        target = batch["target"]
        if self.loss == "l1":
            return TF.l1_loss(pred, target)
        if self.loss == "wl1":
            return weighted_l1_loss(pred, target, self.regions(batch), per_image_voxels=False)
        return nwl1_loss(pred, target, self.regions(batch))
