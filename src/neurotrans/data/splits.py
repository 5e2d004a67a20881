"""Subject-level splits: stratified k-fold cross-validation and a fixed train/val/test split.

Splits are made over *subjects*, never rows, so every session of a subject lands in the
same set. Stratification uses each subject's group (first row's value), so CN/MCI/AD or
MS/HC proportions are kept in every fold.

References:
    The U-Net/CCA paper (5-fold cross-validation over ADNI subjects).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from neurotrans.io.manifest import Manifest


@dataclass(frozen=True)
class Fold:
    """Subject ids of one split (disjoint lists)."""

    train: list[str]
    val: list[str]
    test: list[str]

    def to_dict(self) -> dict[str, list[str]]:
        return {"train": list(self.train), "val": list(self.val), "test": list(self.test)}


def _subject_groups(table: Manifest | pd.DataFrame, group: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    df = table.table if isinstance(table, Manifest) else table
    first = df.drop_duplicates("subject")
    subjects = first["subject"].astype(str).to_numpy()
    if group is None or group not in df.columns:
        return subjects, None
    labels = first[group].astype(str).to_numpy()
    return subjects, labels


def _can_stratify(labels: np.ndarray | None, n_splits: int) -> bool:
    if labels is None:
        return False
    _, counts = np.unique(labels, return_counts=True)
    return len(counts) > 1 and counts.min() >= n_splits


def kfold_splits(table: Manifest | pd.DataFrame, k: int = 5, *, group: str | None = "group",
                 seed: int = 0, validation: bool = True) -> list[Fold]:
    """Subject-level k-fold splits, stratified by ``group`` where every group has >= k subjects.

    Fold ``i`` tests on the ``i``-th part; its validation set is part ``(i + 1) mod k``
    (when ``validation`` and k >= 3) and it trains on the rest, so train/val/test are disjoint
    and every subject is tested exactly once.

    Args:
        table: manifest (or its table) with a ``subject`` column, optionally ``group``.
        k: number of folds (>= 2).
        group: column to stratify by; ``None`` or absent -> plain shuffled k-fold.
        seed: shuffling seed.
        validation: carve a validation part out of each fold's training subjects.

    Returns:
        ``k`` :class:`Fold` objects.
    """
    subjects, labels = _subject_groups(table, group)
    if k < 2:
        raise ValueError(f"k must be >= 2, got {k}")
    if len(subjects) < k:
        raise ValueError(f"{len(subjects)} subjects cannot be split into {k} folds")
    if _can_stratify(labels, k):
        # one row per subject here, so StratifiedKFold is StratifiedGroupKFold with singleton groups
        parts = [test for _, test in StratifiedKFold(k, shuffle=True, random_state=seed).split(subjects, labels)]
    else:
        parts = [test for _, test in KFold(k, shuffle=True, random_state=seed).split(subjects)]
    folds = []
    for i in range(k):
        test = set(parts[i])
        val = set(parts[(i + 1) % k]) if validation and k >= 3 else set()
        train = [j for j in range(len(subjects)) if j not in test and j not in val]
        folds.append(Fold([str(subjects[j]) for j in train], [str(subjects[j]) for j in sorted(val)],
                          [str(subjects[j]) for j in sorted(test)]))
    return folds


def fixed_split(table: Manifest | pd.DataFrame, *, test_fraction: float = 0.2, val_fraction: float = 0.1,
                group: str | None = "group", seed: int = 0) -> Fold:
    """One subject-level train/val/test split, stratified by ``group`` where possible.

    Args:
        table: manifest (or its table).
        test_fraction: share of subjects for testing (0 for none: a model trained on a whole
            cohort for use elsewhere, e.g. to fine-tune on another one).
        val_fraction: share of subjects for validation (0 for none).
        group: stratification column, or ``None``.
        seed: shuffling seed.
    """
    if not (0 <= test_fraction < 1 and 0 <= val_fraction < 1 and test_fraction + val_fraction < 1):
        raise ValueError(f"fractions must lie in [0, 1) and sum below 1, got {test_fraction}, {val_fraction}")
    subjects, labels = _subject_groups(table, group)
    n = len(subjects)
    n_test, n_val = (max(1, int(round(f * n))) if f > 0 else 0 for f in (test_fraction, val_fraction))
    if n - n_test - n_val < 1:
        raise ValueError(f"{n} subjects are too few for test {n_test} + val {n_val} + train >= 1")
    idx = np.arange(n)

    def split(pool: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        strat = labels[pool] if labels is not None else None
        _, counts = np.unique(strat, return_counts=True) if strat is not None else (None, None)
        ok = strat is not None and counts.min() >= 2 and size >= len(counts) and len(pool) - size >= len(counts)
        rest, part = train_test_split(pool, test_size=size, random_state=seed, stratify=strat if ok else None)
        return np.asarray(rest), np.asarray(part)

    rest, test = split(idx, n_test) if n_test else (idx, np.array([], dtype=int))
    train, val = split(rest, n_val) if n_val else (rest, np.array([], dtype=int))
    return Fold([str(subjects[j]) for j in sorted(train)], [str(subjects[j]) for j in sorted(val)],
                [str(subjects[j]) for j in sorted(test)])
