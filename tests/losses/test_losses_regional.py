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
    m = np.prod(pred.shape[2:])
    assert got.item() == pytest.approx(expected / (pred.shape[0] * m))
    unscaled = weighted_l1_loss(torch.tensor(pred), torch.tensor(target), regions,
                                region_weights=region_weights, per_image_voxels=False)  # fmt: skip
    assert unscaled.item() == pytest.approx(expected / pred.shape[0])


def _voxel_loop_wl1(pred, target, regions):
    """Thesis eq. 3.5, literally: 1/(N M) sum_i sum_R 1/N_R sum_{j in R} |I_ij - Î_ij|."""
    n, c = pred.shape[:2]
    voxels = list(np.ndindex(*pred.shape[2:]))
    total = 0.0
    for i in range(n):
        for k in range(regions.shape[1]):
            members = [j for j in voxels if regions[(i, k, *j)]]
            if not members:
                continue
            region_sum = 0.0
            for j in members:
                region_sum += sum(abs(pred[(i, ch, *j)] - target[(i, ch, *j)]) for ch in range(c)) / c
            total += region_sum / len(members)
    return total / (n * len(voxels))


def _voxel_loop_nwl1(pred, target, regions):
    """Thesis eq. 4.4, literally: 1/(2 n m) sum_i sum_j w_j |I_ij - Î_ij|, w_j = 1 - m_R / m."""
    n, c = pred.shape[:2]
    voxels = list(np.ndindex(*pred.shape[2:]))
    total = 0.0
    for i in range(n):
        counts = [sum(bool(regions[(i, k, *j)]) for j in voxels) for k in range(regions.shape[1])]
        m = sum(counts)
        for j in voxels:
            for k in range(regions.shape[1]):
                if regions[(i, k, *j)]:
                    err = sum(abs(pred[(i, ch, *j)] - target[(i, ch, *j)]) for ch in range(c)) / c
                    total += (1 - counts[k] / m) * err / (2 * m)
    return total / n


# (shape, lesion probability, whether regions cover the image): 2D and 3D, two channels,
# an image without lesions, regions restricted to a brain mask
LOOP_CASES = [
    ((2, 1, 5, 4, 3), 0.15, True),
    ((3, 2, 6, 5), 0.1, True),
    ((2, 1, 4, 4, 4), 0.0, True),
    ((2, 1, 5, 6), 0.2, False),
]


@pytest.mark.parametrize(("shape", "p_lesion", "cover"), LOOP_CASES)
def test_wl1_and_nwl1_equal_voxel_loops_of_the_thesis_formulas(shape, p_lesion, cover):
    rng = np.random.default_rng(7)
    pred, target = rng.normal(size=shape), rng.normal(size=shape)
    mask_shape = (shape[0], 1, *shape[2:])
    les = rng.random(mask_shape) < p_lesion
    nawm = rng.random(mask_shape) < 0.4
    brain = None if cover else torch.tensor(rng.random(mask_shape) < 0.8)
    regions = lesion_regions(torch.tensor(les), torch.tensor(nawm), brain)
    r = regions.numpy()
    p_t, t_t = torch.tensor(pred), torch.tensor(target)
    assert weighted_l1_loss(p_t, t_t, regions).item() == pytest.approx(_voxel_loop_wl1(pred, target, r))
    assert nwl1_loss(p_t, t_t, regions).item() == pytest.approx(_voxel_loop_nwl1(pred, target, r))
    torch.testing.assert_close(build_loss("weighted_l1")(p_t, t_t, regions),
                               weighted_l1_loss(p_t, t_t, regions))  # fmt: skip


def test_nwl1_weights_follow_each_patients_lesion_load():
    """A voxel error in a small lesion weighs 1 - m_Les / m, close to 1, in the large "other"
    region 1 - m_other / m, close to 0; the weights of the three regions sum to 2."""
    regions = torch.zeros(2, 3, 10, 10)
    regions[0, 0, :1] = 1  # patient 0: 10 lesion voxels
    regions[1, 0, :5] = 1  # patient 1: 50 lesion voxels
    regions[:, 1, 5:7] = 1
    regions[:, 2] = 1 - regions[:, :2].sum(1)
    for region, patient, expected in [(0, 0, 0.9), (0, 1, 0.5), (1, 0, 0.8), (2, 0, 0.3), (2, 1, 0.7)]:
        pred = torch.zeros(2, 1, 10, 10)
        pos = regions[patient, region].nonzero()[0]
        pred[patient, 0, pos[0], pos[1]] = 1.0  # one wrong voxel of that region
        got = nwl1_loss(pred, torch.zeros_like(pred), regions).item()
        assert got == pytest.approx(expected / (2 * 100) / 2)  # / (2 m), then the batch mean


def test_weighted_l1_skips_empty_regions_and_balances_sizes():
    pred = torch.zeros(1, 1, 10, 10)
    target = torch.zeros(1, 1, 10, 10)
    target[0, 0, 0, 0] = 1.0  # one-voxel lesion fully wrong
    regions = torch.zeros(1, 3, 10, 10)
    regions[0, 0, 0, 0] = 1
    regions[0, 2] = 1 - regions[0, 0]  # NAWM empty
    # lesion mean error 1 counts fully although it is 1 % of the image (then / M = 100)
    assert weighted_l1_loss(pred, target, regions, per_image_voxels=False).item() == pytest.approx(1.0)
    assert weighted_l1_loss(pred, target, regions).item() == pytest.approx(0.01)


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
    with pytest.raises(ValueError, match="at least 2 regions"):
        nwl1_loss(p, p, torch.ones(1, 1, 4, 4))


def test_gradients_flow_through_regional_losses():
    pred, target, les, nawm, brain = _case(3, shape=(2, 1, 4, 4, 4))
    regions = lesion_regions(torch.tensor(les), torch.tensor(nawm), torch.tensor(brain))
    for fn in (weighted_l1_loss, nwl1_loss):
        p = torch.tensor(pred, requires_grad=True)
        fn(p, torch.tensor(target), regions).backward()
        inside = regions.sum(dim=1, keepdim=True) > 0
        assert (p.grad[inside] != 0).all() and (p.grad[~inside] == 0).all()
