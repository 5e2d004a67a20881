"""Tissue segmentation of a T1: known classes recovered, probabilities, EM against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from neurotrans.data.grid import mni_grid
from neurotrans.data.segment import fit_mixture, mni152_tissue_priors, segment_tissues

MEANS = (250.0, 620.0, 1000.0)  # CSF < GM < WM on T1


def _three_class_image(rng: np.random.Generator, noise: float, shape=(24, 20, 16)):
    """Nested shells: WM core, GM shell, CSF rim, background outside; labels 0 CSF, 1 GM, 2 WM."""
    idx = np.indices(shape).astype(float)
    centre = (np.array(shape) - 1) / 2
    r = np.sqrt((((idx.T - centre) / (np.array(shape) / 2)) ** 2).sum(-1)).T
    labels = np.full(shape, -1)
    labels[r < 0.95] = 0
    labels[r < 0.8] = 1
    labels[r < 0.5] = 2
    mask = labels >= 0
    t1 = np.zeros(shape)
    for k, mu in enumerate(MEANS):
        t1[labels == k] = mu
    t1 = (t1 + noise * rng.standard_normal(shape)) * mask
    return t1, mask, labels


@pytest.mark.parametrize("noise", [20.0, 60.0])
@pytest.mark.parametrize("with_prior", [False, True])
def test_recovers_known_classes_and_probabilities_sum_to_one(noise, with_prior):
    rng = np.random.default_rng(0)
    t1, mask, labels = _three_class_image(rng, noise)
    prior = None
    if with_prior:  # a blurred, partly wrong prior: the labels shifted by one voxel
        prior = np.stack([np.roll(labels == k, 1, axis=0) for k in range(3)]).astype(float)
    p = segment_tissues(t1, mask, prior=prior)
    assert p.shape == (3, *t1.shape) and p.dtype == np.float32
    np.testing.assert_allclose(p[:, mask].sum(axis=0), 1.0, atol=1e-6)
    assert np.all(p[:, ~mask] == 0) and p.min() >= 0
    accuracy = (p.argmax(axis=0)[mask] == labels[mask]).mean()
    assert accuracy > (0.995 if noise < 50 else 0.98)


def test_class_order_follows_mean_intensity_not_frequency():
    # WM-heavy image with a few CSF voxels: the darkest class is still channel 0
    rng = np.random.default_rng(1)
    labels = rng.choice(3, size=(30, 30, 10), p=[0.05, 0.25, 0.7])
    t1 = np.choose(labels, MEANS) + 15 * rng.standard_normal(labels.shape)
    p = segment_tissues(t1, np.ones(labels.shape, bool))
    assert (p.argmax(axis=0) == labels).mean() > 0.999


def test_em_matches_scikit_learn_gaussian_mixture():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(m, s, n) for m, s, n in [(250, 40, 800), (620, 50, 3000), (1000, 45, 2000)]])
    post, mu, var, w = fit_mixture(x)
    ref = GaussianMixture(3, tol=1e-10, max_iter=2000, means_init=np.array(MEANS)[:, None],
                          random_state=0).fit(x[:, None])
    order = np.argsort(ref.means_.ravel())
    np.testing.assert_allclose(mu, ref.means_.ravel()[order], rtol=1e-4)
    np.testing.assert_allclose(var, ref.covariances_.ravel()[order], rtol=1e-3)
    np.testing.assert_allclose(w, ref.weights_[order], rtol=1e-3)
    np.testing.assert_allclose(post, ref.predict_proba(x[:, None])[:, order], atol=1e-4)


def test_bad_inputs_raise_clear_errors():
    t1, mask, labels = _three_class_image(np.random.default_rng(3), 20.0)
    with pytest.raises(ValueError, match="shape"):
        segment_tissues(t1[:-1], mask)
    with pytest.raises(ValueError, match="empty"):
        segment_tissues(t1, np.zeros_like(mask))
    bad = t1.copy()
    bad[mask.nonzero()[0][0], mask.nonzero()[1][0], mask.nonzero()[2][0]] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        segment_tissues(bad, mask)
    prior = np.stack([labels == k for k in range(3)]).astype(float)
    with pytest.raises(ValueError, match="CSF < GM < WM"):  # a T2-like contrast against a T1 prior
        segment_tissues((1200.0 - t1) * mask, mask, prior=prior)
    with pytest.raises(ValueError, match="prior must be"):
        segment_tissues(t1, mask, prior=prior[:2])


def test_mni152_priors_on_the_3mm_grid():
    grid = mni_grid(3.0)
    prior = mni152_tissue_priors(grid)
    assert prior.shape == (3, *grid.shape) and prior.min() >= 0
    # world -> voxel: deep WM (corona radiata) and a lateral ventricle (MNI mm)
    inv = np.linalg.inv(grid.affine)
    vox = lambda xyz: tuple(np.round(inv @ np.array([*xyz, 1.0]))[:3].astype(int))  # noqa: E731
    csf, gm, wm = prior[(slice(None), *vox((-26, -10, 30)))]
    assert wm > gm and wm > csf
    csf, gm, wm = prior[(slice(None), *vox((-4, 8, 14)))]  # ventricle near the septum: CSF leads
    assert csf > wm
    assert mni152_tissue_priors(grid) is prior  # cached per grid
