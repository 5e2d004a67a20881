"""Build a ``manifest.tsv`` from a folder of files, a BIDS dataset or a Clinica CAPS folder.

All three produce the same table: ``subject``, ``session``, covariates, and one column per
modality or mask holding a path relative to the manifest's folder.

- ``folder``: files matched by a naming pattern with ``{subject}``, ``{session}``
  (optional) and ``{modality}`` placeholders, plus glob wildcards ``*`` (within one folder
  level) and ``**/`` (any number of folder levels, including none). The default
  ``**/{subject}/{modality}.nii.gz`` reads both ``glioma/TCGA-DU-7294/T1w.nii.gz`` and
  ``stroke/T1w.nii.gz`` (subject ``stroke``; ids keep their letters and digits only, as
  BIDS labels: ``TCGA-DU-7294`` becomes ``TCGADU7294``). Modality names matching a known name
  (case-insensitive) get its canonical spelling; other names (e.g. ``T1Gd``) become extra
  columns as they are.
- ``bids``: ``sub-*/[ses-*/]anat/*_<suffix>.nii[.gz]`` (T1w, T2w, PDw, FLAIR...) and
  ``sub-*/[ses-*/]pet/*_trc-<tracer>_*pet.nii[.gz]`` (18FFDG -> FDG, 11CPIB -> PIB); files in
  ``anat/``, ``dwi/`` and ``pet/`` whose suffix is a known name (``..._PIB``, ``..._DTI_FA``, as
  the simulated cohorts write them) are taken too; ``participants.tsv`` covariates are
  merged (``participant_id``, or ``subject``).
- ``caps``: Clinica CAPS ``subjects/sub-*/ses-*/t1_linear/*_T1w.nii.gz`` and
  ``pet_linear/*_trc-18FFDG_*_pet.nii.gz`` (the uncropped image when both exist, so T1w
  and PET share a grid).

Subjects without a session get session ``"1"``.

References:
    BIDS specification 1.9 (anat, pet); Clinica CAPS (t1-linear, pet-linear).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from neurotrans.errors import InputError
from neurotrans.io.manifest import Manifest, write_manifest
from neurotrans.io.outputs import check_output_file
from neurotrans.names import IMAGE_COLUMNS

DEFAULT_PATTERN = "**/{subject}/{modality}.nii.gz"
DEFAULT_SESSION = "1"
TRACERS = {"18FFDG": "FDG", "FDG": "FDG", "11CPIB": "PIB", "PIB": "PIB"}
KINDS = ("folder", "bids", "caps")
_CANONICAL = {c.lower(): c for c in IMAGE_COLUMNS}
_NIFTI = re.compile(r"\.nii(\.gz)?$")


def canonical_modality(name: str) -> str:
    """Known modality/mask names in their canonical spelling; unknown names unchanged."""
    return _CANONICAL.get(name.lower(), name)


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """Compile a naming pattern into a regex over '/'-separated relative paths.

    ``{subject}``, ``{session}``, ``{modality}`` match one path component part (no '/');
    ``**/`` matches zero or more folders; ``*`` matches within one component.
    """
    if "{subject}" not in pattern or "{modality}" not in pattern:
        raise InputError(pattern, "the naming pattern needs {subject} and {modality} placeholders",
                         "write e.g. '{subject}/{modality}.nii.gz' or '**/{subject}/ses-{session}/{modality}.nii.gz'")
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append(r"(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(r".*")
            i += 2
        elif pattern[i] == "*":
            out.append(r"[^/]*")
            i += 1
        elif pattern[i] == "{":
            end = pattern.index("}", i)
            name = pattern[i + 1:end]
            if name not in ("subject", "session", "modality"):
                raise InputError(pattern, f"unknown placeholder {{{name}}}",
                                 "use only {subject}, {session} and {modality}")
            out.append(f"(?P<{name}>[^/]+?)")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + "$")


def _rel(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()


def _table(entries: Iterable[tuple[str, str, str, Path]], out_dir: Path) -> pd.DataFrame:
    """Rows from ``(subject, session, column, path)`` entries; duplicates are errors."""
    rows: dict[tuple[str, str], dict[str, str]] = {}
    seen: dict[tuple[str, str, str], Path] = {}
    for subject, session, column, path in entries:
        k = (subject, session, column)
        if k in seen:
            raise InputError(path, f"duplicate {column} image for subject {subject} session {session} "
                             f"(also {seen[k]})", "keep one file per subject, session and modality, or give a "
                             "pattern with {session} / a narrower pattern")
        seen[k] = path
        rows.setdefault((subject, session), {"subject": subject, "session": session})[column] = _rel(path, out_dir)
    if not rows:
        return pd.DataFrame(columns=["subject", "session"])
    table = pd.DataFrame(list(rows.values()))
    known = [c for c in IMAGE_COLUMNS if c in table.columns]
    extra = sorted(c for c in table.columns if c not in known and c not in ("subject", "session"))
    return table[["subject", "session", *known, *extra]].sort_values(["subject", "session"]).reset_index(drop=True)


def _label(text: str) -> str:
    return re.sub("[^A-Za-z0-9]", "", text) or "01"


def _folder_entries(root: Path, pattern: str) -> list[tuple[str, str, str, Path]]:
    regex = pattern_regex(pattern)
    entries = []
    owners: dict[str, str] = {}  # subject -> the path prefix that names it
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        m = regex.match(rel)
        if m is None:
            continue
        # ids become BIDS labels (letters and digits: TCGA-DU-7294 -> TCGADU7294), so that no id
        # can name a path when outputs are written per subject
        subject = _label(m["subject"])
        prefix = rel[: m.end("subject")]
        if owners.setdefault(subject, prefix) != prefix:
            raise InputError(path, f"subject id {subject!r} appears twice ({owners[subject]} and {prefix})",
                             "rename one of them so that subject ids are unique")
        session = _label(m.groupdict().get("session") or DEFAULT_SESSION)
        entries.append((subject, session, canonical_modality(m["modality"]), path))
    return entries


def _entities(name: str) -> dict[str, str]:
    """BIDS entities of a file name; ``suffix`` joins the parts without '-' (``DTI_FA``, ``T1w``, ``pet``)."""
    parts = _NIFTI.sub("", name).split("_")
    ent = dict(p.split("-", 1) for p in parts if "-" in p)
    ent["suffix"] = "_".join(p for p in parts if "-" not in p)
    return ent


def _bids_entries(root: Path, subjects_dir: Path, datatypes: dict[str, str]) -> list[tuple[str, str, str, Path]]:
    """Entries from ``subjects_dir/sub-*/[ses-*/]<datatype>/`` files (BIDS and CAPS share this)."""
    entries = []
    for sub in sorted(subjects_dir.glob("sub-*")):
        for ses in sorted(sub.glob("ses-*")) or [sub]:
            session = ses.name[4:] if ses.name.startswith("ses-") else DEFAULT_SESSION
            for folder, kind in datatypes.items():
                files = sorted(p for p in (ses / folder).glob("*") if _NIFTI.search(p.name))
                chosen: dict[str, Path] = {}
                for path in files:
                    ent = _entities(path.name)
                    if kind == "pet" and ent["suffix"] == "pet":
                        column = TRACERS.get(ent.get("trc", ""), f"PET_{ent.get('trc', 'unknown')}")
                    else:
                        # also BIDS-like names with the modality as suffix (sub-1_ses-t0_PIB, ..._DTI_FA)
                        column = canonical_modality(ent["suffix"])
                        if column not in IMAGE_COLUMNS:
                            continue
                    # CAPS writes a cropped and an uncropped image: prefer the uncropped one
                    if column in chosen and ent.get("desc") == "Crop":
                        continue
                    if column in chosen and _entities(chosen[column].name).get("desc") != "Crop":
                        raise InputError(path, f"a second {column} image for {sub.name} {ses.name} "
                                         f"(also {chosen[column].name})",
                                         "remove the extra run/acquisition or use the folder builder with a pattern")
                    chosen[column] = path
                entries.extend((sub.name, session, c, p) for c, p in chosen.items())
    return entries


def _merge_participants(table: pd.DataFrame, tsv: Path) -> pd.DataFrame:
    if not tsv.is_file() or table.empty:
        return table
    part = pd.read_csv(tsv, sep="\t", dtype={"participant_id": str, "subject": str})
    if "participant_id" not in part.columns and "subject" not in part.columns:
        raise InputError(tsv, "has no participant_id column", "add it (BIDS requires one)")
    part = part.rename(columns={"participant_id": "subject"})
    part = part[[c for c in part.columns if c not in table.columns or c == "subject"]]
    merged = table.merge(part, on="subject", how="left")
    images = [c for c in table.columns if c not in ("subject", "session")]
    covariates = [c for c in part.columns if c != "subject"]
    return merged[["subject", "session", *covariates, *images]]


def build_manifest(kind: str, root: str | Path, out: str | Path, *, pattern: str | None = None,
                   overwrite: bool = False) -> Manifest:
    """Scan ``root`` and write a manifest TSV to ``out`` (paths relative to its folder).

    Args:
        kind: ``"folder"``, ``"bids"`` or ``"caps"``.
        root: the folder to scan.
        out: the ``manifest.tsv`` to write (a folder means ``out/manifest.tsv``).
        pattern: folder kind only: naming pattern (default ``**/{subject}/{modality}.nii.gz``).
        overwrite: replace an existing manifest; otherwise it is an error (nothing is lost).

    Returns:
        the written :class:`Manifest`.
    """
    root, out = Path(root), Path(out)
    if out.is_dir():
        out = out / "manifest.tsv"
    check_output_file(out, overwrite=overwrite, create_parent=True)
    out_dir = out.parent if out.parent != Path("") else Path(".")
    manifest = scan_manifest(kind, root, out_dir, pattern=pattern)
    manifest = Manifest(manifest.table, manifest.root, out)
    write_manifest(manifest, out)
    return manifest


def scan_manifest(kind: str, root: str | Path, base: str | Path | None = None, *,
                  pattern: str | None = None) -> Manifest:
    """Scan ``root`` into a manifest without writing it (``predict --bids`` reads a dataset this way).

    Args:
        kind: ``"folder"``, ``"bids"`` or ``"caps"``.
        root: the folder to scan.
        base: the folder image paths are made relative to (default ``root``).
        pattern: folder kind only: naming pattern (default ``**/{subject}/{modality}.nii.gz``).

    Returns:
        a :class:`Manifest` whose ``source`` is ``root`` (named in errors).
    """
    from neurotrans.names import check_name

    check_name(kind, KINDS, "manifest kind")
    root = Path(root)
    out_dir = Path(base) if base is not None else root
    if not root.is_dir():
        raise InputError(root, "folder not found", "pass the folder that holds the images")
    if pattern is not None and kind != "folder":
        raise InputError(pattern, f"a naming pattern applies to the folder kind, not {kind}",
                         "drop --pattern or use kind 'folder'")
    if kind == "folder":
        table = _table(_folder_entries(root, pattern or DEFAULT_PATTERN), out_dir)
        participants = root / "participants.tsv"
    elif kind == "bids":
        table = _table(_bids_entries(root, root, {"anat": "anat", "dwi": "dwi", "pet": "pet"}), out_dir)
        participants = root / "participants.tsv"
    else:
        if not (root / "subjects").is_dir():
            raise InputError(root, "is not a CAPS folder (no subjects/ inside)",
                             "pass the CAPS root that holds subjects/sub-*/ses-*/t1_linear")
        table = _table(_bids_entries(root, root / "subjects", {"t1_linear": "anat", "pet_linear": "pet"}), out_dir)
        participants = root / "participants.tsv"
    if table.empty:
        hint = f"pattern {pattern or DEFAULT_PATTERN!r}" if kind == "folder" else f"{kind} layout"
        raise InputError(root, f"no image matches the {hint}",
                         "check the folder and the pattern (e.g. '**/{subject}/{modality}.nii.gz')")
    table = _merge_participants(table, participants)
    return Manifest(table, out_dir.resolve(), root)
