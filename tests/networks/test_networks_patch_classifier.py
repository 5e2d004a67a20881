"""The thesis's non-overlapping patch discriminator: patch grid, independence of patches, errors."""

from __future__ import annotations

import itertools

import pytest
import torch

from neurotrans.losses import patch_cross_entropy
from neurotrans.networks import build_network
from neurotrans.networks.nets import NonOverlappingPatchDiscriminator, split_patches


@pytest.mark.parametrize(("sizes", "patch"), [((8, 12), (4, 3)), ((4, 6, 8), (2, 3, 4)), ((6,), (2,))])
def test_split_patches_matches_slicing(sizes, patch):
    x = torch.randn(2, 3, *sizes)
    tiles = split_patches(x, patch)
    grid = [s // p for s, p in zip(sizes, patch, strict=True)]
    assert tiles.shape == (2 * int(torch.tensor(grid).prod()), 3, *patch)
    row = 0
    for b in range(2):
        for idx in itertools.product(*(range(g) for g in grid)):
            box = tuple(slice(i * p, (i + 1) * p) for i, p in zip(idx, patch, strict=True))
            torch.testing.assert_close(tiles[row], x[(b, slice(None), *box)])
            row += 1
    with pytest.raises(ValueError, match="multiple of the patch size"):
        split_patches(torch.randn(1, 1, 7, 8), (2, 2))


CASES = [
    dict(spatial_dims=2, in_channels=3, patch_size=8, features=(4, 8)),
    dict(spatial_dims=2, in_channels=2, patch_size=(8, 4), features=(4, 4), block="residual",
         attention_level=1, attention_pool=2),
    dict(spatial_dims=3, in_channels=2, patch_size=4, features=(4, 8), downsample="avgpool", norm="instance"),
    dict(spatial_dims=3, in_channels=5, patch_size=8, features=(4, 8), block="residual",
         attention_level=1, attention_pool=2),
]  # fmt: skip


@pytest.mark.parametrize("kwargs", CASES, ids=[f"{k['spatial_dims']}d-{i}" for i, k in enumerate(CASES)])
def test_changing_one_patch_changes_only_its_logits(kwargs):
    """Patches do not overlap: voxels of one patch reach only that patch's logits (eval mode:
    in training mode batch norm shares statistics across the patches of a batch)."""
    torch.manual_seed(0)
    net = NonOverlappingPatchDiscriminator(**kwargs).eval()
    for m in net.modules():
        if hasattr(m, "gamma"):
            torch.nn.init.constant_(m.gamma, 0.5)  # let the attention act
    d = kwargs["spatial_dims"]
    patch = net.patch_size
    grid = (2, 3, 1)[:d]
    x = torch.randn(2, kwargs["in_channels"], *(g * p for g, p in zip(grid, patch, strict=True)))
    with torch.no_grad():
        before = net(x)
        assert before.shape == (2, 2, *grid)
        for b, idx in [(0, (1, 2, 0)[:d]), (1, (0,) * d)]:
            y = x.clone()
            box = tuple(slice(i * p, (i + 1) * p) for i, p in zip(idx, patch, strict=True))
            y[(b, slice(None), *box)] += torch.randn_like(y[(b, slice(None), *box)])
            after = net(y)
            changed = (after - before).abs().amax(dim=1) > 0  # (B, *grid)
            expected = torch.zeros_like(changed)
            expected[(b, *idx)] = True
            assert torch.equal(changed, expected)


def test_each_patch_is_scored_as_if_alone():
    torch.manual_seed(0)
    net = NonOverlappingPatchDiscriminator(3, 2, patch_size=4, features=(4,)).eval()
    x = torch.randn(1, 2, 8, 4, 12)
    with torch.no_grad():
        logits = net(x)
        alone = net(x[:, :, 4:8, :, 8:12])
    torch.testing.assert_close(logits[:, :, 1:2, :, 2:3], alone)


@pytest.mark.parametrize("name", ["patch_classifier", "cfsagan_discriminator"])
@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_thesis_discriminators_train_on_the_summed_patch_cross_entropy(name, spatial_dims):
    torch.manual_seed(0)
    net = build_network(name, spatial_dims=spatial_dims, in_channels=2, patch_size=8,
                        features=(4, 8)).train()  # fmt: skip
    for m in net.modules():
        if hasattr(m, "gamma"):
            torch.nn.init.constant_(m.gamma, 0.5)
    x = torch.randn(2, 2, *([16] * spatial_dims))
    logits = net(x)
    assert logits.shape == (2, 2, *([2] * spatial_dims))
    g = torch.Generator().manual_seed(1)
    loss = patch_cross_entropy(logits, True, real_range=(0.9, 1.0), generator=g)
    loss.backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname
    assert (name == "cfsagan_discriminator") == any(hasattr(m, "gamma") for m in net.modules())


BAD = [
    dict(spatial_dims=4, in_channels=1),
    dict(spatial_dims=3, in_channels=0),
    dict(spatial_dims=3, in_channels=1, features=()),
    dict(spatial_dims=3, in_channels=1, features=(4, 0)),
    dict(spatial_dims=3, in_channels=1, patch_size=12, features=(4, 4, 4)),  # 12 not divisible by 8
    dict(spatial_dims=3, in_channels=1, patch_size=(8, 8)),
    dict(spatial_dims=3, in_channels=1, patch_size=0),
    dict(spatial_dims=3, in_channels=1, block="dense"),
    dict(spatial_dims=3, in_channels=1, downsample="strided"),
    dict(spatial_dims=3, in_channels=1, norm="group"),
    dict(spatial_dims=3, in_channels=1, attention_level=4),
    dict(spatial_dims=3, in_channels=1, attention_level=0),
    dict(spatial_dims=3, in_channels=1, patch_size=8, features=(4, 4), attention_level=2, attention_pool=4),
]  # fmt: skip


@pytest.mark.parametrize("kwargs", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_hyper_parameters_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        NonOverlappingPatchDiscriminator(**kwargs)


def test_inputs_that_do_not_tile_are_a_clear_error():
    net = NonOverlappingPatchDiscriminator(3, 2, patch_size=8, features=(4,))
    with pytest.raises(ValueError, match="multiple of the patch size"):
        net(torch.randn(1, 2, 16, 16, 12))
    with pytest.raises(ValueError, match="expects"):
        net(torch.randn(1, 3, 16, 16, 16))
