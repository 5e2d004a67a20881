from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.preprocessing import MinMaxScaler

from neurotrans.data.atlas import reference_mask
from neurotrans.data.grid import mni_grid
from neurotrans.data.normalize import (
    NORMALISERS,
    SUVR,
    MinMax,
    ZScore,
    fit_normaliser,
    normaliser_from_dict,
)
from neurotrans.errors import InputError

SPECS = ["minmax", "minmax:robust", "zscore", "zscore:mask", "none"]


@pytest.mark.parametrize("spec", SPECS)
def test_apply_invert_and_dict_round_trip(spec, rng):
    data = rng.normal(300, 50, (8, 9, 10)).astype(np.float32)
    mask = data > 280
    norm = fit_normaliser(spec, data, mask=mask)
    y = norm.apply(data)
    assert y.dtype == np.float32
    np.testing.assert_allclose(norm.invert(y), data, rtol=1e-5, atol=1e-3)
    again = normaliser_from_dict(norm.to_dict())
    assert again == norm
    np.testing.assert_array_equal(again.apply(data), y)


def test_minmax_matches_sklearn(rng):
    data = rng.normal(size=(6, 7, 8)).astype(np.float32) * 40 - 7
    ours = MinMax.fit(data).apply(data)
    ref = MinMaxScaler().fit_transform(data.reshape(-1, 1)).reshape(data.shape)
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    assert ours.min() == 0 and ours.max() == pytest.approx(1.0)


def test_robust_minmax_ignores_hot_voxels(rng):
    data = rng.uniform(0, 1, (10, 10, 10)).astype(np.float32)
    data[0, 0, 0] = 1e4
    norm = MinMax.fit(data, option="robust")
    assert norm.hi < 2 and np.percentile(norm.apply(data), 50) == pytest.approx(0.5, abs=0.05)


def test_zscore_matches_scipy(rng):
    data = rng.gamma(2.0, 10.0, (6, 7, 8)).astype(np.float32)
    np.testing.assert_allclose(ZScore.fit(data).apply(data), stats.zscore(data, axis=None), atol=1e-5)
    mask = data > np.median(data)
    inside = ZScore.fit(data, mask=mask, option="mask").apply(data)[mask]
    assert inside.mean() == pytest.approx(0, abs=1e-5) and inside.std() == pytest.approx(1, abs=1e-4)


@pytest.mark.parametrize("region", ["pons", "cerebellumPons"])
def test_suvr_divides_by_reference_region_mean(region, rng):
    grid = mni_grid(3.0)
    data = rng.uniform(5, 10, grid.shape).astype(np.float32)
    ref = reference_mask(region, grid)
    data[ref] = 4.0
    norm = fit_normaliser(f"suvr:{region}", data, grid=grid)
    assert isinstance(norm, SUVR) and norm.reference == pytest.approx(4.0)
    assert norm.apply(data)[ref] == pytest.approx(1.0)


def test_registry_and_errors(rng):
    assert set(NORMALISERS) == {"minmax", "zscore", "suvr", "none"}
    with pytest.raises(ValueError, match="zscore"):
        fit_normaliser("zscor", np.ones((2, 2, 2)))
    with pytest.raises(InputError, match="constant"):
        fit_normaliser("minmax", np.ones((3, 3, 3), np.float32), where="a.nii.gz")
    with pytest.raises(InputError, match="grid"):
        fit_normaliser("suvr", np.ones((3, 3, 3), np.float32))
