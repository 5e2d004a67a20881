"""Saving and loading fitted baselines as ``weights_only`` torch files (no pickle of code)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from neurotrans.baselines.modality_propagation import ModalityPropagation
from neurotrans.baselines.random_forest import RandomForestBaseline
from neurotrans.baselines.voxel_mlp import VoxelMLPBaseline
from neurotrans.names import check_name

Baseline = RandomForestBaseline | VoxelMLPBaseline | ModalityPropagation

BASELINES: dict[str, type[Baseline]] = {
    "random_forest": RandomForestBaseline,
    "voxel_mlp": VoxelMLPBaseline,
    "modality_propagation": ModalityPropagation,
}


def baseline_from_state(state: dict[str, Any]) -> Baseline:
    """Rebuild the fitted baseline a ``state()`` dict describes (dispatch on its ``kind``).

    Raises:
        ValueError: not a dict, unknown kind (with close matches), or a bad state.
    """
    if not isinstance(state, dict) or not isinstance(state.get("kind"), str):
        raise ValueError("a baseline state is a dict with a 'kind' string")
    check_name(state["kind"], tuple(BASELINES), "baseline")
    return BASELINES[state["kind"]].from_state(state)


def save_baseline(model: Baseline, path: str | Path) -> Path:
    """Write ``model.state()`` with ``torch.save``; returns the path."""
    path = Path(path)
    torch.save(model.state(), path)
    return path


def load_baseline(path: str | Path) -> Baseline:
    """Load a file written by :func:`save_baseline`.

    ``torch.load(weights_only=True)`` admits only tensors and plain containers, and the
    random forest's skops bytes are loaded against an explicit type list, so loading a
    tampered file raises instead of running code.

    Raises:
        ValueError: the file holds anything else (the message names the file).
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError or RuntimeError here
        raise ValueError(f"{path}: not a baseline state that loads safely ({err})") from err
    try:
        return baseline_from_state(state)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
