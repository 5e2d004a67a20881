"""Image metrics against scikit-image, MONAI and hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.metrics import PSNRMetric, SSIMMetric
from monai.metrics.regression import compute_ms_ssim
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from neurotrans.metrics.image import mae, ms_ssim, mse, pearson, psnr, ssim


def _random(rng, shape):
    t = rng.random(shape)
    return np.clip(t + 0.1 * rng.standard_normal(shape), 0, 1), t


def _smooth(rng, shape):
    """Brain-like: a smooth blob with 'tissue' plateaus, and a blurred noisy estimate of it."""
    grid = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    r = np.sqrt(sum(g**2 for g in grid))
    target = np.where(r < 0.8, 0.4, 0.0) + np.where(r < 0.5, 0.5, 0.0)
    target = ndimage.gaussian_filter(target + 0.05 * rng.standard_normal(shape), 1.0)
    pred = ndimage.gaussian_filter(target, 1.5) + 0.02 * rng.standard_normal(shape)
    return pred, target


CASES = [("random", _random, (32, 40)), ("random", _random, (24, 28, 20)),
         ("smooth", _smooth, (61, 73)), ("smooth", _smooth, (40, 48, 36))]


@pytest.mark.parametrize(("kind", "make", "shape"), CASES)
def test_ssim_matches_skimage(kind, make, shape, rng):
    pred, target = make(rng, shape)
    for data_range in (1.0, float(target.max() - target.min())):
        ref = structural_similarity(pred, target, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, data_range=data_range)
        assert abs(ssim(pred, target, data_range=data_range) - ref) < 1e-4
    # default data range is the target's max - min
    ref = structural_similarity(pred, target, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                data_range=float(target.max() - target.min()))
    assert abs(ssim(pred, target) - ref) < 1e-4


@pytest.mark.parametrize(("kind", "make", "shape"), CASES)
def test_psnr_matches_skimage(kind, make, shape, rng):
    pred, target = make(rng, shape)
    assert abs(psnr(pred, target) - peak_signal_noise_ratio(target, pred, data_range=1.0)) < 1e-4
    assert abs(psnr(pred, target, data_range=2.5) - peak_signal_noise_ratio(target, pred, data_range=2.5)) < 1e-4
    # the thesis' convention: 20 log10(MAX) - 10 log10(MSE), MAX of the reference image
    hand = 20 * np.log10(target.max()) - 10 * np.log10(np.mean((pred - target) ** 2))
    assert abs(psnr(pred, target, convention="max") - hand) < 1e-9
    assert abs(psnr(pred, target, convention="max")
               - peak_signal_noise_ratio(target, pred, data_range=target.max())) < 1e-4


@pytest.mark.parametrize(("kind", "make", "shape"), CASES)
def test_ssim_psnr_match_monai(kind, make, shape, rng):
    pred, target = make(rng, shape)
    dims = len(shape)
    tp = torch.as_tensor(pred, dtype=torch.float64)[None, None]
    tt = torch.as_tensor(target, dtype=torch.float64)[None, None]
    ref = SSIMMetric(spatial_dims=dims, data_range=1.0)(tp, tt).item()
    assert abs(ssim(pred, target, data_range=1.0) - ref) < 1e-4
    ref = PSNRMetric(max_val=1.0)(tp, tt).item()
    assert abs(psnr(pred, target) - ref) < 1e-4


def test_ms_ssim_matches_monai(rng):
    pred, target = _smooth(rng, (48, 52, 44))
    tp = torch.as_tensor(pred, dtype=torch.float32)[None, None]
    tt = torch.as_tensor(target, dtype=torch.float32)[None, None]
    weights = (0.3, 0.4, 0.3)
    ref = compute_ms_ssim(tp, tt, spatial_dims=3, data_range=1.0, weights=weights).item()
    assert abs(ms_ssim(pred, target, data_range=1.0, weights=weights) - ref) < 1e-4
    assert ms_ssim(target, target, data_range=1.0, weights=weights) == pytest.approx(1.0)
    # five standard scales need 176 voxels a side: a clear error, not a silent wrong value
    with pytest.raises(ValueError, match="too small for MS-SSIM"):
        ms_ssim(pred, target)


def test_masked_metrics_use_only_mask_voxels(rng):
    pred, target = _smooth(rng, (30, 34, 28))
    mask = np.zeros(target.shape, bool)
    mask[8:22, 10:25, 6:20] = True
    d = pred[mask] - target[mask]
    assert mae(pred, target, mask) == pytest.approx(np.abs(d).mean())
    assert mse(pred, target, mask) == pytest.approx((d**2).mean())
    assert pearson(pred, target, mask) == pytest.approx(np.corrcoef(pred[mask], target[mask])[0, 1])
    # masked SSIM is the mean of the full SSIM map inside the mask
    _, smap = structural_similarity(pred, target, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    data_range=1.0, full=True)
    assert abs(ssim(pred, target, mask, data_range=1.0) - smap[mask].mean()) < 1e-4
    # changing voxels outside the mask changes nothing except SSIM near the mask edge
    pred2 = pred.copy()
    pred2[~mask] = 5.0
    assert mae(pred2, target, mask) == mae(pred, target, mask)
    assert psnr(pred2, target, mask) == psnr(pred, target, mask)
    peak = target[mask].max()
    assert psnr(pred, target, mask, convention="max") == pytest.approx(10 * np.log10(peak**2 / (d**2).mean()))


def test_identical_images_give_ideal_values(rng):
    _, target = _smooth(rng, (20, 22, 18))
    assert mae(target, target) == 0 and mse(target, target) == 0
    assert psnr(target, target) == float("inf")
    assert ssim(target, target) == pytest.approx(1.0)
    assert pearson(target, target) == pytest.approx(1.0)


def test_torch_inputs_and_errors(rng):
    pred, target = _smooth(rng, (20, 22))
    tp = torch.tensor(pred, requires_grad=True)
    assert ssim(tp, torch.tensor(target), data_range=1.0) == pytest.approx(ssim(pred, target, data_range=1.0))
    assert mae(tp, target, torch.tensor(target > 0.3)) == pytest.approx(mae(pred, target, target > 0.3))
    with pytest.raises(ValueError, match="shapes differ"):
        mae(pred, target[:-1])
    with pytest.raises(ValueError, match="empty"):
        mae(pred, target, np.zeros(target.shape, bool))
    with pytest.raises(ValueError, match="smaller than"):
        ssim(pred[:5, :5], target[:5, :5])
    with pytest.raises(ValueError, match="convention"):
        psnr(pred, target, convention="image")


def test_more_blur_is_worse(rng):
    _, target = _smooth(rng, (40, 44, 36))
    scores = [(mae(b, target), ssim(b, target, data_range=1.0))
              for b in (ndimage.gaussian_filter(target, s) for s in (0.5, 1.5, 3.0))]
    assert scores[0][0] < scores[1][0] < scores[2][0]
    assert scores[0][1] > scores[1][1] > scores[2][1]
