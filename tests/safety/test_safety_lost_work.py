"""Class 2 (lost work): one writer per run folder, reports that keep what they did not write,
simulate's workers that die with it, and existing outputs that survive a refused command."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from safety_world import World, run_cli

from neurotrans.errors import InputError
from neurotrans.io.lock import folder_lock, read_holder
from neurotrans.report import WRITTEN_RECORD, build_report

HOLD = textwrap.dedent("""
    import sys
    from neurotrans.io.lock import folder_lock
    with folder_lock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.read()  # hold until the test closes stdin (or kills us)
""")


def _holder(lock: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_live_lock_refuses_and_a_dead_one_is_taken_over(tmp_path):
    lock = tmp_path / "run" / ".lock"
    proc = _holder(lock)
    try:
        assert read_holder(lock)["pid"] == proc.pid
        with pytest.raises(InputError, match=rf"run: is in use by pid {proc.pid} .*Fix: wait"), folder_lock(lock):
            pass
    finally:
        proc.kill()  # SIGKILL: no clean-up runs, the lock file stays behind
        proc.wait()
    assert lock.exists() and read_holder(lock)["pid"] == proc.pid
    with folder_lock(lock) as stale:
        assert stale["pid"] == proc.pid  # detected as stale, taken over
        assert read_holder(lock)["pid"] == os.getpid()
    assert not lock.exists()  # released: removed


@pytest.mark.parametrize("content", ["", "not json", '{"pid": 1, "host": "elsewhere"}', "[1, 2]"])
def test_leftover_lock_files_without_holder_are_taken_over(tmp_path, content):
    lock = tmp_path / ".lock"
    lock.write_text(content)
    with folder_lock(lock):
        assert read_holder(lock)["pid"] == os.getpid()


def test_the_lock_is_reentrant_in_one_process(tmp_path):
    lock = tmp_path / ".lock"
    with folder_lock(lock), folder_lock(lock), folder_lock(lock):  # demo holds it, train re-enters
        assert lock.exists()
    assert not lock.exists()


def test_two_real_trains_into_one_folder(world: World, tmp_path):
    """A real `train` holds the folder; a second real `train` into it stops at once with one line."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "neurotrans.cli", "train", str(world.config), "--out", str(out), "--device", "cpu"]
    first = subprocess.Popen([*cmd, "--set", "trainer.max_steps=1000000", "--set", "trainer.val_every=1000000",
                              "--set", "trainer.checkpoint_every=1000000"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while read_holder(out / ".lock").get("pid") != first.pid:
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline, "the first train never took the lock"
            time.sleep(0.2)
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
        assert first.poll() is None  # the first one is still training: the second did not wait for it
        lines = second.stderr.splitlines()
        assert second.returncode == 2 and len(lines) == 1, second.stderr
        assert f"is in use by pid {first.pid}" in lines[0] and "Fix:" in lines[0]
    finally:
        first.kill()
        first.wait()
    # the killed run's lock is stale: the next run into the folder is not refused by it
    with folder_lock(out / ".lock") as stale:
        assert stale["pid"] == first.pid


def _children(pid: int) -> set[int]:
    kids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.add(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # an orphan's zombie waits for a reaper that a container may not run


SIMULATE = textwrap.dedent("""
    import sys
    from neurotrans.phantom import simulate_cohort
    simulate_cohort("fdg", sys.argv[1], n_subjects=40, voxel_size=3.0, workers=2, progress=False)
""")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the worker processes")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name)
def test_killing_simulate_stops_its_workers(tmp_path, sig):
    out = tmp_path / "cohort"
    # a child inherits an ignored SIGINT (pytest-xdist workers ignore it) and Python then installs no
    # KeyboardInterrupt handler: give simulate the disposition a terminal's Ctrl-C would meet
    proc = subprocess.Popen([sys.executable, "-c", SIMULATE, str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    workers: set[int] = set()
    while len(workers) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, "simulate never started its workers"
        workers = _children(proc.pid)
        time.sleep(0.1)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 20
    while any(_alive(w) for w in workers):
        assert time.monotonic() < deadline, f"workers {sorted(w for w in workers if _alive(w))} outlived the parent"
        time.sleep(0.1)
    files = sorted(out.rglob("*")) if out.exists() else []
    time.sleep(1.0)
    assert (sorted(out.rglob("*")) if out.exists() else []) == files  # nobody writes any more
    assert not (out / "manifest.tsv").exists()  # an unfinished cohort is never described as finished


def _copy_run(world: World, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(world.run, run)
    return run


USER_FILES = ["other.png", "notes.txt", "montage_9_sub-77_1.png", "mine/deep.png", ".hidden.png"]
# entries of a tampered record of "figures written by the last build": none may delete anything
HOSTILE_RECORDS = ["../victim.png", "../../victim.png", "/tmp/neurotrans-victim.png", "sub/../../victim.png",
                   "victim.txt", 7, "mine", ""]


def test_report_never_deletes_files_it_did_not_write(world, tmp_path):
    run = _copy_run(world, tmp_path)
    page = run / "report" / "report.html"
    figures = run / "report" / "figures"
    mine = [figures / n for n in USER_FILES]
    victims = [run / "report" / "victim.png", run / "victim.png", figures / "victim.txt"]
    for p in mine + victims:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"user data")
    record = json.loads((run / "report" / WRITTEN_RECORD).read_text())
    (run / "report" / WRITTEN_RECORD).write_text(json.dumps({"figures": record["figures"] + HOSTILE_RECORDS}))
    before = page.read_bytes()
    with pytest.raises(InputError, match=r"report\.html: already exists.*--overwrite"):
        build_report(run)
    assert page.read_bytes() == before  # refused: nothing replaced
    build_report(run, overwrite=True)
    assert all(p.read_bytes() == b"user data" for p in mine + victims)
    assert sorted(json.loads((run / "report" / WRITTEN_RECORD).read_text())["figures"]) == record["figures"]


# a refused command leaves every existing output as it was (exit 2, one line)
REFUSALS = [
    ("predict", lambda w, r, t: ["predict", "--checkpoint", str(r / "checkpoints" / "last.pt"), "--manifest",
                                 str(w.manifest), "--out", str(r / "predictions")]),
    ("evaluate", lambda w, r, t: ["evaluate", "--pred", str(r / "predictions"), "--manifest", str(w.manifest),
                                  "--target", "FDG"]),
    ("report", lambda w, r, t: ["report", str(r)]),
    ("train", lambda w, r, t: ["train", str(w.config), "--out", str(r)]),
    ("train-resume-other-config", lambda w, r, t: ["train", str(w.config), "--out", str(r), "--resume", "--set",
                                                   "data.batch_size=2"]),
    ("demo", lambda w, r, t: ["demo", "--out", str(r)]),
    ("manifest", lambda w, r, t: ["data", "manifest", "folder", str(w.root / "cohort"), "--out",
                                  str(r / "run.json")]),
]


@pytest.mark.parametrize("argv", [pytest.param(a, id=i) for i, a in REFUSALS])
def test_existing_outputs_survive_a_refusal(world, tmp_path, argv):
    run = _copy_run(world, tmp_path)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    code, err, _ = run_cli(argv(world, run, tmp_path))
    assert code == 2 and len(err) == 1, err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("broken", ["header-only", "missing", "complex"])
def test_a_broken_input_in_the_last_row_stops_predict_before_any_output(world, tmp_path, broken):
    import numpy as np
    import pandas as pd
    from safety_world import SHAPE, header_only, nifti

    bad = {"header-only": lambda: header_only(tmp_path / "bad.nii", SHAPE),
           "missing": lambda: tmp_path / "gone.nii.gz",
           "complex": lambda: nifti(tmp_path / "bad.nii", np.ones(SHAPE, np.complex64))}[broken]()
    # new subject ids (none of the run's test subjects): every row is predicted, the broken one last
    rows = [{"subject": f"new{i}", "session": "1", "T1w": str(world.t1(i))} for i in range(5)]
    rows.append({"subject": "new5", "session": "1", "T1w": str(bad)})
    pd.DataFrame(rows).to_csv(tmp_path / "m.tsv", sep="\t", index=False)
    out = tmp_path / "pred"
    code, err, _ = run_cli(["predict", "--checkpoint", str(world.checkpoint), "--manifest", str(tmp_path / "m.tsv"),
                            "--out", str(out), "--device", "cpu"])
    assert code == 2 and len(err) == 1 and bad.name in err[0], err
    assert not out.exists() or not any(out.rglob("*.nii.gz"))
