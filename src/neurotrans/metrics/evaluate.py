"""`neurotrans evaluate`: compare predicted volumes with the real targets of a manifest.

:func:`evaluate` runs the producers, each returning one table and writing nothing:
pairing (:mod:`~neurotrans.metrics.pairing`), image metrics (:mod:`~neurotrans.metrics.scores`),
the other-subjects reference (:mod:`~neurotrans.metrics.reference`), regional PET tables
(:mod:`~neurotrans.metrics.regional`) and, for PIB of an MS cohort, the MS tables
(:mod:`~neurotrans.metrics.evaluate_ms`). :func:`write_evaluation` alone writes them, each
file once. Problems (missing, extra, in-sample or mismatched predictions) are listed in
``problems.tsv`` and printed, never skipped silently; when no prediction at all can be
compared the evaluation stops with one error.

References:
    Lan et al./pix2pix MRI->PET (Table 1, "other subjects" baseline); Sun et al.,
    DUAL-GLOW, ICCV 2019 (Table 2); Wei, PhD thesis 2020 (PSNR with MAX, Eq. 3.9).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from neurotrans.analysis.regional import regional_summary
from neurotrans.errors import InputError
from neurotrans.io.atomic import write_text_atomic
from neurotrans.io.manifest import Manifest, read_manifest
from neurotrans.io.outputs import check_output_folder
from neurotrans.io.run import REFERENCE_LABEL, PredictionFolder, RunFolder, RunInfo
from neurotrans.metrics.conventions import evaluation_conventions
from neurotrans.metrics.evaluate_ms import MS_COLUMNS, MSEvaluation, evaluate_ms, format_ms
from neurotrans.metrics.pairing import in_sample_subjects, load_pairs, pair_predictions
from neurotrans.metrics.reference import other_subjects_reference, reference_images
from neurotrans.metrics.regional import bland_altman_table, diagnosis_table, regional_table
from neurotrans.metrics.scores import (
    METRIC_NAMES,
    image_metrics,
    image_metrics_table,
    method_tests,
    summarise,
)
from neurotrans.metrics.tables import CONVENTIONS_FILE, EVALUATION_FILES, table_file
from neurotrans.names import MASKS, MODALITIES, PET_MODALITIES, check_name

DEFAULT_LABEL = "model"


@dataclass(frozen=True)
class EvaluationResult:
    """All tables of one evaluation (``None`` where not applicable, e.g. regional for MRI).

    ``bland_altman`` holds the image rows and, for an MS cohort, the MS rows; ``conventions``
    holds the MS conventions under ``ms``; ``notes`` says what was left out and why.
    """

    per_subject: pd.DataFrame
    summary: pd.DataFrame
    tests: pd.DataFrame
    problems: pd.DataFrame
    conventions: dict
    regional: pd.DataFrame | None = None
    regional_summary: pd.DataFrame | None = None
    diagnosis: pd.DataFrame | None = None
    bland_altman: pd.DataFrame | None = None
    ms: MSEvaluation | None = None
    notes: tuple[str, ...] = ()

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every computed table by name (:data:`neurotrans.metrics.tables.TABLES`)."""
        tables = {"per_subject": self.per_subject, "summary": self.summary, "tests": self.tests,
                  "problems": self.problems, "regional": self.regional, "regional_summary": self.regional_summary,
                  "diagnosis": self.diagnosis, "bland_altman": self.bland_altman,
                  **(self.ms.tables() if self.ms is not None else {})}
        return {name: table for name, table in tables.items() if table is not None}


def model_label(predictions: PredictionFolder, info: RunInfo | None) -> str:
    """The model's row label: the prediction folder's ``neurotrans.label``, else the run's method, else ``model``."""
    extra = predictions.read_description().get("neurotrans")
    label = extra.get("label") if isinstance(extra, dict) else None
    label = str(label) if label else (info.method if info is not None and info.method else DEFAULT_LABEL)
    if label == REFERENCE_LABEL:
        raise InputError(predictions.root / PredictionFolder.DESCRIPTION, f"labels the model {REFERENCE_LABEL!r}, "
                         "the name of the reference", "give the predictions another label")
    return label


def reference_subjects(train_subjects: str | Path | None, run: RunFolder | None,
                       info: RunInfo | None) -> tuple[set[str] | None, str]:
    """Training subjects of the other-subjects reference and where they came from (``None``: all others)."""
    if train_subjects is not None:
        path = Path(train_subjects)
        if not path.is_file():
            raise InputError(path, "training-subject list not found", "pass a text file with one subject id per line")
        ids = {s.strip() for s in path.read_text().splitlines() if s.strip() and not s.startswith("#")}
        return ids, str(path)
    if run is not None and info is not None and info.train_subjects:
        return set(info.train_subjects), str(run.run_json)
    return None, "all other manifest subjects"


def _check_inputs(man: Manifest, target: str, mask: str | None, pred_dir: Path) -> None:
    where = man.source or man.root
    try:
        check_name(target, MODALITIES, "target modality")
        if mask is not None:
            check_name(mask, MASKS, "mask")
    except ValueError as err:
        raise InputError(where, str(err), "pass one of the names listed") from None
    for col in [target] + ([mask] if mask else []):
        if col not in man.table.columns:
            raise InputError(where, f"manifest has no {col!r} column", f"choose one of {', '.join(man.image_columns)}")
    if not pred_dir.is_dir():
        raise InputError(pred_dir, "prediction folder not found", "pass the folder written by `neurotrans predict`")


def _nothing_paired(pred_dir: Path, target: str, problems: pd.DataFrame) -> InputError:
    counts = ", ".join(f"{kind}: {n}" for kind, n in problems["kind"].value_counts().items())
    if problems.empty:
        found = "every manifest row is a training or validation subject of the run"
    else:
        first = problems.iloc[0]
        found = f"{counts}; first: {first['file']}: {first['problem']}"
    return InputError(pred_dir, f"no prediction of {target} could be compared with a manifest row ({found})",
                      "predict the test subjects of this manifest into the folder (`neurotrans predict`), "
                      "on the targets' grids")


def _concat(tables: list[pd.DataFrame]) -> pd.DataFrame:
    filled = [t for t in tables if len(t)]
    return pd.concat(filled, ignore_index=True) if filled else tables[0]


def evaluate(pred_dir: str | Path, manifest: str | Path | Manifest, target: str, mask: str | None = None,
             train_subjects: str | Path | None = None, other_subjects: bool = True) -> EvaluationResult:
    """Compute every table of an evaluation without writing anything.

    Args:
        pred_dir: the prediction folder (:class:`~neurotrans.io.run.PredictionFolder`).
        manifest: the cohort manifest (path or :class:`Manifest`) holding the real targets.
        target: the predicted modality (e.g. ``"FDG"``).
        mask: mask column to evaluate inside (e.g. ``"brainmask"``), or ``None``.
        train_subjects: text file of training subject ids for the other-subjects reference
            (default: the run's training split, else every other subject).
        other_subjects: compute that reference (cost: tests x training subjects comparisons).

    Raises:
        InputError: bad names or files, or no prediction could be compared at all.
    """
    pred_dir = Path(pred_dir)
    man = manifest if isinstance(manifest, Manifest) else read_manifest(manifest)
    _check_inputs(man, target, mask, pred_dir)
    predictions = PredictionFolder(pred_dir)
    run = RunFolder.of_predictions(pred_dir)
    info = run.read_info() if run is not None else None
    label = model_label(predictions, info)
    pairing = pair_predictions(predictions, man, target, in_sample_subjects(info))
    if pairing.pairs.empty:
        raise _nothing_paired(pred_dir, target, pairing.problems)
    pairs = load_pairs(pairing.pairs, man, mask)
    pet = target in PET_MODALITIES

    per_subject, problems = [image_metrics_table(pairs, label, pet)], [pairing.problems]
    ref_ids, ref_source = reference_subjects(train_subjects, run, info)
    if other_subjects:
        ref, ref_problems = other_subjects_reference(pairs, reference_images(man, target, ref_ids), pet)
        per_subject.append(ref)
        problems.append(ref_problems)
    table = _concat(per_subject)
    conventions = evaluation_conventions(target, label, mask, pet, other_subjects, ref_source)
    pet_tables: dict = {}
    if pet:
        regional = regional_table(pairs)
        pet_tables = {"regional": regional, "regional_summary": regional_summary(regional),
                      "bland_altman": bland_altman_table(regional, pairs, masked=mask is not None),
                      "diagnosis": diagnosis_table(regional) if "group" in man.table.columns else None}
    ms, notes = None, []
    if target == "PIB" and all(c in man.table.columns for c in MS_COLUMNS):
        try:
            ms = evaluate_ms(man, pred_dir, target, pairs=pairing.pairs)
        except InputError as err:  # the image metrics stand; say why the MS tables are absent
            notes.append(f"MS analyses not computed: {err}")
    if ms is not None:
        pet_tables["bland_altman"] = _concat([pet_tables["bland_altman"], ms.bland_altman])
        conventions["ms"] = ms.conventions
    return EvaluationResult(per_subject=table, summary=summarise(table), tests=method_tests(table),
                            problems=_concat(problems), conventions=conventions, ms=ms, notes=tuple(notes),
                            **pet_tables)


def _tsv(df: pd.DataFrame) -> str:
    return df.to_csv(sep="\t", index=False, lineterminator="\n", float_format="%.6g")


def write_evaluation(folder: str | Path, result: EvaluationResult) -> list[Path]:
    """Write every table of ``result`` and conventions.json into ``folder``, each once and atomically.

    Result files of an earlier evaluation that this one does not have (e.g. MS tables) are
    removed: the folder describes one evaluation. Returns the files written.
    """
    folder = Path(folder)
    written = [write_text_atomic(folder / table_file(name), _tsv(df)) for name, df in result.tables().items()]
    written.append(write_text_atomic(folder / CONVENTIONS_FILE, json.dumps(result.conventions, indent=2) + "\n"))
    names = {p.name for p in written}
    for name in EVALUATION_FILES:
        if name not in names and (folder / name).is_file():
            (folder / name).unlink()
    return written


def print_summary(result: EvaluationResult) -> None:
    """A short human-readable summary on stdout."""
    s = result.summary
    print(f"evaluation of {result.conventions['target']} ({result.conventions['method']}), "
          f"mask: {result.conventions['mask'] or 'none'}")
    for (method, scope, units), g in s.groupby(["method", "scope", "units"], sort=False):
        vals = dict(zip(g["metric"], g["mean"], strict=True))
        n = int(g["n"].iloc[0])
        print(f"  {method:>15} {scope:>9} {units:>10}  n={n:<3} MAE {vals['mae']:.4g}  MSE {vals['mse']:.4g}  "
              f"PSNR {vals['psnr']:.2f} dB  SSIM {vals['ssim']:.4f}  r {vals['pearson']:.3f}")
    if result.diagnosis is not None:
        for _, r in result.diagnosis.iterrows():
            print(f"  SVM CN/AD on {r['data']:>9} PET: accuracy {r['accuracy']:.2f}  FNR {r['fnr']:.2f}  "
                  f"FPR {r['fpr']:.2f}  ({r['n_subjects']} subjects, {r['folds']} folds)")
    for line in (format_ms(result.ms) if result.ms is not None else []) + list(result.notes):
        print(f"  {line}")
    for _, p in result.problems.iterrows():
        print(f"  problem: {p['subject']} {p['session']} {p['file']}: {p['problem']}")


def evaluate_command(pred_dir: str | Path, manifest: str | Path, target: str, mask: str | None = None,
                     out: str | Path | None = None, train_subjects: str | Path | None = None,
                     overwrite: bool = False) -> EvaluationResult:
    """Evaluate, write the result files into ``out`` and print a summary (`neurotrans evaluate`).

    Args:
        pred_dir: the prediction folder (``RUN/predictions`` or any ``predict --out``).
        manifest: manifest TSV of the cohort with the real targets.
        target: predicted modality, e.g. ``"FDG"`` or ``"PIB"``.
        mask: mask column to evaluate inside.
        out: output folder (default: the run's ``evaluation/``, i.e. ``pred_dir/../evaluation``).
        train_subjects: text file of training subject ids (other-subjects reference).
        overwrite: replace existing result files.

    Raises:
        InputError: results exist and ``overwrite`` is off, bad inputs, or nothing could be evaluated.
    """
    pred_dir = Path(pred_dir)
    out = Path(out) if out is not None else (RunFolder.of_predictions(pred_dir) or RunFolder(pred_dir.parent)).evaluation
    existing = [f for f in EVALUATION_FILES if (out / f).exists()]
    if existing and not overwrite:
        raise InputError(out, f"already holds evaluation results ({', '.join(existing[:3])})",
                         "choose another --out or pass --overwrite")
    check_output_folder(out)  # before the (long) evaluation, not after it
    result = evaluate(pred_dir, read_manifest(manifest), target, mask=mask, train_subjects=train_subjects)
    write_evaluation(out, result)
    print_summary(result)
    print(f"results: {out}")
    return result


__all__ = ["EvaluationResult", "METRIC_NAMES", "evaluate", "evaluate_command", "image_metrics", "method_tests",
           "model_label", "print_summary", "summarise", "write_evaluation"]
