from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neurotrans.errors import InputError
from neurotrans.io.builders import build_manifest, pattern_regex
from neurotrans.io.manifest import read_manifest
from neurotrans.io.nifti import save_volume

AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])


def _nii(path: Path, value: float = 1.0) -> Path:
    save_volume(path, np.full((4, 5, 6), value, np.float32), AFFINE)
    return path


def test_folder_pattern_reads_nested_and_flat_subjects(tmp_path):
    root = tmp_path / "data"
    for sub in ("glioma/A-1", "glioma/B-2"):
        for m in ("T1w", "t2w", "FLAIR", "T1Gd"):
            _nii(root / sub / f"{m}.nii.gz")
    for m in ("T1w", "T2w"):
        _nii(root / "stroke" / f"{m}.nii.gz")
    (root / "README.md").write_text("not an image")
    out = tmp_path / "out" / "manifest.tsv"
    m = build_manifest("folder", root, out)
    assert m.subjects == ["A1", "B2", "stroke"]  # ids become BIDS labels
    assert list(m.table.columns) == ["subject", "session", "T1w", "T2w", "FLAIR", "T1Gd"]
    back = read_manifest(out)
    assert back.table["T1Gd"].isna().tolist() == [False, False, True]
    # paths are relative to the manifest's folder and resolve to the files
    assert back.table.loc[0, "T2w"] == "../data/glioma/A-1/t2w.nii.gz"
    assert back.path(2, "T1w").resolve() == (root / "stroke" / "T1w.nii.gz").resolve()


def test_folder_pattern_with_sessions_and_wildcards(tmp_path):
    root = tmp_path / "d"
    for s in ("01", "02"):
        for ses in ("t0", "t1"):
            _nii(root / f"sub{s}" / f"ses-{ses}" / f"sub{s}_FLAIR_x.nii.gz")
            _nii(root / f"sub{s}" / f"ses-{ses}" / f"sub{s}_T1w_x.nii.gz")
    m = build_manifest("folder", root, tmp_path / "m.tsv", pattern="{subject}/ses-{session}/*_{modality}_x.nii.gz")
    assert len(m) == 4 and set(m.table["session"]) == {"t0", "t1"}
    assert m.image_columns == ["T1w", "FLAIR"]
    assert pattern_regex("**/{subject}/{modality}.nii.gz").match("stroke/T1w.nii.gz")["subject"] == "stroke"


def test_bids_anat_pet_and_participants(tmp_path):
    root = tmp_path / "bids"
    _nii(root / "sub-01/ses-m00/anat/sub-01_ses-m00_T1w.nii.gz")
    _nii(root / "sub-01/ses-m00/anat/sub-01_ses-m00_FLAIR.nii.gz")
    _nii(root / "sub-01/ses-m00/pet/sub-01_ses-m00_trc-18FFDG_rec-AC_pet.nii.gz")
    (root / "sub-01/ses-m00/anat/sub-01_ses-m00_T1w.json").write_text("{}")  # sidecars are ignored
    _nii(root / "sub-02/anat/sub-02_T1w.nii.gz")
    _nii(root / "sub-02/pet/sub-02_trc-11CPIB_pet.nii.gz")
    (root / "participants.tsv").write_text("participant_id\tage\tsex\tgroup\nsub-01\t70\tF\tAD\nsub-02\t65\tM\tCN\n")
    m = build_manifest("bids", root, root / "manifest.tsv")
    t = m.table
    assert t["subject"].tolist() == ["sub-01", "sub-02"] and t["session"].tolist() == ["m00", "1"]
    assert list(t.columns) == ["subject", "session", "age", "sex", "group", "T1w", "FLAIR", "FDG", "PIB"]
    assert t.loc[0, "FDG"] == "sub-01/ses-m00/pet/sub-01_ses-m00_trc-18FFDG_rec-AC_pet.nii.gz"
    assert t.loc[1, "PIB"] == "sub-02/pet/sub-02_trc-11CPIB_pet.nii.gz" and t.loc[1, "group"] == "CN"


def test_caps_t1_linear_and_pet_linear_prefer_uncropped(tmp_path):
    root = tmp_path / "caps"
    base = root / "subjects/sub-ADNI1/ses-M000"
    stem = "sub-ADNI1_ses-M000"
    _nii(base / f"t1_linear/{stem}_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.nii.gz")
    _nii(base / f"t1_linear/{stem}_space-MNI152NLin2009cSym_res-1x1x1_T1w.nii.gz")
    _nii(base / f"pet_linear/{stem}_trc-18FFDG_space-MNI152NLin2009cSym_res-1x1x1_suvr-cerebellumPons2_pet.nii.gz")
    _nii(root / "subjects/sub-ADNI2/ses-M000/t1_linear/sub-ADNI2_ses-M000_space-MNI152NLin2009cSym_desc-Crop_"
         "res-1x1x1_T1w.nii.gz")
    m = build_manifest("caps", root, tmp_path / "caps.tsv")
    assert m.subjects == ["sub-ADNI1", "sub-ADNI2"] and m.image_columns == ["T1w", "FDG"]
    assert "desc-Crop" not in m.table.loc[0, "T1w"] and "desc-Crop" in m.table.loc[1, "T1w"]
    with pytest.raises(InputError, match="not a CAPS folder"):
        build_manifest("caps", tmp_path, tmp_path / "x.tsv")


def test_existing_output_is_kept(tmp_path):
    root = tmp_path / "d"
    _nii(root / "s1" / "T1w.nii.gz")
    out = tmp_path / "manifest.tsv"
    out.write_text("precious results\n")
    with pytest.raises(InputError, match=r"manifest\.tsv: already exists.*--overwrite"):
        build_manifest("folder", root, out)
    assert out.read_text() == "precious results\n"
    build_manifest("folder", root, out, overwrite=True)
    assert read_manifest(out).subjects == ["s1"]


def test_duplicate_subject_ids_and_empty_matches(tmp_path):
    root = tmp_path / "d"
    _nii(root / "siteA" / "s1" / "T1w.nii.gz")
    _nii(root / "siteB" / "s1" / "T1w.nii.gz")
    with pytest.raises(InputError, match="subject id 's1' appears twice"):
        build_manifest("folder", root, tmp_path / "m.tsv")
    with pytest.raises(InputError, match="no image matches"):
        build_manifest("folder", root, tmp_path / "m.tsv", pattern="{subject}_{modality}.nii")
    with pytest.raises(InputError, match="placeholders"):
        build_manifest("folder", root, tmp_path / "m.tsv", pattern="*.nii.gz")
    assert not (tmp_path / "m.tsv").exists()


def test_bids_like_names_of_the_simulated_cohorts(tmp_path):
    root = tmp_path / "sim"
    _nii(root / "sub-001/ses-t0/anat/sub-001_ses-t0_T1w.nii.gz")
    _nii(root / "sub-001/ses-t0/dwi/sub-001_ses-t0_DTI_FA.nii.gz")
    _nii(root / "sub-001/ses-t0/dwi/sub-001_ses-t0_dwi.nii.gz")  # a raw diffusion series is not a column
    _nii(root / "sub-001/ses-t0/pet/sub-001_ses-t0_PIB.nii.gz")
    (root / "participants.tsv").write_text("subject\tage\tgroup\nsub-001\t40\tMS\n")
    m = build_manifest("bids", root, root / "manifest.tsv")
    assert list(m.table.columns) == ["subject", "session", "age", "group", "T1w", "DTI_FA", "PIB"]
    assert m.table.loc[0, "DTI_FA"] == "sub-001/ses-t0/dwi/sub-001_ses-t0_DTI_FA.nii.gz"


def test_cli_data_manifest(tmp_path, capsys):
    from neurotrans.cli import main

    root = tmp_path / "d"
    _nii(root / "s1" / "T1w.nii.gz")
    _nii(root / "s1" / "FLAIR.nii.gz")
    out = tmp_path / "m.tsv"
    assert main(["data", "manifest", "folder", str(root), "--out", str(out)]) == 0
    assert "1 rows, images: T1w, FLAIR" in capsys.readouterr().out
    assert main(["data", "manifest", "folder", str(root), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
