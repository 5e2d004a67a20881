"""Bad input at the file level: each case gets one InputError naming the file and the fix."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from neurotrans.errors import InputError
from neurotrans.io.manifest import Manifest, read_manifest, write_manifest
from neurotrans.io.nifti import load_volume, save_volume

AFFINE = np.array([[-1.5, 0, 0, 90], [0, 1.5, 0, -126], [0, 0, 1.5, -72], [0, 0, 0, 1]])


def test_round_trip_keeps_affine_dtype_values(tmp_path, rng):
    data = rng.integers(-100, 900, (5, 6, 7)).astype(np.int16)
    img = nib.Nifti1Image(data, AFFINE)
    nib.save(img, str(tmp_path / "in.nii.gz"))
    vol = load_volume(tmp_path / "in.nii.gz")
    assert vol.data.dtype == np.float32 and np.array_equal(vol.data, data)
    np.testing.assert_allclose(vol.affine, AFFINE)
    out = save_volume(tmp_path / "out.nii.gz", vol.data, vol.affine, vol.header)
    np.testing.assert_array_equal(load_volume(out).data, data)
    np.testing.assert_allclose(load_volume(out).affine, AFFINE)


@pytest.mark.parametrize("case", ["missing", "truncated", "garbage", "4d", "nan", "inf"])
def test_bad_files_name_the_file_and_the_fix(case, tmp_path):
    path = tmp_path / f"{case}.nii.gz"
    good = nib.Nifti1Image(np.ones((4, 4, 4), np.float32), AFFINE)
    if case == "truncated":
        raw = good.to_bytes()
        path.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    elif case == "garbage":
        path.write_bytes(b"this is not an image at all" * 20)
    elif case == "4d":
        nib.save(nib.Nifti1Image(np.ones((4, 4, 4, 3), np.float32), AFFINE), str(path))
    elif case in ("nan", "inf"):
        data = np.ones((4, 4, 4), np.float32)
        data[1, 1, 1] = np.nan if case == "nan" else np.inf
        nib.save(nib.Nifti1Image(data, AFFINE), str(path))
    with pytest.raises(InputError) as err:
        load_volume(path)
    assert str(err.value).startswith(str(path)) and "Fix:" in str(err.value)
    expected = {"missing": "file not found", "truncated": "cannot be read", "garbage": "cannot be read",
                "4d": "is 4D", "nan": "NaN/Inf", "inf": "NaN/Inf"}[case]
    assert expected in str(err.value)
    if case in ("nan", "inf"):
        assert not np.isfinite(load_volume(path, allow_nonfinite=True).data).all()


def test_existing_outputs_are_not_overwritten(tmp_path):
    path = save_volume(tmp_path / "pred.nii.gz", np.zeros((3, 3, 3)), AFFINE)
    before = path.read_bytes()
    with pytest.raises(InputError, match=r"pred\.nii\.gz: already exists.*--overwrite"):
        save_volume(path, np.ones((3, 3, 3)), AFFINE)
    assert path.read_bytes() == before
    save_volume(path, np.ones((3, 3, 3)), AFFINE, overwrite=True)
    assert load_volume(path).data.sum() == 27


def test_manifest_duplicates_and_missing_columns(tmp_path):
    table = pd.DataFrame({"subject": ["a", "b", "a"], "session": ["1", "1", "1"], "T1w": ["x", "y", "z"]})
    with pytest.raises(InputError, match="duplicate subject/session rows: a/1.*Fix: give every subject a unique id"):
        Manifest(table, tmp_path, tmp_path / "manifest.tsv")
    with pytest.raises(InputError, match="lacks column"):
        Manifest(table.drop(columns="session"), tmp_path)
    ok = table.iloc[:2].assign(session=["t0", "t0"])
    write_manifest(ok, tmp_path / "manifest.tsv")
    m = read_manifest(tmp_path)
    assert m.subjects == ["a", "b"] and m.path(1, "T1w") == tmp_path / "y"
    with pytest.raises(InputError, match="manifest not found"):
        read_manifest(tmp_path / "nope.tsv")
