"""On-disk cache of preprocessed subjects as memory-mapped ``.npy`` arrays.

Each prepared subject is stored once in ``<cache>/<key>-<hash>/`` (``inputs.npy``,
``target.npy``, ``mask.npy``, ``meta.json``), where the hash covers the preprocessing
parameters (inputs, target, grid, normalisation, mask) and the source files' sizes and
modification times, so a change to either gives a new entry. Entries are written to a
temporary folder and renamed into place (atomic: never half written). Arrays are stored in
Fortran order, so the papers' main sampling unit, an axial slice, is contiguous on disk. Loading maps the
arrays read-only (``np.load(mmap_mode="r")``), so a 1,500-subject cohort never has to fit
in RAM: the datasets read only the slices or patches they need, and the operating system
keeps the hot pages.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from neurotrans.data.grid import Grid
from neurotrans.data.preprocess import GridReference, PreparedSubject, prepare_subject
from neurotrans.io.manifest import Manifest

CACHE_VERSION = 3


def _source_signature(manifest: Manifest, i: int, columns: Sequence[str]) -> list[Any]:
    sig = []
    for c in columns:
        if c not in manifest.table.columns:
            sig.append([c, None])
            continue
        path = manifest.path(i, c)
        if path is None or not path.exists():
            sig.append([c, None])
            continue
        st = path.stat()
        sig.append([c, str(path.resolve()), st.st_size, st.st_mtime_ns])
    return sig


def cache_key(manifest: Manifest, i: int, inputs: Sequence[str], target: str | None, *, grid: Grid | None,
              normalisation: dict[str, str], mask: str | None, aux: Sequence[str] = (),
              fitted: dict[str, dict[str, Any]] | None = None) -> str:
    """Folder name of row ``i``'s cache entry: ``<subject_session>-<12 hex digits>``."""
    params = {
        "version": CACHE_VERSION, "inputs": list(inputs), "target": target, "mask": mask, "aux": list(aux),
        "normalisation": {k: normalisation[k] for k in sorted(normalisation)},
        "fitted": fitted or {},
        "grid": None if grid is None else [list(grid.shape), np.round(grid.affine, 6).ravel().tolist()],
        "sources": _source_signature(manifest, i, [*inputs, *([target] if target else []), *([mask] if mask else []),
                                                   *aux]),
    }
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    return f"{manifest.key(i)}-{digest}"


def _header_bytes(header: nib.Nifti1Header | None) -> str | None:
    return None if header is None else base64.b64encode(header.binaryblock).decode()


def _header_from(text: str | None) -> nib.Nifti1Header | None:
    if text is None:
        return None
    return nib.Nifti1Header(binaryblock=base64.b64decode(text))


def save_subject(subject: PreparedSubject, folder: str | Path) -> Path:
    """Write a prepared subject to ``folder`` atomically (nothing if it already exists)."""
    folder = Path(folder)
    if folder.exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        # Fortran order: an axial slice (all channels, X, Y at one Z) is one contiguous block on
        # disk, so reading it touches 1/Z of the file instead of every page
        np.save(tmp / "inputs.npy", np.asfortranarray(subject.inputs, dtype=np.float32))
        if subject.target is not None:
            np.save(tmp / "target.npy", np.asfortranarray(subject.target, dtype=np.float32))
        if subject.mask is not None:
            np.save(tmp / "mask.npy", np.asfortranarray(subject.mask, dtype=bool))
        if subject.aux is not None:
            np.save(tmp / "aux.npy", np.asfortranarray(subject.aux, dtype=np.float32))
        meta = {
            "key": subject.key, "subject": subject.subject, "session": subject.session, "stats": subject.stats,
            "reference": {"shape": list(subject.reference.shape), "affine": subject.reference.affine.tolist(),
                          "header": _header_bytes(subject.reference.header)},
            "grid": {"shape": list(subject.grid.shape), "affine": subject.grid.affine.tolist()},
            "input_names": list(subject.input_names), "target_name": subject.target_name,
            "aux_names": list(subject.aux_names),
            "covariates": {k: (v if isinstance(v, str | int | float | bool) or v is None else str(v))
                           for k, v in subject.covariates.items()},
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, allow_nan=True))
        try:
            os.rename(tmp, folder)
        except OSError:
            if not folder.exists():  # another worker may have won the race: its copy is identical
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


@dataclass(frozen=True)
class CachedSubject(PreparedSubject):
    """A :class:`PreparedSubject` backed by a cache folder's memory maps.

    Pickling (DataLoader workers under the spawn/forkserver start methods, DDP) sends only
    the folder and re-opens the maps on the other side, never a copy of the arrays.

    Args:
        folder: the cache entry it was loaded from.
    """

    folder: str = ""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return load_subject, (self.folder,)


def load_subject(folder: str | Path) -> PreparedSubject:
    """A :class:`PreparedSubject` whose arrays are read-only memory maps of ``folder``."""
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())

    def arr(name: str) -> np.ndarray | None:
        p = folder / f"{name}.npy"
        return np.load(p, mmap_mode="r") if p.exists() else None

    ref = meta["reference"]
    return CachedSubject(
        key=meta["key"], subject=meta["subject"], session=meta["session"], inputs=arr("inputs"),
        target=arr("target"), mask=arr("mask"), stats=meta["stats"],
        reference=GridReference(tuple(ref["shape"]), np.array(ref["affine"]), _header_from(ref["header"])),
        grid=Grid(tuple(meta["grid"]["shape"]), np.array(meta["grid"]["affine"])),
        input_names=tuple(meta["input_names"]), target_name=meta["target_name"], covariates=meta["covariates"],
        aux=arr("aux"), aux_names=tuple(meta.get("aux_names", ())), folder=str(folder.resolve()),
    )


def cached_subject(manifest: Manifest, i: int, inputs: list[str], target: str | None, *, cache_dir: str | Path,
                   grid: Grid | None, normalisation: dict[str, str], mask: str | None = "brainmask",
                   aux: Sequence[str] = (), fitted: dict[str, dict[str, Any]] | None = None) -> PreparedSubject:
    """``prepare_subject`` through the cache: computed and stored on a miss, memory-mapped always."""
    folder = Path(cache_dir) / cache_key(manifest, i, inputs, target, grid=grid, normalisation=normalisation,
                                         mask=mask, aux=aux, fitted=fitted)
    if not (folder / "meta.json").exists():
        subject = prepare_subject(manifest, i, inputs, target, grid=grid, normalisation=normalisation, mask=mask,
                                  aux=list(aux), fitted=fitted)
        save_subject(subject, folder)
    return load_subject(folder)


def prepare_cohort(manifest: Manifest, inputs: list[str], target: str | None, *, grid: Grid | None,
                   normalisation: dict[str, str], mask: str | None = "brainmask",
                   cache_dir: str | Path | None = None, progress: bool = False, aux: Sequence[str] = (),
                   fitted: dict[str, dict[str, Any]] | None = None,
                   share: tuple[int, int] = (0, 1)) -> list[PreparedSubject]:
    """Prepare every row of ``manifest``: memory-mapped from ``cache_dir`` when given, else in RAM.

    Args:
        manifest: the cohort (e.g. ``manifest.subset(fold.train)``).
        inputs, target, grid, normalisation, mask, aux, fitted: as in :func:`prepare_subject`.
        cache_dir: cache folder (created on demand); ``None`` keeps everything in memory.
        progress: tqdm progress bar.
        share: ``(k, n)``: start with the k-th of n equal parts of the rows, then go round.
            n processes filling one cache (data-parallel training) thus each prepare their
            own part first and find the others' parts already cached; the result (in
            manifest order) is the same for every ``share``.
    """
    from tqdm.auto import tqdm

    k, parts = share
    first = len(manifest) * k // max(parts, 1)
    out: list[PreparedSubject | None] = [None] * len(manifest)
    for i in tqdm([*range(first, len(manifest)), *range(first)], desc="preparing", unit="subject",
                  disable=not progress):
        if cache_dir is None:
            out[i] = prepare_subject(manifest, i, inputs, target, grid=grid, normalisation=normalisation,
                                     mask=mask, aux=list(aux), fitted=fitted)
        else:
            out[i] = cached_subject(manifest, i, inputs, target, cache_dir=cache_dir, grid=grid,
                                    normalisation=normalisation, mask=mask, aux=aux, fitted=fitted)
    return out  # type: ignore[return-value]
