"""Random forest on concatenated 3x3x3 patches of every input (60 trees), as a fitted method.

References: Jog et al. 2014, "Improving magnetic resonance resolution with supervised
learning" / Jog et al. 2015 (random-forest image synthesis, ISBI); Wei 2020 PhD thesis
ch. 2.2.3 (60 trees, 3x3x3 patches).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from neurotrans.baselines import RandomForestBaseline
from neurotrans.methods.fitted import BaselineMethod, FittedConfig, build_checked


@dataclass(frozen=True)
class RandomForestConfig(FittedConfig):
    """``model`` section of ``method: random_forest`` (the fields of :class:`RandomForestBaseline`).

    Args:
        n_trees: trees (60 in the thesis).
        patch_radius: r; features are the (2r+1)^3 patches of every input (1: 3x3x3).
        n_samples: training voxels sampled inside the masks over all subjects.
        max_features: share of features tried at each split.
        min_samples_leaf: smallest leaf.
        n_jobs: worker processes of scikit-learn.
    """

    method: ClassVar[str] = "random_forest"
    n_trees: int = RandomForestBaseline.n_trees
    patch_radius: int = RandomForestBaseline.patch_radius
    n_samples: int = RandomForestBaseline.n_samples
    max_features: float = RandomForestBaseline.max_features
    min_samples_leaf: int = RandomForestBaseline.min_samples_leaf
    n_jobs: int = RandomForestBaseline.n_jobs

    def __post_init__(self) -> None:
        build_checked(RandomForestBaseline, self)


class RandomForestMethod(BaselineMethod):
    """Random-forest regression of the target voxel from the 3x3x3 patches of all inputs."""

    Config = RandomForestConfig
    model_class = RandomForestBaseline
    summary: ClassVar[str] = "random forest on 3x3x3 patches of every input, fitted (Jog et al.; papers 003 ch. 2)"
