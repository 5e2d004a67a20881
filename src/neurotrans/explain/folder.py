"""Where ``neurotrans explain`` writes, inside a run folder: the one place knowing ``RUN/explain/``.

::

    RUN/explain/cca/similarity.tsv       this run's CCA similarity per layer and concept
    RUN/explain/cca/summary.tsv          mean +- SD per layer and concept over the runs explained together
    RUN/explain/cca/curves.png           the summary as the paper's Fig. 3 (tissue/images; regions)
    RUN/explain/cca/cca.json             what was computed: runs pooled, subjects, concept columns
    RUN/explain/cca/components/*.nii.gz  leading canonical components (one subject, input grid)
    RUN/explain/cca/components.png       their montage next to the concept maps
    RUN/explain/esit/maps/<key>_{attention,embeddings}.nii.gz   (X, Y, Z, R) on the input grid
    RUN/explain/esit/montage_<key>.png   attention channels and tissue embeddings, axial
    RUN/explain/esit/strength.tsv        per subject, region and channel: mean embedding, attention ...
    RUN/explain/esit/associations.tsv    per region and channel: r with regional GM volume, group means
    RUN/explain/esit/summary.tsv         per region: the channel attention picks there, its associations
    RUN/explain/esit/esit.json           what was computed

Readers (the report) and writers (:mod:`neurotrans.explain.cca_run`,
:mod:`neurotrans.explain.esit_run`) both go through :class:`ExplainFolder`.

References: DESIGN.md rule 12 (one place knows a folder's layout).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from neurotrans.io.run import RunFolder


def safe_name(text: str) -> str:
    """``text`` usable in a file name (letters, digits, ``.``, ``_``, ``-``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text))


@dataclass(frozen=True)
class ExplainFolder:
    """The ``explain/`` folder of one run.

    Args:
        root: ``RUN/explain`` (use :meth:`of_run`).
    """

    root: Path

    @classmethod
    def of_run(cls, run_dir: str | Path) -> ExplainFolder:
        return cls(RunFolder(Path(run_dir)).explain)

    # CCA
    @property
    def cca(self) -> Path:
        return self.root / "cca"

    @property
    def cca_similarity(self) -> Path:
        return self.cca / "similarity.tsv"

    @property
    def cca_summary(self) -> Path:
        return self.cca / "summary.tsv"

    @property
    def cca_curves(self) -> Path:
        return self.cca / "curves.png"

    @property
    def cca_meta(self) -> Path:
        return self.cca / "cca.json"

    @property
    def cca_components(self) -> Path:
        return self.cca / "components"

    def cca_component(self, key: str, layer: str, concept: str) -> Path:
        """The leading canonical component of ``layer`` against ``concept`` for subject ``key``."""
        return self.cca_components / f"{safe_name(key)}_{safe_name(layer)}_{safe_name(concept)}.nii.gz"

    @property
    def cca_components_png(self) -> Path:
        return self.cca / "components.png"

    # ESIT
    @property
    def esit(self) -> Path:
        return self.root / "esit"

    @property
    def esit_maps(self) -> Path:
        return self.esit / "maps"

    def esit_map(self, key: str, kind: str) -> Path:
        """``maps/<key>_<kind>.nii.gz`` (kind ``attention`` or ``embeddings``)."""
        return self.esit_maps / f"{safe_name(key)}_{safe_name(kind)}.nii.gz"

    def esit_montage(self, key: str) -> Path:
        return self.esit / f"montage_{safe_name(key)}.png"

    def esit_montages(self) -> list[Path]:
        """The montages present, sorted by name."""
        return sorted(self.esit.glob("montage_*.png"))

    @property
    def esit_strength(self) -> Path:
        return self.esit / "strength.tsv"

    @property
    def esit_associations(self) -> Path:
        return self.esit / "associations.tsv"

    @property
    def esit_summary(self) -> Path:
        return self.esit / "summary.tsv"

    @property
    def esit_meta(self) -> Path:
        return self.esit / "esit.json"


__all__ = ["ExplainFolder", "safe_name"]
