"""The method interface: what the one trainer needs from a training recipe.

A method wraps named networks and turns a batch into losses; it never owns an
optimiser, a loop or a file. It is built from its own frozen config dataclass
(``Method.Config``, the ``model`` section of a run config) and a :class:`ModelIO` that
says what the data give it (channels, dimensionality, covariates). The trainer asks it for

- ``optimiser_groups()``: group name -> the networks that group's optimiser updates,
  with optional hyper-parameter overrides (pix2pix: ``G`` and ``D``; UNIT: encoders +
  generators and both discriminators; a normalising flow: one group);
- ``schedule(step)``: the groups stepped, in order, on the batch of step ``step``
  (``["D", "D", "G"]`` = two discriminator steps per generator step; a cascade trained
  stage after stage returns the current stage's groups);
- ``training_step(batch, group)``: a dict of tensors whose ``"loss"`` that group's
  optimiser minimises (a flow returns its negative log-likelihood there); the other
  entries are logged;
- ``validation_step(batch)``: a typed, additive result (``ErrorSums`` for image
  methods, ``NLLSums`` for likelihood methods) whose ``metrics()`` are the names listed in
  ``validation_metrics``; the trainer monitors the one the config names;
- ``predict(x, covariates)``: the translated image, used by inference.

References: the network / method / trainer split of lucidrains' denoising-diffusion
(Unet / GaussianDiffusion / Trainer) and zuko; DESIGN.md rule 12.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

Batch = dict[str, Any]
# keyword arguments a network receives from the data, never from the config
DATA_ARGS = ("spatial_dims", "in_channels", "out_channels")


@dataclass(frozen=True)
class ModelIO:
    """What the data give a method: the shapes its networks must accept.

    Args:
        in_channels: channels of one input sample (inputs x slices of 2.5D context).
        spatial_dims: 2 (slices) or 3 (patches or volumes).
        inputs: input column names (``coords`` = the 3 coordinate channels).
        n_covariates: length of ``batch["covariates"]`` (side information), 0 if none.
        aux: names of the ``batch["aux"]`` channels (e.g. ``lesions``, ``NAWM``).
    """

    in_channels: int
    spatial_dims: int = 2
    inputs: tuple[str, ...] = ()
    n_covariates: int = 0
    aux: tuple[str, ...] = ()


@dataclass(frozen=True)
class MethodConfig:
    """Base of every method's config (the ``model`` section); ``method`` is its registry key."""

    method: ClassVar[str] = ""

    def check_data(self, data: Any) -> None:
        """Refuse data settings this method cannot train on (raise ``ValueError``)."""


@dataclass(frozen=True)
class ErrorSums:
    """Sums of absolute and squared errors and the voxel count inside the mask.

    Kept as sums so that batches of different sizes pool exactly; ``metrics()`` gives
    ``mae`` = abs / n and ``mse`` = sq / n (normalised units).
    """

    abs: float = 0.0
    sq: float = 0.0
    n: float = 0.0
    names: ClassVar[tuple[str, ...]] = ("mae", "mse")

    def __add__(self, other: ErrorSums) -> ErrorSums:
        return ErrorSums(self.abs + other.abs, self.sq + other.sq, self.n + other.n)

    def metrics(self) -> dict[str, float]:
        n = max(self.n, 1.0)
        return {"mae": self.abs / n, "mse": self.sq / n}


@dataclass(frozen=True)
class NLLSums:
    """Summed negative log-likelihood (nats) and the number of voxels it covers.

    ``metrics()`` gives ``nll`` in bits per voxel (``nll / (n ln 2)``), the unit flows
    report, and the image errors of the point prediction when the method adds them.
    """

    nll: float = 0.0
    n: float = 0.0
    errors: ErrorSums = field(default_factory=ErrorSums)
    names: ClassVar[tuple[str, ...]] = ("nll", "mae", "mse")

    def __add__(self, other: NLLSums) -> NLLSums:
        return NLLSums(self.nll + other.nll, self.n + other.n, self.errors + other.errors)

    def metrics(self) -> dict[str, float]:
        out = {"nll": self.nll / (max(self.n, 1.0) * math.log(2.0))}
        if self.errors.n > 0:
            out.update(self.errors.metrics())
        return out


def masked_errors(pred: Tensor, target: Tensor, mask: Tensor | None) -> ErrorSums:
    """:class:`ErrorSums` of one batch inside ``mask`` (all voxels without one)."""
    diff = pred.float() - target.float()
    weight = (mask > 0).float().expand_as(diff) if mask is not None else torch.ones_like(diff)
    return ErrorSums(float((diff.abs() * weight).sum()), float((diff.square() * weight).sum()),
                     float(weight.sum()))


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

    Config: ClassVar[type[MethodConfig]] = MethodConfig
    # what validation_step returns and which metrics its ``metrics()`` reports
    validation_metrics: ClassVar[tuple[str, ...]] = ErrorSums.names
    # a one-line description and the paper, for `neurotrans list`
    summary: ClassVar[str] = ""
    # whether the trainer may run its steps under autocast (bf16/fp16 on a GPU); methods whose
    # arithmetic needs float32 throughout (log-determinants, matrix inverses) say False
    mixed_precision: ClassVar[bool] = True

    def __init__(self, networks: dict[str, nn.Module]) -> None:
        super().__init__()
        self.networks = nn.ModuleDict(networks)

    @classmethod
    def from_config(cls, config: MethodConfig, io: ModelIO) -> Method:
        """Build the method and its networks from its config and the data's shapes."""
        raise NotImplementedError

    def optimiser_groups(self) -> dict[str, OptimGroup]:
        """Group name -> networks updated by that group's optimiser."""
        return {"main": OptimGroup(tuple(self.networks.keys()))}

    def schedule(self, step: int = 0) -> list[str]:
        """Groups stepped, in order, on the batch of step ``step``."""
        return list(self.optimiser_groups())

    def training_step(self, batch: Batch, group: str) -> dict[str, Tensor]:
        """Losses of ``group`` on ``batch``; ``"loss"`` is minimised."""
        raise NotImplementedError

    @torch.no_grad()
    def validation_step(self, batch: Batch) -> Any:
        """Validation sums of one batch (image methods: errors inside the mask, normalised units)."""
        pred = self.predict(batch["input"], batch.get("covariates"))
        return masked_errors(pred, batch["target"], batch.get("mask"))

    def predict(self, x: Tensor, covariates: Tensor | None = None) -> Tensor:
        """Translate a batch ``x`` (B, C, H, W[, D]) -> (B, 1, H, W[, D])."""
        raise NotImplementedError

    @property
    def size_multiple(self) -> int:
        """Spatial sizes the networks need (2**depth of U-Nets); samples are padded to it."""
        multiples = []
        for net in self.networks.values():
            m = getattr(net, "size_multiple", None)
            if isinstance(m, int):
                multiples.append(m)
            elif isinstance(getattr(net, "depth", None), int):
                multiples.append(2 ** int(net.depth))
        return max(multiples, default=1)


def build_net(name: str, args: dict[str, Any], *, where: str, **data_args: Any) -> nn.Module:
    """Build network ``name`` with the config's ``args`` and the data's shapes.

    Args:
        name: key of ``neurotrans.networks.NETWORKS``.
        args: the config's keyword arguments (``model.generator_args``...).
        where: the config key, named in errors.
        data_args: ``spatial_dims``, ``in_channels``, ``out_channels`` from the data.
    """
    from neurotrans.networks import build_network

    clash = sorted(set(args) & set(DATA_ARGS))
    if clash:
        raise ValueError(f"{where} sets {', '.join(clash)}, which come from the data "
                         "(data.spatial_dims, data.inputs): remove them")
    try:
        return build_network(name, **data_args, **args)
    except TypeError as err:  # an unknown keyword argument of the network
        raise ValueError(f"{where}: {err}") from None


def check_network_name(name: str, where: str) -> None:
    """Refuse an unknown network name at config time (with close matches)."""
    from neurotrans.names import check_name
    from neurotrans.networks import NETWORKS

    try:
        check_name(name, tuple(NETWORKS), "network")
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
