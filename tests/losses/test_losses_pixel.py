"""L1, MSE and Charbonnier against torch / hand-computed values, with masks and weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf

from neurotrans.losses import LOSSES, build_loss, charbonnier_loss, l1_loss, mse_loss

SHAPES = [(2, 1, 8, 8), (2, 2, 6, 5, 4)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("ours", "ref"), [(l1_loss, nnf.l1_loss), (mse_loss, nnf.mse_loss)])
def test_unmasked_equals_torch(shape, ours, ref):
    g = torch.Generator().manual_seed(0)
    p, t = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    torch.testing.assert_close(ours(p, t), ref(p, t))


@pytest.mark.parametrize("shape", SHAPES)
def test_mask_and_weights_equal_hand_computation(shape):
    rng = np.random.default_rng(0)
    p, t = rng.normal(size=shape), rng.normal(size=shape)
    mask = rng.random((shape[0], 1, *shape[2:])) > 0.4  # broadcast over channels
    w = rng.random((shape[0], 1, *shape[2:]))
    m_full = np.broadcast_to(mask, shape)
    w_full = np.broadcast_to(w, shape)
    tp, tt = torch.tensor(p), torch.tensor(t)
    tm, tw = torch.tensor(mask), torch.tensor(w)
    assert l1_loss(tp, tt, mask=tm).item() == pytest.approx(np.abs(p - t)[m_full].mean())
    assert mse_loss(tp, tt, mask=tm).item() == pytest.approx(((p - t) ** 2)[m_full].mean())
    expected = (w_full * m_full * np.abs(p - t)).sum() / (w_full * m_full).sum()
    assert l1_loss(tp, tt, mask=tm, weights=tw).item() == pytest.approx(expected)
    eps = 0.05
    charb = np.sqrt((p - t) ** 2 + eps**2)
    assert charbonnier_loss(tp, tt, eps=eps, weights=tw).item() == pytest.approx(
        (w_full * charb).sum() / w_full.sum()
    )


def test_charbonnier_between_l1_and_l2_limits():
    g = torch.Generator().manual_seed(1)
    p = torch.randn(2, 1, 8, 8, generator=g, dtype=torch.float64)
    t = torch.randn(2, 1, 8, 8, generator=g, dtype=torch.float64)
    # tiny eps -> L1; huge eps -> eps + mse / (2 eps)
    assert charbonnier_loss(p, t, eps=1e-6).item() == pytest.approx(l1_loss(p, t).item(), rel=1e-5)
    eps = 1e3
    assert charbonnier_loss(p, t, eps=eps).item() == pytest.approx(
        eps + mse_loss(p, t).item() / (2 * eps), rel=1e-11
    )


def test_empty_mask_gives_zero_loss_with_graph():
    p = torch.randn(1, 1, 4, 4, requires_grad=True)
    loss = l1_loss(p, torch.zeros_like(p), mask=torch.zeros(1, 1, 4, 4, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(p.grad, torch.zeros_like(p))


@pytest.mark.parametrize(
    ("call", "kwargs"),
    [
        (l1_loss, dict(pred=torch.zeros(1, 1, 4, 4), target=torch.zeros(1, 1, 4, 5))),
        (charbonnier_loss, dict(pred=torch.zeros(2), target=torch.zeros(2), eps=0.0)),
        (mse_loss, dict(pred=torch.zeros(2), target=torch.zeros(2), weights=-torch.ones(2))),
    ],
)
def test_bad_arguments_raise_value_error(call, kwargs):
    with pytest.raises(ValueError):
        call(**kwargs)


def test_registry_builds_modules_and_rejects_unknown_names():
    assert {"l1", "mse", "charbonnier", "weighted_l1", "nwl1", "adversarial"} <= set(LOSSES)
    p, t = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 4, 4)
    torch.testing.assert_close(
        build_loss("charbonnier", eps=0.1)(p, t), charbonnier_loss(p, t, eps=0.1)
    )
    torch.testing.assert_close(build_loss("l1")(p, t), nnf.l1_loss(p, t))
    with pytest.raises(ValueError, match="charbonnier"):
        build_loss("charbonier")
    with pytest.raises(ValueError):
        build_loss("charbonnier", eps=-1.0)
