"""CycleGAN's ResNet generator: the reference's parameter counts, padding, shapes, bad arguments."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from neurotrans.networks import NETWORKS, ResnetGenerator
from neurotrans.networks.blocks import ResnetBlock, padded_conv


@pytest.mark.parametrize(("n_blocks", "expected"), [(9, 11_378_179), (6, 7_837_699)])
def test_parameter_count_equals_the_reference(n_blocks, expected):
    """The reference prints 11.378 M (resnet_9blocks) and 7.838 M (resnet_6blocks) for RGB.

    By hand: c7s1-64 9,472; d128 73,856; d256 295,168; each R256 1,180,160; u128 295,040;
    u64 73,792; c7s1-3 9,411 (biases kept before instance norm).
    """
    net = ResnetGenerator(2, 3, 3, n_blocks=n_blocks)
    assert NETWORKS["resnet_generator"] is ResnetGenerator
    assert sum(p.numel() for p in net.parameters()) == expected
    hand = 9_472 + 73_856 + 295_168 + n_blocks * 1_180_160 + 295_040 + 73_792 + 9_411
    assert hand == expected


@pytest.mark.parametrize(
    ("spatial_dims", "kwargs", "size"),
    [(2, dict(), (32, 24)), (2, dict(norm="batch", dropout=0.5, padding_mode="zeros"), (16, 16)),
     (3, dict(), (8, 12, 16)), (3, dict(n_down=1, final_activation="none"), (6, 4, 8))],
)  # fmt: skip
def test_shapes_and_gradients(spatial_dims, kwargs, size):
    torch.manual_seed(0)
    net = ResnetGenerator(spatial_dims, 2, 1, base=4, n_blocks=2, **kwargs).train()
    y = net(torch.randn(2, 2, *size))
    assert y.shape == (2, 1, *size)
    if kwargs.get("final_activation", "tanh") == "tanh":
        assert y.abs().max() <= 1
    (y * torch.randn_like(y)).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize(("spatial_dims", "mode"), [(2, "reflect"), (3, "reflect"), (2, "replicate")])
def test_padded_conv_equals_torch_padding_mode(spatial_dims, mode):
    torch.manual_seed(0)
    ours = padded_conv(spatial_dims, 2, 3, kernel_size=5, padding_mode=mode)
    conv_cls = {2: nn.Conv2d, 3: nn.Conv3d}[spatial_dims]
    ref = conv_cls(2, 3, 5, padding=2, padding_mode=mode)
    ref.load_state_dict(ours[1].state_dict())
    x = torch.randn(1, 2, *(7,) * spatial_dims)
    torch.testing.assert_close(ours(x), ref(x))


def test_resnet_block_is_the_identity_when_its_body_is_zero():
    block = ResnetBlock(2, 4, norm="none", padding_mode="reflect")
    with torch.no_grad():
        for p in block.parameters():
            p.zero_()
    x = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(block(x), x)  # no activation after the sum


def test_dropout_position():
    middle = ResnetBlock(2, 4, dropout=0.5, dropout_position="middle")
    end = ResnetBlock(2, 4, dropout=0.5, dropout_position="end")
    assert isinstance(middle.body[3], nn.Dropout) and isinstance(end.body[-1], nn.Dropout)


@pytest.mark.parametrize(
    "kwargs",
    [dict(spatial_dims=4), dict(spatial_dims=2, n_blocks=-1), dict(spatial_dims=2, norm="layer"),
     dict(spatial_dims=2, padding_mode="circular"), dict(spatial_dims=2, base=0)],
)  # fmt: skip
def test_bad_hyper_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        ResnetGenerator(**kwargs)


def test_bad_inputs_raise():
    net = ResnetGenerator(2, 1, 1, base=4, n_blocks=1)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(1, 1, 18, 16))
    with pytest.raises(ValueError, match="at least 8"):
        net(torch.randn(1, 1, 4, 16))
    with pytest.raises(ValueError, match=r"\(B, 1, \.\.\.\)"):
        net(torch.randn(1, 2, 16, 16))
