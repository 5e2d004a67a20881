from __future__ import annotations

import math

import pytest
import torch

from neurotrans.data.augment import Compose, RandomFlip, RandomRotateScale, flip, rotate_scale


def _item(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, *shape, generator=g)
    return {"input": x, "target": x[:1] * 2, "mask": (x[:1] > 0.5).float(), "key": "s_1"}


@pytest.mark.parametrize("shape", [(8, 10), (6, 8, 10)])
def test_flip_twice_is_identity_and_matches_torch(shape):
    item = _item(shape)
    out = flip(item, [0])
    assert torch.equal(out["input"], torch.flip(item["input"], [1])) and out["key"] == "s_1"
    back = flip(out, [0])
    assert all(torch.equal(back[k], item[k]) for k in ("input", "target", "mask"))


@pytest.mark.parametrize("shape", [(8, 10), (6, 8, 10)])
def test_zero_rotation_unit_scale_is_identity(shape):
    item = _item(shape)
    out = rotate_scale(item, [0.0] * (1 if len(shape) == 2 else 3), 1.0)
    for k in ("input", "target", "mask"):
        torch.testing.assert_close(out[k], item[k], atol=1e-5, rtol=0)


def test_quarter_turn_equals_rot90():
    item = _item((9, 9))
    out = rotate_scale(item, [math.pi / 2], 1.0)
    torch.testing.assert_close(out["input"], torch.rot90(item["input"], 1, dims=(1, 2)), atol=1e-5, rtol=0)
    assert torch.equal(out["mask"], torch.rot90(item["mask"], 1, dims=(1, 2)))  # nearest: still binary
    vol = _item((5, 7, 7))
    out3 = rotate_scale(vol, [math.pi / 2, 0.0, 0.0], 1.0)
    torch.testing.assert_close(out3["input"], torch.rot90(vol["input"], 1, dims=(2, 3)), atol=1e-5, rtol=0)


def test_random_transforms_sample_then_replay():
    item = _item((6, 8, 10))
    t = Compose((RandomFlip((0, 1, 2), 0.5), RandomRotateScale(15.0, (0.9, 1.1), spatial_dims=3)))
    a = t(item, torch.Generator().manual_seed(3))
    b = t(item, torch.Generator().manual_seed(3))
    assert torch.equal(a["input"], b["input"]) and torch.equal(a["mask"], b["mask"])
    g = torch.Generator().manual_seed(3)
    flip_params = t.transforms[0].sample(g)
    rot_params = t.transforms[1].sample(g)
    assert abs(math.degrees(rot_params["angles"][0])) <= 15 and 0.9 <= rot_params["scale"] <= 1.1
    replay = rotate_scale(flip(item, **flip_params), **rot_params)
    assert torch.equal(replay["input"], a["input"])
    with pytest.raises(ValueError, match="angle"):
        rotate_scale(item, [0.1], 1.0)


@pytest.mark.parametrize("dims,terms", [(2, 9), (3, 19)])
def test_bias_field_has_every_monomial_up_to_the_order(dims, terms):
    from neurotrans.data.augment import _monomials, bias_field_terms

    assert bias_field_terms(dims, 3) == terms  # TorchIO's order-3 field, constant excluded
    shape = (5, 6, 7)[:dims]
    m = _monomials(shape, 3)
    assert m.shape == (terms, *shape)
    assert float(m.abs().max()) == pytest.approx(1.0)  # coordinates span [-1, 1]
    assert len({tuple(t.flatten().tolist()) for t in m}) == terms  # all distinct


@pytest.mark.parametrize("shape", [(8, 10), (6, 8, 10)])
def test_intensity_with_zero_parameters_is_identity_and_leaves_target_alone(shape):
    from neurotrans.data.augment import RandomIntensity, bias_field_terms, intensity

    item = _item(shape)
    n = bias_field_terms(len(shape))
    out = intensity(item, [0.0, 0.0], [[0.0] * n, [0.0] * n])
    torch.testing.assert_close(out["input"], item["input"], atol=1e-6, rtol=0)
    out = RandomIntensity(p=1.0, spatial_dims=len(shape))(item, torch.Generator().manual_seed(0))
    assert not torch.allclose(out["input"], item["input"])
    assert out["target"] is item["target"] and out["mask"] is item["mask"] and out["key"] == "s_1"
    assert torch.equal(RandomIntensity(p=0.0, spatial_dims=len(shape))(item)["input"], item["input"])


def test_intensity_gamma_matches_scikit_image_and_keeps_each_channels_range():
    from skimage.exposure import adjust_gamma

    from neurotrans.data.augment import intensity

    item = _item((6, 8, 10))
    item["input"] = item["input"] * torch.tensor([3.0, 0.5]).view(2, 1, 1, 1) - torch.tensor([1.0, 2.0]).view(2, 1, 1, 1)
    out = intensity(item, [0.25, -0.2])["input"]
    for c, g in enumerate((0.25, -0.2)):
        x = item["input"][c].double().numpy()
        lo, hi = x.min(), x.max()
        want = lo + adjust_gamma((x - lo) / (hi - lo), math.exp(g)) * (hi - lo)
        torch.testing.assert_close(out[c].double(), torch.from_numpy(want), atol=1e-5, rtol=0)
        assert float(out[c].min()) == pytest.approx(lo, abs=1e-6) and float(out[c].max()) == pytest.approx(hi, abs=1e-5)


def test_intensity_bias_field_against_the_formula_voxel_by_voxel():
    from neurotrans.data.augment import _powers, bias_field_terms, intensity

    item = _item((4, 5, 6))
    n = bias_field_terms(3)
    coef = torch.linspace(-0.3, 0.3, n).tolist()
    out = intensity(item, [0.0, 0.0], [coef, [0.0] * n])["input"]
    torch.testing.assert_close(out[1], item["input"][1])  # the untouched channel
    x = item["input"][0]
    lo = float(x.min())
    powers = _powers(3, 3)
    for i, j, k in [(0, 0, 0), (3, 4, 5), (1, 2, 3), (2, 0, 5)]:
        c = (-1 + 2 * i / 3, -1 + 2 * j / 4, -1 + 2 * k / 5)
        field = math.exp(sum(a * c[0] ** p[0] * c[1] ** p[1] * c[2] ** p[2] for a, p in zip(coef, powers, strict=True)))
        want = lo + (float(x[i, j, k]) - lo) * field
        assert float(out[0, i, j, k]) == pytest.approx(want, rel=1e-5)
    assert float(out[0].min()) == pytest.approx(lo)  # the background (the minimum) stays where it is


def test_random_intensity_replays_from_its_parameters():
    from neurotrans.data.augment import RandomIntensity, intensity

    item = _item((6, 8, 10))
    t = RandomIntensity(gamma=0.3, bias=0.3, p=0.7)
    a = t(item, torch.Generator().manual_seed(5))
    assert torch.equal(a["input"], t(item, torch.Generator().manual_seed(5))["input"])
    params = t.sample(2, torch.Generator().manual_seed(5))
    assert all(abs(g) <= 0.3 for g in params["log_gammas"])
    assert all(abs(c) <= 0.3 for row in params["coefficients"] for c in row)
    assert torch.equal(intensity(item, **params)["input"], a["input"])
    with pytest.raises(ValueError, match="channel"):
        intensity(item, [0.1])
