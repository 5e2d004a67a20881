"""Flow likelihood pieces: Gaussian log-density, dequantisation, bits per voxel."""

from __future__ import annotations

import math

import pytest
import torch

from neurotrans.losses import bits_per_voxel, dequantize, gaussian_log_prob


@pytest.mark.parametrize("with_params", [False, True])
def test_gaussian_log_prob_matches_torch_distributions(with_params):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, 2, 4, 5, generator=g, dtype=torch.double)
    mean = torch.randn(3, 2, 4, 5, generator=g, dtype=torch.double) if with_params else None
    logs = 0.3 * torch.randn(3, 2, 1, 1, generator=g, dtype=torch.double) if with_params else None
    ref = torch.distributions.Normal(
        torch.zeros_like(z) if mean is None else mean,
        torch.ones_like(z) if logs is None else torch.exp(logs).expand_as(z),
    ).log_prob(z).flatten(1).sum(1)  # fmt: skip
    torch.testing.assert_close(gaussian_log_prob(z, mean, logs), ref)


def test_dequantize_adds_centred_uniform_noise_of_one_step_reproducibly():
    x = torch.linspace(0, 1, 20001)
    y = dequantize(x, 0.01, torch.Generator().manual_seed(1))
    noise = y - x
    assert noise.abs().max() <= 0.005 + 1e-7
    assert abs(float(noise.mean())) < 2e-4
    assert float(noise.var()) == pytest.approx(0.01**2 / 12, rel=0.05)
    assert torch.equal(y, dequantize(x, 0.01, torch.Generator().manual_seed(1)))
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError):
            dequantize(x, bad)


def test_bits_per_voxel_hand_values_and_invariance_to_rescaling():
    # a uniform density on [0, 1) at 8-bit resolution costs exactly 8 bits per voxel
    assert float(bits_per_voxel(torch.tensor(0.0), 100, 1 / 256)) == pytest.approx(8.0)
    # Gaussian data scored by its own density, in two intensity units: same bits per voxel
    g = torch.Generator().manual_seed(0)
    x = 3.0 * torch.randn(2, 50, generator=g, dtype=torch.double)
    s = 7.5
    logp = torch.distributions.Normal(0.0, 3.0).log_prob(x).sum(1)
    logp_scaled = torch.distributions.Normal(0.0, 3.0 / s).log_prob(x / s).sum(1)
    a = bits_per_voxel(logp, 50, 0.01)
    b = bits_per_voxel(logp_scaled, 50, 0.01 / s)
    torch.testing.assert_close(a, b)
    expected = (-logp - 50 * math.log(0.01)) / (50 * math.log(2))
    torch.testing.assert_close(a, expected)
    with pytest.raises(ValueError):
        bits_per_voxel(logp, 0, 0.01)
    with pytest.raises(ValueError):
        bits_per_voxel(logp, 10, 0.0)
