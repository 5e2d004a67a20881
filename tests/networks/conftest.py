"""Fixtures shared by the network tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch


def perturb_parameters(module: torch.nn.Module, scale: float = 0.05, seed: int = 0) -> None:
    """Move every parameter off its (identity / zero) initialisation, reproducibly.

    Flows and their priors start at the identity / N(0, I) with zero-initialised last layers,
    which would make inverse, log-det and gradient tests trivial. The LU factors of the C x C
    invertible convolutions get scale / sqrt(C), so that their condition number stays that of
    a trained flow instead of growing with C.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            s = scale / p.shape[-1] ** 0.5 if p.dim() == 2 and p.shape[0] == p.shape[1] else scale
            p.add_(s * torch.randn(p.shape, generator=g, dtype=p.dtype))


@pytest.fixture
def perturb() -> Callable[..., None]:
    """:func:`perturb_parameters`."""
    return perturb_parameters
