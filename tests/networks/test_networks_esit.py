"""ESIT: intermediate maps, attention normalisation, and the output as a 1x1 conv of the product."""

from __future__ import annotations

import pytest
import torch

from neurotrans.networks import ESIT


@pytest.mark.parametrize(("spatial_dims", "size"), [(2, 24), (3, 12)])
def test_maps_are_retrievable_and_consistent(spatial_dims, size):
    torch.manual_seed(0)
    net = ESIT(spatial_dims, tissue_channels=3, coord_channels=3, out_channels=1, n_regions=5,
               features=(8, 8), tissue_features=(8,))  # fmt: skip
    x = torch.randn(2, 6, *([size] * spatial_dims))
    out, maps = net(x, return_maps=True)
    assert set(maps) == {"attention", "embeddings", "product"}
    for m in maps.values():
        assert m.shape == (2, 5, *([size] * spatial_dims))
    a = maps["attention"]
    assert (a >= 0).all()
    torch.testing.assert_close(a.sum(dim=1), torch.ones_like(a[:, 0]))
    torch.testing.assert_close(maps["product"], a * maps["embeddings"])
    # output = 1x1 convolution of the product, done by hand
    w, b = net.head.weight.flatten(1), net.head.bias
    manual = torch.einsum("or,br...->bo...", w, maps["product"]) + b.view(
        1, -1, *([1] * spatial_dims)
    )
    torch.testing.assert_close(out, manual, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(net(x), out)


def test_attention_depends_only_on_coordinates_and_embeddings_only_on_tissue():
    torch.manual_seed(0)
    net = ESIT(2, n_regions=4, features=(8,), tissue_features=(8,))
    x = torch.randn(1, 6, 16, 16)
    _, m1 = net(x, return_maps=True)
    y = x.clone()
    y[:, :3] = torch.randn(1, 3, 16, 16)  # new tissue maps, same coordinates
    _, m2 = net(y, return_maps=True)
    torch.testing.assert_close(m1["attention"], m2["attention"])
    assert not torch.allclose(m1["embeddings"], m2["embeddings"])


def test_wrong_number_of_channels_is_a_clear_error():
    net = ESIT(2)
    with pytest.raises(ValueError, match="3 tissue \\+ 3 coordinate"):
        net(torch.zeros(1, 4, 16, 16))


def test_learns_a_region_dependent_mapping_with_attention_splitting_the_regions():
    """Toy brain: left half PET = 2 GM, right half PET = 0.5 WM + 0.3; 100 Adam steps."""
    torch.manual_seed(0)
    size = 16
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    coords = torch.stack([xx, yy, torch.zeros_like(xx)])[None].expand(4, -1, -1, -1)
    tissue = torch.rand(4, 3, size, size)
    target = torch.where(xx > 0, 2 * tissue[:, 0], 0.5 * tissue[:, 1] + 0.3)[:, None]
    x = torch.cat([tissue, coords], dim=1)
    net = ESIT(2, n_regions=4, features=(16, 16), tissue_features=(16,))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        loss = (net(x) - target).abs().mean()
        loss.backward()
        opt.step()
    baseline = (target - target.mean()).abs().mean()
    assert loss.item() < 0.3 * baseline.item()
    _, maps = net(x, return_maps=True)
    a = maps["attention"]
    left, right = a[..., xx <= 0].mean(-1), a[..., xx > 0].mean(-1)
    # L1 distance between the mean attention of the two halves: 0 = same regions, 2 = disjoint
    assert ((left - right).abs().sum(dim=1) > 1.0).all()
