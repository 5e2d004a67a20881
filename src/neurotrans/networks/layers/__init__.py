"""Dimension-generic layer factories and weight initialisation."""

from __future__ import annotations

from neurotrans.networks.layers.factories import (
    ACTIVATIONS,
    FINAL_ACTIVATIONS,
    NORMS,
    POOLS,
    activation,
    check_spatial_dims,
    conv,
    down_conv,
    dropout,
    norm,
    pool,
    up_conv,
)
from neurotrans.networks.layers.init import INIT_SCHEMES, apply_spectral_norm, init_weights

__all__ = [
    "ACTIVATIONS", "FINAL_ACTIVATIONS", "INIT_SCHEMES", "NORMS", "POOLS", "activation", "apply_spectral_norm",
    "check_spatial_dims", "conv", "down_conv", "dropout", "init_weights", "norm", "pool", "up_conv",
]  # fmt: skip
