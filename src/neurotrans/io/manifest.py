"""Cohort manifests: one row per subject and session, image paths relative to the file.

Columns: ``subject``, ``session``, covariates (``age``, ``sex``, ``group``, ...) and one
column per modality or mask (names in :mod:`neurotrans.names`) holding a path relative to
the manifest's folder (empty where the image is missing).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from neurotrans.errors import InputError
from neurotrans.io.atomic import write_text_atomic
from neurotrans.names import IMAGE_COLUMNS

REQUIRED_COLUMNS = ("subject", "session")


@dataclass(frozen=True)
class Manifest:
    """A cohort table and the folder its relative paths start from.

    Args:
        table: one row per (subject, session).
        root: folder the image paths are relative to.
        source: the TSV it was read from, if any (named in errors).
    """

    table: pd.DataFrame
    root: Path
    source: Path | None = None

    def __post_init__(self) -> None:
        where = self.source or self.root
        missing = [c for c in REQUIRED_COLUMNS if c not in self.table.columns]
        if missing:
            raise InputError(where, f"manifest lacks column(s) {', '.join(missing)}",
                             "add a `subject` and a `session` column (session may be one value for all rows)")
        from neurotrans.io.run import bids_label

        for column, entity in (("subject", "sub"), ("session", "ses")):
            for value in dict.fromkeys(self.table[column].astype(str)):
                try:
                    bids_label(value, entity)
                except InputError as err:
                    raise InputError(where, f"{column} {value!r} {err.problem}", err.fix) from None
        keys = self.table["subject"].astype(str) + "/" + self.table["session"].astype(str)
        dup = keys[keys.duplicated()].tolist()
        if dup:
            raise InputError(where, f"duplicate subject/session rows: {', '.join(dup[:5])}",
                             "give every subject a unique id (one row per subject and session)")

    def __len__(self) -> int:
        return len(self.table)

    @property
    def image_columns(self) -> list[str]:
        """Modality and mask columns present in the table, in canonical order."""
        return [c for c in IMAGE_COLUMNS if c in self.table.columns]

    @property
    def subjects(self) -> list[str]:
        """Unique subject ids in order of appearance."""
        return list(dict.fromkeys(self.table["subject"].astype(str)))

    def key(self, i: int) -> str:
        """``subject_session`` identifier of row ``i`` (used in output file names)."""
        row = self.table.iloc[i]
        return f"{row['subject']}_{row['session']}"

    def path(self, i: int, column: str) -> Path | None:
        """Absolute path of image ``column`` in row ``i``, ``None`` when empty."""
        if column not in self.table.columns:
            raise InputError(self.source or self.root, f"manifest has no column {column!r}",
                             f"add it or choose one of: {', '.join(self.image_columns)}")
        value = self.table.iloc[i][column]
        if pd.isna(value) or str(value).strip() == "":
            return None
        p = Path(str(value))
        return p if p.is_absolute() else self.root / p

    def rows(self) -> Iterator[tuple[int, pd.Series]]:
        """Iterate ``(index, row)`` pairs."""
        yield from ((i, self.table.iloc[i]) for i in range(len(self.table)))

    def subset(self, subjects: list[str] | set[str]) -> Manifest:
        """Rows of the given subjects only."""
        keep = self.table["subject"].astype(str).isin(set(subjects))
        return Manifest(self.table[keep].reset_index(drop=True), self.root, self.source)


def read_manifest(path: str | Path) -> Manifest:
    """Read a ``manifest.tsv``."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.tsv"
    if not path.is_file():
        raise InputError(path, "manifest not found",
                         "pass a manifest.tsv (build one with `neurotrans data manifest`)")
    try:
        table = pd.read_csv(path, sep="\t", dtype={"subject": str, "session": str}, keep_default_na=True)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot be parsed as a tab-separated table ({err})",
                         "save it as UTF-8 TSV with a header row") from None
    except pd.errors.EmptyDataError:
        raise InputError(path, "is empty (not even a header row)",
                         "build it with `neurotrans data manifest` or write a header row and one row per subject") from None
    if table.empty:
        # every command would do nothing (or fail later in a less clear way): refuse the file itself
        raise InputError(path, "has a header row but no subject row",
                         "add one row per subject and session (or build it with `neurotrans data manifest`)")
    return Manifest(table, path.parent.resolve(), path)


def write_manifest(manifest: Manifest | pd.DataFrame, path: str | Path) -> Path:
    """Write a manifest TSV atomically (paths stay as given: keep them relative)."""
    table = manifest.table if isinstance(manifest, Manifest) else manifest
    return write_text_atomic(path, table.to_csv(sep="\t", index=False, lineterminator="\n"))
