"""Output paths checked before any work: the right kind, a folder that exists and can be written.

Every command that writes calls one of these before reading its inputs, so a bad
``--out`` costs a second, not a finished computation: :func:`check_output_file` for a
single file (its folder must exist, as for ``cp``), :func:`check_output_folder` for a
folder (created with its parents when absent). :func:`remove_outputs` deletes earlier
outputs for ``--overwrite`` without following symlinks out of the folder.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from neurotrans.errors import InputError
from neurotrans.io.atomic import write_error

WRITE_FIX = "choose a folder you can write to, or fix its permissions"


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_file(path: str | Path, *, overwrite: bool = False, option: str = "--out",
                      suffixes: tuple[str, ...] = (), create_parent: bool = False) -> Path:
    """Refuse an output file path that cannot be written as asked.

    Args:
        path: the file to write.
        overwrite: an existing file may be replaced.
        option: the command-line option that named it (in the fix).
        suffixes: accepted endings (e.g. ``(".nii", ".nii.gz")``); empty: any.
        create_parent: a missing folder will be created (its nearest existing parent must
            be writable); otherwise it must exist, as for ``cp`` (a mistyped folder is
            refused instead of silently created).

    Raises:
        InputError: a folder stands there, its folder is missing or read-only, a name with
            the wrong ending, or the file exists and ``overwrite`` is off.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(path, "is a folder, a file name was expected",
                         f"give {option} a file name inside it, e.g. {path / ('out' + (suffixes[-1] if suffixes else ''))}")
    if suffixes and not path.name.endswith(suffixes):
        raise InputError(path, f"does not end in {' or '.join(suffixes)}", f"give {option} a name ending in {suffixes[-1]}")
    parent = Path(os.path.abspath(path)).parent
    if create_parent:
        check_output_folder(parent, option=option)
    elif not parent.exists():
        raise InputError(path, f"its folder {parent} does not exist",
                         f"create the folder first (mkdir -p {parent}) or choose another {option}")
    elif not parent.is_dir():
        raise InputError(path, f"{parent} is a file, not a folder", f"choose another {option}")
    elif not _writable(parent):
        raise InputError(parent, "is not writable", WRITE_FIX)
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise InputError(path, "already exists", f"pass --overwrite to replace it, or choose another {option}")
    return path


def check_output_folder(path: str | Path, *, option: str = "--out") -> Path:
    """Refuse an output folder path that cannot be created or written.

    Raises:
        InputError: a file stands there (or where one of its parents should be), or the
            folder (or its nearest existing parent) is read-only.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(path, "is a file, a folder was expected", f"give {option} a folder path")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise InputError(path, f"{base} is a file, so the folder cannot be created", f"choose another {option}")
    if not _writable(base):
        raise InputError(base, "is not writable", WRITE_FIX)
    return path


def remove_outputs(paths: Iterable[str | Path]) -> None:
    """Delete earlier outputs (files, folders, symlinks); a symlink is removed, never followed."""
    for p in map(Path, paths):
        try:
            if p.is_symlink() or not p.is_dir():
                p.unlink(missing_ok=True)
            else:
                shutil.rmtree(p)
        except OSError as err:
            raise write_error(p, err, "removed") from None


__all__ = ["check_output_file", "check_output_folder", "remove_outputs"]
