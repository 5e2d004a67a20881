"""Every registered network: output shapes in 2D and 3D, gradients, seeded construction, bad arguments."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from neurotrans.networks import NETWORKS, build_network
from neurotrans.networks.blocks import SelfAttention

# (registry name, kwargs, input shape, expected output shape): tiny widths, 32^2 and 16^3
CASES = [
    ("unet", dict(spatial_dims=2, in_channels=2, out_channels=1, features=(4, 8, 8)), (2, 2, 32, 32), (2, 1, 32, 32)),
    ("unet", dict(spatial_dims=3, in_channels=1, out_channels=2, features=(4, 8)), (2, 1, 16, 16, 16), (2, 2, 16, 16, 16)),
    ("unet", dict(spatial_dims=2, in_channels=1, out_channels=1, features=(4, 8, 8), convs_per_level=1,
                  downsample="maxpool", norm="instance"), (2, 1, 32, 32), (2, 1, 32, 32)),
    ("unet", dict(spatial_dims=3, in_channels=2, out_channels=1, features=(4, 8, 8), convs_per_level=2,
                  norm="none", activation="relu", final_activation="sigmoid"), (1, 2, 16, 16, 16), (1, 1, 16, 16, 16)),
    ("unet_pix2pix", dict(spatial_dims=2, in_channels=1, out_channels=1, base=4, depth=5), (2, 1, 32, 32), (2, 1, 32, 32)),
    ("unet_pix2pix", dict(spatial_dims=3, in_channels=2, out_channels=1, base=2, depth=4), (2, 2, 16, 16, 16), (2, 1, 16, 16, 16)),
    ("unet_esit", dict(spatial_dims=2, in_channels=3, out_channels=1, base=4, depth=3), (2, 3, 32, 32), (2, 1, 32, 32)),
    ("unet_esit", dict(spatial_dims=3, in_channels=1, out_channels=1, base=2, depth=2), (2, 1, 16, 16, 16), (2, 1, 16, 16, 16)),
    ("unet_esit_paper", dict(spatial_dims=2, in_channels=3, out_channels=1, base=4, depth=3), (2, 3, 32, 32), (2, 1, 32, 32)),
    ("unet_esit_paper", dict(spatial_dims=3, in_channels=1, out_channels=1, base=2, depth=2), (2, 1, 16, 16, 16), (2, 1, 16, 16, 16)),
    ("unet_sketcher", dict(spatial_dims=2, in_channels=2, out_channels=1, base=4, depth=2), (2, 2, 32, 32), (2, 1, 32, 32)),
    ("unet_sketcher", dict(spatial_dims=3, in_channels=3, out_channels=1, base=2, depth=2), (2, 3, 16, 16, 16), (2, 1, 16, 16, 16)),
    ("unet_sketcher_z", dict(spatial_dims=2, in_channels=2, out_channels=1, base=4, depth=2), (2, 2, 32, 32), (2, 1, 32, 32)),
    ("unet_sketcher_z", dict(spatial_dims=3, in_channels=3, out_channels=1, base=2, depth=2, noise_channels=2), (2, 3, 16, 16, 16), (2, 1, 16, 16, 16)),
    ("cfsagan_generator", dict(spatial_dims=2, in_channels=2, features=(4, 8, 8), attention_level=1), (2, 2, 32, 32), (2, 1, 32, 32)),
    ("cfsagan_generator", dict(spatial_dims=3, in_channels=3, out_channels=2, features=(2, 4, 4), attention_level=0, attention_pool=4), (2, 3, 16, 16, 16), (2, 2, 16, 16, 16)),
    ("patch_classifier", dict(spatial_dims=2, in_channels=3, patch_size=16, features=(4, 8)), (2, 3, 32, 32), (2, 2, 2, 2)),
    ("patch_classifier", dict(spatial_dims=3, in_channels=2, patch_size=8, features=(2, 4)), (2, 2, 16, 16, 16), (2, 2, 2, 2, 2)),
    ("patch_discriminator", dict(spatial_dims=2, in_channels=2, patch_size=8, features=(4,), block="residual"), (2, 2, 32, 16), (2, 2, 4, 2)),
    ("patch_discriminator", dict(spatial_dims=3, in_channels=2, patch_size=(8, 8, 4), features=(2, 4), attention_level=1, attention_pool=2), (2, 2, 16, 16, 16), (2, 2, 2, 2, 4)),
    ("cfsagan_discriminator", dict(spatial_dims=2, in_channels=2, patch_size=16, features=(4, 8)), (2, 2, 32, 32), (2, 2, 2, 2)),
    ("cfsagan_discriminator", dict(spatial_dims=3, in_channels=4, patch_size=8, features=(2, 4)), (2, 4, 16, 16, 16), (2, 2, 2, 2, 2)),
    ("patchgan", dict(spatial_dims=2, in_channels=2, base=4), (2, 2, 32, 32), (2, 1, 2, 2)),
    ("patchgan", dict(spatial_dims=3, in_channels=2, base=2, n_layers=2, norm="instance"), (2, 2, 16, 16, 16), (2, 1, 2, 2, 2)),
    ("esit", dict(spatial_dims=2, n_regions=4, features=(8, 8), tissue_features=(8,)), (2, 6, 32, 32), (2, 1, 32, 32)),
    ("esit", dict(spatial_dims=3, n_regions=3, features=(4,), tissue_features=(4,)), (2, 6, 16, 16, 16), (2, 1, 16, 16, 16)),
    ("unet_flair", dict(spatial_dims=3, in_channels=5, base=4), (1, 5, 8, 8, 8), (1, 1, 8, 8, 8)),
    ("unet_flair", dict(spatial_dims=2, in_channels=2, out_channels=2, base=4), (2, 2, 16, 16), (2, 2, 16, 16)),
    ("fcn", dict(spatial_dims=3, in_channels=5, features=8), (1, 5, 16, 16, 16), (1, 1, 16, 16, 16)),
    ("fcn", dict(spatial_dims=2, in_channels=2, out_channels=3, features=8), (2, 2, 32, 32), (2, 3, 32, 32)),
    ("fcn", dict(spatial_dims=3, in_channels=2, features=4, hidden_layers=6), (1, 2, 8, 8, 8), (1, 1, 8, 8, 8)),
    ("cnn2layer", dict(spatial_dims=3, in_channels=2, features=4), (1, 2, 16, 16, 16), (1, 1, 16, 16, 16)),
    ("cnn2layer", dict(spatial_dims=2, in_channels=2, features=4), (2, 2, 32, 32), (2, 1, 32, 32)),
    ("cnn2layer", dict(spatial_dims=3, in_channels=1, features=4, padding="valid"), (1, 1, 15, 15, 15), (1, 1, 3, 3, 3)),
    ("voxel_mlp", dict(spatial_dims=3, in_channels=4, hidden=(8, 8)), (1, 4, 16, 16, 16), (1, 1, 16, 16, 16)),
    ("voxel_mlp", dict(spatial_dims=2, in_channels=4), (2, 4, 32, 32), (2, 1, 32, 32)),
    ("resnet_generator", dict(spatial_dims=2, in_channels=1, out_channels=1, base=4, n_blocks=2), (2, 1, 32, 32), (2, 1, 32, 32)),
    ("resnet_generator", dict(spatial_dims=3, in_channels=2, out_channels=1, base=2, n_blocks=1), (1, 2, 16, 16, 16), (1, 1, 16, 16, 16)),
]  # fmt: skip
# two-domain or multi-output networks, with their own shape and gradient tests
COVERED_ELSEWHERE = {
    "unit": "tests/networks/test_networks_unit.py",
    "multiscale_discriminator": "tests/networks/test_networks_unit.py",
}
IDS = [f"{name}-{kw['spatial_dims']}d-{i}" for i, (name, kw, _, _) in enumerate(CASES)]


def test_every_registered_network_is_covered():
    assert {name for name, *_ in CASES} | set(COVERED_ELSEWHERE) == set(NETWORKS)


@pytest.mark.parametrize(("name", "kwargs", "shape", "expected"), CASES, ids=IDS)
def test_output_shape_and_every_parameter_gets_a_gradient(name, kwargs, shape, expected):
    torch.manual_seed(0)
    net = build_network(name, **kwargs).train()
    for m in net.modules():
        if isinstance(m, SelfAttention):
            nn.init.constant_(m.gamma, 0.5)  # gamma = 0 at init leaves its projections without gradient
    x = torch.randn(shape)
    y = net(x)
    assert tuple(y.shape) == expected
    assert torch.isfinite(y).all()
    # a random projection: sum() alone can have zero gradient through batch norm
    (y * torch.randn_like(y)).sum().backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all()
        assert p.grad.abs().sum() > 0, f"{pname} got an all-zero gradient"


@pytest.mark.parametrize(("name", "kwargs", "shape", "expected"), CASES[::3], ids=IDS[::3])
def test_seeded_construction_reproduces_weights(name, kwargs, shape, expected):
    torch.manual_seed(123)
    a = build_network(name, **kwargs).state_dict()
    torch.manual_seed(123)
    b = build_network(name, **kwargs).state_dict()
    torch.manual_seed(124)
    c = build_network(name, **kwargs).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(
        not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point() and a[k].numel() > 1
    )


BAD = [
    ("unet", dict(spatial_dims=4, in_channels=1, out_channels=1, features=(4,))),
    ("unet", dict(spatial_dims=2, in_channels=0, out_channels=1, features=(4,))),
    ("unet", dict(spatial_dims=2, in_channels=1, out_channels=1, features=())),
    ("unet", dict(spatial_dims=2, in_channels=1, out_channels=1, features=(4, -8))),
    ("unet", dict(spatial_dims=2, in_channels=1, out_channels=1, features=(4,), convs_per_level=2)),
    ("unet", dict(spatial_dims=2, in_channels=1, out_channels=1, features=(4, 8), norm="group")),
    ("unet", dict(spatial_dims=2, in_channels=1, out_channels=1, features=(4, 8), activation="gelu")),
    ("unet", dict(spatial_dims=2, in_channels=1, out_channels=1, features=(4, 8), downsample="avgpool")),
    ("unet", dict(spatial_dims=2, in_channels=1, out_channels=1, features=(4, 8), dropout=1.5)),
    ("unet", dict(spatial_dims=2, in_channels=1, out_channels=1, features=(4, 8), dropout_blocks=5)),
    ("unet", dict(spatial_dims=2, in_channels=1, out_channels=1, features=(4, 8), kernel_size=4)),
    ("unet", dict(spatial_dims=2, in_channels=1, out_channels=1, features=(4, 8), down_kernel_size=5)),
    ("unet", dict(spatial_dims=2, in_channels=1, out_channels=1, features=(4, 8), final_activation="softmax")),
    ("unet", dict(spatial_dims=2, in_channels=1, out_channels=1, features=(4, 8), norm_after_activation=True)),
    ("unet_pix2pix", dict(spatial_dims=2, in_channels=1, out_channels=1, depth=0)),
    ("unet_esit", dict(spatial_dims=2, in_channels=1, out_channels=1, base=0)),
    ("unet_sketcher_z", dict(spatial_dims=2, in_channels=1, out_channels=1, noise_channels=0)),
    ("unet_sketcher_z", dict(spatial_dims=2, in_channels=1, out_channels=1, noise_std=-1.0)),
    ("cfsagan_generator", dict(spatial_dims=2, in_channels=1, features=(4,))),
    ("cfsagan_generator", dict(spatial_dims=3, in_channels=1, attention_level=7)),
    ("patch_classifier", dict(spatial_dims=3, in_channels=1, patch_size=20)),
    ("patch_discriminator", dict(spatial_dims=3, in_channels=1, block="dense")),
    ("cfsagan_discriminator", dict(spatial_dims=3, in_channels=1, attention_level=5)),
    ("unet_esit_paper", dict(spatial_dims=2, in_channels=1, out_channels=1, depth=0)),
    ("unet", dict(spatial_dims=2, in_channels=1, out_channels=1, features=(4, 8), convs_per_level=0, encoder_convs=1)),
    ("unet", dict(spatial_dims=2, in_channels=1, out_channels=1, features=(4, 8), convs_per_level=0, plain_up_conv=True)),
    ("unet", dict(spatial_dims=2, in_channels=1, out_channels=1, features=(4, 8), convs_per_level=2, encoder_convs=0)),
    ("patchgan", dict(spatial_dims=2, in_channels=1, n_layers=0)),
    ("patchgan", dict(spatial_dims=2, in_channels=1, norm="layer")),
    ("patchgan", dict(spatial_dims=5, in_channels=1)),
    ("esit", dict(spatial_dims=2, n_regions=1)),
    ("esit", dict(spatial_dims=2, tissue_channels=0)),
    ("esit", dict(spatial_dims=2, kernel_size=2)),
    ("unet_flair", dict(spatial_dims=3, in_channels=1, base=0)),
    ("fcn", dict(spatial_dims=3, in_channels=1, hidden_layers=0)),
    ("fcn", dict(spatial_dims=3, in_channels=1, kernel_size=4)),
    ("fcn", dict(spatial_dims=3, in_channels=1, features=0)),
    ("cnn2layer", dict(spatial_dims=3, in_channels=1, kernel_size=6)),
    ("cnn2layer", dict(spatial_dims=3, in_channels=1, padding="reflect")),
    ("voxel_mlp", dict(spatial_dims=3, in_channels=1, hidden=())),
]  # fmt: skip


@pytest.mark.parametrize(("name", "kwargs"), BAD, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BAD)])
def test_bad_hyper_parameters_raise_value_error(name, kwargs):
    with pytest.raises(ValueError):
        build_network(name, **kwargs)


def test_unknown_network_lists_close_matches():
    with pytest.raises(ValueError, match="unet_pix2pix"):
        build_network("unet_pix2pixx", spatial_dims=2)


@pytest.mark.parametrize(
    ("name", "kwargs", "shape"),
    [
        (
            "unet",
            dict(spatial_dims=2, in_channels=1, out_channels=1, features=(4, 4, 4)),
            (1, 1, 30, 32),
        ),
        (
            "unet_esit",
            dict(spatial_dims=3, in_channels=1, out_channels=1, base=2, depth=2),
            (1, 1, 16, 16, 18),
        ),
    ],
)
def test_size_not_divisible_by_two_to_the_depth_is_a_clear_error(name, kwargs, shape):
    net = build_network(name, **kwargs)
    with pytest.raises(ValueError, match=r"not divisible by 2\*\*depth"):
        net(torch.zeros(shape))


def test_wrong_channel_count_is_a_clear_error():
    net = build_network("unet", spatial_dims=2, in_channels=2, out_channels=1, features=(4, 4))
    with pytest.raises(ValueError, match="expects"):
        net(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="expects"):
        net(torch.zeros(1, 2, 16, 16, 16))
