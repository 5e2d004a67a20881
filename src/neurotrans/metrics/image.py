"""Image similarity metrics (MAE, MSE, PSNR, SSIM, MS-SSIM, Pearson), 2D and 3D, optionally masked.

Every function takes numpy arrays or torch tensors of the same shape, ``(H, W)`` or
``(H, W, D)`` (no batch or channel axis), computes in float64 and returns a Python float.
A boolean ``mask`` of the same shape restricts the metric to the voxels where it is True.

Conventions (written into every results file by :mod:`neurotrans.metrics.evaluate`):

- PSNR: ``10 log10(peak^2 / MSE)``. ``convention="fixed"`` uses a fixed peak
  (``data_range``, default 1.0 for min-max normalised images, as scikit-image for float
  images in [0, 1]); ``convention="max"`` uses the reference image's maximum inside the
  mask, i.e. the thesis' ``20 log10(MAX) - 10 log10(MSE)``. Identical images (MSE 0)
  give ``inf``; it is returned as such (not clipped), so summaries must treat it.
- SSIM: Wang et al.'s constants K1 = 0.01, K2 = 0.03 and Gaussian window sigma 1.5,
  built with ``scipy.ndimage.gaussian_filter(truncate=3.5, mode="reflect")`` as
  scikit-image does (radius 5, an 11-voxel window); population (not sample) covariances.
  The window is 3D for volumes (not slice by slice) and 2D for slices.
  Without a mask the map is averaged after cropping a 5-voxel border, exactly as
  scikit-image and MONAI (valid convolution) do, because border values depend on the
  padding. With a mask the map is averaged over all mask voxels, border included:
  on the 3 mm MNI grid the brain comes closer than 5 voxels to the edge, and cropping
  would silently drop it. So ``ssim(a, b, mask=np.ones(...))`` differs from
  ``ssim(a, b)`` by the border voxels only; this is deliberate.

References:
    Wang et al., IEEE TIP 2004 (SSIM); Wang, Simoncelli & Bovik, Asilomar 2003 (MS-SSIM);
    Wei, PhD thesis 2020, Eq. 3.9 (PSNR with the image maximum).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # scikit-image's value: radius int(3.5 * 1.5 + 0.5) = 5
SSIM_RADIUS = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
PSNR_CONVENTIONS = ("fixed", "max")


def _as_array(x: Any) -> np.ndarray:
    """Float64 numpy copy of a numpy array or (possibly GPU, grad-tracking) torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _prepare(pred: Any, target: Any, mask: Any | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    p, t = _as_array(pred), _as_array(target)
    if p.shape != t.shape:
        raise ValueError(f"pred and target shapes differ: {p.shape} vs {t.shape}")
    if p.ndim not in (2, 3):
        raise ValueError(f"expected a 2D (H, W) or 3D (H, W, D) image, got shape {p.shape}")
    m = None
    if mask is not None:
        m = _as_array(mask) > 0.5  # booleans as they are; probability maps thresholded at 0.5
        if m.shape != p.shape:
            raise ValueError(f"mask shape {m.shape} differs from the image shape {p.shape}")
        if not m.any():
            raise ValueError("the mask is empty: no voxel to compute the metric on")
    return p, t, m


def _select(x: np.ndarray, m: np.ndarray | None) -> np.ndarray:
    return x[m] if m is not None else x.ravel()


def mae(pred: Any, target: Any, mask: Any | None = None) -> float:
    """Mean absolute error.

    Args:
        pred: predicted image, shape ``(H, W[, D])``.
        target: reference image, same shape and units.
        mask: optional boolean mask, same shape.
    """
    p, t, m = _prepare(pred, target, mask)
    return float(np.mean(np.abs(_select(p, m) - _select(t, m))))


def mse(pred: Any, target: Any, mask: Any | None = None) -> float:
    """Mean squared error (units of the images squared).

    Args:
        pred: predicted image, shape ``(H, W[, D])``.
        target: reference image, same shape.
        mask: optional boolean mask, same shape.
    """
    p, t, m = _prepare(pred, target, mask)
    return float(np.mean((_select(p, m) - _select(t, m)) ** 2))


def psnr_peak(target: Any, mask: Any | None = None, data_range: float | None = None,
              convention: str = "fixed") -> float:
    """The peak value PSNR uses under ``convention`` (see the module docstring)."""
    if convention not in PSNR_CONVENTIONS:
        raise ValueError(f"unknown PSNR convention {convention!r}; choose from {', '.join(PSNR_CONVENTIONS)}")
    if convention == "fixed":
        return 1.0 if data_range is None else float(data_range)
    if data_range is not None:
        raise ValueError("convention='max' takes the peak from the target; do not pass data_range as well")
    t = _as_array(target)
    m = None if mask is None else np.asarray(_as_array(mask) > 0.5)
    return float(np.max(_select(t, m)))


def psnr(pred: Any, target: Any, mask: Any | None = None, data_range: float | None = None,
         convention: str = "fixed") -> float:
    """Peak signal-to-noise ratio in dB; ``inf`` when the images are identical.

    Args:
        pred: predicted image, shape ``(H, W[, D])``.
        target: reference image, same shape.
        mask: optional boolean mask; the MSE (and, for ``"max"``, the peak) are taken inside it.
        data_range: peak for ``convention="fixed"`` (default 1.0, min-max normalised images).
        convention: ``"fixed"`` (peak = data_range) or ``"max"`` (peak = the target's maximum,
            the thesis' 20 log10(MAX) - 10 log10(MSE)).

    References:
        Wei, PhD thesis 2020, Eq. 3.9; scikit-image ``peak_signal_noise_ratio``.
    """
    peak = psnr_peak(target, mask, data_range, convention)
    err = mse(pred, target, mask)
    if err == 0.0:
        return float("inf")
    return float(10.0 * np.log10(peak**2 / err))


def _filter(x: np.ndarray) -> np.ndarray:
    return ndimage.gaussian_filter(x, sigma=SSIM_SIGMA, truncate=SSIM_TRUNCATE, mode="reflect")


def ssim_maps(pred: np.ndarray, target: np.ndarray, data_range: float) -> tuple[np.ndarray, np.ndarray]:
    """Full-size SSIM map and contrast-structure map, shape of the inputs.

    Args:
        pred: float64 image ``(H, W[, D])``.
        target: float64 image, same shape.
        data_range: dynamic range L of the images (C1 = (K1 L)^2, C2 = (K2 L)^2).
    """
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = _filter(pred), _filter(target)
    sxx = _filter(pred * pred) - mu_x * mu_x
    syy = _filter(target * target) - mu_y * mu_y
    sxy = _filter(pred * target) - mu_x * mu_y
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return lum * cs, cs


def _check_size(shape: tuple[int, ...]) -> None:
    win = 2 * SSIM_RADIUS + 1
    if min(shape) < win:
        raise ValueError(f"image of shape {shape} is smaller than the {win}-voxel SSIM window")


def _default_range(target: np.ndarray, m: np.ndarray | None) -> float:
    vals = _select(target, m)
    rng = float(vals.max() - vals.min())
    if rng <= 0:
        raise ValueError("data_range is 0 (constant target); pass data_range explicitly")
    return rng


def ssim(pred: Any, target: Any, mask: Any | None = None, data_range: float | None = None) -> float:
    """Structural similarity with a Gaussian window, 3D for volumes and 2D for slices.

    Args:
        pred: predicted image, shape ``(H, W[, D])``.
        target: reference image, same shape.
        mask: optional boolean mask: the SSIM map is averaged inside it (no border crop).
        data_range: dynamic range L; default: the target's max - min (inside the mask).
            Pass 1.0 for min-max normalised images.

    References:
        Wang et al., "Image quality assessment: from error visibility to structural
        similarity", IEEE TIP 2004.
    """
    p, t, m = _prepare(pred, target, mask)
    _check_size(p.shape)
    rng = _default_range(t, m) if data_range is None else float(data_range)
    smap, _ = ssim_maps(p, t, rng)
    if m is not None:
        return float(smap[m].mean())
    r = SSIM_RADIUS
    return float(smap[tuple(slice(r, s - r) for s in smap.shape)].mean())


def _avg_pool2(x: np.ndarray) -> np.ndarray:
    """2x average pooling (odd trailing voxels dropped, as torch's avg_pool)."""
    sl = tuple(slice(0, (s // 2) * 2) for s in x.shape)
    x = x[sl]
    for ax in range(x.ndim):
        shape = list(x.shape)
        shape[ax : ax + 1] = [shape[ax] // 2, 2]
        x = x.reshape(shape).mean(axis=ax + 1)
    return x


def ms_ssim(pred: Any, target: Any, data_range: float | None = None,
            weights: tuple[float, ...] = MS_SSIM_WEIGHTS) -> float:
    """Multi-scale SSIM: contrast-structure at the finer scales, full SSIM at the coarsest.

    Each scale halves the image by 2x average pooling, so the smallest side must hold the
    11-voxel window after ``len(weights) - 1`` halvings (176 voxels for the 5 standard
    weights; pass fewer weights, e.g. 3, for 61x73x61 volumes). No mask: the pooled
    pyramid has no natural masked equivalent.

    Args:
        pred: predicted image, shape ``(H, W[, D])``.
        target: reference image, same shape.
        data_range: dynamic range L; default: the target's max - min.
        weights: exponent per scale, finest first (Wang 2003's five by default).

    References:
        Wang, Simoncelli & Bovik, "Multiscale structural similarity for image quality
        assessment", Asilomar 2003 (as MONAI's ``compute_ms_ssim``).
    """
    p, t, _ = _prepare(pred, target, None)
    levels = len(weights)
    if levels < 1:
        raise ValueError("ms_ssim needs at least one weight")
    need = (2 * SSIM_RADIUS + 1) * 2 ** (levels - 1)
    if min(s // 2 ** (levels - 1) for s in p.shape) < 2 * SSIM_RADIUS + 1:
        raise ValueError(f"image of shape {p.shape} is too small for MS-SSIM with {levels} scales "
                         f"(each side must be at least {need} voxels); pass fewer weights or use ssim()")
    rng = _default_range(t, None) if data_range is None else float(data_range)
    r = SSIM_RADIUS
    values = []
    for level in range(levels):
        smap, cs = ssim_maps(p, t, rng)
        crop = tuple(slice(r, s - r) for s in smap.shape)
        values.append(max(float((smap if level == levels - 1 else cs)[crop].mean()), 0.0))
        p, t = _avg_pool2(p), _avg_pool2(t)
    return float(np.prod([v**w for v, w in zip(values, weights, strict=True)]))


def pearson(pred: Any, target: Any, mask: Any | None = None) -> float:
    """Pearson correlation of the voxel values (inside the mask); NaN if one image is constant.

    Args:
        pred: predicted image, shape ``(H, W[, D])``.
        target: reference image, same shape.
        mask: optional boolean mask.
    """
    p, t, m = _prepare(pred, target, mask)
    a, b = _select(p, m), _select(t, m)
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


METRICS = {"mae": mae, "mse": mse, "psnr": psnr, "ssim": ssim, "pearson": pearson}
