"""Read a run folder (run.json, evaluation tables, training log) for the report.

Paths come from :class:`~neurotrans.io.run.RunFolder` and the evaluation's table names and
columns from :mod:`neurotrans.metrics.tables` (the contract the evaluation writes to):
``evaluation/per_subject.tsv`` is required; run.json, the other tables, conventions.json,
log.jsonl and summary.json are optional. Everything optional that is absent leaves a
one-line note instead of failing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from neurotrans.errors import InputError
from neurotrans.io.manifest import Manifest, read_manifest
from neurotrans.io.run import REFERENCE_LABEL, RunFolder, RunInfo
from neurotrans.metrics.tables import CONVENTIONS_FILE, REQUIRED_COLUMNS, TABLES, table_file

EVALUATE_FIX = "run `neurotrans evaluate --pred RUN/predictions --manifest MANIFEST --target TARGET` first"

OPTIONAL_TABLES = tuple(t for t in TABLES if t != "per_subject")


@dataclass
class RunData:
    """Everything the report shows, read from one run folder.

    Args:
        run_dir: the run folder.
        info: the run's :class:`RunInfo` from run.json (``None`` when absent).
        manifest: the cohort manifest named in run.json (``None`` when unknown).
        per_subject: per-subject metrics, one row per subject/method/scope/units.
        tables: optional evaluation tables by name (``summary``, ``tests``, ``regional``, ...).
        conventions: conventions.json (``None`` when absent).
        log: training log, one row per log.jsonl line (``None`` when absent).
        demo_summary: summary.json (``None`` when absent).
        simulated: the data are simulated (dataset_description.json or run.json says so).
        notes: one line per section left out, and why.
        explain_cca: explain/cca/summary.tsv of `neurotrans explain cca` (``None`` when absent).
        explain_esit: explain/esit/summary.tsv of `neurotrans explain esit` (``None`` when absent).
    """

    run_dir: Path
    info: RunInfo | None
    manifest: Manifest | None
    per_subject: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    conventions: dict | None = None
    log: pd.DataFrame | None = None
    demo_summary: dict | None = None
    simulated: bool = False
    notes: list[str] = field(default_factory=list)
    explain_cca: pd.DataFrame | None = None
    explain_esit: pd.DataFrame | None = None

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.run_dir)

    @property
    def model_method(self) -> str:
        """The model's row label: the one conventions.json names, else run.json's method, else
        the first method that is not the reference."""
        methods = [m for m in self.per_subject["method"].astype(str).unique() if m != REFERENCE_LABEL]
        for name in ((self.conventions or {}).get("method"), self.info.method if self.info else None):
            if name is not None and str(name) in methods:
                return str(name)
        return methods[0] if methods else REFERENCE_LABEL

    @property
    def target(self) -> str | None:
        if self.info is not None and self.info.target:
            return self.info.target
        target = (self.conventions or {}).get("target")
        return str(target) if target else None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(path, f"is not valid JSON ({err})", "rewrite it, or delete it and rerun the step that writes it") from None
    if not isinstance(data, dict):
        raise InputError(path, "holds a JSON value that is not an object", "rewrite it as a JSON object {...}")
    return data


def read_table(path: Path, name: str) -> pd.DataFrame:
    """Read one evaluation TSV and check its required columns."""
    try:
        table = pd.read_csv(path, sep="\t", dtype={"subject": str, "session": str})
    except pd.errors.EmptyDataError:
        table = pd.DataFrame(columns=list(REQUIRED_COLUMNS.get(name, ())))
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot be parsed as a tab-separated table ({err})",
                         f"rewrite it as UTF-8 TSV with a header row; {EVALUATE_FIX}") from None
    missing = [c for c in REQUIRED_COLUMNS.get(name, ()) if c not in table.columns]
    if missing:
        raise InputError(path, f"lacks column(s) {', '.join(missing)}",
                         f"write it with the current `neurotrans evaluate` ({EVALUATE_FIX})")
    return table


def read_log(path: Path) -> pd.DataFrame:
    """Read log.jsonl (one JSON object per line, each with ``step``) into a table."""
    rows = []
    lines = path.read_text().splitlines()
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            # a run killed mid-write leaves a partial last line: keep what is complete
            if lineno == len(lines):
                break
            raise InputError(f"{path}:{lineno}", "is not a JSON object", "fix or delete the line") from None
        if isinstance(row, dict):
            rows.append(row)
    table = pd.DataFrame(rows)
    if len(table) and "step" not in table.columns:
        table["step"] = range(len(table))
    return table


def _is_simulated(info: RunInfo | None, manifest_dir: Path | None) -> bool:
    if info is not None and info.simulated is True:
        return True
    if manifest_dir is not None:
        desc = manifest_dir / "dataset_description.json"
        if desc.is_file():
            try:
                return json.loads(desc.read_text()).get("Simulated") is True
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                return False
    return False


def load_run(run_dir: str | Path) -> RunData:
    """Read a run folder for the report.

    Args:
        run_dir: folder written by `neurotrans train`/`predict`/`evaluate` (or `demo`).

    Raises:
        InputError: the folder or its evaluation/per_subject.tsv is missing, or a file is malformed.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(run_dir, "run folder not found", "pass the folder given to `neurotrans train --out`")
    folder = RunFolder(run_dir)
    evaluation = folder.evaluation
    if not evaluation.is_dir():
        raise InputError(evaluation, "evaluation folder not found", EVALUATE_FIX)
    per_subject_path = evaluation / table_file("per_subject")
    if not per_subject_path.is_file():
        raise InputError(per_subject_path, "per-subject metrics not found", EVALUATE_FIX)
    per_subject = read_table(per_subject_path, "per_subject")
    if per_subject.empty:
        raise InputError(per_subject_path, "holds no rows", f"check that predictions exist; {EVALUATE_FIX}")
    notes: list[str] = []

    manifest = None
    info = folder.read_info()
    if info is not None:
        if info.manifest:
            mpath = Path(info.manifest)
            mpath = mpath if mpath.is_absolute() else run_dir / mpath
            if mpath.exists():
                manifest = read_manifest(mpath)
            else:
                notes.append(f"Montages left out: the manifest {mpath} named in run.json is missing.")
        else:
            notes.append("Montages left out: run.json names no manifest.")
    else:
        notes.append("Run details and montages left out: run.json is absent (built from the evaluation files alone).")

    tables: dict[str, pd.DataFrame] = {}
    for name in OPTIONAL_TABLES:
        path = evaluation / table_file(name)
        if path.is_file():
            tables[name] = read_table(path, name)
        elif name in ("summary", "tests"):
            notes.append(f"{'Summary table' if name == 'summary' else 'Statistical tests'} left out: "
                         f"evaluation/{table_file(name)} is absent.")

    conventions = None
    if (evaluation / CONVENTIONS_FILE).is_file():
        conventions = _read_json(evaluation / CONVENTIONS_FILE)
    else:
        notes.append(f"Metric conventions left out: evaluation/{CONVENTIONS_FILE} is absent.")

    log = None
    if folder.log_jsonl.is_file():
        log = read_log(folder.log_jsonl)
    else:
        notes.append(f"Training curves left out: {folder.log_jsonl.name} is absent.")

    demo_summary = _read_json(folder.summary_json) if folder.summary_json.is_file() else None
    explain_cca, explain_esit = read_explain(run_dir, info, notes)
    manifest_dir = manifest.source.parent if manifest is not None and manifest.source is not None else None
    return RunData(run_dir=run_dir, info=info, manifest=manifest, per_subject=per_subject, tables=tables,
                   conventions=conventions, log=log, demo_summary=demo_summary,
                   simulated=_is_simulated(info, manifest_dir), notes=notes, explain_cca=explain_cca,
                   explain_esit=explain_esit)


EXPLAIN_COLUMNS = {"cca": ("layer", "scale", "concept", "kind", "mean", "sd", "n"),
                   "esit": ("value", "region", "channel", "r_gm", "p_gm", "n", "dominant_share")}


def read_explain(run_dir: Path, info: RunInfo | None, notes: list[str]) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The summaries `neurotrans explain cca` / `esit` left in ``RUN/explain`` (``None`` when absent)."""
    from neurotrans.explain.folder import ExplainFolder

    folder = ExplainFolder.of_run(run_dir)
    out: list[pd.DataFrame | None] = []
    for path, command, applies in ((folder.cca_summary, "cca", info is None or info.method != "esit"),
                                   (folder.esit_summary, "esit", info is not None and info.method == "esit")):
        fix = f"rerun `neurotrans explain {command} {run_dir} --overwrite`"
        if not path.is_file():
            out.append(None)
            if applies:
                notes.append(f"{'CCA similarity' if command == 'cca' else 'ESIT maps'} left out: run "
                             f"`neurotrans explain {command} {run_dir}` first.")
            continue
        try:
            table = pd.read_csv(path, sep="\t")
        except pd.errors.EmptyDataError:
            table = pd.DataFrame(columns=list(EXPLAIN_COLUMNS[command]))
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise InputError(path, f"cannot be parsed as a tab-separated table ({err})", fix) from None
        missing = [c for c in EXPLAIN_COLUMNS[command] if c not in table.columns]
        if missing:
            raise InputError(path, f"lacks column(s) {', '.join(missing)}", fix)
        out.append(table)
    return out[0], out[1]
