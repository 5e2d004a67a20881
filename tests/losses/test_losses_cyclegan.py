"""CycleGAN's objectives and image pool: hand computations, gradients, reproducible draws."""

from __future__ import annotations

import pytest
import torch

from neurotrans.losses import (
    CYCLEGAN_OPTIMISER,
    CycleGANLossWeights,
    ImagePool,
    cyclegan_discriminator_losses,
    cyclegan_generator_losses,
)
from neurotrans.networks import PatchDiscriminator, ResnetGenerator


def _setup(spatial_dims=2, size=24, c_a=1, c_b=1):
    torch.manual_seed(0)
    g_ab = ResnetGenerator(spatial_dims, c_a, c_b, base=4, n_blocks=1)
    g_ba = ResnetGenerator(spatial_dims, c_b, c_a, base=4, n_blocks=1)
    d_a = PatchDiscriminator(spatial_dims, c_a, base=4, n_layers=1, norm="instance")
    d_b = PatchDiscriminator(spatial_dims, c_b, base=4, n_layers=1, norm="instance")
    g = torch.Generator().manual_seed(1)
    x_a = torch.rand(2, c_a, *(size,) * spatial_dims, generator=g) * 2 - 1
    x_b = torch.rand(2, c_b, *(size,) * spatial_dims, generator=g) * 2 - 1
    return g_ab, g_ba, d_a, d_b, x_a, x_b


def test_reference_defaults():
    w = CycleGANLossWeights()
    assert (w.cycle, w.identity, w.gan_mode) == (10.0, 0.5, "lsgan")
    assert CYCLEGAN_OPTIMISER == {"lr": 2e-4, "betas": (0.5, 0.999), "weight_decay": 0.0}
    with pytest.raises(ValueError):
        CycleGANLossWeights(gan_mode="hinge")
    with pytest.raises(ValueError):
        CycleGANLossWeights(identity=-0.1)


@pytest.mark.parametrize("identity", [0.5, 0.0])
def test_generator_terms_equal_hand_computation(identity):
    g_ab, g_ba, d_a, d_b, x_a, x_b = _setup()
    w = CycleGANLossWeights(cycle=7.0, identity=identity)
    losses, images = cyclegan_generator_losses(g_ab, g_ba, d_a, d_b, x_a, x_b, w)
    with torch.no_grad():
        fake_b, fake_a = g_ab(x_a), g_ba(x_b)
        hand = {"gan_ab": ((d_b(fake_b) - 1) ** 2).mean(), "gan_ba": ((d_a(fake_a) - 1) ** 2).mean(),
                "cycle_a": (g_ba(fake_b) - x_a).abs().mean(), "cycle_b": (g_ab(fake_a) - x_b).abs().mean()}  # fmt: skip
        total = hand["gan_ab"] + hand["gan_ba"] + 7.0 * (hand["cycle_a"] + hand["cycle_b"])
        if identity:
            hand["idt_a"] = (g_ba(x_a) - x_a).abs().mean()
            hand["idt_b"] = (g_ab(x_b) - x_b).abs().mean()
            total = total + 3.5 * (hand["idt_a"] + hand["idt_b"])
    assert set(losses) == {"loss", *hand}
    for k, v in hand.items():
        torch.testing.assert_close(losses[k], v, msg=k)
    torch.testing.assert_close(losses["loss"].detach(), total)
    torch.testing.assert_close(images["fake_b"], fake_b)
    torch.testing.assert_close(images["fake_a"], fake_a)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_gradients_reach_the_generators_only_then_the_discriminators_only(spatial_dims):
    g_ab, g_ba, d_a, d_b, x_a, x_b = _setup(spatial_dims, size=24 if spatial_dims == 2 else 12)
    losses, images = cyclegan_generator_losses(g_ab, g_ba, d_a, d_b, x_a, x_b)
    losses["loss"].backward()
    for g in (g_ab, g_ba):
        for name, p in g.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None for d in (d_a, d_b) for p in d.parameters())
    for g in (g_ab, g_ba):
        g.zero_grad(set_to_none=True)
    d_losses = cyclegan_discriminator_losses(d_a, d_b, x_a, x_b, images["fake_a"], images["fake_b"])
    d_losses["loss"].backward()
    for d in (d_a, d_b):
        for name, p in d.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None for g in (g_ab, g_ba) for p in g.parameters())


def test_discriminator_loss_is_half_the_real_plus_fake_lsgan():
    g_ab, g_ba, d_a, d_b, x_a, x_b = _setup()
    fake_a, fake_b = torch.zeros_like(x_a), torch.ones_like(x_b)
    out = cyclegan_discriminator_losses(d_a, d_b, x_a, x_b, fake_a, fake_b)
    with torch.no_grad():
        hand = 0.5 * (((d_a(x_a) - 1) ** 2).mean() + (d_a(fake_a) ** 2).mean()) + 0.5 * (
            ((d_b(x_b) - 1) ** 2).mean() + (d_b(fake_b) ** 2).mean()
        )
    torch.testing.assert_close(out["loss"].detach(), hand)


def test_identity_needs_equal_channels():
    g_ab, g_ba, d_a, d_b, x_a, x_b = _setup(c_a=2, c_b=1)
    with pytest.raises(ValueError, match="identity"):
        cyclegan_generator_losses(g_ab, g_ba, d_a, d_b, x_a, x_b)
    losses, _ = cyclegan_generator_losses(g_ab, g_ba, d_a, d_b, x_a, x_b, CycleGANLossWeights(identity=0.0))
    assert "idt_a" not in losses


def test_image_pool_fills_then_swaps_half_the_time():
    pool = ImagePool(4, seed=0)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    torch.testing.assert_close(pool.query(first), first)  # filling: returned as is
    assert len(pool) == 4
    returned_old = 0
    for step in range(200):
        new = torch.full((1, 1, 1, 1), 100.0 + step)
        out = pool.query(new)
        assert out.shape == new.shape and len(pool) == 4
        if float(out) != float(new):
            returned_old += 1
            assert float(out) < 100.0 + step  # an earlier fake
    assert 70 < returned_old < 130  # p = 1/2


def test_image_pool_is_reproducible_detached_and_can_be_off():
    def run(seed):
        pool = ImagePool(3, seed=seed)
        return [pool.query(torch.full((2, 1, 2, 2), float(i))) for i in range(10)]

    assert all(torch.equal(a, b) for a, b in zip(run(5), run(5), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(run(5), run(6), strict=True))
    x = torch.randn(2, 1, 4, 4, requires_grad=True)
    assert not ImagePool(2).query(x * 2).requires_grad
    torch.testing.assert_close(ImagePool(0).query(x), x.detach())
    with pytest.raises(ValueError):
        ImagePool(-1)
