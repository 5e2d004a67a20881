"""Classical baselines: random forest, voxel-wise MLP, modality propagation.

Each is a frozen class of explicit keyword hyper-parameters with
``fit(inputs, targets, masks, seed) -> self``, ``predict(inputs, mask) -> (X, Y, Z)``,
``state() -> dict`` (tensors, plain values, skops bytes) and ``from_state(state)``.
"""

from __future__ import annotations

from neurotrans.baselines.modality_propagation import ModalityPropagation
from neurotrans.baselines.random_forest import RandomForestBaseline
from neurotrans.baselines.state import (
    BASELINES,
    Baseline,
    baseline_from_state,
    load_baseline,
    save_baseline,
)
from neurotrans.baselines.voxel_mlp import VoxelMLPBaseline

__all__ = [
    "BASELINES",
    "Baseline",
    "ModalityPropagation",
    "RandomForestBaseline",
    "VoxelMLPBaseline",
    "baseline_from_state",
    "load_baseline",
    "save_baseline",
]
