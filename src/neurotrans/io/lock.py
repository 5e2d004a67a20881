"""One writer per folder: an advisory lock file that a dead process cannot keep.

``train`` (and ``demo``) hold ``RUN/.lock`` while they write into a run folder, so a second
run into the same ``--out`` stops at once with one line naming the holder, instead of
both runs overwriting each other's checkpoints and logs.

The lock is the operating system's (``flock`` on POSIX, ``msvcrt.locking`` on Windows) on
an open file, so it ends with the process that holds it, however that process ends
(``kill -9`` included): a lock file left by a dead process is stale by construction and
is taken over by the next run; its content (pid, host, start time, command) only serves
the messages. Locks are re-entrant within a process (``demo`` holds the lock of the
folder it trains into). On network file systems the lock is as good as the file
system's own locking (NFSv4 supports it).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from neurotrans.errors import InputError
from neurotrans.io.atomic import make_folder, write_error

_held: dict[str, list[int]] = {}  # lock file -> [fd, depth] of the locks this process holds


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock on ``fd`` without waiting; ``False`` when another process holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover (Windows)
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def read_holder(lock_file: str | Path) -> dict[str, Any]:
    """What the lock file says about its (last) holder: pid, host, since, command (``{}`` if unreadable)."""
    try:
        data = json.loads(Path(lock_file).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(holder.get("since", 0))))
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {since} ({holder.get('command', '?')})"


@contextmanager
def folder_lock(lock_file: str | Path, *, what: str = "neurotrans run") -> Iterator[dict[str, Any]]:
    """Hold ``lock_file`` exclusively while the block runs.

    Args:
        lock_file: e.g. ``RunFolder(out).lock_file`` (its folder is created).
        what: what holds it, for the message to a second process.

    Yields:
        the previous holder's record when a stale lock (of a process that is gone) was
        taken over, else ``{}``.

    Raises:
        InputError: a live process holds the lock (naming its pid, host, start and command).
    """
    lock_file = Path(lock_file)
    key = os.path.abspath(lock_file)
    if key in _held:  # re-entrant: the same process already holds it
        _held[key][1] += 1
        try:
            yield {}
        finally:
            _held[key][1] -= 1
        return
    make_folder(lock_file.parent)
    while True:
        try:
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            raise write_error(lock_file, err) from None
        if not _try_lock(fd):
            os.close(fd)
            raise InputError(lock_file.parent, f"is in use by {_describe(read_holder(lock_file))}: a second "
                             f"{what} would overwrite its files", "wait until it has finished, or write into another "
                             f"--out; if that process no longer runs, delete {lock_file}")
        try:  # a holder that released (and deleted the file) between our open and lock: lock the new file
            same = os.stat(lock_file).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    stale = read_holder(lock_file)
    record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
              "command": " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]])[:200] or what}
    os.ftruncate(fd, 0)
    os.write(fd, (json.dumps(record) + "\n").encode())
    _held[key] = [fd, 1]
    try:
        yield stale
    finally:
        _held.pop(key, None)
        try:
            os.unlink(lock_file)  # still holding it: nobody can have locked this file meanwhile
        except OSError:
            pass
        os.close(fd)


__all__ = ["folder_lock", "read_holder"]
