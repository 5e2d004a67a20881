"""Myelin content from PIB DVR: demyelinated voxels and the longitudinal indices of the thesis.

A lesion voxel is demyelinated when its DVR falls below the healthy controls' WM mean
minus one SD, taken at the same distance from the CSF (Bodini et al. 2016). Between a
baseline t0 and a follow-up t1, with the baseline lesion mask:

- global index = demyelinated fraction at t1 - demyelinated fraction at t0 (fractions of
  the baseline lesion load);
- dynamic demyelination = fraction of lesion voxels normal at t0 that are demyelinated at t1;
- dynamic remyelination = fraction of lesion voxels demyelinated at t0 that are normal at t1.

References:
    Wei, PhD thesis 2020, Sec. 3.3.5 and 4.2.5; Bodini et al., Ann. Neurol. 2016.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

MIN_VOXELS_PER_BIN = 20  # fewer control voxels than this: the SD is noise, borrow the nearest bin


def distance_from_csf(csf: np.ndarray, voxel_size: tuple[float, ...] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Euclidean distance (mm) of every voxel to the nearest CSF voxel (0 inside CSF).

    Args:
        csf: boolean CSF mask, shape ``(X, Y, Z)``.
        voxel_size: voxel spacing in mm.
    """
    csf = np.asarray(csf, dtype=bool)
    if not csf.any():
        raise ValueError("the CSF mask is empty: distances from CSF are undefined")
    return ndimage.distance_transform_edt(~csf, sampling=voxel_size)


@dataclass(frozen=True)
class ControlReference:
    """Controls' WM DVR mean and SD per distance-from-CSF bin.

    Args:
        bin_mm: bin width in mm (bin k holds distances in [k bin_mm, (k+1) bin_mm)).
        mean: mean DVR per bin, shape ``(K,)``.
        sd: SD (ddof 1) per bin, shape ``(K,)``.
        count: control WM voxels per bin, shape ``(K,)``.
    """

    bin_mm: float
    mean: np.ndarray
    sd: np.ndarray
    count: np.ndarray

    def threshold(self, distance: np.ndarray) -> np.ndarray:
        """Mean - 1 SD at each voxel's distance (beyond the last bin: the last bin's)."""
        k = np.clip((np.asarray(distance) / self.bin_mm).astype(int), 0, len(self.mean) - 1)
        return self.mean[k] - self.sd[k]


def control_reference(dvrs: list[np.ndarray], wms: list[np.ndarray], distances: list[np.ndarray],
                      bin_mm: float) -> ControlReference:
    """Pool healthy controls' WM voxels and tabulate DVR mean and SD per distance bin.

    Args:
        dvrs: one DVR image per control, shape ``(X, Y, Z)``.
        wms: their boolean WM masks.
        distances: their distance-from-CSF maps in mm (:func:`distance_from_csf`).
        bin_mm: bin width in mm (the voxel size is a natural choice).
    """
    if not dvrs:
        raise ValueError("no healthy control: the demyelination threshold needs controls")
    vals = np.concatenate([d[w] for d, w in zip(dvrs, wms, strict=True)]).astype(np.float64)
    dist = np.concatenate([x[w] for x, w in zip(distances, wms, strict=True)])
    if vals.size == 0:
        raise ValueError("the controls' WM masks are empty")
    k = (dist / bin_mm).astype(int)
    n = int(k.max()) + 1
    count = np.bincount(k, minlength=n).astype(float)
    s1 = np.bincount(k, weights=vals, minlength=n)
    s2 = np.bincount(k, weights=vals**2, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / count
        sd = np.sqrt(np.maximum(s2 - count * mean**2, 0) / (count - 1))
    good = np.flatnonzero(count >= MIN_VOXELS_PER_BIN)
    if good.size == 0:
        good = np.flatnonzero(count >= 2)
    for b in range(n):
        if b not in good:
            nearest = good[np.argmin(np.abs(good - b))]
            mean[b], sd[b] = mean[nearest], sd[nearest]
    return ControlReference(float(bin_mm), mean, sd, count.astype(int))


def demyelinated_map(dvr: np.ndarray, lesions: np.ndarray, distance: np.ndarray,
                     reference: ControlReference) -> np.ndarray:
    """Lesion voxels whose DVR is below the controls' WM mean - 1 SD at their CSF distance."""
    return np.asarray(lesions, bool) & (dvr < reference.threshold(distance))


def myelin_indices(demy_t0: np.ndarray, demy_t1: np.ndarray, lesions_t0: np.ndarray) -> dict[str, object]:
    """The thesis' indices of myelin content change between t0 and t1, and their voxel maps.

    Args:
        demy_t0: demyelinated lesion voxels at baseline (boolean, ``(X, Y, Z)``).
        demy_t1: demyelinated voxels at follow-up, on the same (co-registered) grid.
        lesions_t0: baseline lesion mask: the lesion load all fractions refer to.

    Returns:
        floats ``fraction_t0``, ``fraction_t1``, ``global``, ``dynamic_demyelination``,
        ``dynamic_remyelination`` (NaN when the denominator is empty) and boolean maps
        ``demyelinating`` (normal -> demyelinated) and ``remyelinating`` (demyelinated -> normal).

    References:
        Wei, PhD thesis 2020, Sec. 4.2.5.
    """
    les = np.asarray(lesions_t0, bool)
    d0, d1 = np.asarray(demy_t0, bool) & les, np.asarray(demy_t1, bool) & les
    n_les, n_d0 = int(les.sum()), int(d0.sum())
    n_normal0 = n_les - n_d0
    demyelinating, remyelinating = ~d0 & d1 & les, d0 & ~d1

    def frac(a: int, b: int) -> float:
        return a / b if b else float("nan")

    f0, f1 = frac(n_d0, n_les), frac(int(d1.sum()), n_les)
    return {"fraction_t0": f0, "fraction_t1": f1, "global": f1 - f0,
            "dynamic_demyelination": frac(int(demyelinating.sum()), n_normal0),
            "dynamic_remyelination": frac(int(remyelinating.sum()), n_d0),
            "demyelinating": demyelinating, "remyelinating": remyelinating}


def roi_discrepancy(real: np.ndarray, synthetic: np.ndarray, roi: np.ndarray) -> float:
    """Myelin-content discrepancy |mean(real) - mean(synthetic)| inside ``roi`` (NaN if empty).

    References:
        Wei, PhD thesis 2020, Table 3.2.
    """
    roi = np.asarray(roi, bool)
    return float(abs(real[roi].mean() - synthetic[roi].mean())) if roi.any() else float("nan")
