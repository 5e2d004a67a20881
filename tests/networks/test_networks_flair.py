"""The FLAIR chapter's networks against the thesis's parameter counts and hand computations."""

from __future__ import annotations

import pytest
import torch

from neurotrans.networks import build_network


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def conv_params(k: int, c_in: int, c_out: int, dims: int = 3) -> int:
    return k**dims * c_in * c_out + c_out


@pytest.mark.parametrize(
    ("features", "expected", "thesis"),
    [(32, 60_577, "60.6 K"), (96, 513_505, "513.5 K")],
)
def test_fcn_matches_table_2_1_with_five_sequences(features, expected, thesis):
    net = build_network("fcn", spatial_dims=3, in_channels=5, features=features)
    assert n_params(net) == expected
    assert f"{expected / 1000:.1f} K" == thesis


@pytest.mark.parametrize("hidden_layers", [2, 3, 4, 6])
@pytest.mark.parametrize("features", [32, 64, 96])
def test_fcn_count_is_hidden_convs_plus_output_conv(features, hidden_layers):
    net = build_network(
        "fcn", spatial_dims=3, in_channels=5, features=features, hidden_layers=hidden_layers
    )
    expected = (
        conv_params(3, 5, features)
        + (hidden_layers - 1) * conv_params(3, features, features)
        + conv_params(3, features, 1)
    )
    assert n_params(net) == expected
    convs = [m for m in net if isinstance(m, torch.nn.Conv3d)]
    assert len(convs) == hidden_layers + 1
    assert all(c.kernel_size == (3, 3, 3) for c in convs)
    relus = [m for m in net if isinstance(m, torch.nn.ReLU)]
    assert len(relus) == hidden_layers and not isinstance(net[-1], torch.nn.ReLU)


def test_cnn2layer_is_li_et_al_with_ten_maps():
    # two valid 7^3 layers of 10 maps and a 1^3 output: 15^3 patch -> 3^3 patch, 37,761 weights
    net = build_network("cnn2layer", spatial_dims=3, in_channels=1, features=10, padding="valid")
    assert n_params(net) == conv_params(7, 1, 10) + conv_params(7, 10, 10) + conv_params(1, 10, 1)
    assert n_params(net) == 37_761
    assert net(torch.zeros(1, 1, 15, 15, 15)).shape == (1, 1, 3, 3, 3)


def test_cnn2layer_same_padding_equals_valid_away_from_the_border():
    torch.manual_seed(0)
    same = build_network("cnn2layer", spatial_dims=3, in_channels=2, features=3)
    valid = build_network("cnn2layer", spatial_dims=3, in_channels=2, features=3, padding="valid")
    valid.load_state_dict(same.state_dict())
    x = torch.randn(1, 2, 16, 16, 16)
    with torch.no_grad():
        assert torch.allclose(same(x)[..., 6:-6, 6:-6, 6:-6], valid(x), atol=1e-5)


def test_unet_flair_count_and_layout():
    net = build_network("unet_flair", spatial_dims=3, in_channels=5)
    assert n_params(net) == 375_585  # thesis: "375.6K"
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
    assert [c.out_channels for c in convs] == [16, 16, 32, 32, 64, 64, 32, 32, 32, 32, 1]
    ups = [m for m in net.modules() if isinstance(m, torch.nn.ConvTranspose3d)]
    assert [(u.in_channels, u.out_channels, u.stride) for u in ups] == [
        (32, 16, (2, 2, 2)),
        (64, 32, (2, 2, 2)),
    ]
    assert sum(isinstance(m, torch.nn.MaxPool3d) for m in net.modules()) == 2
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
