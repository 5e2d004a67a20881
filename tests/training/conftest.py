"""A tiny paired cohort on a small native grid: T1w-like input, FDG-like target, masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cohort_files import write_manifest
from scipy.ndimage import gaussian_filter

SHAPE = (20, 24, 16)


def write_cohort(root: Path, n: int = 6, seed: int = 0, shape: tuple[int, int, int] = SHAPE) -> Path:
    """``n`` subjects whose target is a smooth function of the input (learnable)."""
    rng = np.random.default_rng(seed)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = [-30.0, -36.0, -24.0]
    zz, yy, xx = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    brain = (zz**2 / 0.8 + yy**2 / 0.8 + xx**2 / 0.8) < 1.0
    subjects = []
    for i in range(n):
        gm = gaussian_filter(rng.random(shape), 1.5)
        gm = (gm - gm.min()) / (gm.max() - gm.min()) * brain
        wm = brain * (1 - gm) * 0.8
        csf = brain * 0.2 * (1 - gm)
        t1 = (0.4 * gm + 0.9 * wm + 0.1 * csf) * 100
        fdg = (1.5 * gm + 0.5 * wm) * brain * (1 + 0.1 * (i % 3))
        files = {"T1w": t1, "FDG": fdg, "brainmask": brain.astype(np.float32), "GM": gm, "WM": wm, "CSF": csf}
        row = {"subject": f"sub-{i:02d}", "session": "ses-1", "group": "CN" if i % 2 else "AD", "age": 60.0 + 4.0 * i}
        subjects.append((row, files))
    return write_manifest(root, subjects, affine)


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory) -> Path:
    return write_cohort(tmp_path_factory.mktemp("cohort"))
