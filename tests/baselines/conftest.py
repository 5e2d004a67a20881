"""A tiny synthetic cohort: inputs and target are smooth nonlinear functions of per-subject
latent tissue fields, so subjects differ (the other-subjects reference is poor) while one
mapping from the input intensities to the target holds for all of them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

SHAPE = (14, 16, 12)


def _field(rng: np.random.Generator, template: np.ndarray) -> np.ndarray:
    own = ndimage.gaussian_filter(rng.standard_normal(SHAPE), 1.5)
    own /= own.std()
    return 0.5 * template + 0.9 * own


def make_cohort(n: int, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """``n`` subjects: 3 input channels, a target, an ellipsoid brain mask."""
    rng = np.random.default_rng(seed)
    templates = [ndimage.gaussian_filter(rng.standard_normal(SHAPE), 2.0) for _ in range(2)]
    templates = [t / t.std() for t in templates]
    g = np.stack(np.meshgrid(*(np.linspace(-1, 1, s) for s in SHAPE), indexing="ij"))
    mask = (g**2).sum(0) < 0.9
    inputs, targets, masks = [], [], []
    for _ in range(n):
        z1, z2 = (_field(rng, t) for t in templates)
        x = np.stack([z1, np.tanh(z2), 0.5 * z1 + 0.5 * z2]) + 0.02 * rng.standard_normal(
            (3, *SHAPE)
        )
        y = np.sin(1.5 * z1) + 0.5 * z2**2 + 0.3 * z1 * z2
        inputs.append(x.astype(np.float32))
        targets.append(y.astype(np.float32))
        masks.append(mask.copy())
    return {"inputs": inputs, "targets": targets, "masks": masks}


@pytest.fixture(scope="session")
def cohort() -> dict[str, list[np.ndarray]]:
    """8 subjects: the first 6 train, the last 2 are held out."""
    return make_cohort(8)
