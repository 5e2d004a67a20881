"""Adversarial losses: torch references, smoothed targets in range and reproducible."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as nnf

from neurotrans.losses import (
    AdversarialLoss,
    adversarial_loss,
    build_loss,
    gan_targets,
    patch_cross_entropy,
)


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
        dict(mode="softmax", reduction="max"),
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


def _patch_ce_loop(logits, t):
    """Per patch -(t log p_real + (1 - t) log p_fake) of a 2-class softmax, summed over patches."""
    b = logits.shape[0]
    flat = logits.reshape(b, 2, -1)
    tt = t.reshape(b, -1)
    total = 0.0
    for i in range(b):
        for n in range(flat.shape[2]):
            l_fake, l_real = float(flat[i, 0, n]), float(flat[i, 1, n])
            norm = math.log(math.exp(l_fake) + math.exp(l_real))
            total -= tt[i, n] * (l_real - norm) + (1 - tt[i, n]) * (l_fake - norm)
    return total / b, flat.shape[2]


@pytest.mark.parametrize("real", [True, False])
@pytest.mark.parametrize("spatial", [(3, 2), (2, 2, 3)])
def test_patch_cross_entropy_is_the_sum_over_patches_of_the_2_class_softmax_ce(real, spatial):
    logits = torch.randn(2, 2, *spatial, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    hard = torch.full((2, 1, *spatial), 1.0 if real else 0.0, dtype=torch.float64)
    expected, n_patches = _patch_ce_loop(logits, hard)
    assert patch_cross_entropy(logits, real).item() == pytest.approx(expected)
    mean = adversarial_loss(logits, real, mode="softmax")
    assert mean.item() == pytest.approx(expected / n_patches)
    # hard labels: the summed CE is torch's cross_entropy with class indices, summed
    classes = torch.full((2, *spatial), 1 if real else 0)
    ce = nnf.cross_entropy(logits, classes, reduction="sum") / 2
    assert patch_cross_entropy(logits, real).item() == pytest.approx(ce.item())
    # smoothed labels, one draw per patch from the seeded generator
    rng = (0.9, 1.0) if real else (0.0, 0.1)
    t = gan_targets(hard, rng, torch.Generator().manual_seed(5))
    assert t.shape == hard.shape and t.min() >= rng[0] and t.max() <= rng[1]
    expected_smooth, _ = _patch_ce_loop(logits, t)
    got = patch_cross_entropy(logits, real, real_range=(0.9, 1.0), fake_range=(0.0, 0.1),
                              generator=torch.Generator().manual_seed(5))  # fmt: skip
    assert got.item() == pytest.approx(expected_smooth)


def test_softmax_mode_module_reproduces_smoothed_labels_from_its_seed_and_sums():
    logits = torch.randn(3, 2, 2, 2, 2, generator=torch.Generator().manual_seed(0))
    kw = dict(real_range=(0.9, 1.0), fake_range=(0.0, 0.1), seed=11, reduction="sum")
    a, b = AdversarialLoss("softmax", **kw), AdversarialLoss("softmax", **kw)
    seq_a = [a(logits, True).item(), a(logits, False).item(), a(logits, True).item()]
    seq_b = [b(logits, True).item(), b(logits, False).item(), b(logits, True).item()]
    assert seq_a == seq_b
    assert seq_a[0] != seq_a[2]  # a fresh draw per call
    hard = AdversarialLoss("softmax", reduction="sum")
    assert hard(logits, True).item() == pytest.approx(patch_cross_entropy(logits, True).item())
    assert a(logits, True, smooth=False).item() == pytest.approx(hard(logits, True).item())


def test_sum_reduction_of_bce_and_softmax_shape_check():
    logits = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    total = nnf.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="sum") / 2
    torch.testing.assert_close(adversarial_loss(logits, True, reduction="sum"), total)
    with pytest.raises(ValueError, match=r"\(B, 2, ...\)"):
        adversarial_loss(logits, True, mode="softmax")
