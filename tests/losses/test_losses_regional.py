"""Thesis weighted L1 (eq. 3.5) and normalised weighted L1 (eq. 4.4) against loops over voxels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurotrans.losses import build_loss, lesion_regions, nwl1_loss, weighted_l1_loss


def _case(seed: int, shape=(3, 1, 6, 7, 5)):
    rng = np.random.default_rng(seed)
    pred, target = rng.normal(size=shape), rng.normal(size=shape)
    lesions = rng.random(shape) > 0.9
    nawm = rng.random(shape) > 0.5
    brain = rng.random(shape) > 0.1
    return pred, target, lesions, nawm, brain


def test_lesion_regions_are_disjoint_and_cover_the_brain():
    _, _, les, nawm, brain = _case(0)
    r = lesion_regions(torch.tensor(les), torch.tensor(nawm), torch.tensor(brain)).numpy()
    assert r.shape[1] == 3
    assert (r.sum(axis=1) <= 1).all()
    np.testing.assert_array_equal(r[:, 0], les[:, 0])
    np.testing.assert_array_equal(
        r.sum(axis=1) > 0, (brain | les | nawm)[:, 0] & (brain | les | nawm)[:, 0]
    )
    np.testing.assert_array_equal(r[:, 2], (brain & ~les & ~nawm)[:, 0])


@pytest.mark.parametrize("region_weights", [None, (2.0, 1.0, 0.5)])
def test_weighted_l1_equals_loop(region_weights):
    pred, target, les, nawm, brain = _case(1)
    regions = lesion_regions(torch.tensor(les), torch.tensor(nawm), torch.tensor(brain))
    got = weighted_l1_loss(
        torch.tensor(pred), torch.tensor(target), regions, region_weights=region_weights
    )
    w = (1.0, 1.0, 1.0) if region_weights is None else region_weights
    r = regions.numpy().astype(bool)
    expected = 0.0
    for i in range(pred.shape[0]):
        err = np.abs(pred[i, 0] - target[i, 0])
        expected += sum(w[k] * err[r[i, k]].mean() for k in range(3) if r[i, k].any())
    assert got.item() == pytest.approx(expected / pred.shape[0])


def test_weighted_l1_skips_empty_regions_and_balances_sizes():
    pred = torch.zeros(1, 1, 10, 10)
    target = torch.zeros(1, 1, 10, 10)
    target[0, 0, 0, 0] = 1.0  # one-voxel lesion fully wrong
    regions = torch.zeros(1, 3, 10, 10)
    regions[0, 0, 0, 0] = 1
    regions[0, 2] = 1 - regions[0, 0]  # NAWM empty
    # lesion mean error 1 counts fully although it is 1 % of the image
    assert weighted_l1_loss(pred, target, regions).item() == pytest.approx(1.0)


def test_nwl1_equals_thesis_formula():
    pred, target, les, nawm, brain = _case(2)
    regions = lesion_regions(torch.tensor(les), torch.tensor(nawm), torch.tensor(brain))
    got = nwl1_loss(torch.tensor(pred), torch.tensor(target), regions)
    r = regions.numpy().astype(bool)
    n = pred.shape[0]
    total = 0.0
    for i in range(n):
        m = r[i].sum()
        counts = [r[i, k].sum() for k in range(3)]
        err = np.abs(pred[i, 0] - target[i, 0])
        for k in range(3):
            total += (1 - counts[k] / m) * err[r[i, k]].sum() / (2 * m)
    assert got.item() == pytest.approx(total / n)
    torch.testing.assert_close(
        build_loss("nwl1")(torch.tensor(pred), torch.tensor(target), regions), got
    )


def test_nwl1_rejects_overlapping_regions_and_bad_shapes():
    p = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="disjoint"):
        nwl1_loss(p, p, torch.ones(1, 2, 4, 4))
    with pytest.raises(ValueError, match="regions"):
        weighted_l1_loss(p, p, torch.ones(1, 2, 4, 5))
    with pytest.raises(ValueError):
        weighted_l1_loss(p, p, torch.ones(1, 2, 4, 4), region_weights=(1.0, -1.0))
    with pytest.raises(ValueError):
        build_loss("weighted_l1", region_weights=(1.0, -2.0))


def test_gradients_flow_through_regional_losses():
    pred, target, les, nawm, brain = _case(3, shape=(2, 1, 4, 4, 4))
    regions = lesion_regions(torch.tensor(les), torch.tensor(nawm), torch.tensor(brain))
    for fn in (weighted_l1_loss, nwl1_loss):
        p = torch.tensor(pred, requires_grad=True)
        fn(p, torch.tensor(target), regions).backward()
        inside = regions.sum(dim=1, keepdim=True) > 0
        assert (p.grad[inside] != 0).all() and (p.grad[~inside] == 0).all()
