"""Gradient reversal: identity forward, -lambda times the gradient backward (autograd check)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from neurotrans.losses import GradientReversal, grad_reverse


@pytest.mark.parametrize("scale", [0.0, 0.5, 1.0, 3.0])
def test_forward_identity_backward_flips_and_scales(scale):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, generator=g, requires_grad=True)
    w = torch.randn(3, 4, generator=g)
    y = grad_reverse(x, scale)
    torch.testing.assert_close(y, x)
    (y * w).sum().backward()
    torch.testing.assert_close(x.grad, -scale * w)


def test_reversal_inside_a_network_negates_upstream_gradients_only():
    torch.manual_seed(0)
    features, head = nn.Linear(5, 4), nn.Linear(4, 1)
    x = torch.randn(8, 5)

    def grads(reverse: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        features.zero_grad(), head.zero_grad()
        h = features(x)
        h = GradientReversal(0.3)(h) if reverse else h
        head(torch.tanh(h)).pow(2).mean().backward()
        return [p.grad.clone() for p in features.parameters()], [
            p.grad.clone() for p in head.parameters()
        ]

    (f_plain, h_plain), (f_rev, h_rev) = grads(False), grads(True)
    for a, b in zip(f_plain, f_rev, strict=True):
        torch.testing.assert_close(b, -0.3 * a)
    for a, b in zip(h_plain, h_rev, strict=True):
        torch.testing.assert_close(b, a)


def test_negative_scale_is_rejected():
    with pytest.raises(ValueError):
        GradientReversal(-1.0)
    with pytest.raises(ValueError):
        grad_reverse(torch.zeros(1), -0.1)
