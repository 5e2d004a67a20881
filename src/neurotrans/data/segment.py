"""Tissue probability maps (CSF, GM, WM) segmented from a skull-stripped T1-weighted image.

Method: a 3-class Gaussian mixture on the T1 intensities inside the brain mask, fitted by
expectation-maximisation (started from a multi-Otsu split of the histogram). Without a prior
it is a plain mixture (global class weights); with a spatial prior (tissue probability maps on
the image grid, as SPM's unified segmentation uses; :func:`mni152_tissue_priors` for images in
MNI space) the class weights vary per voxel:
``p(k | x, v) ~ prior_k(v) N(x; mu_k, sigma_k^2)``. The result is the posterior probability
of each class, classes ordered CSF < GM < WM by mean intensity (T1 contrast), summing to 1
inside the mask and 0 outside.

Measured on a 12-subject 3 mm ``fdg`` phantom cohort (seed 0) against the true tissue maps
(Dice of the argmax labels, CSF / GM / WM, mean over subjects): with the MNI152 prior (10 mm
FWHM, 20 % uniform; what the phantom writes) 0.50 / 0.85 / 0.90 (GM at least 0.82 in every
subject); intensity only 0.38 / 0.80 / 0.80, and unstable (GM 0.47 in one subject, where the
"CSF" class converges on the dark partial-volume cortex: a likelihood optimum, not a bad
start). CSF is the hardest: at 3 mm few voxels are mostly CSF, and cortex cut by the
skull-stripping edge is as dark as CSF. Use the prior whenever the image is in MNI space. A mean-field MRF step (posteriors times their smoothed neighbourhood, beta 0.5)
did not help (0.35 / 0.84 / 0.74 without prior): the errors come from partial volume, which
neighbourhood smoothing spreads, not from isolated noisy voxels; so there is none. Nor is
there a bias-field correction: the phantom's bias (about +-8 %) is small next to the GM / WM
contrast, and two rounds of smooth bias re-estimation moved GM Dice by +0.01 and WM by -0.04.

References: Ashburner & Friston 2005, "Unified segmentation" (mixture of Gaussians with tissue
probability priors, SPM12, used by the ESIT paper); Zhang, Brady & Smith 2001 (FSL FAST).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

from neurotrans.data.grid import Grid
from neurotrans.data.resample import resample_to_grid

TISSUES = ("CSF", "GM", "WM")
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def _posteriors(z: np.ndarray, log_prior: np.ndarray, mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Class posteriors ``(3, N)`` float32 of standardised intensities ``z`` (float32).

    Classes along the first axis: reductions over classes are then element-wise operations
    between three contiguous rows (numpy reduces an ``(N, 3)`` array's short axis slowly).
    """
    ll = z[None, :] - mu.astype(np.float32)[:, None]
    ll *= ll
    ll *= (-0.5 / var).astype(np.float32)[:, None]
    ll += log_prior
    ll -= (np.float32(0.5) * np.log(var).astype(np.float32))[:, None]
    ll -= np.maximum(np.maximum(ll[0], ll[1]), ll[2])
    np.exp(ll, out=ll)
    ll /= ll[0] + ll[1] + ll[2]
    return ll


def fit_mixture(
    x: np.ndarray,
    prior: np.ndarray | None = None,
    *,
    max_iter: int = 300,
    tol: float = 1e-4,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """EM for a 3-class 1D Gaussian mixture, optionally with per-sample class priors.

    The E-step runs in float32 on standardised intensities (the M-step's sums in BLAS), which
    keeps a 1.5 mm brain (about 600 000 voxels) at a second or two.

    Args:
        x: ``(N,)`` intensities.
        prior: ``(N, 3)`` class prior per sample (rows sum to 1), or ``None`` for global class
            weights estimated by EM.
        max_iter: EM iterations at most.
        tol: stop when no class mean moves by more than ``tol * std(x)``.

    Returns:
        ``(posteriors (N, 3) float32, means (3,), variances (3,), weights (3,))`` in the units of
        ``x``; without a prior the classes are sorted by mean; with a prior they keep the prior's
        column order.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size < 3 or np.ptp(x) == 0:
        raise ValueError("the brain mask holds fewer than 3 distinct intensities; nothing to segment")
    centre, scale = float(x.mean()), float(x.std())
    z = ((x - centre) / scale).astype(np.float32)
    floor = 1e-6  # (1e-3 std)^2: keeps a class from collapsing onto a few identical values
    if prior is None:
        # start from the multi-Otsu classes (a global, deterministic 3-way split of the histogram):
        # quantile starts put two classes inside the dominant tissue when one class is rare
        from skimage.filters import threshold_multiotsu

        cls = np.digitize(x, threshold_multiotsu(x, classes=3))
        if np.bincount(cls, minlength=3).min() < 2:
            cls = np.digitize(x, np.quantile(x, [1 / 3, 2 / 3]))
        zz = z.astype(np.float64)
        mu = np.array([zz[cls == k].mean() for k in range(3)])
        var = np.maximum([zz[cls == k].var() for k in range(3)], floor)
        weights = np.bincount(cls, minlength=3) / x.size
    else:
        prior = np.asarray(prior)
        if prior.shape != (x.size, 3):
            raise ValueError(f"prior must be ({x.size}, 3), got {prior.shape}")
        post = np.ascontiguousarray(prior.T, dtype=np.float32)  # (3, N)
        log_prior = np.log(np.maximum(post, np.float32(1e-12)))
        n = post.sum(axis=1, dtype=np.float64)
        mu = (post @ z).astype(np.float64) / n
        var = np.maximum((post @ (z * z)).astype(np.float64) / n - mu**2, floor)
        weights = n / n.sum()
    z2 = z * z
    for _ in range(max_iter):
        lp = np.log(weights).astype(np.float32)[:, None] if prior is None else log_prior
        post = _posteriors(z, lp, mu, var)
        n = post.sum(axis=1, dtype=np.float64) + 1e-12
        new_mu = (post @ z).astype(np.float64) / n
        # z is standardised (values of order 1), so E[z^2] - mu^2 keeps float32 precision
        var = np.maximum((post @ z2).astype(np.float64) / n - new_mu**2, floor)
        if prior is None:
            weights = n / n.sum()
        moved = float(np.abs(new_mu - mu).max())
        mu = new_mu
        if moved < tol:
            break
    lp = np.log(weights).astype(np.float32)[:, None] if prior is None else log_prior
    post = _posteriors(z, lp, mu, var)
    if prior is not None:
        weights = post.mean(axis=1, dtype=np.float64)
    else:
        order = np.argsort(mu, kind="stable")
        post, mu, var, weights = post[order], mu[order], var[order], weights[order]
    return post.T, centre + scale * mu, scale**2 * var, weights


def segment_tissues(
    t1: np.ndarray,
    mask: np.ndarray,
    *,
    prior: np.ndarray | None = None,
    prior_weight: float = 0.8,
) -> np.ndarray:
    """CSF, GM and WM posterior probabilities of a skull-stripped T1-weighted image.

    Args:
        t1: ``(X, Y, Z)`` T1-weighted intensities (any units; WM > GM > CSF).
        mask: ``(X, Y, Z)`` brain mask (tissue and CSF); only these voxels are segmented.
        prior: ``(3, X, Y, Z)`` tissue probability maps (CSF, GM, WM) on the image grid, e.g.
            :func:`mni152_tissue_priors`; ``None`` segments on intensity alone.
        prior_weight: the prior is ``prior_weight * prior + (1 - prior_weight) / 3``, so that
            the intensities can overrule an atlas that does not fit the subject.

    Returns:
        float32 ``(3, X, Y, Z)``: CSF, GM, WM probabilities; they sum to 1 in the mask, 0 outside.

    Raises:
        ValueError: shapes disagree, the mask is empty or constant, or (with a prior) the
            fitted class means are not in T1 order CSF < GM < WM.
    """
    t1 = np.asarray(t1, dtype=np.float64)
    mask = np.asarray(mask)
    mask = mask if mask.dtype == bool else mask > 0.5
    if t1.shape != mask.shape:
        raise ValueError(f"T1 {t1.shape} and mask {mask.shape} differ in shape")
    if not mask.any():
        raise ValueError("the brain mask is empty")
    if not np.isfinite(t1[mask]).all():
        raise ValueError("the T1 holds NaN or infinite values inside the brain mask")
    p = None
    if prior is not None:
        prior = np.asarray(prior)
        if prior.shape != (3, *t1.shape):
            raise ValueError(f"prior must be (3, {', '.join(map(str, t1.shape))}), got {prior.shape}")
        if not 0.0 <= prior_weight <= 1.0:
            raise ValueError(f"prior_weight must be in [0, 1], got {prior_weight}")
        p = np.clip(prior[:, mask].astype(np.float64), 0.0, None)  # (3, N)
        total = p[0] + p[1] + p[2]
        p = np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / 3.0)
        p = (prior_weight * p + (1.0 - prior_weight) / 3.0).T
    post, mu, _, _ = fit_mixture(t1[mask], p)
    if prior is not None and not (mu[0] < mu[1] < mu[2]):
        raise ValueError(f"fitted class means {np.round(mu, 3).tolist()} are not CSF < GM < WM; "
                         "is this a T1-weighted image in the prior's space?")
    out = np.zeros((3, *t1.shape), dtype=np.float32)
    out[:, mask] = post.T
    return out


@lru_cache(maxsize=4)
def _priors_on_grid(shape: tuple[int, int, int], affine_key: tuple[float, ...], fwhm_mm: float) -> np.ndarray:
    from nilearn import datasets

    grid = Grid(shape, np.asarray(affine_key, dtype=np.float64).reshape(4, 4))
    maps = []
    for load in (datasets.load_mni152_gm_template, datasets.load_mni152_wm_template,
                 datasets.load_mni152_brain_mask):
        img = load(resolution=1)
        data = np.asarray(img.dataobj, dtype=np.float32)
        voxel = float(np.sqrt((img.affine[:3, :3] ** 2).sum(axis=0)).mean())
        data = ndimage.gaussian_filter(data, fwhm_mm * FWHM_TO_SIGMA / voxel)
        maps.append(np.clip(resample_to_grid(data, img.affine, grid, order=1), 0.0, None))
    gm, wm, brain = maps
    csf = np.clip(brain - gm - wm, 0.0, None)
    out = np.stack([csf, gm, wm]).astype(np.float32)
    out.setflags(write=False)
    return out


def mni152_tissue_priors(grid: Grid, fwhm_mm: float = 10.0) -> np.ndarray:
    """Smoothed ICBM152 2009a tissue probability maps (CSF, GM, WM) on an MNI-space ``grid``.

    GM and WM are nilearn's templates, CSF the template brain mask minus both; each is
    smoothed by a Gaussian of ``fwhm_mm`` so that the prior states where tissue is likely, not
    the template's exact folds. Only meaningful for images registered to MNI space.

    Returns:
        float32 ``(3, X, Y, Z)``, read-only, not normalised (see :func:`segment_tissues`).

    References: Fonov et al. 2011 (ICBM152 2009a); nilearn ``load_mni152_*_template``.
    """
    if fwhm_mm < 0:
        raise ValueError(f"fwhm_mm must be >= 0, got {fwhm_mm}")
    key = tuple(np.asarray(grid.affine, dtype=np.float64).ravel())
    return _priors_on_grid(tuple(int(s) for s in grid.shape), key, float(fwhm_mm))
