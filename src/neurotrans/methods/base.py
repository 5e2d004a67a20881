"""The method interface: what the one trainer needs from a training recipe.

A method wraps named networks and turns a batch into losses; it never owns an
optimiser, a loop or a file. The trainer asks it for

- ``optimiser_groups()``: group name -> the networks that group's optimiser updates,
  with optional hyper-parameter overrides (pix2pix: ``G`` and ``D``; UNIT: encoders +
  generators and both discriminators; a normalising flow: one group);
- ``schedule()``: the groups stepped, in order, on each batch (``["D", "D", "G"]`` = two
  discriminator steps per generator step; a cascade trained stage by stage lists its
  stages);
- ``training_step(batch, group)``: a dict of tensors whose ``"loss"`` that group's
  optimiser minimises (a flow returns its negative log-likelihood there); the other
  entries are logged;
- ``validation_step(batch)``: floats to log and monitor;
- ``predict(x)``: the translated image, used by inference.

References: the network / method / trainer split of lucidrains' denoising-diffusion
(Unet / GaussianDiffusion / Trainer) and zuko.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

Batch = dict[str, Any]


@dataclass(frozen=True)
class OptimGroup:
    """One optimiser: the networks it updates and hyper-parameter overrides.

    Args:
        networks: names of entries of ``Method.networks``.
        hparams: overrides of the optimiser config for this group (``lr``, ``betas``,
            ``weight_decay``).
    """

    networks: tuple[str, ...]
    hparams: dict[str, Any] = field(default_factory=dict)


class Method(nn.Module):
    """Base class of training recipes (see the module docstring for the contract).

    Args:
        networks: the method's named networks (kept in an ``nn.ModuleDict`` so that
            ``state_dict`` holds them all).
    """

    def __init__(self, networks: dict[str, nn.Module]) -> None:
        super().__init__()
        self.networks = nn.ModuleDict(networks)

    def optimiser_groups(self) -> dict[str, OptimGroup]:
        """Group name -> networks updated by that group's optimiser."""
        return {"main": OptimGroup(tuple(self.networks.keys()))}

    def schedule(self) -> list[str]:
        """Groups stepped, in order, on every batch."""
        return list(self.optimiser_groups())

    def training_step(self, batch: Batch, group: str) -> dict[str, Tensor]:
        """Losses of ``group`` on ``batch``; ``"loss"`` is minimised."""
        raise NotImplementedError

    @torch.no_grad()
    def validation_step(self, batch: Batch) -> dict[str, float]:
        """Validation metrics of one batch (MAE and MSE inside the mask, in normalised units)."""
        pred = self.predict(batch["input"])
        return masked_errors(pred, batch["target"], batch.get("mask"))

    def predict(self, x: Tensor) -> Tensor:
        """Translate a batch ``x`` (B, C, H, W[, D]) -> (B, 1, H, W[, D])."""
        raise NotImplementedError

    @property
    def size_multiple(self) -> int:
        """Spatial sizes the networks need (2**depth of U-Nets); slices are padded to it."""
        depths = [int(net.depth) for net in self.networks.values() if isinstance(getattr(net, "depth", None), int)]
        return 2 ** max(depths, default=0)


def masked_errors(pred: Tensor, target: Tensor, mask: Tensor | None) -> dict[str, float]:
    """Sums of absolute and squared errors and the voxel count inside ``mask``.

    Returned as sums (``abs``, ``sq``, ``n``) so that the trainer can pool batches of
    different sizes exactly; it reports ``mae`` = abs / n and ``mse`` = sq / n.
    """
    diff = (pred.float() - target.float())
    if mask is not None:
        weight = (mask > 0).float().expand_as(diff)
    else:
        weight = torch.ones_like(diff)
    return {"abs": float((diff.abs() * weight).sum()), "sq": float((diff.square() * weight).sum()),
            "n": float(weight.sum())}
