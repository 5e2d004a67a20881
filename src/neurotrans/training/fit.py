"""The trainer's counterpart for fitted methods: one fit, a validation pass, ``checkpoints/last.pt``.

:func:`neurotrans.training.run.train_from_config` hands a
:class:`~neurotrans.methods.fitted.FittedMethod` to a :class:`Fitter` instead of the
:class:`~neurotrans.training.trainer.Trainer`; everything else of a run (config.yaml,
run.json with ``RunInfo`` and the ``TrainingOutcome``, the checkpoint format) is shared.
The Fitter answers the same three calls (``resume()``, ``fit() -> TrainState``,
``monitor``), so the run code has one path after building it.

A fit takes no optimisation steps: the outcome says ``steps = 0``, ``stopped = "fitted"``,
and, when the split has validation subjects, the validation error of the fitted model as
``best_val`` (at ``best_step = 0``). ``trainer.seed`` seeds the fit; ``max_steps``,
``max_minutes`` and the early-stopping rules do not apply.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from neurotrans.config import TrainerConfig
from neurotrans.errors import InputError
from neurotrans.methods.base import ErrorSums, masked_errors
from neurotrans.methods.fitted import FittedMethod
from neurotrans.training.checkpoint import load_checkpoint, save_checkpoint
from neurotrans.training.trainer import TrainState

FITTED = "fitted"


def validation_errors(method: FittedMethod, subjects: Sequence[Any]) -> ErrorSums:
    """Pooled errors (normalised units, inside the masks) of a fitted method on prepared subjects."""
    total = ErrorSums()
    for s in subjects:
        pred = method.predict_volume(s.inputs, s.mask)
        mask = None if s.mask is None else torch.from_numpy(s.mask)
        total = total + masked_errors(torch.from_numpy(pred), torch.from_numpy(s.target[0]), mask)
    return total


class Fitter:
    """Fit a :class:`FittedMethod` on prepared training subjects and write its checkpoint.

    Args:
        method: the unfitted method.
        train: prepared training subjects (whole volumes with targets and masks).
        val: prepared validation subjects (may be empty).
        trainer: the run's trainer settings (``seed``, ``monitor``, ``progress``).
        out: the run folder.
        info: ``RunInfo.to_dict()``, stored in the checkpoint.
    """

    def __init__(self, method: FittedMethod, train: Sequence[Any], val: Sequence[Any], *, trainer: TrainerConfig,
                 out: str | Path, info: dict[str, Any]) -> None:
        if not train:
            raise ValueError("no training subjects to fit on (check the split)")
        self.method = method
        self.train = list(train)
        self.val = list(val)
        self.cfg = trainer
        self.out = Path(out)
        self.info = dict(info)
        self.monitor = trainer.monitor or method.validation_metrics[0]
        if self.monitor not in method.validation_metrics:
            raise ValueError(f"trainer.monitor = {self.monitor!r}, but {type(method).__name__} reports "
                             f"{', '.join(method.validation_metrics)}: monitor one of those")
        self.state = TrainState()
        self.ckpt = self.out / "checkpoints" / "last.pt"
        self.log_path = self.out / "log.jsonl"

    def resume(self) -> None:
        """Reload a finished fit (a fit is one step: an interrupted one starts again)."""
        ckpt = load_checkpoint(self.ckpt)
        self.method.load_state_dict(ckpt["method_state"])
        self.state = TrainState(**ckpt["trainer"])

    def _log(self, record: dict[str, Any]) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as fh:
            fh.write(json.dumps(record, allow_nan=True) + "\n")

    def fit(self) -> TrainState:
        """Fit, validate, write ``checkpoints/last.pt``; returns the final state."""
        s = self.state
        if s.stopped == FITTED:
            return s
        started = time.monotonic()
        try:
            self.method.fit(self.train, seed=self.cfg.seed)
        except ValueError as err:  # the baselines name the subject and what is wrong with it
            raise InputError("training data", f"{type(self.method).__name__} cannot be fitted: {err}",
                             "check the training images; a library method (modality_propagation) needs one "
                             "grid for all subjects: set data.voxel_size") from None
        fit_seconds = time.monotonic() - started
        if self.val:
            metrics = validation_errors(self.method, self.val).metrics()
            s.val_history = [float(metrics[self.monitor])]
            s.best_score, s.best_step = s.val_history[0], 0
            self._log({"step": 0, "epoch": 0, "kind": "val", **{f"val/{k}": v for k, v in metrics.items()},
                       "best": True})
        s.stopped = FITTED
        s.elapsed_s = time.monotonic() - started
        save_checkpoint(self.ckpt, {"info": self.info, "method_state": self.method.state_dict(),
                                    "trainer": s.to_dict()})
        self._log({"step": 0, "epoch": 0, "kind": "end", "stopped": s.stopped, "elapsed_s": s.elapsed_s,
                   "fit_seconds": fit_seconds, "best_step": s.best_step, "best_score": s.best_score})
        return s


__all__ = ["FITTED", "Fitter", "validation_errors"]
