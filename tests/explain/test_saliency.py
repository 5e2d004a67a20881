"""P3S and visual-attention saliency against hand-computed gradients, in 2D and 3D."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from neurotrans.explain.saliency import attention_saliency, p3s_saliency, rank_channels
from neurotrans.networks import build_network

NETS = [
    ("fcn", dict(features=4, hidden_layers=2)),
    ("unet_flair", dict(base=2)),
    ("cnn2layer", dict(features=3, kernel_size=3)),
]


def _shape(dims: int) -> tuple[int, ...]:
    return (2, 4, 8, 8, 8) if dims == 3 else (2, 4, 12, 8)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize(("name", "kwargs"), NETS, ids=[n for n, _ in NETS])
def test_an_ignored_channel_has_exactly_zero_saliency(name, kwargs, dims):
    torch.manual_seed(0)
    net = build_network(name, spatial_dims=dims, in_channels=4, **kwargs)
    first = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Conv3d))
    with torch.no_grad():
        first.weight[:, 2] = 0.0  # the model cannot see channel 2
    x = torch.randn(_shape(dims))
    y = torch.randn(x.shape[0], 1, *x.shape[2:])
    sal = p3s_saliency(net, x, y)
    assert sal.shape == x.shape and (sal >= 0).all()
    assert torch.count_nonzero(sal[:, 2]) == 0
    for c in (0, 1, 3):
        assert sal[:, c].sum() > 0
    att = attention_saliency(net, x, y)
    assert att.shape == (x.shape[0], *x.shape[2:])
    torch.testing.assert_close(att, attention_saliency(net, x, y, reduce=None).amax(1))


def _linear_voxel_model(dims: int, weights: list[float], bias: float) -> torch.nn.Module:
    conv = (torch.nn.Conv3d if dims == 3 else torch.nn.Conv2d)(len(weights), 1, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(weights).reshape(conv.weight.shape))
        conv.bias.fill_(bias)
    return conv


@pytest.mark.parametrize("dims", [2, 3])
def test_p3s_equals_the_analytic_gradient_of_a_linear_model_inside_the_mask(dims):
    # f(x) = sum_c w_c x_c + b  =>  d sum_m (y - f)^2 / d x_c = -2 w_c (y - f) m
    torch.manual_seed(1)
    w = [0.5, -1.5, 2.0]
    model = _linear_voxel_model(dims, w, 0.3)
    shape = (1, 3, 6, 5, 4) if dims == 3 else (1, 3, 6, 5)
    x, y = torch.randn(shape), torch.randn(1, 1, *shape[2:])
    mask = torch.rand(1, 1, *shape[2:]) > 0.4
    f = (torch.tensor(w).reshape(1, 3, *[1] * dims) * x).sum(1, keepdim=True) + 0.3
    expected = (2 * torch.tensor(w).reshape(1, 3, *[1] * dims) * (y - f) * mask).abs()
    torch.testing.assert_close(p3s_saliency(model, x, y, mask), expected)
    # outside the mask a voxel-wise model's saliency vanishes
    assert torch.count_nonzero(p3s_saliency(model, x, y, mask) * ~mask) == 0


def test_attention_saliency_of_a_linear_model_is_the_l1_gradient():
    w = [0.5, -1.5, 2.0]
    model = _linear_voxel_model(3, w, 0.0)
    x, y = torch.randn(2, 3, 4, 4, 4), torch.randn(2, 1, 4, 4, 4)
    f = model(x).detach()
    # d mean|f - y| / d x_c = w_c sign(f - y) / N  => max_c |.| = max |w| / N (f != y a.s.)
    expected = torch.full((2, 4, 4, 4), 2.0 / f.numel())
    torch.testing.assert_close(attention_saliency(model, x, y), expected)
    mse = attention_saliency(model, x, y, loss=TF.mse_loss, reduce=None)
    torch.testing.assert_close(
        mse, (torch.tensor(w).reshape(1, 3, 1, 1, 1) * 2 * (f - y) / f.numel()).abs()
    )


def test_model_mode_and_parameter_gradients_are_left_alone():
    net = build_network(
        "unet_sketcher", spatial_dims=3, in_channels=2, out_channels=1, base=2, depth=2
    ).train()
    x, y = torch.randn(1, 2, 8, 8, 8), torch.randn(1, 1, 8, 8, 8)
    a = p3s_saliency(net, x, y)
    b = p3s_saliency(net, x, y)  # dropout off while differentiating: deterministic
    torch.testing.assert_close(a, b)
    assert net.training
    assert all(p.grad is None for p in net.parameters())


def test_bad_arguments_raise_value_error():
    model = _linear_voxel_model(3, [1.0, 1.0], 0.0)
    x = torch.randn(1, 2, 4, 4, 4)
    with pytest.raises(ValueError, match="differ"):
        p3s_saliency(model, x, torch.randn(1, 1, 4, 4, 3))
    with pytest.raises(ValueError, match="broadcast"):
        p3s_saliency(model, x, torch.randn(1, 1, 4, 4, 4), mask=torch.ones(3, 3))
    with pytest.raises(ValueError, match="reduce"):
        attention_saliency(model, x, torch.randn(1, 1, 4, 4, 4), reduce="mean")


def test_rank_channels_averages_subjects_inside_their_masks():
    rng = np.random.default_rng(0)
    maps = [rng.random((3, 4, 4, 4)) for _ in range(2)]
    maps[0][1] += 2.0  # channel 1 dominates subject 0 ...
    maps[1][2] += 5.0  # ... channel 2 dominates subject 1 more strongly
    masks = [rng.random((4, 4, 4)) > 0.5 for _ in range(2)]
    ranking = rank_channels([torch.from_numpy(maps[0]), maps[1]], masks, ["T1w", "T2w", "DIR"])
    expected = np.mean([m[:, k].mean(1) for m, k in zip(maps, masks, strict=True)], axis=0)
    np.testing.assert_allclose(ranking.scores, expected)
    assert ranking.order == tuple(np.argsort(-expected)) == (2, 1, 0)
    assert ranking.names == ("DIR", "T2w", "T1w")
    np.testing.assert_allclose(ranking.mean_map, (maps[0] + maps[1]) / 2, rtol=1e-6)
    with pytest.raises(ValueError, match="names"):
        rank_channels(maps, names=["a"])
    with pytest.raises(ValueError, match="non-empty"):
        rank_channels(maps, [np.zeros((4, 4, 4), bool)] * 2)


def test_p3s_ranks_the_channel_the_target_depends_on_first():
    # a model fitted to y = 3 x_0 + 0.2 x_1 (x_2 unused): the ranking follows |w|
    model = _linear_voxel_model(3, [3.0, 0.2, 0.0], 0.0)
    maps, masks = [], []
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(1, 3, 5, 5, 5, generator=g)
        y = model(x).detach() + 0.1 * torch.randn(1, 1, 5, 5, 5, generator=g)
        maps.append(p3s_saliency(model, x, y)[0])
        masks.append(np.ones((5, 5, 5), bool))
    assert rank_channels(maps, masks).order == (0, 1, 2)
