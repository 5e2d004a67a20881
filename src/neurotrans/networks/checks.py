"""Input checks shared by the networks: one clear ``ValueError`` instead of a shape error deep inside."""

from __future__ import annotations

import torch


def check_input(x: torch.Tensor, spatial_dims: int, channels: int, name: str, what: str = "tensor") -> None:
    """Raise ``ValueError`` unless ``x`` is ``(B, channels, *spatial)`` with ``spatial_dims`` spatial axes."""
    if x.dim() != spatial_dims + 2 or x.shape[1] != channels:
        raise ValueError(f"{name} expects a (B, {channels}, ...) {what} with {spatial_dims} spatial dims, "
                         f"got shape {tuple(x.shape)}")


def check_divisible(x: torch.Tensor, depth: int, name: str) -> None:
    """Raise ``ValueError`` unless every spatial size of ``x`` is divisible by ``2**depth``."""
    sizes = tuple(x.shape[2:])
    factor = 2**depth
    if any(s % factor for s in sizes):
        raise ValueError(
            f"{name}: spatial size {sizes} is not divisible by 2**depth = {factor}; pad or crop the "
            f"input to a multiple of {factor} (e.g. neurotrans' slice/patch padding) or use a smaller depth"
        )
