"""The pix2pix paper's "other subjects" reference: what any other subject's image would score.

Each test target is compared with every training subject's target (the other subject's
image taken as the prediction) and the metrics are averaged over those subjects. A model
that does not beat this has learnt nothing subject-specific.

References:
    Lan et al./pix2pix MRI->PET (Table 1, "other subjects" baseline).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence

import numpy as np
import pandas as pd

from neurotrans.io.manifest import Manifest
from neurotrans.io.nifti import Volume, load_volume
from neurotrans.io.run import REFERENCE_LABEL
from neurotrans.metrics.pairing import ImagePair, problem, problems_table, same_grid
from neurotrans.metrics.scores import METRIC_NAMES, pair_metrics, per_subject_table


def reference_images(manifest: Manifest, target: str, subjects: Collection[str] | None) -> Iterator[tuple[str, Volume]]:
    """``(subject, target volume)`` of every manifest row usable as a reference, read one at a time.

    Args:
        manifest: the cohort manifest.
        target: the target column.
        subjects: the training subjects; ``None``: every subject of the manifest.
    """
    allowed = None if subjects is None else {str(s) for s in subjects}
    for i, row in manifest.rows():
        subject = str(row["subject"])
        if (allowed is not None and subject not in allowed) or manifest.path(i, target) is None:
            continue
        yield subject, load_volume(manifest.path(i, target))


def other_subjects_reference(pairs: Sequence[ImagePair], references: Iterator[tuple[str, Volume]] | Sequence[tuple[str, Volume]],
                             pet: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-subject metrics of the reference, one row per pair, scope and units.

    Every reference image is read once and compared with every test target on its grid
    (never with the same subject's own image), so memory holds one reference at a time.

    Args:
        pairs: the test pairs (their targets and masks are used; predictions are not).
        references: ``(subject, volume)`` of the reference images (:func:`reference_images`).
        pet: add original units.

    Returns:
        ``(per_subject rows with method "other_subjects", problems)``: a pair with no
        reference on its grid is a ``no_reference`` problem.
    """
    scores: list[list[list[dict]]] = [[] for _ in pairs]
    for subject, vol in references:
        for k, p in enumerate(pairs):
            if subject != p.subject and same_grid(vol.shape, vol.affine, p.target.shape, p.target.affine):
                scores[k].append(pair_metrics(vol.data, p.target.data, p.mask, pet))
    rows, problems = [], []
    for p, acc in zip(pairs, scores, strict=True):
        if not acc:
            problems.append(problem(p.subject, p.session, "no_reference", "",
                                    "no training subject on the same grid for the other-subjects reference"))
            continue
        base = {"subject": p.subject, "session": p.session, "group": p.group or "", "method": REFERENCE_LABEL}
        for k, first in enumerate(acc[0]):
            values = {m: float(np.mean([a[k][m] for a in acc])) for m in METRIC_NAMES}
            rows.append({**base, "scope": first["scope"], "units": first["units"], **values})
    table = per_subject_table(rows, with_group=any(p.group is not None for p in pairs))
    return table, problems_table(problems)


__all__ = ["other_subjects_reference", "reference_images"]
