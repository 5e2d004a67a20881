"""A training run killed mid-way, for the resume tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from neurotrans.training.run import train_from_config
from neurotrans.training.trainer import Trainer


def train_killed_at(cfg: Any, out: Path, step: int, monkeypatch: pytest.MonkeyPatch, device: str = "auto") -> None:
    """Train ``cfg`` into ``out`` and die as step ``step`` starts (after the checkpoint of ``step - 1``
    when that is a checkpoint step); the trainer is restored afterwards."""
    original = Trainer.train_iteration

    def failing(self: Trainer, batch: Any) -> Any:
        if self.state.step == step:
            raise RuntimeError("injected failure")
        return original(self, batch)

    monkeypatch.setattr(Trainer, "train_iteration", failing)
    with pytest.raises(RuntimeError, match="injected"):
        train_from_config(cfg, out=out, device=device)
    monkeypatch.setattr(Trainer, "train_iteration", original)
