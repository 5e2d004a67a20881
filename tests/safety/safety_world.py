"""Helpers of the safety tests: a tiny cohort, the trained run's description, hostile files.

Everything is small (a 12x14x10 grid, 6 subjects, a 2-step U-Net) so that each of the
hundred-odd bad inputs costs milliseconds; the one trained run is built once per session.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from cohort_files import write_manifest
from scipy.ndimage import gaussian_filter

SHAPE = (12, 14, 12)
AFFINE = np.array([[3.0, 0, 0, -18], [0, 3.0, 0, -21], [0, 0, 3.0, -15], [0, 0, 0, 1]])


def write_cohort(root: Path, n: int = 6, seed: int = 0) -> Path:
    """``n`` subjects: T1w, FDG (a smooth function of it), brainmask; returns manifest.tsv."""
    rng = np.random.default_rng(seed)
    idx = np.indices(SHAPE, dtype=float)
    centre = (np.array(SHAPE) - 1) / 2
    brain = sum(((idx[a] - centre[a]) / (0.45 * SHAPE[a])) ** 2 for a in range(3)) < 1.0
    subjects = []
    for i in range(n):
        t1 = gaussian_filter(rng.random(SHAPE), 1.0) * 100 * brain
        fdg = (0.02 * t1 + 0.5) * brain
        row = {"subject": f"sub-{i:02d}", "session": "ses-1", "group": "CN" if i % 2 else "AD"}
        subjects.append((row, {"T1w": t1, "FDG": fdg, "brainmask": brain.astype(np.float32)}))
    return write_manifest(root, subjects, AFFINE)


TINY_CONFIG = {
    "name": "tiny",
    "model": {"method": "supervised", "generator": "unet_esit", "generator_args": {"base": 4, "depth": 2}},
    "data": {"voxel_size": None, "batch_size": 4, "normalisation": {"FDG": "zscore"}},
    "split": {"kind": "fixed", "test_fraction": 0.34, "val_fraction": 0.17},
    "trainer": {"max_steps": 2, "val_every": 2, "checkpoint_every": 2, "progress": False},
}


def tiny_config(manifest: Path, **data: object) -> dict:
    """The tiny training config on ``manifest`` (``data`` overrides the data section)."""
    cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in TINY_CONFIG.items()}
    cfg["data"] = {**cfg["data"], "manifest": str(manifest), **data}
    return cfg


@dataclass(frozen=True)
class World:
    """A cohort, a trained run (with predictions, evaluation, report) and its config file."""

    root: Path
    manifest: Path
    run: Path
    config: Path

    @property
    def checkpoint(self) -> Path:
        return self.run / "checkpoints" / "last.pt"

    def t1(self, i: int = 0) -> Path:
        return self.root / "cohort" / f"sub-{i:02d}" / "T1w.nii.gz"


def header_only(path: Path, shape: tuple[int, ...], dtype: type = np.float32) -> Path:
    """A NIfTI header declaring ``shape`` with (almost) no voxel data behind it."""
    hdr = nib.Nifti2Header() if max(shape) > 32767 else nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(dtype)
    hdr.set_sform(AFFINE, code=1)
    hdr["vox_offset"] = hdr.sizeof_hdr + 4
    path.write_bytes(hdr.binaryblock + b"\0" * 4 + b"\0" * 64)
    return path


def zero_affine(path: Path, affine: np.ndarray | None = None) -> Path:
    """A NIfTI whose voxel-to-world matrix is ``affine`` (default all zero), as the sform alone.

    nibabel refuses to build an image from a singular affine, so the header is written by hand.
    """
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(SHAPE)
    hdr.set_data_dtype(np.float32)
    hdr.set_sform(np.zeros((4, 4)) if affine is None else affine, code=1)
    hdr.set_qform(None, code=0)
    hdr["pixdim"][1:4] = 0
    nib.save(nib.Nifti1Image(np.ones(SHAPE, np.float32), None, hdr), str(path))
    return path


def nifti(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    """``data`` written as it is (any dtype, any number of axes) with nibabel."""
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def manifest_with(root: Path, name: str, rows: list[dict]) -> Path:
    """A manifest TSV of ``rows`` (dicts) in ``root``."""
    path = root / name
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path


def run_cli(argv: list[str]) -> tuple[int, list[str], str]:
    """``neurotrans.cli.main(argv)`` in-process: exit code, stderr lines, stdout."""
    from neurotrans.cli import main

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 1
    return code, err.getvalue().splitlines(), out.getvalue()
