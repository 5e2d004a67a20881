"""Activation hooks: names and counts for the U-Net presets, resampling, voxel matrices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as tnf
from torch import nn

from neurotrans.explain.activations import (
    activation_matrices,
    record_activations,
    resample_activation,
    sample_activation,
)
from neurotrans.networks import build_network


@pytest.mark.parametrize(
    ("name", "depth", "count"),
    [
        ("unet_esit_paper", 4, 18),  # the paper's count: 4 * depth + 2
        ("unet_esit_paper", 3, 14),
        ("unet_esit", 4, 26),  # both convs kept, strided conv and activated up-conv added: 6 * depth + 2
        ("unet_esit", 2, 14),
    ],
)
def test_leaky_relu_counts_of_the_unet_presets(name, depth, count):
    net = build_network(name, spatial_dims=2, in_channels=1, out_channels=1, base=2, depth=depth).eval()
    acts = record_activations(net, torch.randn(1, 1, 32, 32))
    assert [a.name for a in acts] == [f"actv{k}" for k in range(1, count + 1)]
    assert len({a.path for a in acts}) == count  # one module per activation, none reused
    assert not any(m._forward_hooks for m in net.modules())  # hooks removed


def test_paper_unet_layer_map_bottleneck_and_late_decoder():
    """actv9-12 are the coarsest layers (H/16 bottleneck, H/8 first decoder level), actv15 at H/2."""
    net = build_network("unet_esit_paper", spatial_dims=2, in_channels=1, out_channels=1, base=2).eval()
    acts = {a.name: a for a in record_activations(net, torch.randn(2, 1, 64, 32))}
    size = {k: tuple(a.value.shape[2:]) for k, a in acts.items()}
    assert size["actv1"] == (64, 32) and size["actv2"] == (32, 16) and size["actv8"] == (4, 2)
    assert size["actv9"] == size["actv10"] == (4, 2) and size["actv11"] == size["actv12"] == (8, 4)
    assert size["actv15"] == (32, 16) and size["actv18"] == (64, 32)
    assert acts["actv9"].path == "bottleneck.convs.0.2" and acts["actv9"].value.shape[1] == 32
    assert acts["actv2"].path == "downsamples.0.op.2"
    # the paper's reading: one 3x3 conv per encoder level, a linear up-convolution
    assert len(net.encoders[0].convs) == 1 and len(net.decoders[0].up) == 1
    assert isinstance(net.decoders[0].up[0], nn.ConvTranspose2d)


def test_values_are_the_modules_outputs_and_reused_modules_are_counted_per_call():
    act = nn.LeakyReLU(0.1)
    conv = nn.Conv2d(1, 2, 3, padding=1)
    net = nn.Sequential(conv, act, nn.Conv2d(2, 2, 1), act).eval()
    x = torch.randn(1, 1, 5, 5)
    acts = record_activations(net, x)
    assert [(a.name, a.path) for a in acts] == [("actv1", "1"), ("actv2", "1#2")]
    torch.testing.assert_close(acts[0].value, tnf.leaky_relu(conv(x), 0.1))
    torch.testing.assert_close(acts[1].value, net(x))
    # other module types on request; a model without them is a clear error
    convs = record_activations(net, x, module_types=(nn.Conv2d,))
    assert [a.path for a in convs] == ["0", "2"]
    with pytest.raises(ValueError, match="no module of type"):
        record_activations(nn.Conv2d(1, 1, 1), x)


def test_recorded_values_survive_later_in_place_ops():
    net = nn.Sequential(nn.LeakyReLU(0.2), nn.ReLU(inplace=True)).eval()
    x = -torch.ones(1, 1, 2, 2)
    (a,) = record_activations(net, x)
    torch.testing.assert_close(a.value, torch.full((1, 1, 2, 2), -0.2))


@pytest.mark.parametrize("size", [(8, 12), (4, 6, 8)])
def test_resample_and_sample_agree_with_interpolate(size):
    torch.manual_seed(0)
    coarse = torch.randn(2, 3, *[s // 4 for s in size])
    full = resample_activation(coarse, size)
    mode = "bilinear" if len(size) == 2 else "trilinear"
    torch.testing.assert_close(full, tnf.interpolate(coarse, size=size, mode=mode, align_corners=False))
    assert resample_activation(full, size) is full
    gen = np.random.default_rng(0)
    points = [np.stack([gen.integers(0, s, 7) for s in size], axis=1) for _ in range(2)]
    got = sample_activation(coarse, [torch.from_numpy(p) for p in points], size)
    want = torch.cat([full[b][(slice(None), *p.T)].T for b, p in enumerate(points)])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def _reference_matrices_2d(net, volume, mask):
    """By hand: every axial slice padded to 16, run, each activation interpolated, cropped, stacked."""
    c, x, y, z = volume.shape
    px, py = -(-x // 16) * 16, -(-y // 16) * 16
    ax, ay = (px - x) // 2, (py - y) // 2
    per_layer = {}
    for k in range(z):
        sl = np.zeros((1, c, px, py), np.float32)
        sl[0, :, ax:ax + x, ay:ay + y] = volume[..., k]
        for a in record_activations(net, torch.from_numpy(sl)):
            up = resample_activation(a.value, (px, py))[0, :, ax:ax + x, ay:ay + y].numpy()
            per_layer.setdefault(a.name, []).append(up)
    return {n: np.stack(v, axis=-1)[:, mask].T for n, v in per_layer.items()}


def test_activation_matrices_2d_match_slice_by_slice_reference():
    torch.manual_seed(0)
    net = build_network("unet_esit_paper", spatial_dims=2, in_channels=2, out_channels=1, base=2).eval()
    rng = np.random.default_rng(0)
    volume = rng.standard_normal((2, 13, 18, 5)).astype(np.float32)
    mask = rng.random((13, 18, 5)) < 0.3
    mask[..., 2] = False  # a slice without voxels is skipped
    # one slice per pass, as the reference: instance norm over a 1x2 bottleneck amplifies rounding
    got, paths = activation_matrices(net, volume, mask, spatial_dims=2, multiple=16, batch_size=1)
    want = _reference_matrices_2d(net, volume, mask)
    assert list(got) == [f"actv{k}" for k in range(1, 19)] and paths["actv9"] == "bottleneck.convs.0.2"
    for name in want:
        assert got[name].shape == (mask.sum(), want[name].shape[1])
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5)


def test_activation_matrices_3d_and_other_planes_keep_voxel_order():
    """An identity-like model: actv1 is leaky(x) of the input, so rows must equal volume[:, mask]."""
    net = nn.Sequential(nn.Identity(), nn.LeakyReLU(0.5)).eval()
    rng = np.random.default_rng(1)
    volume = rng.standard_normal((2, 6, 7, 5)).astype(np.float32)
    mask = rng.random((6, 7, 5)) < 0.5
    want = np.where(volume > 0, volume, 0.5 * volume)[:, mask].T
    got, _ = activation_matrices(net, volume, mask, spatial_dims=3, multiple=4)
    np.testing.assert_allclose(got["actv1"], want, rtol=1e-6)
    for plane in ("axial", "coronal", "sagittal"):
        got, _ = activation_matrices(net, volume, mask, plane=plane, multiple=8, batch_size=3)
        np.testing.assert_allclose(got["actv1"], want, rtol=1e-6)
    with pytest.raises(ValueError, match="no voxel"):
        activation_matrices(net, volume, np.zeros_like(mask))
