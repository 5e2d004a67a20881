"""Multi-scale Glow: exact inverse, log-det = autograd Jacobian's, shapes, checkpointing, errors."""

from __future__ import annotations

import pytest
import torch

from neurotrans.networks import Glow
from neurotrans.networks.nets.glow import padded_size


def ready_glow(perturb, spatial_dims, channels, size, *, dtype=torch.float32, **kwargs) -> Glow:
    torch.manual_seed(0)
    glow = Glow(spatial_dims, channels, **kwargs).to(dtype)
    glow.train()
    glow(torch.randn(4, channels, *size, dtype=dtype))  # actnorm's data-dependent init
    perturb(glow)
    return glow.eval()


CASES = [
    (3, 1, (8, 8, 8), dict(levels=2, steps=2, hidden=8, scale="exp")),
    (3, 2, (4, 8, 4), dict(levels=2, steps=3, hidden=6, scale="sigmoid")),
    (2, 1, (16, 8), dict(levels=3, steps=2, hidden=8, scale="exp")),
    (2, 3, (8, 8), dict(levels=1, steps=2, hidden=4, scale="sigmoid")),
    (3, 1, (8, 8, 8), dict(levels=2, steps=2, hidden=8, scale="additive")),
]
IDS = [f"{sd}d-c{c}-L{kw['levels']}-{kw['scale']}" for sd, c, _, kw in CASES]


@pytest.mark.parametrize(("spatial_dims", "channels", "size", "kwargs"), CASES, ids=IDS)
def test_inverse_is_exact_and_latent_shapes_are_announced(
    perturb, spatial_dims, channels, size, kwargs
):
    glow = ready_glow(perturb, spatial_dims, channels, size, **kwargs)
    x = torch.randn(3, channels, *size)
    latents, logdet = glow(x)
    assert [tuple(z.shape[1:]) for z in latents] == glow.latent_shapes(size)
    # volume preserving apart from the flow steps: as many latent values as voxels
    assert sum(z[0].numel() for z in latents) == x[0].numel()
    assert logdet.shape == (3,)
    torch.testing.assert_close(glow.inverse(latents), x, rtol=0, atol=1e-5)


def test_paper_latent_shapes_in_3d():
    glow = Glow(3, 1, levels=4, steps=1, hidden=2)
    assert glow.latent_shapes((64, 80, 64)) == [
        (4, 32, 40, 32), (16, 16, 20, 16), (64, 8, 10, 8), (512, 4, 5, 4),
    ]  # fmt: skip
    assert glow.size_multiple == 16


@pytest.mark.parametrize(("spatial_dims", "channels", "size", "kwargs"), [
    (3, 1, (4, 4, 4), dict(levels=2, steps=2, hidden=4, scale="exp")),
    (2, 2, (4, 4), dict(levels=2, steps=2, hidden=4, scale="sigmoid")),
    (2, 1, (8, 4), dict(levels=2, steps=1, hidden=4, scale="exp")),
    (3, 1, (4, 4, 4), dict(levels=2, steps=2, hidden=4, scale="additive")),
])  # fmt: skip
def test_logdet_equals_the_autograd_jacobian(perturb, spatial_dims, channels, size, kwargs):
    glow = ready_glow(perturb, spatial_dims, channels, size, dtype=torch.double, **kwargs)
    x = torch.randn(1, channels, *size, dtype=torch.double)

    def f(flat):
        latents, _ = glow(flat.view(1, channels, *size))
        return torch.cat([z.flatten() for z in latents])

    jac = torch.autograd.functional.jacobian(f, x.flatten())
    sign, expected = torch.linalg.slogdet(jac)
    assert sign != 0
    _, logdet = glow(x)
    assert logdet.item() == pytest.approx(expected.item(), abs=1e-8)


def test_checkpointing_gives_the_same_loss_and_gradients(perturb):
    size = (8, 8, 8)
    grads = []
    for flag in (False, True):
        glow = ready_glow(perturb, 3, 1, size, levels=2, steps=2, hidden=6, scale="exp").train()
        glow.checkpointing = flag
        x = torch.randn(2, 1, *size, generator=torch.Generator().manual_seed(3))
        latents, logdet = glow(x)
        loss = sum(z.square().sum() for z in latents) - logdet.sum()
        loss.backward()
        grads.append([p.grad.clone() for p in glow.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


def test_checkpointed_first_call_still_initialises_actnorm():
    torch.manual_seed(0)
    glow = Glow(2, 1, levels=2, steps=2, hidden=4, checkpointing=True).train()
    x = 3 + 2 * torch.randn(4, 1, 8, 8)
    latents, logdet = glow(x)
    (logdet.sum() + sum(z.sum() for z in latents)).backward()
    assert glow.initialized


def test_padded_size_and_the_size_error():
    assert padded_size((61, 73, 61), 4) == (64, 80, 64)
    assert padded_size((64, 80, 64), 4) == (64, 80, 64)
    assert padded_size((61, 73, 61), 3) == (64, 80, 64)
    assert padded_size((121, 145), 2) == (124, 148)
    glow = Glow(3, 1, levels=2, steps=1, hidden=2)
    with pytest.raises(ValueError, match=r"\(8, 8, 8\)"):
        glow(torch.zeros(1, 1, 6, 8, 8))
    with pytest.raises(ValueError, match="expects"):
        glow(torch.zeros(1, 2, 8, 8, 8))
    with pytest.raises(ValueError, match="latents"):
        glow.inverse([torch.zeros(1, 4, 4, 4, 4)])


@pytest.mark.parametrize("kwargs", [
    dict(spatial_dims=4), dict(spatial_dims=3, in_channels=0), dict(spatial_dims=3, levels=0),
    dict(spatial_dims=3, steps=0), dict(spatial_dims=3, hidden=0),
    dict(spatial_dims=3, scale="softplus"), dict(spatial_dims=3, levels=2.0),
])  # fmt: skip
def test_bad_hyper_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        Glow(**kwargs)
