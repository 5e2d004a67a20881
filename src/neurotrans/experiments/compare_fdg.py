"""Issue 4's comparison on a simulated fdg cohort: five models vs the other-subjects reference.

Trains U-Net (T1w), U-Net (tissue maps), pix2pix (axial), pix2pix (three planes) and ESIT
with one fixed subject-level split, predicts the held-out subjects, evaluates them and
prints a mean +- std table (volume scope) per model.

Run: ``python -m neurotrans.experiments.compare_fdg --manifest /tmp/fdg40/manifest.tsv
--out runs/compare_fdg --minutes 10``

References: papers/000 (U-Net vs ESIT, Table S1), papers/001 (axial vs three-plane
pix2pix, other-subjects baseline, Table 1).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

MODELS = ("unet_t1_fdg", "unet_tissue_fdg", "pix2pix_axial_fdg", "pix2pix_3plane_fdg", "esit_fdg")
METRICS = ("mae", "psnr", "ssim")


def run_model(config: str, manifest: Path, out: Path, minutes: float | None, overrides: Sequence[str] = (),
              device: str = "auto", resume: bool = False) -> Path:
    """Train, predict the test subjects and evaluate one config; returns its run folder."""
    from neurotrans.inference.predict import predict_command
    from neurotrans.metrics.evaluate import evaluate_command
    from neurotrans.training.run import train_from_config

    run = out / config
    if not (run / "evaluation" / "per_subject.tsv").is_file():
        train_from_config(config, [f"data.manifest={manifest}", *overrides], out=run, max_minutes=minutes,
                          device=device, overwrite=not resume, resume=resume)
        ckpt = run / "checkpoints" / ("best.pt" if (run / "checkpoints" / "best.pt").is_file() else "last.pt")
        predict_command(ckpt, manifest=manifest, out=run / "predictions", device=device, overwrite=True)
        evaluate_command(run / "predictions", manifest, "FDG", mask="brainmask", out=run / "evaluation",
                         overwrite=True)
    return run


def table(runs: dict[str, Path], units: str = "original") -> pd.DataFrame:
    """Mean +- std per model (and the other-subjects reference, from the first run) on the test subjects."""
    rows = []
    for i, (name, run) in enumerate(runs.items()):
        per = pd.read_csv(run / "evaluation" / "per_subject.tsv", sep="\t")
        per = per[(per["scope"] == "volume") & (per["units"] == units)]
        method = json.loads((run / "run.json").read_text())["method"]
        groups = [(name, per[per["method"] == method])]
        if i == 0:
            groups.append(("other_subjects", per[per["method"] == "other_subjects"]))
        for label, g in groups:
            row = {"model": label, "n": len(g)}
            for m in METRICS:
                row[f"{m}_mean"], row[f"{m}_std"] = float(g[m].mean()), float(g[m].std(ddof=1))
            rows.append(row)
    return pd.DataFrame(rows)


def model_tests(runs: dict[str, Path]) -> pd.DataFrame:
    """Paired t and Wilcoxon tests between every two models (and the reference) across test subjects."""
    from neurotrans.metrics.evaluate import method_tests

    tables = []
    for i, (name, run) in enumerate(runs.items()):
        per = pd.read_csv(run / "evaluation" / "per_subject.tsv", sep="\t", dtype={"subject": str, "session": str})
        method = json.loads((run / "run.json").read_text())["method"]
        per = per[(per["method"] == method) | ((per["method"] == "other_subjects") & (i == 0))]
        tables.append(per.assign(method=per["method"].where(per["method"] == "other_subjects", name)))
    return method_tests(pd.concat(tables, ignore_index=True))


def format_table(df: pd.DataFrame) -> str:
    """Markdown table ``model | n | MAE | PSNR | SSIM`` with mean +- std."""
    lines = ["| model | n | MAE | PSNR (dB) | SSIM |", "| --- | --- | --- | --- | --- |"]
    for _, r in df.iterrows():
        cells = [f"{r[f'{m}_mean']:.4f} +- {r[f'{m}_std']:.4f}" if m != "psnr"
                 else f"{r[f'{m}_mean']:.2f} +- {r[f'{m}_std']:.2f}" for m in METRICS]
        lines.append(f"| {r['model']} | {int(r['n'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("runs/compare_fdg"))
    p.add_argument("--minutes", type=float, default=None, help="training budget per model")
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--set", action="append", default=[], help="override applied to every model")
    p.add_argument("--device", default="auto")
    p.add_argument("--units", default="original", choices=["original", "normalised"])
    args = p.parse_args(argv)
    runs = {m: run_model(m, args.manifest.resolve(), args.out, args.minutes, args.set, args.device)
            for m in args.models}
    df = table(runs, args.units)
    df.to_csv(args.out / "table.tsv", sep="\t", index=False)
    text = format_table(df)
    (args.out / "table.md").write_text(text + "\n")
    print(text)
    tests = model_tests(runs)
    tests.to_csv(args.out / "tests.tsv", sep="\t", index=False)
    mae = tests[(tests["scope"] == "volume") & (tests["units"] == args.units) & (tests["metric"] == "mae")]
    print("\npaired tests on MAE (volume, two-sided; all metrics in tests.tsv):")
    for _, r in mae.iterrows():
        print(f"  {r['method_a']} - {r['method_b']}: {r['mean_diff']:+.4f}  t p = {r['p_t']:.3g}  "
              f"Wilcoxon p = {r['p_wilcoxon']:.3g}  (n = {int(r['n'])})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
