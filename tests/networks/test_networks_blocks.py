"""Layer factories, weight init, and the building blocks (conv, residual, self-attention)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from neurotrans.networks.blocks import ConvBlock, ResDown, ResidualBlock, ResUp, SelfAttention
from neurotrans.networks.layers import (
    activation,
    apply_spectral_norm,
    conv,
    down_conv,
    dropout,
    init_weights,
    norm,
    pool,
    up_conv,
)


@pytest.mark.parametrize("spatial_dims", [1, 2, 3])
@pytest.mark.parametrize("k", [2, 3, 4])
def test_down_and_up_convolutions_halve_and_double(spatial_dims, k):
    x = torch.randn(1, 2, *([8] * spatial_dims))
    y = down_conv(spatial_dims, 2, 3, kernel_size=k)(x)
    assert y.shape == (1, 3, *([4] * spatial_dims))
    assert up_conv(spatial_dims, 3, 2, kernel_size=k)(y).shape == (1, 2, *([8] * spatial_dims))
    assert conv(spatial_dims, 2, 5, kernel_size=5)(x).shape == (1, 5, *([8] * spatial_dims))
    assert pool("max", spatial_dims)(x).shape == (1, 2, *([4] * spatial_dims))


@pytest.mark.parametrize(
    ("factory", "args"),
    [
        (norm, ("group", 2, 4)),
        (norm, ("batch", 4, 4)),
        (activation, ("gelu",)),
        (dropout, (1.0,)),
        (pool, ("min", 2)),
        (down_conv, (2, 1, 1)),
        (conv, (2, 0, 1)),
    ],
)
def test_bad_layer_arguments_raise_value_error(factory, args):
    kwargs = {"kernel_size": 5} if factory is down_conv else {}
    with pytest.raises(ValueError):
        factory(*args, **kwargs)


def test_norm_factory_types():
    assert isinstance(norm("batch", 3, 4), nn.BatchNorm3d)
    inst = norm("instance", 2, 4)
    assert isinstance(inst, nn.InstanceNorm2d) and not inst.affine
    assert isinstance(norm("none", 2, 4), nn.Identity)


def test_init_weights_is_seeded_and_has_the_requested_scale():
    net = nn.Sequential(nn.Conv2d(16, 64, 3), nn.BatchNorm2d(64), nn.ConvTranspose2d(64, 8, 4))
    a = init_weights(net, generator=torch.Generator().manual_seed(5))
    w1 = [t.clone() for t in a.state_dict().values()]
    init_weights(net, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(x, y) for x, y in zip(w1, net.state_dict().values(), strict=True))
    assert net[0].weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert net[1].weight.mean().item() == pytest.approx(1.0, abs=0.01)
    assert torch.count_nonzero(net[0].bias) == 0
    with pytest.raises(ValueError):
        init_weights(net, scheme="orthogonal")


def test_conv_block_orders():
    a = ConvBlock(2, 1, 4, norm="instance", dropout=0.1)
    assert [type(m) for m in a] == [nn.Conv2d, nn.InstanceNorm2d, nn.LeakyReLU, nn.Dropout]
    b = ConvBlock(3, 1, 4, norm="batch", activation="relu", norm_after_activation=True)
    assert [type(m) for m in b] == [nn.Conv3d, nn.ReLU, nn.BatchNorm3d, nn.Identity]
    assert b[0].bias is None  # cancelled by batch norm


def test_residual_block_is_act_of_identity_when_body_is_silenced():
    block = ResidualBlock(3, 4, 4, norm="batch").eval()
    with torch.no_grad():
        block.body[-1].weight.zero_()  # last batch norm scale 0 -> body output 0
    x = torch.randn(2, 4, 6, 6, 6)
    torch.testing.assert_close(block(x), nn.functional.leaky_relu(x, 0.2))
    assert ResidualBlock(2, 3, 5)(torch.randn(2, 3, 8, 8)).shape == (2, 5, 8, 8)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_res_down_up_shapes_and_gradients(spatial_dims):
    torch.manual_seed(0)
    net = nn.Sequential(
        ResDown(spatial_dims, 2, 4, dropout=0.5), ResUp(spatial_dims, 4, 3, norm="instance")
    )
    x = torch.randn(2, 2, *([8] * spatial_dims))
    y = net(x)
    assert y.shape == (2, 3, *([8] * spatial_dims))
    (y * torch.randn_like(y)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    with pytest.raises(ValueError, match="even"):
        ResDown(spatial_dims, 2, 4)(torch.randn(2, 2, *([7] * spatial_dims)))


def test_self_attention_is_identity_at_init_and_matches_hand_computation():
    torch.manual_seed(0)
    att = SelfAttention(2, 16, reduction=8)
    x = torch.randn(2, 16, 5, 6)
    torch.testing.assert_close(att(x), x)
    with torch.no_grad():
        att.gamma.fill_(0.7)
    flat = x.flatten(2)  # (B, C, L)

    def proj(layer, t):
        bias = 0 if layer.bias is None else layer.bias[:, None]
        return torch.einsum("kc,bcl->bkl", layer.weight.flatten(1), t) + bias

    # a key bias would add q_j . b to every logit of row j: the softmax removes it, so it has none
    assert att.key.bias is None and att.query.bias is not None

    f, g, h = proj(att.key, flat), proj(att.query, flat), proj(att.value, flat)
    assert f.shape[1] == g.shape[1] == h.shape[1] == 2  # key, query and value at C/8 (thesis)
    beta = torch.softmax(torch.einsum("bkj,bki->bji", g, f), dim=-1)  # (B, L_j, L_i), eq. 4.1
    o = proj(att.out, torch.einsum("bji,bci->bcj", beta, h)).view_as(x)  # eq. 4.2, back to C
    torch.testing.assert_close(att(x), 0.7 * o + x, rtol=1e-5, atol=1e-5)  # eq. 4.3
    torch.testing.assert_close(att.last_attention.sum(-1), torch.ones(2, 30))


def test_self_attention_is_permutation_equivariant_without_pooling():
    torch.manual_seed(0)
    att = SelfAttention(1, 8, reduction=4)
    with torch.no_grad():
        att.gamma.fill_(1.0)
    x = torch.randn(1, 8, 12)
    perm = torch.randperm(12)
    torch.testing.assert_close(att(x[..., perm]), att(x)[..., perm], rtol=1e-5, atol=1e-5)


def test_flexible_self_attention_pools_and_every_parameter_learns():
    torch.manual_seed(0)
    att = SelfAttention(3, 8, pool=2)
    with torch.no_grad():
        att.gamma.fill_(0.5)
    x = torch.randn(2, 8, 6, 6, 4)
    y = att(x)
    assert y.shape == x.shape and att.last_attention.shape == (
        2,
        18,
        18,
    )  # (6/2)(6/2)(4/2) positions
    (y * torch.randn_like(y)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in att.parameters())
    with pytest.raises(ValueError):
        SelfAttention(2, 8, pool=0)
    with pytest.raises(ValueError, match="smaller than pool"):
        SelfAttention(2, 8, pool=4)(torch.randn(1, 8, 3, 8))
    with pytest.raises(ValueError, match="expects"):
        SelfAttention(2, 8)(torch.randn(1, 4, 8, 8))


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("pool", [1, 2, 3])
def test_flexible_self_attention_is_the_identity_at_initialisation(spatial_dims, pool):
    att = SelfAttention(spatial_dims, 16, pool=pool).train()
    x = torch.randn(2, 16, *([6] * spatial_dims))
    assert att.gamma.item() == 0.0
    torch.testing.assert_close(att(x), x, rtol=0, atol=0)


def _profiled_peak_bytes(module: nn.Module, x: torch.Tensor) -> int:
    """Peak CPU memory allocated during ``module(x)``, replayed from torch.profiler's events.

    Allocations count from the start of the op that made them, frees from the end of the op
    (or the ``[memory]`` instant) that released them: an upper bound of the true peak.
    """
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        module(x)
    steps = sorted(
        (e.time_range.start if e.self_cpu_memory_usage > 0 else e.time_range.end, e.self_cpu_memory_usage)
        for e in prof.events()
        if e.self_cpu_memory_usage
    )
    peak = current = 0
    for _, delta in steps:
        current += delta
        peak = max(peak, current)
    return peak


@pytest.mark.parametrize(("spatial_dims", "size"), [(3, 16), (2, 64)])
def test_flexible_self_attention_memory_falls_with_the_pool_size(spatial_dims, size):
    """Pooling by p divides the positions by p**d and the L x L map by p**(2d); the layer's
    measured peak (torch.profiler, CPU) falls by at least the thesis's p**d ("the cubic of
    p" in 3D) and at most p**(2d)."""
    torch.manual_seed(0)
    x = torch.randn(1, 16, *([size] * spatial_dims))
    maps, peaks = {}, {}
    for p in (1, 2, 4):
        att = SelfAttention(spatial_dims, 16, pool=p).eval()
        peaks[p] = _profiled_peak_bytes(att, x)
        maps[p] = att.last_attention.numel()
    for p in (2, 4):
        assert maps[1] == maps[p] * p ** (2 * spatial_dims)
        assert p**spatial_dims <= peaks[1] / peaks[p] <= 1.1 * p ** (2 * spatial_dims)
    # with p = 1 the two L x L float32 buffers (scores, softmax) make the peak
    assert peaks[1] >= 2 * 4 * maps[1]


def test_spectral_norm_bounds_the_largest_singular_value():
    torch.manual_seed(0)
    net = apply_spectral_norm(nn.Sequential(nn.Conv2d(3, 6, 3), nn.Linear(4, 4)))
    for _ in range(30):  # power iterations run in training-mode forwards
        net[0](torch.randn(1, 3, 5, 5))
        net[1](torch.randn(1, 4))
    for m in net:
        sigma = torch.linalg.matrix_norm(m.weight.flatten(1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=1e-3)
