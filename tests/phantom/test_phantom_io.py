"""Cohort folders: layout, manifest, reproducibility, and refusing to overwrite."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import neurotrans
from neurotrans.data.grid import mni_grid
from neurotrans.errors import InputError
from neurotrans.io.manifest import read_manifest
from neurotrans.io.nifti import load_volume
from neurotrans.names import IMAGE_COLUMNS
from neurotrans.phantom import simulate_cohort


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("cohort", ["fdg", "ms"])
def test_manifest_reads_back_and_every_image_loads_on_the_grid(cohort, fdg_cohort, ms_cohort):
    root = fdg_cohort if cohort == "fdg" else ms_cohort
    m = read_manifest(root / "manifest.tsv")
    grid = mni_grid(3.0)
    assert list(m.table.columns[:5]) == ["subject", "session", "age", "sex", "group"]
    assert m.subjects == [f"sub-{i:03d}" for i in range(1, 13)]
    extra = [c for c in m.table.columns if c.startswith("latent_")]
    assert extra, "ground-truth latent maps are referenced from the manifest"
    seen = set()
    for i, _ in m.rows():
        for column in m.image_columns + extra:
            path = m.path(i, column)
            assert path is not None and path.is_file(), (i, column)
            assert root.resolve() in path.resolve().parents  # relative paths inside the cohort
            if path in seen:
                continue
            seen.add(path)
            vol = load_volume(path)
            assert vol.shape == grid.shape
            np.testing.assert_allclose(vol.affine, grid.affine, atol=1e-5)
            if column in ("brainmask", "lesions", "NAWM"):
                assert set(np.unique(vol.data)) <= {0.0, 1.0}
            if column in ("GM", "WM", "CSF"):
                assert vol.data.min() >= 0 and vol.data.max() <= 1
    assert all(c in IMAGE_COLUMNS or c.startswith("latent_") or c in m.table.columns[:8] for c in m.table.columns)
    desc = json.loads((root / "dataset_description.json").read_text())
    assert desc["Simulated"] is True and desc["cohort"] == cohort and desc["voxel_size"] == 3.0
    assert desc["GeneratedBy"] == [{"Name": "neurotrans.phantom", "Version": neurotrans.__version__}]
    assert "not patient data" in desc["Description"]
    part = pd.read_csv(root / "participants.tsv", sep="\t")
    assert list(part.columns[:4]) == ["subject", "age", "sex", "group"]
    assert part["subject"].tolist() == m.subjects


def test_same_seed_gives_identical_files(tmp_path, fdg_cohort):
    # one run in this process, one in two worker processes: neither may change a byte
    kw = {"n_subjects": 2, "voxel_size": 3.0, "seed": 7, "progress": False, "mri_contrasts": ("T2w", "FLAIR")}
    a = simulate_cohort("fdg", tmp_path / "a", workers=1, **kw)
    b = simulate_cohort("fdg", tmp_path / "b", workers=2, **kw)
    ha, hb = _hashes(a.out), _hashes(b.out)
    assert ha == hb and len(ha) == a.n_images + 3
    m = read_manifest(a.manifest)
    assert {"T1w", "T2w", "FLAIR", "FDG"} <= set(m.image_columns)
    # another seed, other subjects
    other = read_manifest(fdg_cohort)
    assert not np.array_equal(load_volume(m.path(0, "T1w")).data, load_volume(other.path(0, "T1w")).data)


def test_one_ms_subject_is_regenerated_byte_for_byte(tmp_path, ms_cohort):
    """A subject depends only on (seed, index, group): rebuilding one patient alone gives the same files."""
    from neurotrans.phantom.cohort import _Job, _run_job

    m = read_manifest(ms_cohort)
    i = next(i for i, row in m.rows() if row["group"] == "MS")
    subject = m.table.iloc[i]["subject"]
    index = int(subject.removeprefix("sub-")) - 1
    seeds = np.random.SeedSequence(0).spawn(len(m.subjects) + 1)[1:]
    _run_job(_Job("ms", 3.0, index, "MS", (), seeds[index], tmp_path, False))
    mine = _hashes(tmp_path)
    theirs = {k: v for k, v in _hashes(ms_cohort).items() if f"{subject}/" in k}
    assert len(mine) == 6 + 2 * 12 and mine == theirs


def test_existing_cohort_is_not_overwritten(fdg_cohort):
    before = _hashes(fdg_cohort)
    with pytest.raises(InputError) as err:
        simulate_cohort("fdg", fdg_cohort, n_subjects=1, voxel_size=3.0, progress=False)
    message = str(err.value)
    assert str(fdg_cohort) in message and "--overwrite" in message and "another output folder" in message
    assert _hashes(fdg_cohort) == before


def test_overwrite_replaces_the_previous_cohort(tmp_path):
    out = tmp_path / "c"
    simulate_cohort("fdg", out, n_subjects=2, voxel_size=3.0, seed=0, progress=False)
    (out / "notes.txt").write_text("mine")
    old_second = read_manifest(out).path(1, "T1w")
    res = simulate_cohort("fdg", out, n_subjects=1, voxel_size=3.0, seed=3, overwrite=True, progress=False)
    m = read_manifest(res.manifest)
    assert len(m) == 1 and m.path(0, "T1w").is_file()
    assert not old_second.exists()  # the old cohort's images are gone ...
    assert (out / "notes.txt").read_text() == "mine"  # ... but nothing else was touched


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="cohort"):
        simulate_cohort("fgd", tmp_path / "x", n_subjects=1, voxel_size=3.0)
    with pytest.raises(InputError, match="at least 1"):
        simulate_cohort("fdg", tmp_path / "x", n_subjects=0, voxel_size=3.0)
    with pytest.raises(ValueError, match="MRI contrast"):
        simulate_cohort("fdg", tmp_path / "x", n_subjects=1, voxel_size=3.0, mri_contrasts=("FLAIRR",))
    assert not (tmp_path / "x").exists()


def test_existing_image_without_manifest_is_kept(tmp_path):
    out = tmp_path / "partial"
    stray = out / "sub-001" / "ses-baseline" / "anat" / "sub-001_ses-baseline_T1w.nii.gz"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"not overwritten")
    with pytest.raises(InputError) as err:
        simulate_cohort("fdg", out, n_subjects=2, voxel_size=3.0, progress=False, workers=2)
    assert "sub-001_ses-baseline_T1w.nii.gz" in str(err.value) and "--overwrite" in str(err.value)
    assert stray.read_bytes() == b"not overwritten"
    assert not (out / "manifest.tsv").exists()

