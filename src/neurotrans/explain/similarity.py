"""Per-layer CCA similarity of a trained network with tissue, image and region concepts.

The paper's protocol: sample subjects (20) of the training set, run the network, take every
activation after a LeakyReLU, keep the voxels that are brain tissue or CSF, concatenate the
subjects along the voxel axis and compute the first canonical correlation of each layer's
activations with each concept map: T1, PET, GM, WM, CSF and atlas regions (binary masks).

Here the concept maps of a subject come from its manifest row (:func:`load_concepts`) and
the atlas (:func:`atlas_concepts`, AAL2 shipped with clinica; the paper used AAL3 and the
Hammersmith atlas). To bound memory and the c / N bias of sample canonical correlations,
each subject contributes at most ``max_voxels`` voxels, drawn deterministically
(:func:`neurotrans.explain.cca.subsample_mask` with seed ``seed + subject index``).
Memory is about ``n_subjects * max_voxels * sum(channels) * 4`` bytes.

References: the ESIT paper ("Demystifying T1-MRI to FDG-PET translation", Sec. 3-4, Fig. 3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from neurotrans.data.grid import Grid
from neurotrans.explain.activations import ACTIVATION_TYPES, activation_matrices
from neurotrans.explain.cca import layer_similarity, subsample_mask
from neurotrans.io.manifest import Manifest

# concept name -> AAL2 region-name prefixes (left and right together)
DEFAULT_REGIONS: dict[str, tuple[str, ...]] = {
    "thalamus": ("Thalamus",),
    "putamen": ("Putamen",),
    "caudate": ("Caudate",),
    "pallidum": ("Pallidum",),
    "hippocampus": ("Hippocampus",),
    "amygdala": ("Amygdala",),
    "insula": ("Insula",),
    "anterior_cingulate": ("Cingulate_Ant",),
    "posterior_cingulate": ("Cingulate_Post",),
    "precuneus": ("Precuneus",),
    "visual_cortex": ("Calcarine", "Cuneus", "Lingual"),
    "cerebellum": ("Cerebelum", "Vermis"),
}
# concept name -> manifest column
DEFAULT_CONCEPT_COLUMNS: dict[str, str] = {"T1": "T1w", "PET": "FDG", "GM": "GM", "WM": "WM", "CSF": "CSF"}


def atlas_concepts(grid: Grid, regions: Mapping[str, Sequence[str]] | None = None,
                   atlas: str = "AAL2") -> dict[str, np.ndarray]:
    """Binary region masks on ``grid`` (float32 0/1), one per concept.

    Args:
        grid: the working grid.
        regions: concept -> region-name prefixes of the atlas (default :data:`DEFAULT_REGIONS`).
        atlas: ``"AAL2"`` or ``"AICHA"``.

    Raises:
        ValueError: a concept matches no atlas region.
    """
    from neurotrans.data.atlas import load_atlas, region_mask

    labels, names = load_atlas(atlas, grid)
    out = {}
    for concept, prefixes in (regions or DEFAULT_REGIONS).items():
        if not any(n.startswith(tuple(prefixes)) for n in names.values()):
            raise ValueError(f"concept {concept!r}: no {atlas} region starts with {list(prefixes)}")
        out[concept] = region_mask(labels, names, *prefixes).astype(np.float32)
    return out


def load_concepts(manifest: Manifest, i: int, grid: Grid, columns: Mapping[str, str] | None = None,
                  regions: Mapping[str, Sequence[str]] | None = None, atlas: str = "AAL2") -> dict[str, np.ndarray]:
    """Concept maps of manifest row ``i`` on ``grid``: image columns (trilinear) and atlas regions.

    Args:
        manifest: a :class:`neurotrans.io.manifest.Manifest`.
        i: row index.
        grid: working grid (e.g. the prepared subject's ``grid``).
        columns: concept -> manifest column (default :data:`DEFAULT_CONCEPT_COLUMNS`); columns
            the manifest lacks are skipped, so a T1-only cohort still gets its regions.
        regions: as :func:`atlas_concepts`; ``{}`` for none.
        atlas: region atlas.

    Returns:
        ``{concept: (X, Y, Z) float32}``. CCA is invariant to affine maps of a concept, so the
        images' units and normalisation do not matter.
    """
    from neurotrans.data.resample import resample_to_grid
    from neurotrans.io.nifti import load_volume

    out = {}
    for concept, column in (DEFAULT_CONCEPT_COLUMNS if columns is None else columns).items():
        if column in manifest.table.columns and manifest.path(i, column) is not None:
            vol = load_volume(manifest.path(i, column))
            out[concept] = resample_to_grid(vol.data, vol.affine, grid, order=1)
    if regions is None or regions:
        out.update(atlas_concepts(grid, regions, atlas))
    return out


def concept_matrices(concepts: Mapping[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    """Concept volumes ``(X, Y, Z)`` (or ``(k, X, Y, Z)``) as ``(N,)`` (``(N, k)``) at the mask voxels."""
    mask = np.asarray(mask, dtype=bool)
    out = {}
    for name, vol in concepts.items():
        vol = np.asarray(vol)
        if vol.shape == mask.shape:
            out[name] = vol[mask].astype(np.float64)
        elif vol.ndim == 4 and vol.shape[1:] == mask.shape:
            out[name] = vol[:, mask].T.astype(np.float64)
        else:
            raise ValueError(f"concept {name!r} of shape {vol.shape} does not match the mask {mask.shape}")
    return out


@dataclass(frozen=True)
class CCASubject:
    """One subject for the similarity analysis.

    Args:
        inputs: ``(C, X, Y, Z)`` normalised network inputs (as in training).
        mask: ``(X, Y, Z)`` bool: voxels that are brain tissue or CSF.
        concepts: ``{name: (X, Y, Z) or (k, X, Y, Z)}`` on the same grid.
        key: an identifier (for error messages).
    """

    inputs: np.ndarray
    mask: np.ndarray
    concepts: Mapping[str, np.ndarray] = field(default_factory=dict)
    key: str = ""


def network_similarity(
    model: nn.Module,
    subjects: Sequence[CCASubject],
    *,
    spatial_dims: int = 2,
    plane: str = "axial",
    multiple: int = 16,
    max_voxels: int | None = 2000,
    seed: int = 0,
    regularization: float = 0.0,
    batch_size: int = 8,
    module_types: Sequence[type[nn.Module]] = ACTIVATION_TYPES,
    device: str | torch.device = "cpu",
) -> pd.DataFrame:
    """Per-layer CCA similarity of ``model`` with every concept, over ``subjects`` pooled.

    Args:
        model: the trained network (put in eval mode here).
        subjects: the sampled subjects with their concepts (the same concept names for all).
        spatial_dims: 2 (slice-wise model, run on every slice of ``plane``) or 3.
        plane: slicing plane of a 2D model.
        multiple: pad slices/volumes to a multiple of this (``2**depth`` of a U-Net).
        max_voxels: voxels per subject (deterministic subsample; ``None`` = all).
        seed: subsampling seed (subject j uses ``seed + j``).
        regularization: ridge on the activation covariance (see :func:`neurotrans.explain.cca.cca`).
        batch_size: slices per forward pass.
        module_types: recorded module types (default LeakyReLU).
        device: where the model runs.

    Returns:
        tidy table ``layer, path, concept, similarity, n_voxels, n_channels, rank``, layers in
        forward order (``actv1`` ...).
    """
    if not subjects:
        raise ValueError("no subject given")
    model.eval()
    acts, cons, paths = [], [], {}
    for j, s in enumerate(subjects):
        if not s.concepts:
            raise ValueError(f"subject {s.key or j} has no concept map")
        mask = subsample_mask(s.mask, max_voxels, seed + j)
        a, p = activation_matrices(model, s.inputs, mask, spatial_dims=spatial_dims, plane=plane,
                                   multiple=multiple, batch_size=batch_size, module_types=module_types,
                                   device=device)
        acts.append(a)
        cons.append(concept_matrices(s.concepts, mask))
        paths.update(p)
    table = layer_similarity(acts, cons, regularization=regularization)
    table.insert(1, "path", table["layer"].map(paths))
    return table
