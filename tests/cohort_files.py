"""Writing a tiny test cohort: one NIfTI per subject and image, and the manifest naming them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neurotrans.io.nifti import save_volume


def write_manifest(root: Path, subjects: Iterable[tuple[Mapping[str, Any], Mapping[str, np.ndarray]]],
                   affine: np.ndarray) -> Path:
    """Save ``root/<subject>/<image>.nii.gz`` for each ``(row, images)`` and ``root/manifest.tsv``.

    ``row`` holds the manifest's non-image columns (``subject`` first); each image becomes a
    column with its file's path relative to ``root``.
    """
    rows = []
    for meta, images in subjects:
        row = dict(meta)
        for name, data in images.items():
            rel = f"{row['subject']}/{name}.nii.gz"
            save_volume(root / rel, np.asarray(data, dtype=np.float32), affine)
            row[name] = rel
        rows.append(row)
    pd.DataFrame(rows).to_csv(root / "manifest.tsv", sep="\t", index=False)
    return root / "manifest.tsv"
