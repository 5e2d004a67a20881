"""Likelihood pieces of normalising flows: Gaussian log-density, dequantisation, bits per voxel.

Continuous intensities (MRI, PET) are treated as if quantised with a step ``delta`` (in the
units of the image as passed to the flow): centred uniform noise U(-delta/2, delta/2) is added
before the flow (dequantisation), and the negative log-density is turned into bits per voxel
of the quantised image,

    bpv = (-log p(x) - D log(delta)) / (D ln 2),   D = voxels x channels,

which is the variational bound on the code length of x quantised at ``delta`` (Theis et al.
2016; Glow's ``-log(256) * D`` for 8-bit images is the case delta = 1/256). The number is
invariant to a rescaling of the intensities x -> x / s as long as ``delta`` is rescaled alike:
the density gains D log s and -D log(delta) loses it, so no separate change-of-variables term
is needed for a normalisation done before the flow.

Uniform, not Gaussian, noise: only the uniform one makes the number a bound on a discrete code
length, and it is what Glow and the DUAL-GLOW code use.

References: Theis, van den Oord & Bethge 2016 (dequantisation bound); Kingma & Dhariwal 2018
(Glow); Sun et al. 2019 (DUAL-GLOW, eq. 12).
"""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2.0 * math.pi)


def gaussian_log_prob(
    z: torch.Tensor, mean: torch.Tensor | None = None, log_scale: torch.Tensor | None = None
) -> torch.Tensor:
    """Log-density of a diagonal Gaussian, summed over all but the batch dimension.

    Args:
        z: (B, ...) values.
        mean: broadcastable to ``z``; ``None`` for 0.
        log_scale: log standard deviation, broadcastable to ``z``; ``None`` for 0.

    Returns:
        (B,) log N(z; mean, exp(log_scale)^2) in nats.
    """
    d = z if mean is None else z - mean
    if log_scale is None:
        logp = -0.5 * (LOG_2PI + d.square())
    else:
        logp = -0.5 * (LOG_2PI + 2.0 * log_scale + d.square() * torch.exp(-2.0 * log_scale))
    return logp.expand_as(z).flatten(1).sum(1)


def dequantize(
    x: torch.Tensor, step: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Add centred uniform noise U(-step/2, step/2) to ``x`` (a new tensor).

    Args:
        x: any shape, intensities in the units the flow sees.
        step: quantisation step delta (> 0) in the same units.
        generator: for reproducible noise (validation).
    """
    if not step > 0:
        raise ValueError(f"the quantisation step must be > 0, got {step!r}")
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + (noise - 0.5) * step


def bits_per_voxel(log_prob: torch.Tensor, n_voxels: int, step: float) -> torch.Tensor:
    """Negative log-likelihood in bits per voxel of the image quantised at ``step``.

    Args:
        log_prob: log-density log p(x) in nats, any shape (per sample).
        n_voxels: D, the number of values of one sample (channels x voxels).
        step: quantisation step delta (> 0) in the units of x.

    Returns:
        (-log_prob - D log(step)) / (D ln 2), same shape as ``log_prob``.
    """
    if not step > 0:
        raise ValueError(f"the quantisation step must be > 0, got {step!r}")
    if n_voxels < 1:
        raise ValueError(f"n_voxels must be >= 1, got {n_voxels!r}")
    return (-log_prob - n_voxels * math.log(step)) / (n_voxels * math.log(2.0))
