"""Downstream diagnosis: an RBF SVM on regional PET means, subject-level cross-validation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC


@dataclass(frozen=True)
class DiagnosisResult:
    """Cross-validated classification of patients vs. controls.

    Args:
        accuracy: fraction of correctly classified scans (out-of-fold).
        fnr: false-negative rate, missed patients / patients.
        fpr: false-positive rate, controls called patients / controls.
        n_subjects: number of distinct subjects.
        folds: number of cross-validation folds.
    """

    accuracy: float
    fnr: float
    fpr: float
    n_subjects: int
    folds: int


def classify(features: np.ndarray, labels: np.ndarray, subjects: np.ndarray | None = None,
             positive: str = "AD", folds: int = 5, seed: int = 0) -> DiagnosisResult:
    """Out-of-fold predictions of an RBF SVM, folds split by subject (no subject in two folds).

    Features are standardised inside each training fold (no test information leaks). Classes
    are weighted inversely to their size (``class_weight='balanced'``): with unequal groups an
    unweighted SVM on few subjects tends to predict the majority group for everyone.

    Args:
        features: regional means, shape ``(N, R)``: N scans, R regions.
        labels: group of each scan, shape ``(N,)``, two distinct values.
        subjects: subject id of each scan, shape ``(N,)`` (default: every scan its own subject).
        positive: the label counted as a positive (patient).
        folds: requested folds; reduced to the smaller class's subject count if needed.
        seed: shuffling of the folds.

    References:
        Sun et al., DUAL-GLOW, ICCV 2019, Table 2 (SVM with RBF kernel on AAL ROI means).
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels).astype(str)
    groups = np.arange(len(y)) if subjects is None else np.asarray(subjects).astype(str)
    classes = sorted(set(y))
    if len(classes) != 2 or positive not in classes:
        raise ValueError(f"need exactly two groups including {positive!r}, got {classes}")
    per_class = min(len(set(groups[y == c])) for c in classes)
    k = min(folds, per_class)
    if k < 2:
        raise ValueError(f"too few subjects per group for cross-validation ({per_class})")
    pred = np.empty_like(y)
    split = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for train, test in split.split(x, y, groups):
        model = make_pipeline(StandardScaler(), SVC(kernel="rbf", C=1.0, gamma="scale", class_weight="balanced"))
        model.fit(x[train], y[train])
        pred[test] = model.predict(x[test])
    pos, neg = y == positive, y != positive
    return DiagnosisResult(accuracy=float(np.mean(pred == y)),
                           fnr=float(np.mean(pred[pos] != positive)),
                           fpr=float(np.mean(pred[neg] == positive)),
                           n_subjects=len(set(groups)), folds=k)
