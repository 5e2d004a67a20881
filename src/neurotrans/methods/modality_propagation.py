"""Modality propagation: 3x3x3 patch search in a library of training subjects, as a fitted method.

References: Ye et al. 2013, "Modality propagation: coherent synthesis of subject-specific
scans with data-driven regularization" (MICCAI); Wei 2020 PhD thesis ch. 2.2.3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from neurotrans.baselines import ModalityPropagation
from neurotrans.methods.fitted import BaselineMethod, FittedConfig, build_checked


@dataclass(frozen=True)
class ModalityPropagationConfig(FittedConfig):
    """``model`` section of ``method: modality_propagation`` (the fields of :class:`ModalityPropagation`).

    The library is compared voxel for voxel: every subject must lie on one grid (set
    ``data.voxel_size``; native grids of different shapes are refused at fit time).

    Args:
        patch_radius: r; patches are (2r+1)^3 (1: 3x3x3 as the thesis).
        search_radius: s; the search window is (2s+1)^3 voxels around the same location.
        n_neighbours: library subjects fused per voxel.
        max_library: keep at most this many training subjects (``None``: all).
    """

    method: ClassVar[str] = "modality_propagation"
    patch_radius: int = ModalityPropagation.patch_radius
    search_radius: int = ModalityPropagation.search_radius
    n_neighbours: int = ModalityPropagation.n_neighbours
    max_library: int | None = ModalityPropagation.max_library

    def __post_init__(self) -> None:
        build_checked(ModalityPropagation, self)


class ModalityPropagationMethod(BaselineMethod):
    """Patch matching against the training subjects (one grid), fusing their target patches."""

    Config = ModalityPropagationConfig
    model_class = ModalityPropagation
    summary: ClassVar[str] = ("modality propagation: 3x3x3 patch search in a library of training subjects "
                              "(Ye et al. 2013; papers 003 ch. 2)")
