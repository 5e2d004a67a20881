"""Class 3 (silent wrong results): misregistered grids, complex or RGB voxels, blank images and
empty manifests are refused (or reported by `data check`) instead of giving numbers."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from safety_world import AFFINE, SHAPE, World, header_only, nifti

from neurotrans.data.check import check_manifest
from neurotrans.data.grid import Grid, mni_grid
from neurotrans.data.preprocess import prepare_subject
from neurotrans.errors import InputError
from neurotrans.io.manifest import read_manifest
from neurotrans.io.nifti import load_volume


def _rot(deg: float, axis: int) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    i, j = [a for a in range(3) if a != axis]
    r = np.eye(4)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def _shift(dx: float, dy: float, dz: float) -> np.ndarray:
    t = np.eye(4)
    t[:3, 3] = (dx, dy, dz)
    return t


# the FDG's affine relative to the T1w's, and whether the one rule must flag it
GRIDS = [
    ("shift-x-12mm", _shift(12, 0, 0) @ AFFINE, True),
    ("shift-y-one-voxel", _shift(0, -3, 0) @ AFFINE, True),
    ("shift-z-half-mm", _shift(0, 0, 0.5) @ AFFINE, True),
    ("shift-1-micron", _shift(1e-3, 0, 0) @ AFFINE, True),
    ("flip-x", AFFINE @ np.diag([-1.0, 1, 1, 1]), True),
    ("rotate-10deg", _rot(10, 2) @ AFFINE, True),
    ("rotate-90deg-same-shape", _rot(90, 1) @ AFFINE, True),
    ("voxel-1.5x", AFFINE @ np.diag([1.5, 1.5, 1.5, 1]), True),
    ("float32-rounding", AFFINE + 1e-6, False),
    ("identical", AFFINE, False),
]


def _cohort_with_fdg_affine(world: World, tmp: Path, affine: np.ndarray) -> Path:
    rows = []
    for i in range(2):
        fdg = load_volume(world.t1(i).with_name("FDG.nii.gz"))
        moved = nifti(tmp / f"FDG_{i}.nii.gz", fdg.data, affine) if i == 0 else world.t1(i).with_name("FDG.nii.gz")
        rows.append({"subject": f"sub-{i:02d}", "session": "1", "T1w": str(world.t1(i)), "FDG": str(moved),
                     "brainmask": str(world.t1(i).with_name("brainmask.nii.gz"))})
    pd.DataFrame(rows).to_csv(tmp / "m.tsv", sep="\t", index=False)
    return tmp / "m.tsv"


@pytest.mark.parametrize(("affine", "flagged"), [pytest.param(a, f, id=n) for n, a, f in GRIDS])
def test_one_grid_rule_for_data_check_and_every_preparation(world, tmp_path, affine, flagged):
    manifest = read_manifest(_cohort_with_fdg_affine(world, tmp_path, affine))
    report = check_manifest(manifest, progress=False)
    verdicts = {"data check": any("FDG_0.nii.gz" in p and "grid" in p for p in report.problems)}
    for name, grid in (("native grid", None), ("MNI 3 mm", mni_grid(3.0)),
                       ("other working grid", Grid((10, 10, 10), np.diag([2.0, 2.0, 2.0, 1.0])))):
        try:
            prepare_subject(manifest, 0, ["T1w"], "FDG", grid=grid, normalisation={"FDG": "zscore"})
            verdicts[name] = False
        except InputError as err:
            assert "FDG_0.nii.gz" in str(err) and "Fix: co-register" in str(err)
            verdicts[name] = True
    assert verdicts == dict.fromkeys(verdicts, flagged)


RGB = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128, RGB], ids=["complex64", "complex128", "rgb24"])
def test_complex_and_rgb_voxels_are_refused_not_cast(tmp_path, dtype):
    data = np.zeros(SHAPE, dtype)
    if np.dtype(dtype).kind == "c":
        data += (1 + 2j)
    path = nifti(tmp_path / "odd.nii", data)
    with pytest.raises(InputError, match=r"odd\.nii: holds (complex numbers|R/G/B \(colour\) voxels)"):
        load_volume(path)
    report = check_manifest(read_manifest(_one_row(tmp_path, path)), progress=False)
    assert not report.ok and "odd.nii" in report.problems[0]


def _one_row(tmp: Path, path: Path, column: str = "T1w") -> Path:
    pd.DataFrame([{"subject": "01", "session": "1", column: str(path)}]).to_csv(tmp / "one.tsv", sep="\t",
                                                                               index=False)
    return tmp / "one.tsv"


def _truncated_gz(tmp: Path, world: World) -> Path:
    raw = gzip.decompress(world.t1().read_bytes())
    path = tmp / "cut.nii.gz"
    path.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    return path


def _truncated_nii(tmp: Path, world: World) -> Path:
    img = nib.load(str(world.t1()))
    path = tmp / "cut.nii"
    nib.save(img, str(path))
    path.write_bytes(path.read_bytes()[:-100])
    return path


BAD_IMAGES = {
    "all-zero": (lambda t, w: nifti(t / "zero.nii", np.zeros(SHAPE, np.float32)), "is constant"),
    "constant": (lambda t, w: nifti(t / "five.nii", np.full(SHAPE, 5.0, np.float32)), "is constant"),
    "header-only": (lambda t, w: header_only(t / "hdr.nii", SHAPE), "truncated"),
    "truncated-nii": (_truncated_nii, "truncated"),
    "truncated-gz": (_truncated_gz, "cannot be read"),
    "missing": (lambda t, w: t / "gone.nii.gz", "file not found"),
    "nan": (lambda t, w: nifti(t / "nan.nii", np.full(SHAPE, np.nan, np.float32)), "NaN"),
    "empty-axis": (lambda t, w: header_only(t / "flat.nii", (12, 0, 12)), "empty image"),
    "huge-header": (lambda t, w: header_only(t / "huge.nii", (1000, 1000, 1000)), "voxels, more than the limit"),
    "4d-series": (lambda t, w: nifti(t / "series.nii", np.ones((*SHAPE, 2), np.float32)), "is 4D"),
}


@pytest.mark.parametrize("kind", list(BAD_IMAGES))
def test_data_check_fails_blank_broken_and_missing_images(world, tmp_path, kind):
    make, needle = BAD_IMAGES[kind]
    path = make(tmp_path, world)
    report = check_manifest(read_manifest(_one_row(tmp_path, path)), progress=False)
    assert not report.ok
    assert any(path.name in p and needle in p and "Fix:" in p for p in report.problems), report.problems
    assert report.format().splitlines()[-1].startswith("FAILED")


def test_data_check_fails_when_every_image_is_missing(world, tmp_path):
    shutil.copytree(world.root / "cohort", tmp_path / "c")
    for p in (tmp_path / "c").rglob("*.nii.gz"):
        p.unlink()
    report = check_manifest(tmp_path / "c" / "manifest.tsv", progress=False)
    assert not report.ok and len(report.problems) == 6 * 3
    assert all("file not found" in p for p in report.problems)


@pytest.mark.parametrize("text", ["", "subject\tsession\n", "subject\tsession\tT1w\tFDG\n", "\n\n"],
                         ids=["zero-bytes", "two-columns", "image-columns", "blank-lines"])
def test_a_manifest_without_rows_is_refused(tmp_path, text):
    (tmp_path / "m.tsv").write_text(text)
    with pytest.raises(InputError, match=r"m\.tsv: .*(empty|no subject row)"):
        read_manifest(tmp_path / "m.tsv")
