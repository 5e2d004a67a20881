"""MS lesion contrast: lesion / NAWM and lesion / surrounding-NAWM intensity ratios."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

SURROUNDING_RING_VOXELS = 5


def surrounding_nawm(lesions: np.ndarray, nawm: np.ndarray, ring: int = SURROUNDING_RING_VOXELS) -> np.ndarray:
    """NAWM within ``ring`` voxels of a lesion: dilation of the lesion mask minus the lesions.

    Args:
        lesions: boolean lesion mask, shape ``(X, Y, Z)``.
        nawm: boolean normal-appearing white-matter mask, same shape.
        ring: dilation in voxels (6-connected steps, scipy's default structuring element).

    References:
        Wei, PhD thesis 2020, Sec. 2.3.2 (a dilatation of 5 voxels around the lesions).
    """
    les = np.asarray(lesions, dtype=bool)
    grown = ndimage.binary_dilation(les, iterations=ring) if les.any() else les
    return grown & ~les & np.asarray(nawm, dtype=bool)


def contrast_ratios(image: np.ndarray, lesions: np.ndarray, nawm: np.ndarray,
                    ring: int = SURROUNDING_RING_VOXELS) -> dict[str, float]:
    """Ratio 1 = mean(lesions) / mean(NAWM); Ratio 2 = mean(lesions) / mean(surrounding NAWM).

    Per subject; the thesis reports their mean over subjects. NaN where a region is empty.

    Args:
        image: intensities, shape ``(X, Y, Z)`` (e.g. FLAIR or PIB DVR).
        lesions: boolean lesion mask, same shape.
        nawm: boolean NAWM mask, same shape.
        ring: width of the surrounding-NAWM ring in voxels.

    References:
        Wei, PhD thesis 2020, Eq. 2.4.
    """
    les, nawm = np.asarray(lesions, bool), np.asarray(nawm, bool)
    snawm = surrounding_nawm(les, nawm, ring)

    def mean(m: np.ndarray) -> float:
        return float(image[m].mean()) if m.any() else float("nan")

    m_les, m_nawm, m_snawm = mean(les), mean(nawm), mean(snawm)
    return {"lesion_mean": m_les, "nawm_mean": m_nawm, "snawm_mean": m_snawm,
            "ratio1": m_les / m_nawm if m_nawm else float("nan"),
            "ratio2": m_les / m_snawm if m_snawm else float("nan")}
