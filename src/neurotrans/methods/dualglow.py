"""DUAL-GLOW: two 3D Glow flows (MRI, PET) linked by relation networks, trained by likelihood.

The method wraps :class:`~neurotrans.networks.nets.dualglow.DualGlow`: its loss is paper
eq. 12 (eq. 16 plus the side-head losses with side information) in bits per voxel, its
validation result the conditional NLL of the PET plus the errors of the temperature-0 point
prediction, and it can draw samples at a temperature (the uncertainty maps of
``neurotrans predict --uncertainty``).

Intensities (what the flows see): the MRI as the data pipeline normalises it (min-max to
[0, 1] by default), the PET in SUVR divided by the fixed ``pet_scale`` (2: a brain's SUVR
then lies in about [0, 1]; a fixed constant, not a per-image statistic, so predictions map
back to SUVR exactly and the likelihood is comparable across subjects). Both are dequantised
with uniform noise of width ``quant_step`` in those units (1/256: Glow's 8-bit convention).

Side information (``data.covariates``, e.g. ``[age]``; ``model.side_kinds`` one kind per
column): continuous columns are standardised with the mean and SD of the training subjects,
fitted once before training (:meth:`DualGlowMethod.fit_covariates`, called by
``train_from_config``) and kept as buffers in every checkpoint; binary columns (sex M=1/F=0)
pass unchanged.

Differences from the paper (each stated in ``DualGlow`` too): CPU-sized defaults (3 levels x
4 steps, width 32, relation nets 32 x 2, instead of 4 x 16, 512, 256 x 4) and whole 3 mm
volumes (61 x 73 x 61 padded to 64 x 80 x 64) instead of 64 x 96 x 64 at 1.5 mm; the coupling
scale is the authors' code's sigmoid by default, not eq. 13's exp (``scale``); the relation
nets also predict the log-scale; continuous intensities dequantised at ``quant_step``; the PET
prior's means start from the cohort's running mean latents, with side information the top one from
their running regression on it (``cohort_prior``, default on; the measured reasons are in ``DualGlow``). AdaMax
at lr 3e-3 diverged within 3 steps on the fdg cohort; the paper's 1e-3 is kept.

References: Sun et al. 2019, "DUAL-GLOW: Conditional Flow-Based Generative Model for Modality
Transfer" (ICCV; papers/002): eq. 12 and 16, Sec. 4.1 (lambda 1e-3, side-loss weight 0.01,
AdaMax lr 1e-3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from neurotrans.methods.base import Batch, Method, MethodConfig, ModelIO, NLLSums, masked_errors
from neurotrans.networks.blocks.flow import COUPLING_SCALES
from neurotrans.networks.blocks.latent_heads import SIDE_KINDS
from neurotrans.networks.nets.dualglow import DualGlow


def _finite(value: float, what: str, *, positive: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        raise ValueError(f"model.{what} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")


@dataclass(frozen=True)
class DualGlowConfig(MethodConfig):
    """``model`` section of ``method: dualglow``.

    Args:
        levels: L, levels of each flow (paper 4); volumes are padded to multiples of 2**L.
        steps: K, flow steps per level (paper 16).
        hidden: coupling-network width (paper 512).
        scale: coupling scale, ``sigmoid`` (bounded, the Glow and DUAL-GLOW code's; default) or
            ``exp`` (paper eq. 13). With ``exp`` the temperature-0 decode of the fdg cohort overflowed
            to NaN after 20 steps (the inverse multiplies by exp(-s) at every step); ``sigmoid`` stayed
            finite.
            ``additive`` (scale 1, Glow's additive coupling: its inverse never divides; on the fdg
            cohort at 400 steps it was not better at temperature 0 than ``sigmoid``).
        relation_hidden: relation-net width (paper code 256).
        relation_layers: relation-net convolutions (paper code 4).
        relation_kernel: first relation-net kernel (paper code 5).
        side_kinds: one of ``continuous`` / ``binary`` per ``data.covariates`` column (age:
            continuous, sex: binary); empty for no side information.
        side_weight: weight of the side-information losses (paper 0.01).
        side_hidden: width of the side heads.
        top_uses_mri_with_side: with side information, feed the top MRI latent to the top PET
            relation too (eq. 17 does not).
        mri_weight: lambda, weight of log p(x_mri) (paper 1e-3).
        quant_step: dequantisation step in the flows' units (MRI [0, 1], SUVR / pet_scale).
        pet_scale: the PET enters the flow as SUVR / pet_scale.
        checkpointing: gradient checkpointing over the flow steps (less memory, ~30 % slower).
        cohort_prior: PET prior means = the cohort's running mean latents + the relation nets'
            output (default), instead of the output alone (the paper); see ``DualGlow``.
        temperature: sampling temperature of the uncertainty maps (1: the model's distribution).
        samples: samples per subject for the uncertainty maps.
        val_seed: seed of the validation dequantisation noise (validation NLL reproducible).
    """

    method: ClassVar[str] = "dualglow"
    levels: int = 3
    steps: int = 4
    hidden: int = 32
    scale: str = "sigmoid"
    relation_hidden: int = 32
    relation_layers: int = 2
    relation_kernel: int = 5
    side_kinds: tuple[str, ...] = ()
    side_weight: float = 0.01
    side_hidden: int = 16
    top_uses_mri_with_side: bool = False
    mri_weight: float = 1e-3
    quant_step: float = 1.0 / 256.0
    pet_scale: float = 2.0
    checkpointing: bool = False
    cohort_prior: bool = True
    temperature: float = 1.0
    samples: int = 8
    val_seed: int = 0

    def __post_init__(self) -> None:
        for key in ("levels", "steps", "hidden", "relation_hidden", "relation_layers", "side_hidden"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"model.{key} must be an integer >= 1, got {value!r}")
        if self.relation_kernel < 1 or self.relation_kernel % 2 == 0:
            raise ValueError(f"model.relation_kernel must be a positive odd integer, got {self.relation_kernel}")
        if self.scale not in COUPLING_SCALES:
            raise ValueError(f"model.scale = {self.scale!r}; choose one of {', '.join(COUPLING_SCALES)}")
        for kind in self.side_kinds:
            if kind not in SIDE_KINDS:
                raise ValueError(f"model.side_kinds has {kind!r}; every entry is one of {', '.join(SIDE_KINDS)}")
        _finite(self.side_weight, "side_weight")
        _finite(self.mri_weight, "mri_weight")
        _finite(self.temperature, "temperature")
        _finite(self.quant_step, "quant_step", positive=True)
        _finite(self.pet_scale, "pet_scale", positive=True)
        if self.samples < 2:
            raise ValueError(f"model.samples must be >= 2 (an SD needs two samples), got {self.samples}")
        if self.val_seed < 0:
            raise ValueError(f"model.val_seed must be >= 0, got {self.val_seed}")

    def check_data(self, data: Any) -> None:
        if data.spatial_dims != 3 or data.patch_size is not None:
            raise ValueError("DUAL-GLOW models whole 3D volumes: set data.spatial_dims=3 and data.patch_size=null "
                             f"(got spatial_dims={data.spatial_dims}, patch_size={data.patch_size})")
        if len(data.covariates) != len(self.side_kinds):
            raise ValueError(f"model.side_kinds {list(self.side_kinds)} needs one kind per data.covariates column "
                             f"{list(data.covariates)} (e.g. covariates [age] with side_kinds [continuous])")


class DualGlowMethod(Method):
    """Conditional flow p(PET | MRI[, side]) trained on eq. 12; predicts at temperature 0.

    Args:
        model: the two-flow network (its ``side_kinds`` say which covariates it takes).
        quant_step: dequantisation step in the flows' units.
        pet_scale: the PET enters the flows as target / pet_scale.
        temperature: default sampling temperature of :meth:`predict_sample` (uncertainty maps).
        samples: default number of samples of the uncertainty maps.
        val_seed: seed of the validation dequantisation noise.

    Shapes: ``batch["input"]`` (B, C, X, Y, Z) normalised MRI, ``batch["target"]`` (B, 1, X, Y, Z)
    SUVR, ``batch["covariates"]`` (B, F) raw side information; every spatial size a multiple
    of ``size_multiple`` (the data pipeline pads to it).

    References: Sun et al. 2019 (DUAL-GLOW, eq. 12, 16, 17; Sec. 4.1).
    """

    Config = DualGlowConfig
    validation_metrics: ClassVar[tuple[str, ...]] = NLLSums.names
    # log |det| sums, LU-parametrised 1x1x1 inverses and exp(s) couplings: bf16's 8-bit mantissa
    # would dominate the likelihood (and linalg.inv refuses it), so flows train in float32
    mixed_precision: ClassVar[bool] = False
    summary: ClassVar[str] = ("two 3D Glow flows + relation nets, eq. 12 likelihood, side information (age) with "
                              "gradient reversal, samples for uncertainty (DUAL-GLOW, papers/002)")

    def __init__(self, model: DualGlow, *, quant_step: float = 1.0 / 256.0, pet_scale: float = 2.0,
                 temperature: float = 1.0, samples: int = 8, val_seed: int = 0) -> None:
        super().__init__({"flow": model})
        _finite(quant_step, "quant_step", positive=True)
        _finite(pet_scale, "pet_scale", positive=True)
        self.quant_step = float(quant_step)
        self.pet_scale = float(pet_scale)
        self.temperature = float(temperature)
        self.samples = int(samples)
        self.val_seed = int(val_seed)
        n_side = len(model.side_kinds)
        # training statistics of the side information: buffers, so every checkpoint carries them
        self.register_buffer("side_mean", torch.zeros(n_side))
        self.register_buffer("side_std", torch.ones(n_side))
        self.register_buffer("side_fitted", torch.tensor(n_side == 0))

    @classmethod
    def from_config(cls, config: DualGlowConfig, io: ModelIO) -> DualGlowMethod:
        if io.spatial_dims != 3:
            raise ValueError(f"DUAL-GLOW needs 3D volumes (data.spatial_dims=3), got {io.spatial_dims}")
        if io.n_covariates != len(config.side_kinds):
            raise ValueError(f"model.side_kinds {list(config.side_kinds)} needs one kind per covariate; the data "
                             f"give {io.n_covariates}")
        model = DualGlow(3, io.in_channels, 1, levels=config.levels, steps=config.steps, hidden=config.hidden,
                         scale=config.scale, relation_hidden=config.relation_hidden,
                         relation_layers=config.relation_layers, relation_kernel=config.relation_kernel,
                         side_kinds=config.side_kinds, side_weight=config.side_weight,
                         side_hidden=config.side_hidden, top_uses_mri_with_side=config.top_uses_mri_with_side,
                         mri_weight=config.mri_weight, checkpointing=config.checkpointing,
                         cohort_prior=config.cohort_prior)
        return cls(model, quant_step=config.quant_step, pet_scale=config.pet_scale,
                   temperature=config.temperature, samples=config.samples, val_seed=config.val_seed)

    @property
    def flow(self) -> DualGlow:
        return self.networks["flow"]  # type: ignore[return-value]

    # -- side information -------------------------------------------------------------------
    @torch.no_grad()
    def fit_covariates(self, values: Tensor) -> None:
        """Store the standardisation of the side information from the training subjects.

        Args:
            values: (N, F) raw covariates of the training subjects (``data.covariates`` order).
        """
        kinds = self.flow.side_kinds
        values = torch.as_tensor(values, dtype=torch.float32)
        if values.dim() != 2 or values.shape[1] != len(kinds) or values.shape[0] < 1:
            raise ValueError(f"fit_covariates needs (N >= 1, {len(kinds)}) values, got {tuple(values.shape)}")
        mean = torch.zeros(len(kinds))
        std = torch.ones(len(kinds))
        for j, kind in enumerate(kinds):
            if kind == "continuous":
                mean[j] = values[:, j].mean()
                sd = float(values[:, j].std(unbiased=False)) if values.shape[0] > 1 else 0.0
                std[j] = sd if sd > 1e-8 else 1.0  # one value (or all equal): centre only
        self.side_mean.copy_(mean)
        self.side_std.copy_(std)
        self.side_fitted.fill_(True)

    def side(self, covariates: Tensor | None, batch: int) -> Tensor | None:
        """The standardised side information of a batch (``None`` for a model without any)."""
        kinds = self.flow.side_kinds
        if not kinds:
            return None
        if covariates is None:
            raise ValueError(f"this DUAL-GLOW model takes side information ({len(kinds)} covariate(s)): pass them "
                             "(data.covariates in the batch, or --age at prediction)")
        if not bool(self.side_fitted):
            raise RuntimeError("the side-information standardisation is not fitted: call fit_covariates with the "
                               "training subjects' covariates before training (train_from_config does)")
        cov = covariates.to(self.side_mean.dtype).reshape(batch, len(kinds))
        return (cov - self.side_mean) / self.side_std

    # -- training ---------------------------------------------------------------------------
    def _loss(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        x = batch["input"]
        return self.flow(x, batch["target"] / self.pet_scale, self.side(batch.get("covariates"), x.shape[0]),
                         quant_step=self.quant_step, generator=generator)

    def training_step(self, batch: Batch, group: str) -> dict[str, Tensor]:
        out = self._loss(batch)
        return {"loss": out["loss"], **{k: v.detach() for k, v in out.items() if k != "loss"}}

    @torch.no_grad()
    def validation_step(self, batch: Batch) -> NLLSums:
        """Conditional NLL of the PET (nats summed over voxels, dequantisation noise seeded) and the
        errors of the temperature-0 prediction inside the mask (SUVR)."""
        x = batch["input"]
        generator = torch.Generator(device=x.device).manual_seed(self.val_seed)
        out = self._loss(batch, generator)
        n_vox = float(batch["target"][0].numel())
        b = x.shape[0]
        nll = float(out["bpv_pet"]) * math.log(2.0) * n_vox * b
        pred = self.predict(x, batch.get("covariates"))
        return NLLSums(nll, n_vox * b, masked_errors(pred, batch["target"], batch.get("mask")))

    # -- generation -------------------------------------------------------------------------
    def predict(self, x: Tensor, covariates: Tensor | None = None) -> Tensor:
        """Temperature-0 point prediction (every PET latent at its conditional mean), in SUVR."""
        return self.flow.sample(x, 0.0, self.side(covariates, x.shape[0])) * self.pet_scale

    def predict_sample(self, x: Tensor, covariates: Tensor | None = None, *, temperature: float | None = None,
                       generator: torch.Generator | None = None) -> Tensor:
        """One sample of p(PET | MRI[, side]) at ``temperature`` (default the config's), in SUVR.

        The hook ``neurotrans predict --uncertainty`` uses: the SD of ``samples`` such draws is
        the uncertainty map.
        """
        t = self.temperature if temperature is None else float(temperature)
        return self.flow.sample(x, t, self.side(covariates, x.shape[0]), generator) * self.pet_scale
