"""Voxel-wise multilayer perceptron (2 hidden layers of 100), as a fitted method.

References: Wei 2020 PhD thesis ch. 2.2.3 (voxel-wise MLP baseline, 2 x 100 hidden units,
mean squared error).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from neurotrans.baselines import VoxelMLPBaseline
from neurotrans.methods.fitted import BaselineMethod, FittedConfig, build_checked


@dataclass(frozen=True)
class VoxelMLPConfig(FittedConfig):
    """``model`` section of ``method: voxel_mlp`` (the fields of :class:`VoxelMLPBaseline`).

    Args:
        hidden: hidden layer widths ((100, 100) in the thesis).
        n_samples: training voxels sampled inside the masks over all subjects.
        max_iter: maximum epochs of scikit-learn's Adam (early stopping on 10 % of the voxels).
        alpha: L2 penalty.
        learning_rate: Adam's initial step.
    """

    method: ClassVar[str] = "voxel_mlp"
    hidden: tuple[int, ...] = VoxelMLPBaseline.hidden
    n_samples: int = VoxelMLPBaseline.n_samples
    max_iter: int = VoxelMLPBaseline.max_iter
    alpha: float = VoxelMLPBaseline.alpha
    learning_rate: float = VoxelMLPBaseline.learning_rate

    def __post_init__(self) -> None:
        build_checked(VoxelMLPBaseline, self)


class VoxelMLPMethod(BaselineMethod):
    """MLP from the C input intensities of a voxel to the target voxel."""

    Config = VoxelMLPConfig
    model_class = VoxelMLPBaseline
    summary: ClassVar[str] = "voxel-wise MLP (2 x 100) on the input intensities, fitted (papers 003 ch. 2)"
