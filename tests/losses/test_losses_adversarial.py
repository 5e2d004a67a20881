"""Adversarial losses: torch references, smoothed targets in range and reproducible."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as nnf

from neurotrans.losses import AdversarialLoss, adversarial_loss, build_loss, gan_targets


@pytest.mark.parametrize("real", [True, False])
def test_unsmoothed_losses_equal_torch(real):
    logits = torch.randn(2, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    target = torch.full_like(logits, 1.0 if real else 0.0)
    torch.testing.assert_close(
        adversarial_loss(logits, real), nnf.binary_cross_entropy_with_logits(logits, target)
    )
    torch.testing.assert_close(
        adversarial_loss(logits, real, mode="lsgan"), ((logits - target) ** 2).mean()
    )


def test_smoothed_targets_are_in_range_and_reproducible():
    like = torch.zeros(4000)
    t = gan_targets(like, (0.9, 1.0), torch.Generator().manual_seed(0))
    assert t.min() >= 0.9 and t.max() <= 1.0 and t.std() > 0.02
    assert t.mean().item() == pytest.approx(0.95, abs=0.005)
    torch.testing.assert_close(t, gan_targets(like, (0.9, 1.0), torch.Generator().manual_seed(0)))


def test_smoothed_loss_equals_bce_against_the_drawn_targets():
    logits = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    loss = AdversarialLoss("bce", real_range=(0.9, 1.0), fake_range=(0.0, 0.1), seed=7)
    g = torch.Generator().manual_seed(7)
    real_t = gan_targets(logits, (0.9, 1.0), g)
    fake_t = gan_targets(logits, (0.0, 0.1), g)
    torch.testing.assert_close(
        loss(logits, True), nnf.binary_cross_entropy_with_logits(logits, real_t)
    )
    torch.testing.assert_close(
        loss(logits, False), nnf.binary_cross_entropy_with_logits(logits, fake_t)
    )
    # a fresh loss with the same seed replays the same targets; smooth=False gives exact labels
    fresh = AdversarialLoss("bce", real_range=(0.9, 1.0), fake_range=(0.0, 0.1), seed=7)
    torch.testing.assert_close(
        fresh(logits, True), nnf.binary_cross_entropy_with_logits(logits, real_t)
    )
    torch.testing.assert_close(
        loss(logits, True, smooth=False),
        nnf.binary_cross_entropy_with_logits(logits, torch.ones_like(logits)),
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(mode="wgan"),
        dict(real_range=(0.9, 1.1)),
        dict(fake_range=(0.2, 0.1)),
        dict(real_range=(-0.1, 0.0)),
    ],
)
def test_bad_settings_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        build_loss("adversarial", **kwargs)


def test_generator_gradient_pushes_logits_towards_real():
    logits = torch.zeros(1, 1, 3, 3, requires_grad=True)
    adversarial_loss(logits, True).backward()
    assert (logits.grad < 0).all()


def test_generator_state_travels_in_state_dict_for_resume(tmp_path):
    logits = torch.zeros(2, 1, 4, 4)
    loss = AdversarialLoss("lsgan", real_range=(0.9, 1.0), fake_range=(0.0, 0.1), seed=3)
    loss(logits, True)
    torch.save(loss.state_dict(), tmp_path / "loss.pt")
    expected = [loss(logits, True).item(), loss(logits, False).item()]
    resumed = AdversarialLoss("lsgan", real_range=(0.9, 1.0), fake_range=(0.0, 0.1), seed=99)
    resumed.load_state_dict(torch.load(tmp_path / "loss.pt", weights_only=True))
    assert [resumed(logits, True).item(), resumed(logits, False).item()] == expected
