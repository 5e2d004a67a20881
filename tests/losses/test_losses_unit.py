"""UNIT's objectives: terms against hand computations, gradients reach exactly the right networks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as nnf

from neurotrans.losses import (
    UNIT_OPTIMISER,
    UNITLossWeights,
    frozen,
    latent_kl_loss,
    multiscale_adversarial_loss,
    unit_discriminator_losses,
    unit_generator_losses,
)
from neurotrans.networks import UNIT, MultiScaleDiscriminator
from neurotrans.networks.blocks import SelfAttention

TINY = dict(base=4, n_res_encoder=1, n_res_generator=1)


def _setup(spatial_dims=2, size=16, seed=0, **kw):
    torch.manual_seed(seed)
    unit = UNIT(spatial_dims, **{**TINY, **kw})
    d_kw = dict(base=2, n_layers=2)
    d_a = MultiScaleDiscriminator(spatial_dims, unit.channels["a"], **d_kw)
    d_b = MultiScaleDiscriminator(spatial_dims, unit.channels["b"], **d_kw)
    g = torch.Generator().manual_seed(seed + 1)
    shape = (size,) * spatial_dims
    x_a = torch.rand(2, unit.channels["a"], *shape, generator=g) * 2 - 1
    x_b = torch.rand(3, unit.channels["b"], *shape, generator=g) * 2 - 1  # unpaired: other batch size
    return unit, d_a, d_b, x_a, x_b


def test_paper_weights_and_optimiser():
    w = UNITLossWeights()
    assert (w.gan, w.kl, w.rec, w.kl_cycle, w.cycle) == (10.0, 0.1, 100.0, 0.1, 100.0)
    assert (w.pixel, w.gan_mode) == ("l1", "bce")
    assert UNIT_OPTIMISER["lr"] == 1e-4 and UNIT_OPTIMISER["betas"] == (0.5, 0.999)
    # Keras L2(5e-5) adds 5e-5 * w^2 to the loss: gradient 1e-4 * w, torch's coupled weight decay
    assert UNIT_OPTIMISER["weight_decay"] == pytest.approx(2 * 0.0001 / 2)


@pytest.mark.parametrize(
    "kwargs", [dict(gan=-1.0), dict(pixel="l2"), dict(gan_mode="wgan"), dict(charbonnier_eps=0.0)]
)
def test_bad_weights_raise(kwargs):
    with pytest.raises(ValueError):
        UNITLossWeights(**kwargs)


@pytest.mark.parametrize("shape", [(2, 8, 4, 4), (1, 3, 2, 3, 4)])
def test_kl_term_is_the_mean_of_squares(shape):
    mu = torch.randn(shape, dtype=torch.float64)
    assert latent_kl_loss(mu).item() == pytest.approx(float((mu.numpy() ** 2).mean()))
    # its gradient is 2 mu / N: the KL(N(mu, I) || N(0, I)) = |mu|^2 / 2 direction
    mu.requires_grad_(True)
    latent_kl_loss(mu).backward()
    torch.testing.assert_close(mu.grad, 2 * mu.detach() / mu.numel())


@pytest.mark.parametrize("mode", ["bce", "lsgan"])
def test_multiscale_adversarial_loss_sums_the_scales(mode):
    g = torch.Generator().manual_seed(0)
    outs = [torch.randn(2, 1, 4, 4, generator=g), torch.randn(2, 1, 2, 2, generator=g), torch.randn(2, 1, 1, 1, generator=g)]
    for real in (True, False):
        t = 1.0 if real else 0.0
        if mode == "bce":
            ref = sum(nnf.binary_cross_entropy(torch.sigmoid(o), torch.full_like(o, t)) for o in outs)
        else:
            ref = sum(((o - t) ** 2).mean() for o in outs)
        torch.testing.assert_close(multiscale_adversarial_loss(outs, real, mode=mode), ref)
    torch.testing.assert_close(multiscale_adversarial_loss(outs[0], True, mode=mode),
                               multiscale_adversarial_loss(outs[:1], True, mode=mode))  # fmt: skip


@pytest.mark.parametrize(("pixel", "gan_mode"), [("l1", "bce"), ("charbonnier", "lsgan")])
def test_generator_terms_equal_hand_computation(pixel, gan_mode):
    """In eval mode (z = mu, no dropout) every term can be recomputed from the networks."""
    unit, d_a, d_b, x_a, x_b = _setup()
    unit.eval()
    eps = 0.05
    w = UNITLossWeights(gan=2.0, kl=0.3, rec=5.0, kl_cycle=0.7, cycle=11.0, pixel=pixel,
                        charbonnier_eps=eps, gan_mode=gan_mode)  # fmt: skip
    losses, images = unit_generator_losses(unit, d_a, d_b, x_a, x_b, w)

    def rho(p, t):
        return (p - t).abs().mean() if pixel == "l1" else torch.sqrt((p - t) ** 2 + eps**2).mean()

    def adv_real(outs):
        if gan_mode == "bce":
            return sum(nnf.binary_cross_entropy_with_logits(o, torch.ones_like(o)) for o in outs)
        return sum(((o - 1) ** 2).mean() for o in outs)

    with torch.no_grad():
        mu_a, mu_b = unit.encode(x_a, "a")[0], unit.encode(x_b, "b")[0]
        x_ab, x_ba = unit.decode(mu_a, "b"), unit.decode(mu_b, "a")
        mu_ab, mu_ba = unit.encode(x_ab, "b")[0], unit.encode(x_ba, "a")[0]
        hand = {
            "gan_ab": adv_real(d_b(x_ab)), "gan_ba": adv_real(d_a(x_ba)),
            "kl_a": (mu_a**2).mean(), "kl_b": (mu_b**2).mean(),
            "kl_ab": (mu_ab**2).mean(), "kl_ba": (mu_ba**2).mean(),
            "rec_a": rho(unit.decode(mu_a, "a"), x_a), "rec_b": rho(unit.decode(mu_b, "b"), x_b),
            "cycle_a": rho(unit.decode(mu_ab, "a"), x_a), "cycle_b": rho(unit.decode(mu_ba, "b"), x_b),
        }  # fmt: skip
    assert set(losses) == {"loss", *hand}
    for k, v in hand.items():
        torch.testing.assert_close(losses[k], v, msg=k)
        assert not losses[k].requires_grad
    total = (2.0 * (hand["gan_ab"] + hand["gan_ba"]) + 0.3 * (hand["kl_a"] + hand["kl_b"])
             + 5.0 * (hand["rec_a"] + hand["rec_b"]) + 0.7 * (hand["kl_ab"] + hand["kl_ba"])
             + 11.0 * (hand["cycle_a"] + hand["cycle_b"]))  # fmt: skip
    torch.testing.assert_close(losses["loss"].detach(), total)
    torch.testing.assert_close(images["fake_b"], x_ab)
    torch.testing.assert_close(images["fake_a"], x_ba)


@pytest.mark.parametrize(
    ("spatial_dims", "kw"),
    [(2, dict()), (2, dict(attention="both", spectral_norm=True)), (3, dict(attention="generator"))],
)
def test_generator_objective_reaches_every_unit_parameter_and_no_discriminator(spatial_dims, kw):
    unit, d_a, d_b, x_a, x_b = _setup(spatial_dims, size=16 if spatial_dims == 2 else 8, **kw)
    unit.train()
    with torch.no_grad():  # gamma = 0 blocks the attention's key/query/value gradients (by design)
        for m in unit.modules():
            if isinstance(m, SelfAttention):
                m.gamma.fill_(0.3)
    losses, _ = unit_generator_losses(unit, d_a, d_b, x_a, x_b)
    losses["loss"].backward()
    for name, p in unit.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"
    for d in (d_a, d_b):
        assert all(p.grad is None for p in d.parameters())
        assert all(p.requires_grad for p in d.parameters())  # restored after the call


@pytest.mark.parametrize("precomputed", [False, True])
def test_discriminator_objective_reaches_every_discriminator_parameter_and_no_unit(precomputed):
    unit, d_a, d_b, x_a, x_b = _setup(spectral_norm=True)
    d_a, d_b = (MultiScaleDiscriminator(2, 1, base=2, n_layers=2, spectral_norm=True) for _ in range(2))
    fakes = {}
    if precomputed:
        _, images = unit_generator_losses(unit, d_a, d_b, x_a, x_b)
        fakes = dict(fake_a=images["fake_a"], fake_b=images["fake_b"])
        unit.zero_grad(set_to_none=True)
    losses = unit_discriminator_losses(unit, d_a, d_b, x_a, x_b, **fakes)
    assert set(losses) == {"loss", "d_a_real", "d_a_fake", "d_b_real", "d_b_fake"}
    losses["loss"].backward()
    for d in (d_a, d_b):
        for name, p in d.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in unit.parameters())


def test_discriminator_terms_equal_hand_computation():
    unit, d_a, d_b, x_a, x_b = _setup()
    unit.eval()
    w = UNITLossWeights(gan=3.0)
    losses = unit_discriminator_losses(unit, d_a, d_b, x_a, x_b, w)

    def bce(outs, t):
        return sum(nnf.binary_cross_entropy_with_logits(o, torch.full_like(o, t)) for o in outs)

    with torch.no_grad():
        fake_b, fake_a = unit.translate(x_a, "a", "b"), unit.translate(x_b, "b", "a")
        hand = {"d_a_real": bce(d_a(x_a), 1.0), "d_a_fake": bce(d_a(fake_a), 0.0),
                "d_b_real": bce(d_b(x_b), 1.0), "d_b_fake": bce(d_b(fake_b), 0.0)}  # fmt: skip
    for k, v in hand.items():
        torch.testing.assert_close(losses[k], v, msg=k)
    torch.testing.assert_close(losses["loss"].detach(), 3.0 * sum(hand.values()))


def test_frozen_restores_flags_even_on_error():
    unit, d_a, *_ = _setup()
    next(d_a.parameters()).requires_grad_(False)
    flags = [p.requires_grad for p in d_a.parameters()]
    with pytest.raises(RuntimeError), frozen(d_a):
        assert not any(p.requires_grad for p in d_a.parameters())
        raise RuntimeError("boom")
    assert [p.requires_grad for p in d_a.parameters()] == flags


def test_a_few_steps_reduce_the_reconstruction_terms():
    """The objectives plug into two Adam optimisers (D then E+G each step) and train."""
    torch.manual_seed(3)
    unit = UNIT(2, base=8, n_res_encoder=1, n_res_generator=1).train()  # paper dropout and noise
    d_a, d_b = (MultiScaleDiscriminator(2, 1, base=2, n_layers=2) for _ in range(2))
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 16), torch.linspace(-1, 1, 16), indexing="ij")
    r = (xx**2 + yy**2).sqrt()
    x_a = torch.stack([1.6 * (r < 0.6).float() - (r < 0.3).float(), (r < 0.7).float()])[:, None] - 1
    x_b = -x_a.flip(0)  # "inverted contrast", unpaired order
    opt_g = torch.optim.Adam(unit.parameters(), lr=1e-3, betas=(0.5, 0.999), weight_decay=1e-4)
    opt_d = torch.optim.Adam([*d_a.parameters(), *d_b.parameters()], lr=1e-3, betas=(0.5, 0.999))
    recs = []
    for _ in range(20):
        opt_d.zero_grad(set_to_none=True)
        unit_discriminator_losses(unit, d_a, d_b, x_a, x_b)["loss"].backward()
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        losses, _ = unit_generator_losses(unit, d_a, d_b, x_a, x_b)
        losses["loss"].backward()
        opt_g.step()
        assert all(torch.isfinite(v).all() for v in losses.values())
        recs.append(float(losses["rec_a"] + losses["rec_b"]))
    assert recs[-1] < 0.85 * recs[0]
