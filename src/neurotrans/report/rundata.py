"""Read a run folder (run.json, evaluation tables, training log) for the report.

The layout is the contract between trainer, evaluator and report::

    RUN/run.json                       method, manifest, inputs, target, splits, simulated
    RUN/predictions/<subject>_<session>_<TARGET>.nii.gz
    RUN/evaluation/per_subject.tsv     required
    RUN/evaluation/{summary,tests}.tsv, conventions.json, and optional analyses
    RUN/log.jsonl, RUN/summary.json    optional

Everything optional that is absent leaves a one-line note instead of failing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from neurotrans.errors import InputError
from neurotrans.io.manifest import Manifest, read_manifest

EVALUATE_FIX = "run `neurotrans evaluate --pred RUN/predictions --manifest MANIFEST --target TARGET` first"

# columns each table must have; a table lacking them is an error, never guessed around
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "per_subject": ("subject", "session", "method", "scope", "units", "mae", "mse", "psnr", "ssim", "pearson"),
    "summary": ("method", "scope", "units", "metric", "mean", "std", "min", "max", "n"),
    "tests": ("method_a", "method_b", "scope", "units", "metric", "mean_diff", "t", "p_t", "n"),
    "problems": (),
    "regional": ("subject", "region", "real", "synthetic"),
    "regional_summary": ("region",),
    "diagnosis": ("data",),
    "bland_altman": ("quantity", "bias", "loa_low", "loa_high"),
    "lesions": (),
    "myelin_discrepancy": ("roi",),
    "indices": (),
    "edss_regression": ("term", "coef"),
}
OPTIONAL_TABLES = ("summary", "tests", "problems", "regional", "regional_summary", "diagnosis",
                   "bland_altman", "lesions", "myelin_discrepancy", "indices", "edss_regression")
REFERENCE_METHOD = "other_subjects"


@dataclass
class RunData:
    """Everything the report shows, read from one run folder.

    Args:
        run_dir: the run folder.
        info: run.json as a dict (``None`` when absent).
        manifest: the cohort manifest named in run.json (``None`` when unknown).
        per_subject: per-subject metrics, one row per subject/method/scope/units.
        tables: optional evaluation tables by name (``summary``, ``tests``, ``regional``, ...).
        conventions: conventions.json (``None`` when absent).
        log: training log, one row per log.jsonl line (``None`` when absent).
        demo_summary: summary.json (``None`` when absent).
        simulated: the data are simulated (dataset_description.json or run.json says so).
        notes: one line per section left out, and why.
    """

    run_dir: Path
    info: dict | None
    manifest: Manifest | None
    per_subject: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    conventions: dict | None = None
    log: pd.DataFrame | None = None
    demo_summary: dict | None = None
    simulated: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def model_method(self) -> str:
        """The run's own method: run.json's, else the first that is not the reference."""
        methods = [m for m in self.per_subject["method"].astype(str).unique() if m != REFERENCE_METHOD]
        if self.info and self.info.get("method") in methods:
            return str(self.info["method"])
        return methods[0] if methods else REFERENCE_METHOD

    @property
    def target(self) -> str | None:
        return str(self.info["target"]) if self.info and self.info.get("target") else None


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


def _is_simulated(info: dict | None, manifest_dir: Path | None) -> bool:
    if info and info.get("simulated") is True:
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
    evaluation = run_dir / "evaluation"
    if not evaluation.is_dir():
        raise InputError(evaluation, "evaluation folder not found", EVALUATE_FIX)
    per_subject_path = evaluation / "per_subject.tsv"
    if not per_subject_path.is_file():
        raise InputError(per_subject_path, "per-subject metrics not found", EVALUATE_FIX)
    per_subject = read_table(per_subject_path, "per_subject")
    if per_subject.empty:
        raise InputError(per_subject_path, "holds no rows", f"check that predictions exist; {EVALUATE_FIX}")
    notes: list[str] = []

    info = None
    manifest = None
    run_json = run_dir / "run.json"
    if run_json.is_file():
        info = _read_json(run_json)
        if info.get("manifest"):
            mpath = Path(str(info["manifest"]))
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
        path = evaluation / f"{name}.tsv"
        if path.is_file():
            tables[name] = read_table(path, name)
        elif name in ("summary", "tests"):
            notes.append(f"{'Summary table' if name == 'summary' else 'Statistical tests'} left out: "
                         f"evaluation/{name}.tsv is absent.")

    conventions = None
    if (evaluation / "conventions.json").is_file():
        conventions = _read_json(evaluation / "conventions.json")
    else:
        notes.append("Metric conventions left out: evaluation/conventions.json is absent.")

    log = None
    if (run_dir / "log.jsonl").is_file():
        log = read_log(run_dir / "log.jsonl")
    else:
        notes.append("Training curves left out: log.jsonl is absent.")

    demo_summary = _read_json(run_dir / "summary.json") if (run_dir / "summary.json").is_file() else None
    manifest_dir = manifest.source.parent if manifest is not None and manifest.source is not None else None
    return RunData(run_dir=run_dir, info=info, manifest=manifest, per_subject=per_subject, tables=tables,
                   conventions=conventions, log=log, demo_summary=demo_summary,
                   simulated=_is_simulated(info, manifest_dir), notes=notes)
