"""Uncertainty maps and side-information overrides at prediction time.

Two sources of a voxel-wise SD map, both in the target's units on the input's grid:

- sampling: a method with a ``predict_sample(x, covariates, *, temperature, generator)`` hook
  (DUAL-GLOW) draws ``samples`` volumes at a temperature; the SD map is their SD (ddof 1) and
  the prediction stays the method's point prediction (DUAL-GLOW: temperature 0);
- ensembles: several checkpoints of one task (the cross-validation folds of a config): the
  prediction is the mean of the models' predictions, the SD map their SD (ddof 1).

Side information (e.g. ``age``, the DUAL-GLOW conditioning) can be overridden for a
prediction (``--age A``) or swept (``--age-sweep 60 90 7``): :func:`with_covariates`.

References: Sun et al. 2019 (DUAL-GLOW: sampling at a temperature, the age sweep of Fig. 6-7);
Lakshminarayanan et al. 2017 (deep ensembles: the spread of independently trained models as
uncertainty).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurotrans.errors import InputError
from neurotrans.io.run import RunInfo
from neurotrans.methods.base import Method

# RunInfo fields that models predicting together must share
ENSEMBLE_FIELDS = ("inputs", "input_channels", "target", "units", "grid")


def check_ensemble(models: Sequence[tuple[Method, RunInfo]], checkpoints: Sequence[str | Path]) -> None:
    """Several checkpoints predict together only for the same inputs, target, units and grid.

    Raises:
        InputError: naming the first checkpoint that differs from the first one, and how.
    """
    first = models[0][1]
    for (_, info), path in zip(models[1:], checkpoints[1:], strict=True):
        for name in ENSEMBLE_FIELDS:
            if getattr(info, name) != getattr(first, name):
                raise InputError(path, f"has {name} {getattr(info, name)!r}, the first checkpoint "
                                 f"{getattr(first, name)!r}", "ensemble only models of one task (the folds of "
                                 "one config)")


def covariate_names(info: RunInfo) -> tuple[str, ...]:
    """The side-information columns a model takes (``data.covariates``)."""
    return tuple((info.config.get("data") or {}).get("covariates") or ())


def check_overrides(overrides: Mapping[str, float], info: RunInfo, where: str = "--age") -> None:
    """Refuse covariate overrides a model does not take.

    Raises:
        InputError: the model takes no such side information.
    """
    names = covariate_names(info)
    unknown = [k for k in overrides if k not in names]
    if unknown:
        taken = ", ".join(names) if names else "none"
        raise InputError(where, f"sets {', '.join(unknown)}, but the model takes no such side information "
                         f"(its covariates: {taken})", "drop the option, or use a model trained with "
                         "data.covariates (e.g. dualglow_age_fdg)")


def with_covariates(subject: Any, overrides: Mapping[str, float], info: RunInfo, where: str = "--age") -> Any:
    """The prepared subject with some covariates replaced (``{"age": 75.0}``); see :func:`check_overrides`."""
    if not overrides:
        return subject
    check_overrides(overrides, info, where)
    return dataclasses.replace(subject, covariates={**subject.covariates, **dict(overrides)})


def sweep_values(start: float, stop: float, n: float) -> list[float]:
    """``n`` evenly spaced values from ``start`` to ``stop`` (both included)."""
    if float(n) != int(n) or int(n) < 2:
        raise InputError(f"--age-sweep {start:g} {stop:g} {n:g}", "needs an integer count >= 2",
                         "e.g. --age-sweep 60 90 7")
    return [float(v) for v in np.linspace(float(start), float(stop), int(n))]


def value_label(value: float) -> str:
    """A BIDS-safe label of a covariate value (``62.5`` -> ``62p5``, ``-1`` -> ``m1``)."""
    return f"{value:g}".replace(".", "p").replace("-", "m").replace("+", "")


def can_sample(method: Method) -> bool:
    """Whether a method draws samples (the ``predict_sample`` hook)."""
    return callable(getattr(method, "predict_sample", None))


def sample_volumes(method: Method, info: RunInfo, subject: Any, *, samples: int, temperature: float, seed: int,
                   device: str | torch.device = "cpu") -> list[np.ndarray]:
    """``samples`` draws of a sampling method for one subject, each in target units on the input grid.

    The draws use one generator seeded with ``seed`` per subject, so a subject's samples do not
    depend on which other subjects are predicted.
    """
    from neurotrans.inference.predict import predict_subject

    if not can_sample(method):
        raise InputError(f"method {info.method}", "draws no samples", "give several checkpoints (the folds of "
                         "the config) for an ensemble SD map")
    generator = torch.Generator(device=torch.device(device)).manual_seed(int(seed))

    def draw(x: torch.Tensor, covariates: torch.Tensor | None) -> torch.Tensor:
        return method.predict_sample(x, covariates, temperature=temperature, generator=generator)  # type: ignore[operator]

    return [predict_subject(method, info, subject, device=device, predict_fn=draw) for _ in range(int(samples))]


def sd_map(volumes: Sequence[np.ndarray]) -> np.ndarray:
    """Voxel-wise SD (ddof 1, float64 accumulation) of two or more volumes, float32."""
    if len(volumes) < 2:
        raise ValueError(f"an SD map needs at least 2 volumes, got {len(volumes)}")
    return np.std(np.stack([np.asarray(v, dtype=np.float64) for v in volumes]), axis=0, ddof=1).astype(np.float32)


def predict_maps(models: Sequence[tuple[Method, RunInfo]], subject: Any, *, uncertainty: bool = False,
                 samples: int | None = None, temperature: float | None = None, seed: int = 0,
                 device: str | torch.device = "cpu", planes: str = "trained",
                 overrides: Mapping[str, float] | None = None,
                 reverse: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Prediction and (with ``uncertainty``) SD map of one prepared subject, on its input grid.

    Args:
        models: one model, or several (an ensemble: the prediction is their mean).
        subject: the prepared subject.
        uncertainty: also return the SD map (across models, or across samples of one model).
        samples, temperature: sampling settings (default: the method's ``samples`` and
            ``temperature``, from its config).
        seed: seed of the samples.
        overrides: covariates replacing the subject's (``{"age": 75.0}``).
        reverse: run unpaired models backwards (target -> input); an SD map then needs an ensemble.

    Returns:
        (prediction, SD map or ``None``), float32, target units.
    """
    from neurotrans.inference.predict import predict_subject

    overrides = dict(overrides or {})
    preds = []
    for method, info in models:
        subj = with_covariates(subject, overrides, info)
        preds.append(predict_subject(method, info, subj, device=device, planes=planes, reverse=reverse))
    if len(models) > 1:
        stack = np.stack([np.asarray(p, dtype=np.float64) for p in preds])
        pred = stack.mean(axis=0).astype(np.float32)
        return pred, (sd_map(preds) if uncertainty else None)
    if not uncertainty:
        return preds[0], None
    method, info = models[0]
    if reverse:  # a sampling method draws in its trained direction only
        raise InputError("--direction", "samples are drawn in the trained direction only",
                         "leave out --uncertainty, or pass several checkpoints for an ensemble SD map")
    n = int(samples if samples is not None else getattr(method, "samples", 0))
    if n < 2:
        raise InputError("--samples", f"is {n}; an SD map needs at least 2 samples", "pass --samples 8")
    t = float(temperature if temperature is not None else getattr(method, "temperature", 1.0))
    draws = sample_volumes(method, info, with_covariates(subject, overrides, info), samples=n, temperature=t,
                           seed=seed, device=device)
    return preds[0], sd_map(draws)


def uncertainty_description(models: Sequence[tuple[Method, RunInfo]], shas: Sequence[str], *,
                            samples: int | None, temperature: float | None, seed: int) -> dict[str, Any]:
    """How an SD map was made (the ``neurotrans.uncertainty`` entry of its sidecar)."""
    if len(models) > 1:
        return {"kind": "ensemble", "models": len(models), "checkpoints_sha256": list(shas), "ddof": 1,
                "prediction": "mean of the models' predictions"}
    method = models[0][0]
    n = int(samples if samples is not None else getattr(method, "samples", 0))
    t = float(temperature if temperature is not None else getattr(method, "temperature", 1.0))
    return {"kind": "samples", "samples": n, "temperature": t, "seed": int(seed), "ddof": 1,
            "prediction": "the method's point prediction (DUAL-GLOW: temperature 0)"}
