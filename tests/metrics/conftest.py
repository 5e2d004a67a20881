"""A tiny FDG-like cohort on the 3 mm MNI grid, built from the AAL2 atlas (no phantom needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from neurotrans.data.atlas import load_atlas
from neurotrans.data.grid import mni_grid
from neurotrans.io.nifti import save_volume

AD_REGIONS = ("Cingulate_Post", "Precuneus", "Parietal_Inf", "Temporal_Mid", "Angular", "Hippocampus")


def make_fdg_cohort(root: Path, n_per_group: int = 6, seed: int = 0) -> Path:
    """CN and AD subjects: regional uptake + AD hypometabolism (-25 %), PET blur, noise."""
    rng = np.random.default_rng(seed)
    grid = mni_grid(3)
    labels, names = load_atlas("AAL2", grid)
    brain = labels > 0
    base = {v: rng.uniform(1.0, 1.6) for v in names}
    rows = []
    (root / "sub").mkdir(parents=True, exist_ok=True)
    for k in range(2 * n_per_group):
        group = "CN" if k < n_per_group else "AD"
        subj = f"sub-{k:02d}"
        lut = np.zeros(max(names) + 1)
        for v, name in names.items():
            ad = 0.75 if group == "AD" and name.startswith(AD_REGIONS) else 1.0
            lut[v] = base[v] * ad * rng.normal(1.0, 0.03)
        img = ndimage.gaussian_filter(lut[labels] + 0.4 * brain, 1.2) + 0.02 * rng.standard_normal(grid.shape)
        img = np.clip(img, 0, None).astype(np.float32)
        save_volume(root / "sub" / f"{subj}_FDG.nii.gz", img, grid.affine)
        save_volume(root / "sub" / f"{subj}_mask.nii.gz", brain.astype(np.float32), grid.affine)
        rows.append({"subject": subj, "session": "ses-1", "age": 70, "sex": "F", "group": group,
                     "FDG": f"sub/{subj}_FDG.nii.gz", "brainmask": f"sub/{subj}_mask.nii.gz"})
    pd.DataFrame(rows).to_csv(root / "manifest.tsv", sep="\t", index=False)
    return root / "manifest.tsv"


def write_predictions(manifest: Path, out: Path, sigma: float, subjects: list[str] | None = None,
                      target: str = "FDG") -> Path:
    """Copies of the real target in a prediction folder, Gaussian-blurred by ``sigma`` voxels (0: identical)."""
    from neurotrans.io.manifest import read_manifest
    from neurotrans.io.nifti import load_volume
    from neurotrans.io.run import PredictionFolder

    man = read_manifest(manifest)
    folder = PredictionFolder(out)
    out.mkdir(parents=True, exist_ok=True)
    for i, row in man.rows():
        if subjects is not None and row["subject"] not in subjects:
            continue
        vol = load_volume(man.path(i, target))
        data = ndimage.gaussian_filter(vol.data, sigma) if sigma > 0 else vol.data
        save_volume(folder.path(str(row["subject"]), str(row["session"]), target), data, vol.affine)
    return out


@pytest.fixture(scope="session")
def fdg_manifest(tmp_path_factory) -> Path:
    return make_fdg_cohort(tmp_path_factory.mktemp("fdg"))


@pytest.fixture(scope="session")
def predictions():
    """The prediction writer, as a fixture (conftest modules are not importable by name)."""
    return write_predictions
