"""Sketcher-Refiner: a cascade of conditional GANs, each stage refining the previous one's output.

Stage 0 (the Sketcher) maps the MRI to a first PET; stage k >= 1 (a Refiner) maps the MRI
and the output of stage k - 1 to a refined PET. The stages are a LIST of GAN configs
(:class:`StageConfig`: a Sketcher and 0-3 Refiners, thesis Sec. 3.3.3), composed, never
subclassed: ``cgan`` and ``cfsagan`` networks alike.

Scheduling inside one run: stage k trains on the ``steps`` steps after those of the
stages before it (the last stage also on every step after that), so ``schedule(step)``
returns the active stage's groups ``["D<k>"] * d_steps + ["G<k>"]``. While stage k trains,
the stages before it are frozen: eval mode (no dropout, fixed batch-norm statistics) and
no gradients; their sketch is computed afresh for every step (the D steps each see a new
fake). The buffer ``active_stage`` (in every checkpoint) records the stage trained last;
validation and ``predict`` run the cascade up to it, so a checkpoint's validation score
and its predictions always describe the same model, and a run stopped during stage 0
predicts with the Sketcher alone. Stage starts are pure functions of the step, so a run
resumed from a checkpoint, in the middle of a stage or across a boundary, continues
bit-identically (optimiser states of all stages, label-smoothing generators and RNG
states are in the checkpoint).

Use ``early_stopping: none`` (the validation error jumps at a stage boundary) and
validate at the end (``val_every`` = ``max_steps``) to compare the final cascade.

References: Wei et al. 2019, "Predicting PET-derived demyelination from multimodal MRI
using sketcher-refiner adversarial training" (thesis ch. 3: Sketcher 400 epochs with
Adam 1e-4 and L1, then the Refiner from scratch 400 epochs with Adam 5e-5 and weighted L1,
the Sketcher fixed; Sec. 3.3.3: 0-3 refinement iterations); Wei et al. 2020 (thesis ch. 4:
"Refiner CF-SAGAN", L1 Sketcher, NWL1 Refiner).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from neurotrans.methods.base import Batch, Method, MethodConfig, ModelIO, OptimGroup
from neurotrans.methods.gan_stage import GANLosses, GANStageConfig, build_gan, lcm_multiple

MAX_REFINERS = 3


@dataclass(frozen=True)
class StageConfig(GANStageConfig):
    """One stage of a cascade: a GAN (:class:`GANStageConfig`) and its training steps.

    Args:
        steps: optimisation steps of this stage (each stage but the last needs >= 1; the
            last trains from its start to the end of the run, ``steps`` or more).
    """

    steps: int = 0


SKETCHER = StageConfig(generator="unet_sketcher_z", loss="l1", lr=1e-4, steps=1000)
REFINER = StageConfig(generator="unet_sketcher", loss="wl1", lr=5e-5, steps=1000)


def _stage(value: StageConfig | Mapping[str, Any], index: int) -> StageConfig:
    if isinstance(value, StageConfig):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"model.stages[{index}] must be a mapping of stage settings, got {value!r}")
    from neurotrans.config import _section  # the config's key checking and coercion

    return _section(StageConfig, value, f"model.stages[{index}].")


@dataclass(frozen=True)
class CascadeConfig(MethodConfig):
    """``model`` section of ``method: cascade``.

    Args:
        stages: the Sketcher then 0-3 Refiners, each a :class:`StageConfig` mapping. The
            default is the thesis's Sketcher-Refiner: a noisy 3D U-Net Sketcher with L1
            (Adam 1e-4) and a 3D U-Net Refiner with WL1 (Adam 5e-5), patch discriminators.
    """

    method: ClassVar[str] = "cascade"
    stages: tuple[StageConfig, ...] = field(default_factory=lambda: (SKETCHER, REFINER))

    def __post_init__(self) -> None:
        if isinstance(self.stages, Mapping) or not isinstance(self.stages, Sequence):
            raise ValueError(f"model.stages must be a list of stage mappings, got {self.stages!r}")
        stages = tuple(_stage(s, i) for i, s in enumerate(self.stages))
        object.__setattr__(self, "stages", stages)
        if not 1 <= len(stages) <= 1 + MAX_REFINERS:
            raise ValueError(f"model.stages lists {len(stages)} stages: give a Sketcher and 0-{MAX_REFINERS} "
                             "Refiners")
        for i, s in enumerate(stages):
            s.check_stage(f"model.stages[{i}].")
            if s.steps < (1 if i < len(stages) - 1 else 0):
                raise ValueError(f"model.stages[{i}].steps must be >= 1 (a stage before the last must end), "
                                 f"got {s.steps}")

    def check_data(self, data: Any) -> None:
        for i, s in enumerate(self.stages):
            s.check_stage_data(data, f"model.stages[{i}].")


class Cascade(Method):
    """Sketcher + Refiners trained stage after stage in one run (see the module docstring).

    Args:
        stages: per stage ``(generator, discriminator, losses)``; stage k >= 1's generator
            takes the MRI channels + 1 (the previous output), every discriminator the MRI
            channels + 1 (the PET).
        steps: training steps of each stage.
        d_steps: discriminator steps per generator step, per stage.
        hparams: optimiser overrides per stage (``lr``).
    """

    Config = CascadeConfig
    summary: ClassVar[str] = ("Sketcher-Refiner: cGAN stages trained one after another, earlier stages frozen, "
                              "Refiners with WL1/NWL1 (papers/003 ch. 3-4)")

    def __init__(self, stages: Sequence[tuple[nn.Module, nn.Module, GANLosses]], *, steps: Sequence[int],
                 d_steps: Sequence[int], hparams: Sequence[dict[str, Any]] | None = None) -> None:
        n = len(stages)
        hparams = list(hparams) if hparams is not None else [{} for _ in range(n)]
        if not 1 <= n <= 1 + MAX_REFINERS or len(steps) != n or len(d_steps) != n or len(hparams) != n:
            raise ValueError(f"a cascade needs 1-{1 + MAX_REFINERS} stages with one steps, d_steps and hparams "
                             f"entry each; got {n} stages, {len(steps)} steps, {len(d_steps)} d_steps")
        if any(int(s) < 1 for s in steps[:-1]) or any(int(d) < 1 for d in d_steps):
            raise ValueError(f"every stage but the last needs steps >= 1 and every d_steps >= 1, "
                             f"got steps={list(steps)}, d_steps={list(d_steps)}")
        networks: dict[str, nn.Module] = {}
        for k, (gen, disc, _) in enumerate(stages):
            networks[f"G{k}"], networks[f"D{k}"] = gen, disc
        super().__init__(networks)
        self.gans = nn.ModuleList(losses for _, _, losses in stages)
        self.n_stages = n
        self.ends = list(itertools.accumulate(int(s) for s in steps[:-1]))  # first step of stage k + 1
        self.d_steps = [int(d) for d in d_steps]
        self.hparams = [dict(h) for h in hparams]
        self.register_buffer("active_stage", torch.zeros((), dtype=torch.long))

    @classmethod
    def from_config(cls, config: CascadeConfig, io: ModelIO) -> Cascade:
        stages = [build_gan(s, io, extra_in=0 if k == 0 else 1, where=f"model.stages[{k}].")
                  for k, s in enumerate(config.stages)]
        return cls(stages, steps=[s.steps for s in config.stages], d_steps=[s.d_steps for s in config.stages],
                   hparams=[s.hparams for s in config.stages])

    # ---------------------------------------------------------------- schedule
    def stage_at(self, step: int) -> int:
        """The stage trained on step ``step`` (0-based)."""
        for k, end in enumerate(self.ends):
            if step < end:
                return k
        return self.n_stages - 1

    def optimiser_groups(self) -> dict[str, OptimGroup]:
        groups = {}
        for k in range(self.n_stages):
            groups[f"D{k}"] = OptimGroup((f"D{k}",), dict(self.hparams[k]))
            groups[f"G{k}"] = OptimGroup((f"G{k}",), dict(self.hparams[k]))
        return groups

    def schedule(self, step: int = 0) -> list[str]:
        k = self.stage_at(step)
        return [f"D{k}"] * self.d_steps[k] + [f"G{k}"]

    def freeze_before(self, stage: int) -> None:
        """Make stages ``< stage`` fixed functions: eval mode, no gradients."""
        for j in range(stage):
            for name in (f"G{j}", f"D{j}"):
                net = self.networks[name]
                net.eval()
                net.requires_grad_(False)

    # ---------------------------------------------------------------- forward
    def run(self, x: Tensor, n: int) -> Tensor:
        """Output of the first ``n`` stages on the MRI ``x`` (B, C, *S) -> (B, 1, *S)."""
        out = self.networks["G0"](x)
        for k in range(1, n):
            out = self.networks[f"G{k}"](torch.cat([x, out], 1))
        return out

    def _condition(self, x: Tensor, stage: int) -> Tensor:
        if stage == 0:
            return x
        with torch.no_grad():
            sketch = self.run(x, stage)  # the frozen stages, afresh for every step
        return torch.cat([x, sketch], 1)

    def training_step(self, batch: Batch, group: str) -> dict[str, Tensor]:
        kind, stage = group[:1], group[1:]
        if kind not in ("D", "G") or not stage.isdigit() or int(stage) >= self.n_stages:
            raise ValueError(f"the cascade's groups are {', '.join(self.optimiser_groups())}, not {group!r}")
        k = int(stage)
        self.active_stage.fill_(k)
        self.freeze_before(k)
        x, y = batch["input"], batch["target"]
        cond = self._condition(x, k)
        G, D, gan = self.networks[f"G{k}"], self.networks[f"D{k}"], self.gans[k]
        if kind == "D":
            with torch.no_grad():
                fake = G(cond)
            return gan.discriminator(D, x, y, fake)
        return gan.generator(D, x, G(cond), batch)

    def predict(self, x: Tensor, covariates: Tensor | None = None) -> Tensor:
        return self.run(x, int(self.active_stage) + 1)

    @property
    def size_multiple(self) -> int:
        return lcm_multiple(self.networks.values())
