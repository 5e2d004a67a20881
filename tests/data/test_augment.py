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
