"""CCA similarity against the closed form (R of least squares) and scikit-learn; invariances; drivers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.cross_decomposition import CCA

from neurotrans.explain.cca import (
    cca,
    cca_similarity,
    component_image,
    layer_similarity,
    multiple_correlation,
    subsample_mask,
    summarise_similarity,
)


def _data(seed: int, n: int, c: int, noise: float, k: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c)) @ rng.standard_normal((c, c))  # correlated channels
    y = x @ rng.standard_normal((c, k)) + noise * rng.standard_normal((n, k)) * x.std()
    return x, (y[:, 0] if k == 1 else y)


@pytest.mark.parametrize(("n", "c", "noise"), [(200, 1, 1.0), (500, 8, 0.5), (2000, 32, 3.0), (300, 5, 0.0)])
def test_one_dimensional_concept_equals_multiple_correlation(n, c, noise):
    x, y = _data(c, n, c, noise)
    assert abs(cca_similarity(x, y) - multiple_correlation(x, y)) < 1e-8


def test_rank_deficient_activations_dead_and_duplicated_channels():
    x, y = _data(0, 400, 6, 1.0)
    wide = np.column_stack([x, x[:, :3] * 2.0 + 1.0, np.zeros(400), np.full(400, 3.0)])
    res = cca(wide, y)
    assert res.rank_x == 6
    assert abs(res.similarity - multiple_correlation(x, y)) < 1e-8


@pytest.mark.parametrize(("seed", "c", "k"), [(0, 4, 2), (1, 10, 3), (2, 3, 3)])
def test_first_canonical_correlation_matches_scikit_learn(seed, c, k):
    """scikit-learn's CCA is iterative (NIPALS); at tol 1e-12 it agrees to 1e-6."""
    x, y = _data(seed, 1000, c, 2.0, k)
    ref = CCA(n_components=1, scale=False, max_iter=10000, tol=1e-12).fit(x, y)
    u, v = ref.transform(x, y)
    expected = abs(np.corrcoef(u[:, 0], v[:, 0])[0, 1])
    assert cca_similarity(x, y) == pytest.approx(expected, abs=1e-6)


def test_invariant_to_affine_maps_of_the_concept_and_linear_maps_of_channels():
    x, y = _data(3, 600, 6, 1.0, k=2)
    rng = np.random.default_rng(0)
    base = cca(x, y).correlations
    for a, b in [(-3.0, 7.0), (1e-3, -2.0), (250.0, 0.0)]:
        np.testing.assert_allclose(cca(x, a * y + b).correlations, base, atol=1e-10)
    np.testing.assert_allclose(cca(x, y @ rng.standard_normal((2, 2))).correlations, base, atol=1e-10)
    np.testing.assert_allclose(cca(x @ rng.standard_normal((6, 6)) + 5.0, y).correlations, base, atol=1e-9)


def test_weights_give_unit_variance_components_with_the_canonical_correlations():
    x, y = _data(4, 800, 5, 1.5, k=3)
    res = cca(x, y)
    u, v = res.transform_x(x), res.transform_y(y)
    np.testing.assert_allclose(u.std(axis=0, ddof=1), 1.0, rtol=1e-10)
    np.testing.assert_allclose(v.std(axis=0, ddof=1), 1.0, rtol=1e-10)
    corr = np.corrcoef(u.T, v.T)[:3, 3:]
    np.testing.assert_allclose(np.diag(corr), res.correlations, atol=1e-10)
    np.testing.assert_allclose(corr - np.diag(np.diag(corr)), 0.0, atol=1e-10)  # pairs uncorrelated
    np.testing.assert_allclose(np.corrcoef(u.T), np.eye(3), atol=1e-10)
    assert np.all(np.diff(res.correlations) <= 0)
    # a 1-D concept: the component rises with the concept
    x1, y1 = _data(5, 300, 4, 1.0)
    assert np.corrcoef(cca(x1, y1).transform_x(x1)[:, 0], y1)[0, 1] > 0


def test_regularisation_is_a_true_correlation_at_most_the_unregularised_one():
    x, y = _data(6, 150, 40, 2.0)
    plain = cca_similarity(x, y)
    ridge = cca(x, y, regularization=0.5)
    assert 0 < ridge.similarity <= plain + 1e-12
    u = ridge.transform_x(x)[:, 0]
    assert ridge.similarity == pytest.approx(abs(np.corrcoef(u, y)[0, 1]), abs=1e-10)


def test_errors():
    x, y = _data(7, 50, 3, 1.0)
    with pytest.raises(ValueError, match="rows"):
        cca(x, y[:-1])
    with pytest.raises(ValueError, match="constant"):
        cca(x, np.ones(50))
    with pytest.raises(ValueError, match="NaN"):
        cca(np.where(x > 2, np.nan, x), y)


def test_subsample_mask_is_deterministic_and_inside_the_mask():
    rng = np.random.default_rng(0)
    mask = rng.random((20, 20, 10)) < 0.4
    a, b = subsample_mask(mask, 300, seed=5), subsample_mask(mask, 300, seed=5)
    assert np.array_equal(a, b) and a.sum() == 300 and not (a & ~mask).any()
    assert not np.array_equal(a, subsample_mask(mask, 300, seed=6))
    assert np.array_equal(subsample_mask(mask, None), mask)
    assert np.array_equal(subsample_mask(mask, 10**6), mask)


def test_layer_similarity_table_pools_subjects_and_flags_constant_concepts():
    x1, y1 = _data(8, 300, 4, 1.0)
    x2, y2 = _data(9, 200, 4, 1.0)
    subjects = [({"actv1": x1, "actv2": x1[:, :2]}, {"PET": y1, "region": np.zeros(300)}),
                ({"actv1": x2, "actv2": x2[:, :2]}, {"PET": y2, "region": np.zeros(200)})]
    table = layer_similarity([s[0] for s in subjects], [s[1] for s in subjects])
    assert list(table.columns) == ["layer", "concept", "similarity", "n_voxels", "n_channels", "rank"]
    assert table[["layer", "concept"]].values.tolist() == [["actv1", "PET"], ["actv1", "region"],
                                                          ["actv2", "PET"], ["actv2", "region"]]
    pooled = multiple_correlation(np.vstack([x1, x2])[:, :2], np.concatenate([y1, y2]))
    assert table.loc[2, "similarity"] == pytest.approx(pooled, abs=1e-8)
    assert table.loc[1, "similarity"] != table.loc[1, "similarity"]  # NaN: constant concept
    assert table["n_voxels"].eq(500).all() and table["n_channels"].tolist() == [4, 4, 2, 2]
    with pytest.raises(ValueError, match="same voxels"):
        layer_similarity({"actv1": x1}, {"PET": y2})


def test_summarise_similarity_mean_and_sd_across_folds():
    folds = [pd.DataFrame({"layer": ["actv1", "actv1", "actv2", "actv2"], "concept": ["GM", "PET"] * 2,
                           "similarity": [0.1 * f, 0.2, 0.3, 0.4 + f]}) for f in range(3)]
    out = summarise_similarity(folds)
    assert out[["layer", "concept"]].values.tolist() == [["actv1", "GM"], ["actv1", "PET"],
                                                        ["actv2", "GM"], ["actv2", "PET"]]
    np.testing.assert_allclose(out["mean"], [0.1, 0.2, 0.3, 1.4])
    np.testing.assert_allclose(out["sd"], [np.std([0, 0.1, 0.2], ddof=1), 0, 0, 1.0])
    assert out["n"].eq(3).all()


def test_component_image_places_the_projection_in_the_mask():
    rng = np.random.default_rng(1)
    mask = rng.random((5, 6, 4)) < 0.6
    x = rng.standard_normal((int(mask.sum()), 3))
    y = x @ [1.0, -2.0, 0.5] + 0.1 * rng.standard_normal(len(x))
    res = cca(x, y)
    img = component_image(res, x, mask)
    assert img.shape == mask.shape and np.all(img[~mask] == 0)
    np.testing.assert_allclose(img[mask], res.transform_x(x)[:, 0], rtol=1e-5)
    assert np.corrcoef(img[mask], y)[0, 1] > 0.99
    with pytest.raises(ValueError, match="rows"):
        component_image(res, x[:-1], mask)
