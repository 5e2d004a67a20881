"""Noise input z of the Sketcher: channels, reproducibility, determinism when z is given."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from neurotrans.networks import build_network
from neurotrans.networks.nets import NoiseInput, unet_sketcher


class _Record(nn.Module):
    """Identity that remembers its input (to see what the wrapped net receives)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x
        return x


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("per_voxel", [True, False])
def test_noise_channels_are_appended_after_the_condition(spatial_dims, per_voxel):
    rec = _Record()
    net = NoiseInput(rec, noise_channels=2, std=0.5, per_voxel=per_voxel)
    x = torch.randn(3, 4, *([6] * spatial_dims))
    torch.manual_seed(0)
    net(x)
    assert rec.seen.shape == (3, 6, *([6] * spatial_dims))
    torch.testing.assert_close(rec.seen[:, :4], x)
    z = rec.seen[:, 4:]
    spread = z.flatten(2).std(dim=2)
    assert (spread > 0).all() if per_voxel else (spread == 0).all()
    if per_voxel:
        assert z.std().item() == pytest.approx(0.5, rel=0.1)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_sketcher_with_noise_shapes_reproducibility_and_given_z(spatial_dims):
    torch.manual_seed(0)
    net = build_network("unet_sketcher_z", spatial_dims=spatial_dims, in_channels=2, out_channels=1,
                        base=2, depth=2).eval()  # fmt: skip
    assert net.net.encoders[0].convs[0][0].in_channels == 3  # MRI + z
    x = torch.randn(2, 2, *([8] * spatial_dims))
    with torch.no_grad():
        torch.manual_seed(1)
        a = net(x)
        torch.manual_seed(1)
        b = net(x)
        c = net(x)  # a fresh z
        z = torch.randn(2, 1, *([8] * spatial_dims))
        d1, d2 = net(x, z), net(x, z)
    assert a.shape == (2, 1, *([8] * spatial_dims))
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    torch.testing.assert_close(d1, d2)
    torch.testing.assert_close(d1, net.net(torch.cat([x, z], 1)))


def test_noise_can_be_switched_off_in_eval_mode_and_gradients_reach_every_parameter():
    torch.manual_seed(0)
    inner = unet_sketcher(2, 3, 1, base=2, depth=2)
    net = NoiseInput(inner, noise_channels=1, noise_at_eval=False)
    x = torch.randn(2, 2, 8, 8)
    y = net.train()(x)
    (y * torch.randn_like(y)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x), net(x))
        torch.testing.assert_close(net(x), inner(torch.cat([x, torch.zeros(2, 1, 8, 8)], 1)))


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError):
        NoiseInput(nn.Identity(), noise_channels=0)
    with pytest.raises(ValueError):
        NoiseInput(nn.Identity(), std=0.0)
    with pytest.raises(ValueError):
        build_network("unet_sketcher_z", spatial_dims=3, in_channels=0, out_channels=1)
    with pytest.raises(ValueError, match="z must be"):
        NoiseInput(nn.Identity(), noise_channels=2)(torch.randn(1, 1, 4, 4), torch.randn(1, 1, 4, 4))
