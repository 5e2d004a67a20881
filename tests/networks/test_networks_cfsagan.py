"""CF-SAGAN generator: shapes, long skips, attention at gamma = 0, gradients, thesis widths, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from neurotrans.networks import build_network
from neurotrans.networks.blocks import ResDown, ResUp, SelfAttention
from neurotrans.networks.nets import CFSAGANGenerator

CASES = [
    (dict(spatial_dims=2, in_channels=3, features=(4, 8, 8), attention_level=1, attention_pool=2), (2, 3, 16, 16)),
    (dict(spatial_dims=2, in_channels=1, out_channels=2, features=(4, 4), attention_level=0,
          attention_pool=4, norm="instance", final_activation="tanh"), (2, 1, 8, 12)),
    (dict(spatial_dims=3, in_channels=2, features=(4, 8, 8), attention_level=1, attention_pool=2), (2, 2, 8, 8, 16)),
    (dict(spatial_dims=3, in_channels=4, features=(2, 4), attention_level=None, dropout=0.0), (1, 4, 8, 8, 8)),
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "shape"), CASES, ids=[f"{k['spatial_dims']}d-{i}" for i, (k, _) in enumerate(CASES)])
def test_shapes_and_every_parameter_gets_a_gradient(kwargs, shape):
    torch.manual_seed(0)
    net = CFSAGANGenerator(**kwargs).train()
    for m in net.modules():
        if isinstance(m, SelfAttention):
            nn.init.constant_(m.gamma, 0.5)  # at gamma = 0 the attention's projections get no gradient
    x = torch.randn(shape)
    y = net(x)
    assert y.shape == (shape[0], kwargs.get("out_channels", 1), *shape[2:])
    (y * torch.randn_like(y)).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_attention_starts_as_the_identity(spatial_dims):
    """With gamma = 0 the generator equals the same network with its attention layers removed."""
    torch.manual_seed(0)
    net = CFSAGANGenerator(spatial_dims, 2, features=(4, 8, 8), attention_level=1, attention_pool=2).eval()
    x = torch.randn(2, 2, *([8] * spatial_dims))
    with torch.no_grad():
        y = net(x)
        net.enc_attention, net.dec_attention = nn.Identity(), nn.Identity()
        torch.testing.assert_close(net(x), y, rtol=0, atol=0)


def test_thesis_layout_and_long_skips():
    net = CFSAGANGenerator(3, 4)
    assert [m.main[0][0].out_channels for m in net.downs] == [32, 64, 128, 256]  # 16 -> 256
    assert net.stem[0].out_channels == 16 and net.stem[0].kernel_size == (3, 3, 3)
    assert all(isinstance(m, ResDown) for m in net.downs) and all(isinstance(m, ResUp) for m in net.ups)
    # each ResUp below the bottleneck reads the previous ResUp output concatenated with the skip
    assert [m.main[0].in_channels for m in net.ups] == [64, 128, 256, 256]
    assert net.head.in_channels == 32  # last ResUp (16) + stem skip (16)
    assert net.enc_attention.channels == net.dec_attention.channels == 64
    assert net.enc_attention.inner == 8 and net.enc_attention.pool == 2  # C/8
    # a skip is really used: perturbing the stem's output changes the result through the head
    # even when every deeper level is silenced
    small = CFSAGANGenerator(2, 1, features=(2, 2), attention_level=None, dropout=0.0).eval()
    with torch.no_grad():
        for p in small.ups.parameters():
            p.zero_()
        x = torch.randn(1, 1, 8, 8)
        y = small(x)
        x2 = x.clone()
        x2[..., 0, 0] += 5.0
        assert not torch.equal(small(x2), y)


def test_registry_builds_generator_and_discriminator_in_2d_and_3d():
    for d in (2, 3):
        g = build_network("cfsagan_generator", spatial_dims=d, in_channels=2, features=(2, 4, 4),
                          attention_level=1)  # fmt: skip
        dis = build_network("cfsagan_discriminator", spatial_dims=d, in_channels=3, patch_size=8,
                            features=(2, 4))  # fmt: skip
        x = torch.randn(1, 2, *([16] * d))
        y = g(x)
        assert y.shape == (1, 1, *([16] * d))
        assert dis(torch.cat([x, y], dim=1)).shape == (1, 2, *([2] * d))


BAD = [
    dict(spatial_dims=4, in_channels=1),
    dict(spatial_dims=3, in_channels=0),
    dict(spatial_dims=3, in_channels=1, out_channels=0),
    dict(spatial_dims=3, in_channels=1, features=(16,)),
    dict(spatial_dims=3, in_channels=1, features=(16, -32)),
    dict(spatial_dims=3, in_channels=1, attention_level=4),  # depth 4: levels 0..3
    dict(spatial_dims=3, in_channels=1, attention_level=-1),
    dict(spatial_dims=3, in_channels=1, attention_pool=0),
    dict(spatial_dims=3, in_channels=1, norm="layer"),
    dict(spatial_dims=3, in_channels=1, dropout=1.0),
    dict(spatial_dims=3, in_channels=1, final_activation="softmax"),
]  # fmt: skip


@pytest.mark.parametrize("kwargs", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_hyper_parameters_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        CFSAGANGenerator(**kwargs)


def test_bad_inputs_are_clear_errors():
    net = CFSAGANGenerator(3, 2, features=(2, 4, 4), attention_level=None)
    with pytest.raises(ValueError, match="not divisible"):
        net(torch.randn(1, 2, 8, 8, 6))
    with pytest.raises(ValueError, match="expects"):
        net(torch.randn(1, 3, 8, 8, 8))
