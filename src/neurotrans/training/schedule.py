"""Learning-rate schedules: the factor on every optimiser group's rate, a pure function of the step.

No scheduler object holds state, so a run resumed from any checkpoint (or run under
torchrun) sets the same rates as an uninterrupted one; the reference implementations
are torch's ``LinearLR``, ``CosineAnnealingLR`` and ``StepLR`` (a test compares them).
"""

from __future__ import annotations

import math

from neurotrans.config import OptimConfig


def lr_factor(cfg: OptimConfig, step: int, max_steps: int) -> float:
    """The multiplier of every group's configured rate for the batch of ``step`` (0-based).

    Args:
        cfg: the optimiser settings (``schedule``, ``decay_start``, ``step_size``, ``gamma``).
        step: optimisation steps already taken.
        max_steps: ``trainer.max_steps``, where ``linear`` and ``cosine`` reach 0; above
            ``decay_start`` (:meth:`OptimConfig.check_horizon`, which the Config and the Trainer call).
    """
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        return cfg.gamma ** (step // cfg.step_size)
    done = min(max(step - cfg.decay_start, 0) / (max_steps - cfg.decay_start), 1.0)
    if cfg.schedule == "linear":
        return 1.0 - done
    return 0.5 * (1.0 + math.cos(math.pi * done))
