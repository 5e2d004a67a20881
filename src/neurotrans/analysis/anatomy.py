"""Does a translation keep the anatomy? Dice of brain masks and tissue classes, input vs output.

Unpaired translation (UNIT, CycleGAN) can move or invent structures while still looking
like the target modality, which SSIM against a paired target does not isolate. These
plain functions compare the anatomy of one input image with that of its translation:
the overlap of their brain masks, and of a simple intensity clustering (k-means or a
Gaussian mixture, 3 classes within the mask) of each. Contrast may invert between
modalities (CSF dark in T1, bright in T2), so classes of the two images are paired by
maximum overlap unless told otherwise.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from neurotrans.analysis.stats import dice

TISSUE_METHODS = ("kmeans", "gmm")
MATCHINGS = ("overlap", "intensity", "reversed")


def brain_mask(
    image: np.ndarray, *, threshold: float | None = None, relative: float = 0.05, fill_holes: bool = True
) -> np.ndarray:
    """Foreground of an image: voxels above a threshold, holes filled.

    Args:
        image: (H, W) or (X, Y, Z) intensities, any units.
        threshold: absolute threshold (e.g. 0 for "non-zero" on a zero background).
            When None: ``min + relative * (p99 - min)``, i.e. above the background
            whatever the units and offset (a [-1, 1] network output included).
        relative: fraction of the robust range used when ``threshold`` is None.
        fill_holes: fill enclosed holes (dark ventricles in T1) with
            ``scipy.ndimage.binary_fill_holes``.

    Returns:
        A boolean mask, same shape.
    """
    image = np.asarray(image, dtype=np.float64)
    if not np.isfinite(image).all():
        raise ValueError("brain_mask: the image contains NaN or infinite values")
    if not 0.0 <= relative < 1.0:
        raise ValueError(f"relative must be in [0, 1), got {relative}")
    if threshold is None:
        lo = float(image.min())
        threshold = lo + relative * (float(np.percentile(image, 99)) - lo)
    mask = image > threshold
    return ndimage.binary_fill_holes(mask) if fill_holes else mask


def tissue_classes(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    n_classes: int = 3,
    method: str = "kmeans",
    max_samples: int = 100_000,
    seed: int = 0,
) -> np.ndarray:
    """Cluster the intensities inside ``mask`` into classes ordered by mean intensity.

    Args:
        image: (H, W) or (X, Y, Z) intensities.
        mask: boolean mask, same shape.
        n_classes: number of classes (3: CSF, GM, WM in some order).
        method: ``"kmeans"`` (scikit-learn ``KMeans``, 10 starts) or ``"gmm"``
            (``GaussianMixture``).
        max_samples: voxels drawn (seeded) to fit the model; all are then labelled.
        seed: seed of the draw and of the model.

    Returns:
        int labels, same shape: 0 outside the mask, 1..n_classes inside, 1 the darkest.
    """
    from sklearn.cluster import KMeans
    from sklearn.mixture import GaussianMixture

    if method not in TISSUE_METHODS:
        raise ValueError(f"method must be one of {TISSUE_METHODS}, got {method!r}")
    image = np.asarray(image, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if image.shape != mask.shape:
        raise ValueError(f"image shape {image.shape} differs from mask shape {mask.shape}")
    values = image[mask].reshape(-1, 1)
    if len(np.unique(values)) < n_classes:
        raise ValueError(
            f"tissue_classes: the mask holds {len(np.unique(values))} distinct intensities, "
            f"fewer than n_classes={n_classes}"
        )
    rng = np.random.default_rng(seed)
    fit = values if len(values) <= max_samples else values[rng.choice(len(values), max_samples, replace=False)]
    if method == "kmeans":
        model = KMeans(n_clusters=n_classes, n_init=10, random_state=seed).fit(fit)
        centres = model.cluster_centers_.ravel()
    else:
        model = GaussianMixture(n_components=n_classes, random_state=seed).fit(fit)
        centres = model.means_.ravel()
    rank = np.empty(n_classes, dtype=np.int64)
    rank[np.argsort(centres)] = np.arange(1, n_classes + 1)
    labels = np.zeros(image.shape, dtype=np.int64)
    labels[mask] = rank[model.predict(values)]
    return labels


def match_classes(reference: np.ndarray, labels: np.ndarray, n_classes: int, matching: str = "overlap") -> np.ndarray:
    """Relabel ``labels`` (1..n) to correspond to ``reference``'s classes.

    Args:
        reference, labels: int label maps of one shape (0 = background).
        n_classes: classes 1..n_classes.
        matching: ``"overlap"`` (the one-to-one pairing maximising the voxels in common,
            Hungarian algorithm), ``"intensity"`` (same order: same contrast) or
            ``"reversed"`` (darkest <-> brightest: inverted contrast, T1 <-> T2).
    """
    if matching not in MATCHINGS:
        raise ValueError(f"matching must be one of {MATCHINGS}, got {matching!r}")
    classes = np.arange(1, n_classes + 1)
    if matching == "intensity":
        return labels.copy()
    if matching == "reversed":
        mapping = classes[::-1]
    else:
        overlap = np.array([[np.sum((labels == j) & (reference == i)) for i in classes] for j in classes])
        rows, cols = linear_sum_assignment(-overlap)
        mapping = np.empty(n_classes, dtype=np.int64)
        mapping[rows] = classes[cols]
    out = np.zeros_like(labels)
    for j in classes:
        out[labels == j] = mapping[j - 1]
    return out


def anatomy_dice(
    source: np.ndarray,
    output: np.ndarray,
    *,
    threshold: float | None = None,
    relative: float = 0.05,
    n_classes: int = 3,
    method: str = "kmeans",
    matching: str = "overlap",
    seed: int = 0,
) -> dict[str, float]:
    """Dice of the brain masks and of the tissue classes of an image and its translation.

    Each image is masked (:func:`brain_mask`, same options) and clustered within its own
    mask (:func:`tissue_classes`); the output's classes are paired with the source's
    (:func:`match_classes`). Both images must be on one grid (a translation is).

    Args:
        source: (H, W) or (X, Y, Z) input image (e.g. T1).
        output: its translation (e.g. synthetic T2), same shape.
        threshold, relative: mask threshold, see :func:`brain_mask`.
        n_classes, method, seed: see :func:`tissue_classes`.
        matching: see :func:`match_classes`.

    Returns:
        ``dice_mask``, ``dice_tissue_1`` .. ``dice_tissue_<n>`` (source classes, 1 = the
        source's darkest), ``dice_tissue`` (their mean); 1.0 means the same anatomy.
    """
    source, output = np.asarray(source), np.asarray(output)
    if source.shape != output.shape:
        raise ValueError(f"source shape {source.shape} differs from output shape {output.shape}")
    m_src = brain_mask(source, threshold=threshold, relative=relative)
    m_out = brain_mask(output, threshold=threshold, relative=relative)
    result = {"dice_mask": dice(m_src, m_out)}
    lab_src = tissue_classes(source, m_src, n_classes=n_classes, method=method, seed=seed)
    lab_out = tissue_classes(output, m_out, n_classes=n_classes, method=method, seed=seed)
    lab_out = match_classes(lab_src, lab_out, n_classes, matching)
    per_class = [dice(lab_src == k, lab_out == k) for k in range(1, n_classes + 1)]
    result.update({f"dice_tissue_{k}": d for k, d in enumerate(per_class, start=1)})
    result["dice_tissue"] = float(np.mean(per_class))
    return result
