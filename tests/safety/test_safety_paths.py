"""Class 1 (path traversal and output paths): nothing is written outside the folder asked for,
symlinks are replaced or refused (never written through), and an output that cannot be
written (wrong kind, read-only) is refused in one line before any work."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safety_world import World, run_cli

from neurotrans.io.atomic import write_text_atomic
from neurotrans.io.nifti import save_volume
from neurotrans.io.run import PredictionFolder

HOSTILE_SUBJECTS = ["../sub-007/ses-baseline/pet/sub-007", "..", ".", "a/b", "/etc/victim", "sub-01/../../x",
                    "x\\y", "sub-", "a b", "ü1", "a.b", "%2e%2e", "sub-01 ", "-1", "sub-sub-01", "~"]
HOSTILE_SESSIONS = ["../x", "ses-..", "1/2", "ses-1/../.."]


def _victim(tmp: Path) -> Path:
    victim = tmp / "victim" / "sub-007_ses-baseline_FDG.nii.gz"
    save_volume(victim, np.arange(24, dtype=np.float32).reshape(2, 3, 4), np.eye(4))
    return victim


@pytest.mark.parametrize(("subject", "session"), [(s, "1") for s in HOSTILE_SUBJECTS]
                         + [("sub-00", s) for s in HOSTILE_SESSIONS])
def test_hostile_ids_never_name_an_output_path(world: World, tmp_path, subject, session):
    victim = _victim(tmp_path)
    before = victim.read_bytes()
    rows = [{"subject": subject, "session": session, "T1w": str(world.t1())}]
    manifest = tmp_path / "m.tsv"
    pd.DataFrame(rows).to_csv(manifest, sep="\t", index=False)
    out = tmp_path / "out" / "pred"
    code, err, _ = run_cli(["predict", "--checkpoint", str(world.checkpoint), "--manifest", str(manifest), "--out",
                            str(out), "--overwrite", "--device", "cpu"])
    assert code == 2 and len(err) == 1 and "BIDS" in err[0], err
    assert victim.read_bytes() == before
    assert not any(p.is_file() for p in (tmp_path / "out").rglob("*"))


def test_symlinked_output_file_is_refused_not_written_through(world, tmp_path):
    victim = _victim(tmp_path)
    before = victim.read_bytes()
    out = tmp_path / "pred"
    target = PredictionFolder(out).path("sub-00", "ses-1", "FDG")
    target.parent.mkdir(parents=True)
    target.symlink_to(victim)
    code, err, _ = run_cli(["predict", "--checkpoint", str(world.checkpoint), "--manifest", str(world.manifest),
                            "--out", str(out), "--overwrite", "--device", "cpu"])
    assert code == 2 and "through a symlink" in err[0], err
    assert victim.read_bytes() == before and target.is_symlink()


def test_symlinked_subject_folder_is_refused(world, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "pred"
    out.mkdir()
    (out / "sub-00").symlink_to(outside, target_is_directory=True)
    code, err, _ = run_cli(["predict", "--checkpoint", str(world.checkpoint), "--manifest", str(world.manifest),
                            "--out", str(out), "--overwrite", "--device", "cpu"])
    assert code == 2 and "lies outside the output folder" in err[0], err
    assert list(outside.iterdir()) == []


def test_atomic_write_replaces_a_symlink(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    link = tmp_path / "out.txt"
    link.symlink_to(victim)
    write_text_atomic(link, "new")
    assert victim.read_text() == "keep" and link.read_text() == "new" and not link.is_symlink()


@pytest.mark.parametrize("item", ["checkpoints", "predictions", "evaluation", "report"])
def test_train_overwrite_removes_symlinks_without_following_them(world, tmp_path, item):
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "keep.txt").write_text("keep")
    run = tmp_path / "run"
    shutil.copytree(world.run, run)
    shutil.rmtree(run / item)
    (run / item).symlink_to(outside, target_is_directory=True)
    code, err, _ = run_cli(["train", str(world.config), "--out", str(run), "--overwrite", "--device", "cpu"])
    assert code == 0, err
    assert (outside / "sub" / "keep.txt").read_text() == "keep"
    assert not (run / item).is_symlink()


def test_simulate_overwrite_removes_only_its_own_files(tmp_path):
    from neurotrans.phantom import simulate_cohort

    out = tmp_path / "cohort"
    (out / "sub-001").mkdir(parents=True)
    victims = [tmp_path / "victim_rel.nii.gz", tmp_path / "victim_abs.nii.gz", tmp_path / "victim_link.nii.gz"]
    for v in victims:
        v.write_bytes(b"keep")
    (out / "sub-001" / "link.nii.gz").symlink_to(victims[2])
    rows = [{"subject": "sub-001", "session": "1", "T1w": "../victim_rel.nii.gz", "FDG": str(victims[1]),
             "brainmask": "sub-001/link.nii.gz"}]
    pd.DataFrame(rows).to_csv(out / "manifest.tsv", sep="\t", index=False)
    simulate_cohort("fdg", out, n_subjects=1, voxel_size=3.0, overwrite=True, progress=False, workers=1)
    assert all(v.read_bytes() == b"keep" for v in victims)


def test_bids_folder_named_like_a_parent_is_refused(world, tmp_path):
    ds = tmp_path / "ds"
    anat = ds / "sub-.." / "anat"
    anat.mkdir(parents=True)
    shutil.copy(world.t1(), anat / "sub-.._T1w.nii.gz")
    code, err, _ = run_cli(["predict", "--checkpoint", str(world.checkpoint), "--bids", str(ds), "--out",
                            str(tmp_path / "p"), "--device", "cpu"])
    assert code == 2 and "'sub-..'" in err[0], err
    assert not (tmp_path / "p").exists() or not any((tmp_path / "p").rglob("*.nii.gz"))


# every writing command: an unwritable output folder is refused in one line, before any work
def _unwritable_cases(w: World, t: Path) -> dict[str, tuple[list[str], Path]]:
    ro = t / "ro"
    return {
        "predict-input": (["predict", "--checkpoint", str(w.checkpoint), "--input", str(w.t1()), "--out",
                           str(ro / "p.nii.gz")], ro),
        "predict-manifest": (["predict", "--checkpoint", str(w.checkpoint), "--manifest", str(w.manifest),
                              "--out", str(ro / "pred")], ro),
        "evaluate": (["evaluate", "--pred", str(w.run / "predictions"), "--manifest", str(w.manifest), "--target",
                      "FDG", "--out", str(ro / "ev")], ro),
        "report": (["report", str(w.run), "--overwrite"], w.run / "report"),
        "simulate": (["simulate", "fdg", "--subjects", "1", "--voxel-size", "3", "--out", str(ro / "c")], ro),
        "data-manifest": (["data", "manifest", "folder", str(w.root / "cohort"), "--out", str(ro / "m.tsv")], ro),
        "train": (["train", str(w.config), "--out", str(ro / "run")], ro),
        "demo": (["demo", "--out", str(ro / "demo")], ro),
    }


@pytest.mark.parametrize("name", ["predict-input", "predict-manifest", "evaluate", "report", "simulate",
                                  "data-manifest", "train", "demo"])
def test_unwritable_output_is_refused_before_work(world, tmp_path, monkeypatch, name):
    argv, denied = _unwritable_cases(world, tmp_path)[name]
    denied.mkdir(parents=True, exist_ok=True)
    real_access = os.access
    # root ignores permissions: the check (os.access) is told the folder is read-only
    monkeypatch.setattr("neurotrans.io.outputs.os.access",
                        lambda p, mode: False if Path(p) == denied else real_access(p, mode))
    before = sorted(world.run.rglob("*"))
    code, err, _ = run_cli(argv)
    assert code == 2 and len(err) == 1 and f"{denied}: is not writable" in err[0], err
    assert sorted(world.run.rglob("*")) == before


def _as_unprivileged() -> list[str]:
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot drop privileges to test a read-only folder")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.mark.parametrize("command", ["data-manifest", "simulate", "predict-input", "evaluate"])
def test_really_read_only_folder(world, command):
    prefix = _as_unprivileged()
    shared = Path(tempfile.mkdtemp(prefix="neurotrans-ro-"))
    try:
        os.chmod(shared, 0o755)
        shutil.copytree(world.root / "cohort", shared / "cohort")
        shutil.copytree(world.run, shared / "run")
        ro = shared / "ro"
        ro.mkdir(mode=0o555)
        os.chmod(ro, 0o555)
        for p in shared.rglob("*"):
            os.chmod(p, 0o755 if p.is_dir() and p != ro else (0o555 if p == ro else 0o644))
        argv = {
            "data-manifest": ["data", "manifest", "folder", str(shared / "cohort"), "--out", str(ro / "m.tsv")],
            "simulate": ["simulate", "fdg", "--subjects", "1", "--voxel-size", "3", "--out", str(ro / "c")],
            "predict-input": ["predict", "--checkpoint", str(shared / "run" / "checkpoints" / "last.pt"), "--input",
                              str(shared / "cohort" / "sub-00" / "T1w.nii.gz"), "--out", str(ro / "p.nii.gz"),
                              "--device", "cpu"],
            "evaluate": ["evaluate", "--pred", str(shared / "run" / "predictions"), "--manifest",
                         str(shared / "cohort" / "manifest.tsv"), "--target", "FDG", "--out", str(ro / "ev")],
        }[command]
        env = {**os.environ, "HOME": str(shared), "MPLCONFIGDIR": str(shared)}
        proc = subprocess.run([*prefix, sys.executable, "-m", "neurotrans.cli", *argv], capture_output=True,
                              text=True, env=env, timeout=300)
        lines = proc.stderr.splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert f"{ro}: is not writable" in lines[0]
        assert list(ro.iterdir()) == []
    finally:
        shutil.rmtree(shared, ignore_errors=True)
