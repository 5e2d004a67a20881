"""Atomic writes: a file is either absent or complete, never half written.

A write goes to a temporary file beside the destination, then ``os.replace`` moves it
into place (a symlink at the destination is replaced, never written through). Three
things make this safe to use for shared outputs:

- **Mode**: the file gets the mode a plain ``open(path, "w")`` would give it: an existing
  destination keeps its mode, a new one gets ``0o666 & ~umask`` (``mkstemp``'s 0600
  would hide outputs from collaborators).
- **Temp names are recognisable**: ``.<stem>.ntmp-<host>-<pid>-<random><suffixes>``. A
  write killed before its rename leaves such a file; the next write into that folder
  removes the temp files of this host whose process is gone. Temp files of other hosts
  (a shared file system) are left alone: their processes cannot be checked from here.
- **Errors name the file**: a full disk, a read-only folder or a missing permission
  raises :class:`~neurotrans.errors.InputError` naming the destination and the fix; the
  temp file is removed and an existing destination is left as it was.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from neurotrans.errors import InputError

TMP_TAG = "ntmp"
_HOST = re.sub("[^A-Za-z0-9]", "", socket.gethostname())[:24] or "host"
_TMP_NAME = re.compile(rf"^\..*\.{TMP_TAG}-(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-")
_cleaned: set[str] = set()  # folders swept by this process (once each: a sweep lists the folder)


def current_umask() -> int:
    """The process umask (read without changing it where the OS allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no way to read it without setting it elsewhere
    os.umask(mask)
    return mask


def default_mode(path: Path) -> int:
    """The mode a plain ``open(path, "w")`` would leave: the existing file's, else ``0o666 & ~umask``."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    except OSError:
        return True
    return True


def is_temp_name(name: str) -> bool:
    """``name`` is a temp file of :func:`atomic_path` (any host, any process)."""
    return _TMP_NAME.match(name) is not None


def clean_stale_temps(folder: str | Path) -> list[Path]:
    """Remove the temp files in ``folder`` left by killed writes of this host; returns them."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TMP_NAME.match(entry.name)
        if m is None or m["host"] != _HOST or int(m["pid"]) == os.getpid() or _alive(int(m["pid"])):
            continue
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
    return removed


def write_error(path: str | Path, err: OSError, action: str = "written") -> InputError:
    """An :class:`InputError` for a failed write (or ``action``) of ``path``: what went wrong and what to do."""
    code = err.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        problem, fix = f"could not be {action}: the disk is full (or the quota used up)", \
            "free space on that disk or write to another folder; nothing was overwritten"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        problem, fix = f"could not be {action}: permission denied (read-only folder or file system)", \
            "choose a folder you can write to, or fix its permissions"
    elif code in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        problem, fix = f"could not be {action}: {err.strerror} ({err.filename or path})", \
            "a file stands where a folder is needed, or a folder where a file is: choose another output path"
    elif code == errno.ENAMETOOLONG:
        problem, fix = f"could not be {action}: the file name is too long", "choose a shorter output path"
    else:
        problem, fix = f"could not be {action} ({err.strerror or err})", "check the output folder and disk"
    return InputError(path, problem, fix)


def make_folder(folder: str | Path) -> Path:
    """``mkdir -p`` that answers a failure with an :class:`InputError` naming the folder."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # read-only, or a file stands where a folder is needed
        raise write_error(folder, err) from None
    return folder


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    The suffixes are kept (``x.nii.gz`` -> ``.x.ntmp-...nii.gz``) so that writers that
    look at the extension (nibabel, torch) behave as for the final name.

    Raises:
        InputError: the write failed (disk full, no permission): nothing was replaced.
    """
    path = Path(path)
    make_folder(path.parent)
    folder = str(path.parent.resolve())
    if folder not in _cleaned:
        clean_stale_temps(folder)
        _cleaned.add(folder)
    suffix = "".join(path.suffixes)
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{stem}.{TMP_TAG}-{_HOST}-{os.getpid()}-", suffix=suffix,
                                   dir=path.parent)
    except OSError as err:
        raise write_error(path, err) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, default_mode(path))
        os.replace(tmp_path, path)
    except OSError as err:
        raise write_error(path, err) from None
    finally:
        try:
            tmp_path.unlink(missing_ok=True)
        except OSError:  # pragma: no cover (the folder turned read-only meanwhile): the next sweep removes it
            pass


def write_atomic(path: str | Path, writer: Callable[[Path], object]) -> Path:
    """Call ``writer(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write a text file atomically."""
    return write_atomic(path, lambda p: p.write_text(text))
