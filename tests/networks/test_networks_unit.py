"""UNIT and its multi-scale discriminator: shapes, the shared layers, spectral norm, attention."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from neurotrans.networks import NETWORKS, UNIT, MultiScaleDiscriminator, build_network
from neurotrans.networks.blocks import SelfAttention
from neurotrans.networks.layers import init_weights

TINY = dict(base=4, n_res_encoder=1, n_res_generator=1)
# (spatial_dims, kwargs, image size): every switch, alone and combined
VARIANTS = [
    (2, dict(), 32),
    (2, dict(attention="encoder"), 16),
    (2, dict(attention="generator", spectral_norm=True), 16),
    (2, dict(attention="both", spectral_norm=True, final_activation="none", in_channels=2), 16),
    (3, dict(), 8),
    (3, dict(attention="encoder", attention_pool=2, spectral_norm=True), 8),
]
IDS = [f"{d}d-" + "-".join(f"{k}={v}" for k, v in kw.items()) for d, kw, _ in VARIANTS]


def _unit(spatial_dims: int, **kw) -> UNIT:
    return UNIT(spatial_dims, **{**TINY, **kw})


def _images(unit: UNIT, size: int, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shape = (size,) * unit.spatial_dims
    return (torch.randn(batch, unit.channels["a"], *shape, generator=g).tanh(),
            torch.randn(batch, unit.channels["b"], *shape, generator=g).tanh())  # fmt: skip


def test_registered_under_their_names():
    assert NETWORKS["unit"] is UNIT
    assert NETWORKS["multiscale_discriminator"] is MultiScaleDiscriminator
    assert isinstance(build_network("unit", spatial_dims=2, **TINY), UNIT)


@pytest.mark.parametrize(("spatial_dims", "kwargs", "size"), VARIANTS, ids=IDS)
def test_shapes_of_encode_decode_translate(spatial_dims, kwargs, size):
    torch.manual_seed(0)
    unit = _unit(spatial_dims, **kwargs).train()
    x_a, x_b = _images(unit, size)
    mu, z = unit.encode(x_a, "a")
    latent = (2, unit.latent_channels, *(size // 4,) * spatial_dims)
    assert mu.shape == z.shape == latent
    for src, dst in (("a", "a"), ("a", "b"), ("b", "a"), ("b", "b")):
        x = x_a if src == "a" else x_b
        y = unit.translate(x, src, dst)
        assert y.shape == (2, unit.channels[dst], *(size,) * spatial_dims)
        assert torch.isfinite(y).all()
    assert unit(x_a).shape == (2, unit.channels["b"], *(size,) * spatial_dims)
    if kwargs.get("final_activation", "tanh") == "tanh":
        assert unit.translate(x_b, "b", "a").abs().max() <= 1


def test_parameter_count_matches_the_architecture_by_hand():
    """Paper widths (64-128-256, 3 + 1 residual blocks each side), grey-scale images."""
    unit = UNIT(2)

    def conv(k, cin, cout, bias=True):
        return k * k * cin * cout + (cout if bias else 0)

    res = 2 * conv(3, 256, 256, bias=False) + 2 * 2 * 256  # two convs + two batch norms
    front = conv(7, 1, 64) + conv(3, 64, 128) + conv(3, 128, 256) + 3 * res
    back = 3 * res + conv(3, 256, 128) + conv(3, 128, 64) + conv(1, 64, 1)
    expected = 2 * front + res + res + 2 * back  # shared encoder and generator blocks once
    assert sum(p.numel() for p in unit.parameters()) == expected == 18_011_650


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_shared_layers_are_the_same_parameters(spectral_norm):
    unit = _unit(2, spectral_norm=spectral_norm)
    assert unit.encoder_a.shared is unit.encoder_b.shared is unit.shared_encoder
    assert unit.generator_a.shared is unit.generator_b.shared is unit.shared_generator
    for one, two, shared in ((unit.encoder_a, unit.encoder_b, unit.shared_encoder),
                             (unit.generator_a, unit.generator_b, unit.shared_generator)):  # fmt: skip
        common = {id(p) for p in one.parameters()} & {id(p) for p in two.parameters()}
        assert common == {id(p) for p in shared.parameters()} and common
    # the domain-specific parts share nothing
    own = [unit.encoder_a.front, unit.encoder_b.front, unit.generator_a.back, unit.generator_b.back]
    ids = [{id(p) for p in m.parameters()} for m in own]
    assert sum(map(len, ids)) == len(set().union(*ids))
    # parameters() lists each shared tensor once (one optimiser entry)
    assert len(list(unit.parameters())) == len({id(p) for p in unit.parameters()})


def test_an_update_through_domain_a_changes_what_domain_b_computes():
    torch.manual_seed(0)
    unit = _unit(2).eval()
    x_a, x_b = _images(unit, 16)
    mu_b = unit.encode(x_b, "b")[0].detach().clone()
    z = torch.randn(1, unit.latent_channels, 4, 4)
    out_b = unit.decode(z, "b").detach().clone()
    front_b = [p.detach().clone() for p in unit.encoder_b.front.parameters()]
    back_b = [p.detach().clone() for p in unit.generator_b.back.parameters()]
    unit.translate(x_a, "a", "a").square().mean().backward()  # domain a only
    assert all(p.grad is None for p in unit.encoder_b.front.parameters())
    assert all(p.grad is None for p in unit.generator_b.back.parameters())
    with torch.no_grad():
        for p in unit.parameters():
            if p.grad is not None:
                p -= 0.5 * p.grad / (p.grad.abs().max() + 1e-12)
    assert all(torch.equal(a, b) for a, b in zip(front_b, unit.encoder_b.front.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(back_b, unit.generator_b.back.parameters(), strict=True))
    assert not torch.allclose(unit.encode(x_b, "b")[0], mu_b)
    assert not torch.allclose(unit.decode(z, "b"), out_b)


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_state_dict_round_trip_keeps_outputs_and_sharing(spectral_norm):
    torch.manual_seed(0)
    unit = _unit(2, spectral_norm=spectral_norm, attention="both").train()
    x_a, _ = _images(unit, 16)
    unit(x_a)  # moves batch-norm statistics and the power-iteration vectors
    unit.eval()
    torch.manual_seed(1)
    other = _unit(2, spectral_norm=spectral_norm, attention="both").eval()
    other.load_state_dict(unit.state_dict())
    torch.testing.assert_close(other(x_a), unit(x_a), rtol=0, atol=0)
    assert other.encoder_a.shared is other.encoder_b.shared


def test_latent_noise_only_while_training():
    torch.manual_seed(0)
    unit = _unit(2, noise_std=1.0)
    x_a, _ = _images(unit, 32, batch=4)
    mu, z = unit.train().encode(x_a, "a")
    noise = (z - mu).detach()
    assert abs(float(noise.mean())) < 0.05 and abs(float(noise.std()) - 1.0) < 0.05  # 4096 draws
    mu, z = unit.eval().encode(x_a, "a")
    assert z is mu
    mu, z = _unit(2, noise_std=0.0).train().encode(x_a, "a")
    assert torch.equal(mu, z)


def _strip_attention(net: nn.Module) -> nn.Module:
    net = copy.deepcopy(net)
    for module in list(net.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, SelfAttention):
                setattr(module, child_name, nn.Identity())
    return net


@pytest.mark.parametrize("attention", ["encoder", "generator", "both"])
def test_attention_starts_as_the_identity(attention):
    torch.manual_seed(0)
    unit = _unit(2, attention=attention).eval()
    blocks = [m for m in unit.modules() if isinstance(m, SelfAttention)]
    assert len(blocks) == (4 if attention == "both" else 2)  # one per domain, not shared
    assert all(bool((m.gamma == 0).all()) for m in blocks)
    plain = _strip_attention(unit)
    x_a, x_b = _images(unit, 16)
    torch.testing.assert_close(unit.translate(x_a, "a", "b"), plain.translate(x_a, "a", "b"), rtol=0, atol=0)
    torch.testing.assert_close(unit.translate(x_b, "b", "a"), plain.translate(x_b, "b", "a"), rtol=0, atol=0)
    with torch.no_grad():
        for m in blocks:
            m.gamma.fill_(0.5)
            # N(0, 0.02) projections (q, k, v and the output's) make a tiny, though non-zero,
            # contribution: unit-scale weights make the attention path plainly visible
            for name, p in m.named_parameters():
                if name != "gamma":
                    p.normal_(0.0, 1.0)
    with torch.no_grad():
        y, y_plain = unit.translate(x_a, "a", "b"), plain.translate(x_a, "a", "b")
    assert float((y - y_plain).abs().max() / y_plain.abs().max()) > 1e-3


def _weight_matrix(m: nn.Module) -> torch.Tensor:
    w = m.weight.detach()
    if isinstance(m, nn.modules.conv._ConvTransposeNd):
        w = w.transpose(0, 1)  # torch normalises transposed convolutions along dim 1
    return w.reshape(w.shape[0], -1)


def _sn_layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, nn.modules.conv._ConvNd)]


@pytest.mark.parametrize(
    "make",
    [lambda: _unit(2, spectral_norm=True, attention="both"),
     lambda: _unit(3, spectral_norm=True),
     lambda: MultiScaleDiscriminator(2, 1, base=4, spectral_norm=True)],
    ids=["unit-2d-attention", "unit-3d", "discriminator-2d"],
)  # fmt: skip
def test_spectral_norm_bounds_the_largest_singular_value(make):
    torch.manual_seed(0)
    net = make().train()
    layers = _sn_layers(net)
    assert layers and all(parametrize.is_parametrized(m, "weight") for m in layers)
    # one parametrisation per layer, the shared ones included
    assert all(len(m.parametrizations.weight) == 1 for m in layers)
    size = 8 if getattr(net, "spatial_dims", 2) == 3 else 16
    x = torch.randn(1, 1, *(size,) * net.spatial_dims)
    with torch.no_grad():
        for _ in range(3):  # each training forward runs one power iteration per layer
            net(x) if isinstance(net, MultiScaleDiscriminator) else net.translate(x, "a", "b")
        for m in layers:  # more iterations without the cost of forwards: reading the weight
            for _ in range(300):
                m.weight  # noqa: B018
    net.eval()
    for m in layers:
        sigma = torch.linalg.svdvals(_weight_matrix(m))[0]
        raw = m.parametrizations.weight.original.detach()
        raw = raw.transpose(0, 1) if isinstance(m, nn.modules.conv._ConvTransposeNd) else raw
        sigma_raw = torch.linalg.svdvals(raw.reshape(raw.shape[0], -1))[0]
        assert sigma == pytest.approx(1.0, abs=1e-2), f"{m}: sigma {float(sigma):.4f}"
        assert not math.isclose(float(sigma_raw), 1.0, abs_tol=0.03)  # the raw weight is not


def test_init_weights_reaches_spectrally_normalised_layers():
    net = MultiScaleDiscriminator(2, 1, base=4, spectral_norm=True)
    init_weights(net, scheme="normal", gain=0.5)
    raw = net.scales[0][0].parametrizations.weight.original.detach()
    assert float(raw.std()) == pytest.approx(0.5, rel=0.3)


@pytest.mark.parametrize(
    ("spatial_dims", "n_layers", "size"), [(2, 4, (32, 32)), (2, 3, (37, 29)), (3, 2, (16, 12, 9))]
)
def test_multiscale_discriminator_shapes(spatial_dims, n_layers, size):
    torch.manual_seed(0)
    d = MultiScaleDiscriminator(spatial_dims, 2, base=4, n_layers=n_layers, n_scales=3)
    outs = d(torch.randn(2, 2, *size))
    assert len(outs) == 3
    for s, out in enumerate(outs):
        expected = tuple(math.ceil((n // 2**s) / 2**n_layers) for n in size)
        assert out.shape == (2, 1, *expected)


def test_multiscale_discriminator_scales_see_pooled_inputs():
    torch.manual_seed(0)
    d = MultiScaleDiscriminator(2, 1, base=4, n_layers=2, n_scales=3)
    x = torch.randn(1, 1, 16, 16)
    outs = d(x)
    pooled = nn.functional.avg_pool2d(nn.functional.avg_pool2d(x, 2), 2)
    torch.testing.assert_close(outs[2], d.scales[2](pooled))
    assert all(not torch.equal(d.scales[0][0].weight, d.scales[i][0].weight) for i in (1, 2))


def test_every_discriminator_parameter_gets_a_gradient():
    torch.manual_seed(0)
    d = MultiScaleDiscriminator(3, 1, base=2, n_layers=2)
    outs = d(torch.randn(2, 1, 8, 8, 8))
    sum((o * torch.randn_like(o)).sum() for o in outs).backward()
    for name, p in d.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


BAD = [
    dict(spatial_dims=4),
    dict(spatial_dims=2, base=0),
    dict(spatial_dims=2, attention="middle"),
    dict(spatial_dims=2, dropout=1.0),
    dict(spatial_dims=2, norm="group"),
    dict(spatial_dims=2, n_res_encoder=-1),
    dict(spatial_dims=2, noise_std=-1.0),
    dict(spatial_dims=2, final_activation="relu6"),
    dict(spatial_dims=2, n_down=0),
]


@pytest.mark.parametrize("kwargs", BAD, ids=[str(kw) for kw in BAD])
def test_bad_hyper_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        UNIT(**{**TINY, **kwargs})


def test_bad_inputs_raise():
    unit = _unit(2, in_channels=1, out_channels=2)
    with pytest.raises(ValueError, match="divisible by 4"):
        unit.encode(torch.randn(1, 1, 18, 16), "a")
    with pytest.raises(ValueError, match=r"\(B, 2, \.\.\.\)"):
        unit.encode(torch.randn(1, 1, 16, 16), "b")
    with pytest.raises(ValueError, match="domain"):
        unit.translate(torch.randn(1, 1, 16, 16), "a", "c")
    with pytest.raises(ValueError, match="latent"):
        unit.decode(torch.randn(1, 3, 4, 4), "a")
    with pytest.raises(ValueError, match="too small"):
        MultiScaleDiscriminator(2, 1, n_scales=4)(torch.randn(1, 1, 4, 4))
    with pytest.raises(ValueError):
        MultiScaleDiscriminator(2, 1, n_scales=0)
