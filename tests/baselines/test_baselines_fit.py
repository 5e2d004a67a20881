"""The classical baselines learn a cohort-wide mapping, reproduce with a seed, check inputs."""

from __future__ import annotations

import numpy as np
import pytest

from neurotrans.baselines import (
    BASELINES,
    ModalityPropagation,
    RandomForestBaseline,
    VoxelMLPBaseline,
)
from neurotrans.baselines import _common as C

# small but real settings: each fit takes about a second on one core
SMALL = {
    "random_forest": dict(n_trees=10, n_samples=2000),
    "voxel_mlp": dict(n_samples=2000),
    "modality_propagation": dict(search_radius=1, n_neighbours=3),
}


def mae(a, b, m):
    return float(np.abs(a[m] - b[m]).mean())


@pytest.fixture(scope="module")
def fitted(cohort):
    train = {k: v[:6] for k, v in cohort.items()}
    return {name: BASELINES[name](**SMALL[name]).fit(**train, seed=0) for name in BASELINES}


@pytest.mark.parametrize("name", sorted(BASELINES))
@pytest.mark.parametrize("test", [6, 7])
def test_beats_the_other_subjects_reference_on_held_out_subjects(cohort, fitted, name, test):
    x, y, m = (cohort[k][test] for k in ("inputs", "targets", "masks"))
    pred = fitted[name].predict(x, m)
    assert pred.dtype == np.float32 and pred.shape == y.shape
    assert np.all(pred[~m] == 0)
    # "other subjects": every training subject's target taken as this subject's prediction
    reference = np.mean([mae(t, y, m) for t in cohort["targets"][:6]])
    assert mae(pred, y, m) < 0.6 * reference, (mae(pred, y, m), reference)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_predict_without_mask_covers_every_voxel(cohort, fitted, name):
    x = cohort["inputs"][6]
    pred = fitted[name].predict(x)
    assert pred.shape == x.shape[1:] and np.isfinite(pred).all()
    m = cohort["masks"][6]
    np.testing.assert_allclose(fitted[name].predict(x, m)[m], pred[m], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (RandomForestBaseline, dict(n_trees=5, n_samples=1500)),
        (VoxelMLPBaseline, dict(n_samples=1500, hidden=(16, 16), max_iter=30)),
        (ModalityPropagation, dict(search_radius=1, max_library=3)),
    ],
)
def test_seeded_fits_reproduce(cohort, cls, kwargs):
    train = {k: v[:5] for k, v in cohort.items()}
    x, m = cohort["inputs"][7], cohort["masks"][7]
    a = cls(**kwargs).fit(**train, seed=3).predict(x, m)
    b = cls(**kwargs).fit(**train, seed=3).predict(x, m)
    c = cls(**kwargs).fit(**train, seed=4).predict(x, m)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_patch_features_are_the_channel_patches_with_edge_repeat(rng):
    x = rng.standard_normal((2, 4, 5, 3)).astype(np.float32)
    idx = np.array([0, 17, 59])  # a corner, an inner voxel, the last voxel
    feats = C.patch_features(x, idx, 1)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (1, 1)), mode="edge")
    for row, flat in zip(feats, idx, strict=True):
        i, j, k = np.unravel_index(flat, x.shape[1:])
        expected = padded[:, i : i + 3, j : j + 3, k : k + 3].reshape(-1)
        np.testing.assert_array_equal(row, expected)
    assert feats.shape == (3, 2 * 27)


def test_voxel_sampling_stays_inside_the_masks_and_splits_evenly(rng):
    masks = [np.zeros((6, 6, 6), bool) for _ in range(3)]
    masks[0][1:4, 1:4, 1:4] = True  # 27 voxels: fewer than asked, all are taken
    masks[1][:, :, :3] = True
    masks[2][2:, 2:, 2:] = True
    picks = C.sample_voxels(masks, 150, rng)
    assert [p.size for p in picks] == [27, 50, 50]
    for p, m in zip(picks, masks, strict=True):
        assert m.reshape(-1)[p].all() and np.unique(p).size == p.size


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (RandomForestBaseline, dict(n_trees=0)),
        (RandomForestBaseline, dict(max_features=1.5)),
        (RandomForestBaseline, dict(patch_radius=-1)),
        (VoxelMLPBaseline, dict(hidden=())),
        (VoxelMLPBaseline, dict(learning_rate=0.0)),
        (ModalityPropagation, dict(search_radius=1.5)),
        (ModalityPropagation, dict(n_neighbours=0)),
        (ModalityPropagation, dict(max_library=0)),
    ],
)
def test_bad_hyper_parameters_raise_value_error(cls, kwargs):
    with pytest.raises(ValueError):
        cls(**kwargs)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_bad_data_gets_a_clear_error(cohort, fitted, name):
    x, y, m = cohort["inputs"][0], cohort["targets"][0], cohort["masks"][0]
    with pytest.raises(RuntimeError, match="not fitted"):
        BASELINES[name]().predict(x, m)
    with pytest.raises(ValueError, match="input channels"):
        fitted[name].predict(x[:2], m)
    with pytest.raises(ValueError, match="mask is empty"):
        fitted[name].predict(x, np.zeros_like(m))
    bad = x.copy()
    bad[0, 3, 3, 3] = np.nan
    with pytest.raises(ValueError, match="training subject 1: the inputs have NaN"):
        BASELINES[name]().fit([x, bad], [y, y], [m, m])
    with pytest.raises(ValueError, match="training subject 0: target shape"):
        BASELINES[name]().fit([x], [y[:-1]], None)
