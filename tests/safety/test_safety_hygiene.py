"""Class 5 (hygiene): modes under the umask, temp files of killed writes swept, write failures
as one line with nothing lost, retry advice that leads somewhere, honest checkpoint refusals."""

from __future__ import annotations

import builtins
import errno
import io
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safety_world import World, run_cli

from neurotrans.errors import InputError
from neurotrans.io import atomic
from neurotrans.io.atomic import TMP_TAG, is_temp_name, write_atomic, write_text_atomic
from neurotrans.io.manifest import write_manifest
from neurotrans.io.nifti import save_volume
from neurotrans.io.run import RunFolder
from neurotrans.training.checkpoint import load_checkpoint, save_checkpoint
from neurotrans.training.run import _check_run_folder

WRITERS: dict[str, tuple[str, Callable[[Path], object]]] = {
    "text": ("out.json", lambda p: write_text_atomic(p, "{}\n")),
    "bytes": ("fig.png", lambda p: write_atomic(p, lambda t: t.write_bytes(b"\x89PNG" * 100))),
    "nifti-gz": ("img.nii.gz", lambda p: save_volume(p, np.ones((4, 5, 6), np.float32), np.eye(4), overwrite=True)),
    "nifti": ("img.nii", lambda p: save_volume(p, np.ones((4, 5, 6), np.float32), np.eye(4), overwrite=True)),
    "checkpoint": ("last.pt", lambda p: save_checkpoint(p, {"w": torch.ones(1000)})),
    "manifest": ("manifest.tsv", lambda p: write_manifest(pd.DataFrame({"subject": ["01"], "session": ["1"]}), p)),
}


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o027, 0o002], ids=oct)
@pytest.mark.parametrize("writer", list(WRITERS))
def test_new_files_get_the_mode_of_a_plain_write(tmp_path, writer, mask):
    name, write = WRITERS[writer]
    with umask(mask):
        write(tmp_path / name)
        plain = tmp_path / "plain"
        plain.write_text("x")  # what open(path, "w") gives under this umask
    assert stat.S_IMODE((tmp_path / name).stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~mask


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_replaced_file_keeps_its_mode(tmp_path, writer):
    name, write = WRITERS[writer]
    path = tmp_path / name
    write(path)
    os.chmod(path, 0o640)
    with umask(0o022):
        write(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_command_outputs_are_readable_by_the_group(world: World):
    # the session's outputs were written under the usual umask 022: 0644, not mkstemp's 0600
    files = [p for p in world.run.rglob("*") if p.is_file()]
    assert len(files) > 10 and all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in files)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _temp(folder: Path, stem: str, host: str, pid: int, suffix: str = ".nii.gz") -> Path:
    path = folder / f".{stem}.{TMP_TAG}-{host}-{pid}-abc123{suffix}"
    path.write_bytes(b"half")
    return path


def test_stale_temp_files_are_swept_and_live_ones_kept(tmp_path):
    host = atomic._HOST
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = [_temp(tmp_path, "a", host, _dead_pid()), _temp(tmp_path, "b", host, _dead_pid(), ".json")]
        kept = [_temp(tmp_path, "c", host, sleeper.pid),  # a live writer
                _temp(tmp_path, "d", "otherhost", _dead_pid()),  # another host's: cannot be checked
                _temp(tmp_path, "e", host, os.getpid())]  # our own
        user = [tmp_path / f"notes.{TMP_TAG}-{host}-1-x.txt", tmp_path / ".hidden", tmp_path / ".x.ntmp-.txt"]
        for p in user:
            p.write_text("mine")
        assert all(is_temp_name(p.name) for p in dead + kept) and not any(is_temp_name(p.name) for p in user)
        write_text_atomic(tmp_path / "new.json", "{}")
        assert not any(p.exists() for p in dead)
        assert all(p.exists() for p in kept + user)
    finally:
        sleeper.kill()
        sleeper.wait()


KILLED_WRITE = textwrap.dedent("""
    import sys, time
    from neurotrans.io.atomic import write_atomic
    def slow(tmp):
        tmp.write_bytes(b"x" * 1000)
        print("writing", flush=True)
        time.sleep(60)
    write_atomic(sys.argv[1], slow)
""")


def test_a_killed_write_leaves_the_old_file_and_its_temp_is_swept(tmp_path):
    target = tmp_path / "out" / "report.html"
    target.parent.mkdir()
    target.write_text("old")
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITE, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    temps = [p for p in target.parent.iterdir() if is_temp_name(p.name)]
    assert len(temps) == 1 and target.read_text() == "old"
    write_text_atomic(target.parent / "other.txt", "next write into the folder")
    assert not temps[0].exists() and target.read_text() == "old"


class _FailingFile:
    """A file object whose first write stores half of its data and fails, as on a disk that fills up."""

    def __init__(self, inner, code: int) -> None:
        self.inner, self.code = inner, code

    def write(self, data) -> int:
        self.inner.write(data[: len(data) // 2])
        raise OSError(self.code, os.strerror(self.code))

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.inner.close()


@pytest.fixture
def failing_disk(monkeypatch):
    """``failing_disk(code)``: every write into a temp file of an atomic write fails with ``code``."""
    real = builtins.open

    def arm(code: int) -> None:
        def fake_open(file, mode="r", *args, **kwargs):
            fh = real(file, mode, *args, **kwargs)
            if any(c in mode for c in "wa") and is_temp_name(Path(str(file)).name):
                return _FailingFile(fh, code)
            return fh

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(io, "open", fake_open)

    return arm


FAILURES = {errno.ENOSPC: "disk is full", errno.EDQUOT: "disk is full", errno.EACCES: "permission denied",
            errno.EROFS: "permission denied", errno.EIO: "could not be written"}


@pytest.mark.parametrize("code", list(FAILURES), ids=lambda c: errno.errorcode[c])
@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_failed_write_is_one_line_and_loses_nothing(tmp_path, failing_disk, writer, code):
    name, write = WRITERS[writer]
    path = tmp_path / name
    path.write_bytes(b"the old, complete file")
    failing_disk(code)
    with pytest.raises(InputError) as err:
        write(path)
    message = str(err.value)
    assert message.startswith(f"{path}: could not be written") and FAILURES[code] in message and "Fix:" in message
    assert "\n" not in message
    assert path.read_bytes() == b"the old, complete file"
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temp file left


@pytest.mark.parametrize("exc, code, needle", [
    (OSError(errno.ENOSPC, "No space left on device", "/runs/x/log.jsonl"), 2, "/runs/x/log.jsonl: could not"),
    (OSError(errno.EACCES, "Permission denied", "/runs/x/log.csv"), 2, "/runs/x/log.csv: could not"),
    (KeyboardInterrupt(), 130, "interrupted"),
], ids=["enospc-unwrapped", "eacces-unwrapped", "ctrl-c"])
def test_the_cli_answers_unwrapped_errors_in_one_line(monkeypatch, exc, code, needle):
    def boom(*args, **kwargs):
        raise exc

    monkeypatch.setattr("neurotrans.catalogue.format_catalogue", boom)
    rc, err, _ = run_cli(["list"])
    assert rc == code and len(err) == 1 and needle in err[0], err


# run-folder states: what is in it; the advice for each refused (state, --resume) must lead somewhere
STATES = {
    "empty": [],
    "killed-before-checkpoint": ["config.yaml", "run.json", "log.jsonl"],
    "only-config": ["config.yaml"],
    "derived-only": ["predictions/x.nii.gz"],
    "checkpointed": ["config.yaml", "run.json", "log.jsonl", "checkpoints/last.pt"],
}


def _folder(tmp: Path, items: list[str]) -> RunFolder:
    for item in items:
        (tmp / item).parent.mkdir(parents=True, exist_ok=True)
        (tmp / item).write_text("x")
    tmp.mkdir(exist_ok=True)
    return RunFolder(tmp)


def _follow(fix: str, resume: bool) -> tuple[bool, bool]:
    """The (resume, overwrite) flags the advice asks for (its first option)."""
    first = fix.split(",")[0]
    if "--overwrite" in first:
        return False, True
    if "without --resume" in first:
        return False, False
    assert "--resume" in first, fix
    return True, False


@pytest.mark.parametrize("resume", [False, True], ids=["plain", "resume"])
@pytest.mark.parametrize("state", list(STATES))
def test_retry_advice_is_never_circular(tmp_path, state, resume):
    run = _folder(tmp_path / "run", STATES[state])
    try:
        _check_run_folder(run, resume, overwrite=False)
        return  # accepted as it is
    except InputError as err:
        fix = err.fix
    assert "--resume" not in fix.replace("without --resume", "").replace("instead of --resume", "") \
        or run.checkpoint("last").is_file()  # never advise --resume with nothing to resume
    again_resume, again_overwrite = _follow(fix, resume)
    _check_run_folder(_folder(tmp_path / "again", STATES[state]), again_resume, again_overwrite)  # now it proceeds


def _zip(tmp: Path) -> Path:
    with zipfile.ZipFile(tmp / "z.pt", "w") as z:
        z.writestr("data.txt", "not torch")
    return tmp / "z.pt"


CHECKPOINTS = {
    "pickled-model": (lambda t: (torch.save({"m": torch.nn.Linear(2, 2)}, t / "c.pt"), t / "c.pt")[1],
                      "holds pickled Python objects"),
    "pickled-function": (lambda t: (torch.save({"f": np.mean}, t / "c.pt"), t / "c.pt")[1],
                         "holds pickled Python objects"),
    "junk": (lambda t: (t / "c.pt", (t / "c.pt").write_bytes(b"junk"))[0], "not a readable PyTorch checkpoint"),
    "empty": (lambda t: (t / "c.pt", (t / "c.pt").write_bytes(b""))[0], "not a readable PyTorch checkpoint"),
    "zip-not-torch": (_zip, "not a readable PyTorch checkpoint"),
    "truncated": (lambda t: (t / "c.pt", save_checkpoint(t / "full.pt", {"w": torch.ones(5000)}),
                             (t / "c.pt").write_bytes((t / "full.pt").read_bytes()[:3000]))[0],
                  "not a readable PyTorch checkpoint"),
    "other-format": (lambda t: (torch.save({"w": torch.ones(2)}, t / "c.pt"), t / "c.pt")[1],
                     "not a neurotrans checkpoint"),
    "a-folder": (lambda t: ((t / "c.pt").mkdir(), t / "c.pt")[1], "is a folder, not a checkpoint"),
}


@pytest.mark.parametrize("kind", list(CHECKPOINTS))
def test_checkpoint_refusals_say_what_the_file_is_never_the_unsafe_route(tmp_path, kind):
    make, needle = CHECKPOINTS[kind]
    path = make(tmp_path)
    with pytest.raises(InputError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert needle in message and "neurotrans train" in message
    assert "weights_only" not in message and "\n" not in message


def test_resuming_from_another_models_checkpoint_is_one_line(world, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(world.run, run)
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    state = ckpt["method_state"]
    key = next(k for k, v in state.items() if v.ndim > 1)
    state[key] = torch.zeros(*[s + 1 for s in state[key].shape])  # a wider network
    save_checkpoint(run / "checkpoints" / "last.pt", {k: v for k, v in ckpt.items() if k != "format"})
    started = time.monotonic()
    rc, err, _ = run_cli(["train", str(world.config), "--out", str(run), "--resume", "--device", "cpu"])
    assert rc == 2 and len(err) == 1 and "last.pt: does not fit this run's model" in err[0], err
    assert "--overwrite instead of --resume" in err[0] and time.monotonic() - started < 60
