"""Explaining trained networks: activations, CCA representational similarity, ESIT maps.

- :mod:`~neurotrans.explain.activations`: forward hooks (``actv1`` ... after every LeakyReLU),
  resampling onto the input grid, per-subject ``(N voxels, c)`` activation matrices.
- :mod:`~neurotrans.explain.cca`: CCA (SVD-based), the similarity table per layer and concept.
- :mod:`~neurotrans.explain.similarity`: concept maps (images, tissue maps, AAL2 regions) and
  the per-layer driver over sampled subjects.
- :mod:`~neurotrans.explain.esit`: ESIT's regional attention / tissue embeddings on the input
  grid and the regional embedding-strength analysis.
- :mod:`~neurotrans.explain.cca_run`, :mod:`~neurotrans.explain.esit_run`: ``neurotrans explain
  cca|esit RUN``, on trained run folders (:mod:`~neurotrans.explain.runs`), writing
  ``RUN/explain/`` (:mod:`~neurotrans.explain.folder`) with figures from
  :mod:`~neurotrans.explain.plots`.

References: the ESIT paper ("Demystifying T1-MRI to FDG-PET translation").
"""

from __future__ import annotations

from neurotrans.explain.activations import (
    LayerActivation,
    activation_matrices,
    record_activations,
    resample_activation,
    sample_activation,
)
from neurotrans.explain.cca import (
    CCAResult,
    cca,
    cca_similarity,
    component_image,
    layer_similarity,
    multiple_correlation,
    subsample_mask,
    summarise_similarity,
)
from neurotrans.explain.cca_run import CCAExplanation, explain_cca
from neurotrans.explain.esit import (
    embedding_strength,
    esit_maps,
    region_strength_table,
    strength_associations,
)
from neurotrans.explain.esit_run import ESITExplanation, explain_esit
from neurotrans.explain.folder import ExplainFolder
from neurotrans.explain.similarity import (
    DEFAULT_REGIONS,
    CCASubject,
    atlas_concepts,
    concept_matrices,
    load_concepts,
    network_similarity,
)

__all__ = [
    "CCAExplanation", "ESITExplanation", "ExplainFolder", "explain_cca", "explain_esit",
    "CCAResult", "CCASubject", "DEFAULT_REGIONS", "LayerActivation", "activation_matrices",
    "atlas_concepts", "cca", "cca_similarity", "component_image", "concept_matrices",
    "embedding_strength", "esit_maps", "layer_similarity", "load_concepts", "multiple_correlation",
    "network_similarity", "record_activations", "region_strength_table", "resample_activation",
    "sample_activation", "strength_associations", "subsample_mask", "summarise_similarity",
]  # fmt: skip
