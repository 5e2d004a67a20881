"""Glow blocks: exact inverses, log-determinants equal to the autograd Jacobian's, squeeze."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as nnf

from neurotrans.networks.blocks import (
    ActNorm,
    AffineCoupling,
    FlowStep,
    InvertibleConv,
    squeeze,
    unsqueeze,
)


def test_squeeze_equals_pixel_unshuffle_in_2d_and_inverts_in_3d():
    x = torch.randn(2, 3, 4, 6)
    torch.testing.assert_close(squeeze(x), nnf.pixel_unshuffle(x, 2), rtol=0, atol=0)
    v = torch.randn(2, 3, 4, 6, 2)
    assert squeeze(v).shape == (2, 24, 2, 3, 1)
    assert torch.equal(unsqueeze(squeeze(v)), v)
    with pytest.raises(ValueError):
        squeeze(torch.randn(1, 1, 3, 4))


def _layers(spatial_dims: int):
    torch.manual_seed(0)
    # (layer, channels, conditioning channels)
    layers = [
        (ActNorm(spatial_dims, 4), 4, 0),
        (InvertibleConv(spatial_dims, 4), 4, 0),
        (AffineCoupling(spatial_dims, 4, hidden=6), 4, 0),
        (AffineCoupling(spatial_dims, 5, hidden=6, scale="exp"), 5, 0),
        (AffineCoupling(spatial_dims, 5, hidden=6, scale="additive"), 5, 0),
        (AffineCoupling(spatial_dims, 4, hidden=6, scale="additive", cond_channels=2), 4, 2),
        (AffineCoupling(spatial_dims, 4, hidden=6, cond_channels=2), 4, 2),
        (FlowStep(spatial_dims, 4, hidden=6), 4, 0),
    ]
    for layer, _, _ in layers:
        layer.double()
        with torch.no_grad():  # leave the identity initialisation so the test is not trivial
            for p in layer.parameters():
                if p.requires_grad and p.dim() > 0:
                    p.add_(0.1 * torch.randn_like(p))
    return layers


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_inverse_is_exact_and_logdet_matches_autograd_jacobian(spatial_dims):
    size = (3, 2, 2) if spatial_dims == 3 else (3, 2)
    for layer, c, c_cond in _layers(spatial_dims):
        needs_cond = c_cond > 0
        cond = torch.randn(1, c_cond, *size, dtype=torch.double) if needs_cond else None
        x = torch.randn(1, c, *size, dtype=torch.double)
        layer.train()
        layer(x, cond) if needs_cond else layer(x)  # actnorm's data-dependent init
        layer.eval()

        def f(flat, layer=layer, cond=cond, c=c):
            out = (
                layer(flat.view(1, c, *size), cond)
                if cond is not None
                else layer(flat.view(1, c, *size))
            )
            return out[0].flatten()

        y, logdet = layer(x, cond) if needs_cond else layer(x)
        back = layer.inverse(y, cond) if needs_cond else layer.inverse(y)
        torch.testing.assert_close(back, x, rtol=1e-10, atol=1e-10)
        jac = torch.autograd.functional.jacobian(f, x.flatten())
        sign, expected = torch.linalg.slogdet(jac)
        assert sign != 0
        assert logdet.shape == (1,)
        assert logdet.item() == pytest.approx(expected.item(), abs=1e-8), type(layer).__name__


def test_actnorm_initialises_to_zero_mean_unit_variance():
    layer = ActNorm(3, 3)
    x = 5 + 3 * torch.randn(4, 3, 4, 4, 4)
    y, _ = layer(x)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3, 4)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std(dim=(0, 2, 3, 4)), torch.ones(3), atol=1e-4, rtol=0)
    assert bool(layer.initialized)


def test_coupling_starts_as_identity_and_checks_arguments():
    layer = AffineCoupling(2, 4, hidden=4)
    x = torch.randn(2, 4, 4, 4)
    y, logdet = layer(x)
    # zero-initialised last conv: scale sigmoid(2), shift 0 on the second half
    torch.testing.assert_close(y[:, :2], x[:, :2])
    torch.testing.assert_close(y[:, 2:], x[:, 2:] * torch.sigmoid(torch.tensor(2.0)))
    additive = AffineCoupling(2, 4, hidden=4, scale="additive")
    y, logdet = additive(x)  # scale fixed at 1: the identity, volume preserving
    torch.testing.assert_close(y, x)
    assert torch.equal(logdet, torch.zeros(2))
    with pytest.raises(ValueError):
        AffineCoupling(2, 1)
    with pytest.raises(ValueError):
        AffineCoupling(2, 4, scale="softplus")
    with pytest.raises(ValueError, match="cond"):
        AffineCoupling(2, 4, cond_channels=1)(x)
