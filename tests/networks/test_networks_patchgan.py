"""PatchGAN: receptive field measured by autograd, and equality with MONAI's PatchDiscriminator."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import PatchDiscriminator as MonaiPatchDiscriminator
from torch import nn

from neurotrans.networks import PatchDiscriminator
from neurotrans.networks.nets.patchgan import patchgan_receptive_field


def _measured_receptive_field(net: PatchDiscriminator, size: int) -> tuple[int, ...]:
    """Extent, per axis, of the input voxels with a nonzero gradient of the central output."""
    net.eval()  # batch statistics would couple every voxel to every output
    x = torch.randn(1, net.in_channels, *([size] * net.spatial_dims), requires_grad=True)
    y = net(x)
    centre = tuple(s // 2 for s in y.shape[2:])
    y[(0, 0, *centre)].backward()
    nonzero = x.grad.abs().sum(dim=(0, 1)) > 0
    extents = []
    for axis in range(net.spatial_dims):
        other = tuple(a for a in range(net.spatial_dims) if a != axis)
        idx = torch.nonzero(nonzero.any(dim=other) if other else nonzero).flatten()
        extents.append(int(idx.max() - idx.min() + 1))
    return tuple(extents)


def test_default_receptive_field_is_70_in_2d():
    torch.manual_seed(0)
    net = PatchDiscriminator(2, 2, base=4)
    assert net.receptive_field == 70
    assert _measured_receptive_field(net, 160) == (70, 70)


@pytest.mark.parametrize(
    ("spatial_dims", "n_layers", "size"), [(2, 1, 40), (2, 2, 64), (3, 1, 24), (3, 2, 40)]
)
def test_receptive_field_matches_formula(spatial_dims, n_layers, size):
    torch.manual_seed(0)
    net = PatchDiscriminator(spatial_dims, 1, base=2, n_layers=n_layers, norm="none")
    expected = patchgan_receptive_field(n_layers)
    assert expected == {1: 16, 2: 34}[n_layers]
    assert _measured_receptive_field(net, size) == (expected,) * spatial_dims


def test_same_topology_and_output_as_monai_patch_discriminator():
    torch.manual_seed(0)
    ours = PatchDiscriminator(2, 3, base=4, n_layers=3)
    monai = MonaiPatchDiscriminator(spatial_dims=2, channels=4, in_channels=3, num_layers_d=3)

    def layers(net):
        return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]

    a, b = layers(ours), layers(monai)
    assert [(type(m), tuple(p.shape for p in m.parameters())) for m in a] == [
        (type(m), tuple(p.shape for p in m.parameters())) for m in b
    ]
    with torch.no_grad():
        for ma, mb in zip(a, b, strict=True):
            for name, t in mb.state_dict().items():
                ma.state_dict()[name].copy_(t)
    ours.eval(), monai.eval()
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(ours(x), monai(x)[-1])


def test_too_small_input_is_a_clear_error():
    net = PatchDiscriminator(3, 1, base=2)
    assert net.min_size() == 24
    with pytest.raises(ValueError, match="at least 24"):
        net(torch.zeros(1, 1, 16, 32, 32))
    assert net(torch.zeros(1, 1, 24, 24, 24)).shape == (1, 1, 1, 1, 1)


def test_output_size_formula():
    net = PatchDiscriminator(2, 1, base=2)
    for size in (32, 64, 256):
        assert (
            net(torch.zeros(1, 1, size, size)).shape[-1] == net.output_size(size) == size // 8 - 2
        )
