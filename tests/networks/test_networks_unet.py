"""UNet against a transcription of the reference pix2pix generator, and the thesis/ESIT variants."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from neurotrans.networks import UNet, unet_esit, unet_pix2pix, unet_sketcher
from neurotrans.networks.layers import init_weights


class _RefBlock(nn.Module):
    """``UnetSkipConnectionBlock`` of junyanz/pytorch-CycleGAN-and-pix2pix (models/networks.py)."""

    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False,
                 innermost=False, use_dropout=False):  # fmt: skip
        super().__init__()
        self.outermost = outermost
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=False)
        downrelu, uprelu = nn.LeakyReLU(0.2), nn.ReLU()
        downnorm, upnorm = nn.BatchNorm2d(inner_nc), nn.BatchNorm2d(outer_nc)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            model = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(
                inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=False
            )
            model = [downrelu, downconv, uprelu, upconv, upnorm]
        else:
            upconv = nn.ConvTranspose2d(
                inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=False
            )
            model = [downrelu, downconv, downnorm, submodule, uprelu, upconv, upnorm]
            model += [nn.Dropout(0.5)] if use_dropout else []
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


def _ref_unet(input_nc, output_nc, num_downs, ngf):
    """``UnetGenerator(input_nc, output_nc, num_downs, ngf, BatchNorm2d, use_dropout=True)``."""
    block = _RefBlock(ngf * 8, ngf * 8, innermost=True)
    for _ in range(num_downs - 5):
        block = _RefBlock(ngf * 8, ngf * 8, submodule=block, use_dropout=True)
    block = _RefBlock(ngf * 4, ngf * 8, submodule=block)
    block = _RefBlock(ngf * 2, ngf * 4, submodule=block)
    block = _RefBlock(ngf, ngf * 2, submodule=block)
    return _RefBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True)


def _layers(net: nn.Module) -> list[nn.Module]:
    return [
        m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d))
    ]


def _dropouts(net: nn.Module) -> int:
    return sum(isinstance(m, nn.Dropout) and m.p > 0 for m in net.modules())


def test_pix2pix_preset_equals_reference_generator():
    """Same layers, same order (outer-to-inner down, inner-to-outer up), same output."""
    torch.manual_seed(0)
    ours = unet_pix2pix(2, 2, 1, base=4, depth=6)
    ref = _ref_unet(2, 1, num_downs=6, ngf=4)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    assert _dropouts(ours) == _dropouts(ref) == 1
    ours_layers = [*_layers(ours.down), *[m for up in reversed(ours.up) for m in _layers(up)]]
    ref_layers = _layers(ref)
    assert [type(m) for m in ours_layers] == [type(m) for m in ref_layers]
    init_weights(ref, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for a, b in zip(ours_layers, ref_layers, strict=True):
            for name, t in b.state_dict().items():
                a.state_dict()[name].copy_(t)
    ours.eval(), ref.eval()
    x = torch.randn(2, 2, 64, 64)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("depth", [7, 8])
def test_pix2pix_unet_128_and_256_parameter_counts_match_reference(depth):
    ours, ref = unet_pix2pix(2, 3, 3, base=8, depth=depth), _ref_unet(3, 3, depth, ngf=8)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    assert _dropouts(ours) == _dropouts(ref) == depth - 5
    assert isinstance(ours.final, nn.Tanh)


def test_esit_unet_uses_instance_norm_leaky_relu_and_strided_convs():
    net = unet_esit(2, 1, 1, base=4, depth=3)
    kinds = {type(m) for m in net.modules()}
    assert nn.InstanceNorm2d in kinds and nn.LeakyReLU in kinds
    assert not kinds & {nn.BatchNorm2d, nn.MaxPool2d, nn.ReLU}
    strided = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == 3


def test_sketcher_unet_matches_thesis_description():
    """3 levels (32, 64, 128) + 256 bottleneck, two 3x3x3 convs each, LeakyReLU -> BN -> dropout."""
    net = unet_sketcher(3, 2, 1)
    assert net.depth == 3 and net.features == (32, 64, 128, 256)
    first = net.encoders[0].convs[0]
    assert [type(m) for m in first] == [nn.Conv3d, nn.LeakyReLU, nn.BatchNorm3d, nn.Dropout]
    assert (
        first[0].kernel_size == (3, 3, 3) and first[1].negative_slope == 0.2 and first[3].p == 0.5
    )
    assert isinstance(net.final, nn.LeakyReLU)
    assert sum(isinstance(m, nn.ConvTranspose3d) for m in net.modules()) == 3
    assert sum(isinstance(m, nn.Conv3d) and m.stride == (2, 2, 2) for m in net.modules()) == 3
    y = unet_sketcher(3, 2, 1, base=2)(torch.randn(1, 2, 16, 16, 16))
    assert y.shape == (1, 1, 16, 16, 16)


def test_dropout_blocks_sit_next_to_the_bottleneck():
    net = UNet(2, 1, 1, features=(4, 4, 4, 4), convs_per_level=1, dropout=0.5, dropout_blocks=1)
    with_dropout = [i for i, d in enumerate(net.decoders) if _dropouts(d)]
    assert with_dropout == [2]
    assert _dropouts(net.encoders) == 0


def test_maxpool_downsampling_has_no_strided_conv():
    net = UNet(3, 1, 1, features=(2, 4), downsample="maxpool")
    assert not any(isinstance(m, nn.Conv3d) and m.stride != (1, 1, 1) for m in net.modules())
    assert net(torch.randn(1, 1, 8, 8, 8)).shape == (1, 1, 8, 8, 8)
