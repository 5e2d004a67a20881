"""Structural MRI contrasts from tissue fractions: T1w, T2w, PDw, FLAIR, DIR, T1SE.

Each voxel's signal is the tissue-fraction-weighted mix of per-tissue intensities (partial
volume), times a scanner bias field, plus Rician noise; outside the brain mask it is 0
(skull-stripped, as in the papers' preprocessing).
"""

from __future__ import annotations

import numpy as np

from neurotrans.phantom.anatomy import bias_field, rician

STRUCTURAL = ("T1w", "T2w", "PDw", "FLAIR", "DIR", "T1SE")

# relative signal of (CSF, GM, WM): WM > GM > CSF on T1; FLAIR nulls CSF; DIR nulls WM and CSF
TISSUE_SIGNAL: dict[str, tuple[float, float, float]] = {
    "T1w": (0.25, 0.62, 1.00),
    "T2w": (1.00, 0.55, 0.42),
    "PDw": (0.90, 0.82, 0.68),
    "FLAIR": (0.06, 0.60, 0.45),
    "DIR": (0.03, 0.65, 0.06),
    "T1SE": (0.22, 0.58, 0.85),
}
# lesion signal = base + per_myelin * myelin + per_inflammation * inflammation:
# hypointense on T1 (darker when demyelinated), hyperintense on T2/PD/FLAIR/DIR
LESION_SIGNAL: dict[str, tuple[float, float, float]] = {
    "T1w": (0.45, 0.30, -0.05),
    "T2w": (0.90, -0.15, 0.10),
    "PDw": (0.88, -0.05, 0.05),
    "FLAIR": (0.95, -0.12, 0.10),
    "DIR": (0.90, -0.15, 0.05),
    "T1SE": (0.45, 0.25, -0.05),
}
FULL_SCALE = 1000.0


def structural_mri(
    contrast: str,
    rng: np.random.Generator,
    gm: np.ndarray,
    wm: np.ndarray,
    csf: np.ndarray,
    brain: np.ndarray,
    voxel_mm: float,
    *,
    lesion: np.ndarray | None = None,
    myelin: np.ndarray | None = None,
    inflammation: np.ndarray | None = None,
    noise: float = 0.02,
) -> np.ndarray:
    """One skull-stripped MRI contrast of a subject.

    Args:
        contrast: one of :data:`STRUCTURAL`.
        rng: the subject's generator (draws the bias field and the noise).
        gm, wm, csf: tissue fractions, shape ``(X, Y, Z)``; ``wm`` includes lesion tissue.
        brain: boolean brain mask.
        voxel_mm: voxel size (mm), for the bias field's smoothness.
        lesion: fraction of each voxel that is lesion (part of ``wm``).
        myelin: myelin fraction of lesion tissue (1 = normal), used where ``lesion > 0``.
        inflammation: oedema/inflammation level in [0, 1] (brighter on T2, darker on T1).
        noise: Rician noise level relative to full scale.

    Returns:
        float32 signal in arbitrary units (about 0-1000).

    References:
        PHANTOM.md (tissue-mixture model); thesis ch. 2 (multi-sequence inputs to FLAIR).
    """
    c, g, w = TISSUE_SIGNAL[contrast]
    signal = csf * np.float32(c) + gm * np.float32(g)
    if lesion is None:
        signal = signal + wm * np.float32(w)
    else:
        les = np.minimum(lesion, wm)
        base, per_myelin, per_infl = LESION_SIGNAL[contrast]
        m = myelin if myelin is not None else np.ones_like(les)
        infl = inflammation if inflammation is not None else np.zeros_like(les)
        les_signal = np.float32(base) + np.float32(per_myelin) * m + np.float32(per_infl) * infl
        signal = signal + (wm - les) * np.float32(w) + les * les_signal
    signal = signal * bias_field(rng, brain.shape, voxel_mm) * np.float32(FULL_SCALE)
    out = rician(rng, signal.astype(np.float32), noise * FULL_SCALE)
    return (out * brain).astype(np.float32)

