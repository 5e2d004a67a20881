"""The fdg model comparison: five models vs the other-subjects reference, on one split or k folds.

Trains U-Net (T1w), U-Net (tissue maps), pix2pix (axial), pix2pix (three planes) and ESIT
(or the ``--models`` given), predicts the held-out subjects, evaluates them and prints a
mean +- SD table (volume scope, SUVR) per model. The three-plane pix2pix is predicted on
axial slices, as in the pix2pix paper; its plane-averaged prediction (a test-time
ensemble) is its own row. With ``--folds K`` every model is trained on each of K
subject-level stratified folds (the papers' protocol): every subject is a test subject
once, and the table gives the mean +- SD of the fold means next to the pooled subjects.

Run: ``python -m neurotrans.experiments.compare_fdg --manifest /tmp/fdg40/manifest.tsv
--out runs/compare_fdg --minutes 10 [--folds 5]``

References: papers/000 (U-Net vs ESIT, Table S1, 5-fold CV), papers/001 (axial vs
three-plane pix2pix, other-subjects baseline, Table 1).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from neurotrans.io.run import REFERENCE_LABEL, RunFolder

MODELS = ("unet_t1_fdg", "unet_tissue_fdg", "pix2pix_axial_fdg", "pix2pix_3plane_fdg", "esit_fdg")
METRICS = ("mae", "psnr", "ssim", "pearson")
PLANES_VARIANT = "planes-all"


def run_model(config: str, manifest: Path, run_dir: Path, minutes: float | None, overrides: Sequence[str] = (),
              device: str = "auto", resume: bool = False) -> dict[str, Path]:
    """Train, predict the test subjects and evaluate one config; returns ``{row label: evaluation folder}``."""
    from neurotrans.inference.predict import predict_command, prediction_label
    from neurotrans.metrics.evaluate import evaluate_command
    from neurotrans.training.run import train_from_config

    run = RunFolder(run_dir)
    if not (run.evaluation / "per_subject.tsv").is_file():
        train_from_config(config, [f"data.manifest={manifest}", *overrides], out=run.root, max_minutes=minutes,
                          device=device, overwrite=not resume, resume=resume)
    info = run.read_info()
    assert info is not None
    variants = [None] + ([PLANES_VARIANT] if len(info.sampling.get("planes", [])) == 3 else [])
    out = {}
    for variant in variants:
        planes = "all" if variant else "trained"
        evaluation = run.variant_evaluation(variant)
        if not (evaluation / "per_subject.tsv").is_file():
            predictions = run.variant_predictions(variant)
            predict_command(run.best_checkpoint(), manifest=manifest, out=predictions.root, device=device,
                            overwrite=True, planes=planes)
            evaluate_command(predictions.root, manifest, "FDG", mask="brainmask", out=evaluation, overwrite=True)
        out[prediction_label(info, planes)] = evaluation
    return out


def per_subject_rows(evaluations: dict[str, list[Path]], units: str = "original") -> pd.DataFrame:
    """Pooled per-subject test rows of every model (label) and of the reference, volume scope."""
    tables = []
    for i, (label, folders) in enumerate(evaluations.items()):
        for fold, folder in enumerate(folders):
            per = pd.read_csv(folder / "per_subject.tsv", sep="\t", dtype={"subject": str, "session": str})
            per = per[(per["scope"] == "volume") & (per["units"] == units)]
            keep = per["method"] != REFERENCE_LABEL
            if i == 0:  # the reference depends on the split only: take it from the first model
                keep |= per["method"] == REFERENCE_LABEL
            per = per[keep].assign(method=per["method"].where(per["method"] == REFERENCE_LABEL, label), fold=fold)
            tables.append(per)
    return pd.concat(tables, ignore_index=True)


def table(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean +- SD per model over pooled subjects, and of the fold means (with one fold: the same)."""
    out = []
    for label, g in rows.groupby("method", sort=False):
        folds = g.groupby("fold")[list(METRICS)].mean()
        row = {"model": label, "n": len(g), "folds": len(folds)}
        for m in METRICS:
            row[f"{m}_mean"], row[f"{m}_std"] = float(g[m].mean()), float(g[m].std(ddof=1))
            row[f"{m}_fold_std"] = float(folds[m].std(ddof=1)) if len(folds) > 1 else float("nan")
        out.append(row)
    df = pd.DataFrame(out)
    ref = df["model"] == REFERENCE_LABEL
    return pd.concat([df[~ref], df[ref]], ignore_index=True)


def model_tests(rows: pd.DataFrame) -> pd.DataFrame:
    """Paired t and Wilcoxon tests between every two models (and the reference) across test subjects."""
    from neurotrans.metrics.evaluate import method_tests

    return method_tests(rows.drop(columns=["fold"]))


def format_table(df: pd.DataFrame) -> str:
    """Markdown table ``model | n | MAE | PSNR | SSIM | r`` with mean +- SD (and SD of fold means)."""
    with_folds = int(df["folds"].max()) > 1
    head = "| model | n | MAE (SUVR) | PSNR (dB) | SSIM | r |"
    lines = [head, "| --- | --- | --- | --- | --- | --- |"]
    for _, r in df.iterrows():
        cells = []
        for m in METRICS:
            digits = 2 if m == "psnr" else 4
            cell = f"{r[f'{m}_mean']:.{digits}f} +- {r[f'{m}_std']:.{digits}f}"
            if with_folds:
                cell += f" (folds {r[f'{m}_fold_std']:.{digits}f})"
            cells.append(cell)
        lines.append(f"| {r['model']} | {int(r['n'])} | " + " | ".join(cells) + " |")
    if with_folds:
        lines.append("")
        lines.append(f"mean +- SD over the {int(df['folds'].max())} folds' test subjects pooled; "
                     "(folds x): SD of the fold means")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("runs/compare_fdg"))
    p.add_argument("--minutes", type=float, default=None, help="training budget per model (and per fold)")
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--folds", type=int, default=0, help="subject-level k-fold CV (0: the configs' fixed split)")
    p.add_argument("--set", action="append", default=[], help="override applied to every model")
    p.add_argument("--device", default="auto")
    p.add_argument("--units", default="original", choices=["original", "normalised"])
    args = p.parse_args(argv)
    manifest = args.manifest.resolve()
    evaluations: dict[str, list[Path]] = {}
    for model in args.models:
        folds = range(args.folds) if args.folds else [None]
        for fold in folds:
            extra = [] if fold is None else ["split.kind=kfold", f"split.folds={args.folds}", f"split.fold={fold}"]
            run_dir = args.out / model / ("" if fold is None else f"fold{fold}")
            for label, folder in run_model(model, manifest, run_dir, args.minutes, [*extra, *args.set],
                                           args.device).items():
                evaluations.setdefault(label, []).append(folder)
    rows = per_subject_rows(evaluations, args.units)
    df = table(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "table.tsv", sep="\t", index=False)
    text = format_table(df)
    (args.out / "table.md").write_text(text + "\n")
    print(text)
    tests = model_tests(rows)
    tests.to_csv(args.out / "tests.tsv", sep="\t", index=False)
    mae = tests[(tests["scope"] == "volume") & (tests["units"] == args.units) & (tests["metric"] == "mae")]
    print("\npaired tests on MAE (volume, two-sided; all metrics in tests.tsv):")
    for _, r in mae.iterrows():
        print(f"  {r['method_a']} - {r['method_b']}: {r['mean_diff']:+.4f}  t p = {r['p_t']:.3g}  "
              f"Wilcoxon p = {r['p_wilcoxon']:.3g}  (n = {int(r['n'])})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
