"""A tiny paired cohort with ages on a small native grid, for prediction-time tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cohort_files import write_manifest
from scipy.ndimage import gaussian_filter

# not a multiple of 4: predictions must be padded (at the far end) and cropped back
GLOW_SHAPE = (15, 18, 14)


@pytest.fixture(scope="session")
def glow_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight subjects: T1w-like input, FDG-like target falling with age, brain mask, age, group."""
    root = tmp_path_factory.mktemp("glow_cohort")
    rng = np.random.default_rng(0)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = [-21.0, -27.0, -21.0]
    zz, yy, xx = np.meshgrid(*[np.linspace(-1, 1, s) for s in GLOW_SHAPE], indexing="ij")
    brain = (zz**2 + yy**2 + xx**2) < 0.9
    subjects = []
    for i in range(8):
        age = 60.0 + 4.0 * i
        gm = gaussian_filter(rng.random(GLOW_SHAPE), 1.2)
        gm = (gm - gm.min()) / (gm.max() - gm.min()) * brain
        t1 = (0.4 * gm + 0.9 * (1 - gm)) * brain * 100
        fdg = (1.6 * gm + 0.5 * (1 - gm)) * brain * (1.0 - 0.004 * (age - 60.0))
        files = {"T1w": t1, "FDG": fdg, "brainmask": brain.astype(np.float32)}
        row = {"subject": f"sub-{i:02d}", "session": "ses-1", "age": age, "group": "CN" if i % 2 else "AD"}
        subjects.append((row, files))
    return write_manifest(root, subjects, affine)
