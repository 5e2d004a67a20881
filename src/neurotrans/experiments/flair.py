"""Multi-sequence MRI -> FLAIR on the simulated ms cohort: Tables 2.1 and 2.2, the sequence ablation, P3S.

Subject-level k-fold cross-validation (stratified by group, no validation subjects: the
thesis trains on 4 folds and tests on the 5th), every model trained by the packaged
configs with one CPU recipe for all deep models (fixed steps, stated in ``recipe.json``):

- ``table22``: random forest, modality propagation, voxel MLP, 2-layer CNN, U-Net, FCN:
  MSE and SSIM (normalised units of ``neurotrans evaluate``: target min-max inside the
  brain), lesion contrast Ratio 1 (lesions / NAWM) and Ratio 2 (lesions / NAWM within
  5 voxels) of synthetic and real FLAIR, paired tests against the FCN;
- ``ablation``: the FCN without each sequence and on the thesis's subsets (T1+DIR, T2+DIR,
  T1+T2, T1+T2+DIR, T1+T2+PD), and the P3S ranking of the 5-sequence model against the
  drop-one ranking (Spearman rho);
- ``table21``: FCN widths 32/64/96 (3 hidden layers) and depths 2/4/6 (64 filters), with
  parameter counts.

Test subjects are predicted with the library's ``predict_subject`` on the whole volume in
one window (the networks are fully convolutional; windows of the 16^3 training patch size
would cost ~2.5x more on a CPU). Rows are appended to ``results.tsv`` as they come, so a
stopped run keeps what it finished and ``--tables`` rebuilds the tables from it.

Run: ``python -m neurotrans.experiments.flair --manifest MS/manifest_t0.tsv --out runs/flair --folds 3``

References: Wei 2020 PhD thesis ch. 2 (Tables 2.1-2.4, Fig. 2.6); Wei et al. 2019.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SEQUENCES = ("T1w", "T2w", "PDw", "T1SE", "DIR")
TARGET = "FLAIR"
# the thesis's Table 2.4: each sequence dropped, then its subsets (2.4c)
ABLATION: dict[str, tuple[str, ...]] = {
    "all": SEQUENCES,
    **{f"-{s}": tuple(x for x in SEQUENCES if x != s) for s in SEQUENCES},
    "T1w+DIR": ("T1w", "DIR"), "T2w+DIR": ("T2w", "DIR"), "T1w+T2w": ("T1w", "T2w"),
    "T1w+T2w+DIR": ("T1w", "T2w", "DIR"), "T1w+T2w+PDw": ("T1w", "T2w", "PDw"),
}
TABLE21: dict[str, dict[str, int]] = {
    "F=32 L=3": {"features": 32, "hidden_layers": 3}, "F=64 L=3": {"features": 64, "hidden_layers": 3},
    "F=96 L=3": {"features": 96, "hidden_layers": 3}, "F=64 L=2": {"features": 64, "hidden_layers": 2},
    "F=64 L=4": {"features": 64, "hidden_layers": 4}, "F=64 L=6": {"features": 64, "hidden_layers": 6},
}
TABLE22 = ("random_forest", "modality_propagation", "voxel_mlp", "cnn2layer", "unet", "fcn")
CONFIGS = {"random_forest": "random_forest_flair", "modality_propagation": "modality_propagation_flair",
           "voxel_mlp": "voxel_mlp_flair", "cnn2layer": "cnn2layer_flair", "unet": "unet_flair", "fcn": "fcn_flair"}


def recipe(steps: int, ablation_features: int) -> dict[str, Any]:
    """The experiment's overrides of the packaged configs (CPU budget), per model."""
    deep = ["data.patch_size=[16,16,16]", "data.samples_per_volume=8", "data.batch_size=2", "optim.name=adam",
            "optim.lr=0.001", "optim.betas=[0.9,0.999]", "optim.momentum=0.0", f"trainer.max_steps={steps}",
            "trainer.early_stopping=none", f"trainer.checkpoint_every={steps}"]
    return {
        "random_forest": ["model.n_samples=10000"],
        "modality_propagation": ["model.search_radius=1", "model.max_library=8"],
        "voxel_mlp": ["model.n_samples=20000", "model.max_iter=100"],
        "cnn2layer": [*deep, "model.features=16"],
        "unet": deep,
        "fcn": deep,
        "ablation_fcn": [*deep, f"model.generator_args={{features: {ablation_features}, hidden_layers: 3}}"],
        "deviations": [
            f"deep models: Adam lr 1e-3, batch 2 of 16^3 patches (8 per subject per epoch), {steps} steps, no "
            "early stopping (the thesis: SGD lr 5e-4, batch 1 whole volumes, UP early stopping, 1.5 days on a GPU)",
            "random forest on 10,000 sampled voxels (the packaged default 50,000)",
            "modality propagation: search radius 1 (3^3 window), library of 8 training subjects",
            "voxel MLP on 20,000 voxels, <= 100 epochs",
            "2-layer CNN with 16 maps per layer (the thesis 64; Li et al. 10)",
            f"ablation FCN: {ablation_features} filters per layer (the thesis 64)",
        ],
    }


def folds_of(manifest: Path, k: int, seed: int = 0) -> list[dict[str, list[str]]]:
    """Subject-level k folds (stratified by group), train = the other folds, no validation."""
    from neurotrans.data.splits import kfold_splits
    from neurotrans.io.manifest import read_manifest

    return [f.to_dict() for f in kfold_splits(read_manifest(manifest), k, seed=seed, validation=False)]


def _masks(man: Any, i: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    from neurotrans.io.nifti import load_volume

    def read(col: str) -> np.ndarray | None:
        path = man.path(i, col) if col in man.table.columns else None
        return None if path is None else load_volume(path).data > 0.5

    return read("brainmask"), read("lesions"), read("NAWM")  # type: ignore[return-value]


def evaluate_run(run: Path, man: Any, test: Sequence[str]) -> list[dict[str, Any]]:
    """Per test image: the ``evaluate`` image metrics (normalised units) and lesion ratios, synthetic and real."""
    from neurotrans.analysis.lesions import contrast_ratios
    from neurotrans.inference.predict import load_trained, predict_subject, prepare_for_prediction
    from neurotrans.io.nifti import load_volume
    from neurotrans.io.run import RunFolder
    from neurotrans.methods import FittedMethod
    from neurotrans.metrics.scores import pair_metrics

    method, info = load_trained(RunFolder(run).best_checkpoint())
    whole = not isinstance(method, FittedMethod)
    m = int(info.size_multiple)
    n_params = sum(p.numel() for p in method.parameters())
    rows = []
    for i in range(len(man)):
        row = man.table.iloc[i]
        if str(row["subject"]) not in set(test):
            continue
        subject = prepare_for_prediction(man, i, info)
        # one window of the whole (padded) volume instead of training-patch-sized windows
        roi = [-(-int(n) // m) * m for n in subject.shape]
        use = dataclasses.replace(info, sampling={"kind": "volume", "roi_size": roi, "overlap": 0.0}) if whole else info
        pred = predict_subject(method, use, subject)
        real = load_volume(man.path(i, TARGET)).data.astype(np.float64)
        brain, lesions, nawm = _masks(man, i)
        volume = next(r for r in pair_metrics(pred, real, brain, pet=False) if r["scope"] == "volume")
        rec = {"subject": str(row["subject"]), "session": str(row["session"]), "group": str(row.get("group", "")),
               **{k: volume[k] for k in ("mae", "mse", "psnr", "ssim", "pearson")}, "n_params": n_params}
        if lesions is not None and nawm is not None and lesions.any():
            syn, ref = contrast_ratios(pred, lesions, nawm), contrast_ratios(real, lesions, nawm)
            rec.update(ratio1=syn["ratio1"], ratio2=syn["ratio2"], real_ratio1=ref["ratio1"], real_ratio2=ref["ratio2"])
        rows.append(rec)
    return rows


def train_and_evaluate(table: str, label: str, config: str, overrides: Sequence[str], fold: int,
                       split: dict[str, list[str]], manifest: Path, out: Path) -> list[dict[str, Any]]:
    """Train one model on one fold (or reuse a finished run), evaluate its test subjects."""
    from neurotrans.io.manifest import read_manifest
    from neurotrans.io.run import RunFolder
    from neurotrans.training.run import train_from_config

    safe = "".join(c if c.isalnum() or c in "+-=" else "_" for c in label)
    run = out / "runs" / table / safe / f"fold{fold}"
    folder = RunFolder(run)
    started = time.monotonic()
    if folder.read_outcome() is None or not folder.checkpoint("last").is_file():
        sets = ["split.kind=explicit", f"split.train={split['train']}", "split.val=[]", f"split.test={split['test']}"]
        train_from_config(config, [f"data.manifest={manifest}", *sets, "trainer.progress=false",
                                   f"data.cache_dir={out / 'cache'}", *overrides], out=run, overwrite=True)
    trained = time.monotonic() - started
    outcome = folder.read_outcome()
    rows = evaluate_run(run, read_manifest(manifest), split["test"])
    for r in rows:
        r.update(table=table, model=label, fold=fold, steps=outcome.steps if outcome else -1,
                 train_seconds=outcome.train_seconds if outcome else float("nan"),
                 wall_seconds=time.monotonic() - started, train_wall=trained)
    return rows


def p3s_scores(run: Path) -> dict[str, float]:
    """Mean P3S inside the brain per sequence over the run's test subjects."""
    from neurotrans.explain.p3s import run_saliency

    table = run_saliency(run).ranking()
    return dict(zip(table["sequence"], table["mean_saliency"], strict=True))


def _append(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    frame = pd.DataFrame(rows)
    if path.is_file():
        frame = pd.concat([pd.read_csv(path, sep="\t"), frame], ignore_index=True)
    frame.to_csv(path, sep="\t", index=False, float_format="%.6g")


def mean_sd(values: pd.Series, scale: float = 1.0, digits: int = 3) -> str:
    v = values.dropna().to_numpy(float) * scale
    return f"{v.mean():.{digits}f} ({v.std(ddof=1) if len(v) > 1 else 0:.{digits}f})" if len(v) else "-"


def tables(out: Path) -> str:
    """Markdown tables from ``results.tsv`` (and ``p3s.tsv``)."""
    from scipy.stats import spearmanr

    from neurotrans.analysis.stats import paired_tests

    res = pd.read_csv(out / "results.tsv", sep="\t")
    lines: list[str] = []
    t21 = res[res.table == "table21"]
    if len(t21):
        lines += ["### Table 2.1 format: FCN width and depth", "",
                  "| FCN | parameters | MSE x 10^3 (SD) | SSIM (SD) | folds |", "| --- | --- | --- | --- | --- |"]
        for label in [m for m in TABLE21 if m in set(t21.model)]:
            g = t21[t21.model == label]
            lines.append(f"| {label} | {int(g.n_params.iloc[0]):,} | {mean_sd(g.mse, 1e3)} | {mean_sd(g.ssim)} | "
                         f"{g.fold.nunique()} |")
        lines.append("")
    t22 = res[res.table == "table22"]
    if len(t22):
        lines += ["### Table 2.2 / 2.3 format: methods", "",
                  "| method | MSE x 10^3 (SD) | SSIM (SD) | Ratio 1 (SD) | Ratio 2 (SD) | p MSE vs FCN | "
                  "p SSIM vs FCN | p Ratio 1 vs real | parameters |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        fcn = t22[t22.model == "fcn"].set_index(["subject", "session"])
        for label in [m for m in TABLE22 if m in set(t22.model)]:
            g = t22[t22.model == label].set_index(["subject", "session"])
            both = g.join(fcn.add_suffix("_fcn"), how="inner")
            p_mse = paired_tests(both.mse.to_numpy(), both.mse_fcn.to_numpy())["p_wilcoxon"] if label != "fcn" else np.nan
            p_ssim = paired_tests(both.ssim.to_numpy(), both.ssim_fcn.to_numpy())["p_wilcoxon"] if label != "fcn" else np.nan
            les = g.dropna(subset=["ratio1"])
            p_r1 = paired_tests(les.ratio1.to_numpy(), les.real_ratio1.to_numpy())["p_wilcoxon"] if len(les) > 1 else np.nan
            params = int(g.n_params.iloc[0])
            lines.append(f"| {label} | {mean_sd(g.mse, 1e3)} | {mean_sd(g.ssim)} | {mean_sd(les.ratio1, digits=2)} | "
                         f"{mean_sd(les.ratio2, digits=2)} | {p_mse:.2g} | {p_ssim:.2g} | {p_r1:.2g} | "
                         f"{params:,} |")
        les = t22[(t22.model == t22.model.iloc[0])].dropna(subset=["real_ratio1"])
        lines += [f"| real FLAIR | | | {mean_sd(les.real_ratio1, digits=2)} | {mean_sd(les.real_ratio2, digits=2)} "
                  "| | | | |", "", "(p: two-sided Wilcoxon signed-rank over test images; ratios over patients)", ""]
    abl = res[res.table == "ablation"]
    if len(abl):
        base = abl[abl.model == "all"].set_index(["subject", "session"])
        lines += ["### Sequence ablation (Table 2.4 format, FCN)", "",
                  "| inputs | MSE x 10^3 (SD) | SSIM (SD) | MSE - MSE(all) x 10^3 | p vs all |",
                  "| --- | --- | --- | --- | --- |"]
        for label in [m for m in ABLATION if m in set(abl.model)]:
            g = abl[abl.model == label].set_index(["subject", "session"])
            both = g.join(base.add_suffix("_all"), how="inner")
            diff = float((both.mse - both.mse_all).mean()) * 1e3 if len(both) else np.nan
            p = paired_tests(both.mse.to_numpy(), both.mse_all.to_numpy())["p_wilcoxon"] if label != "all" else np.nan
            lines.append(f"| {label} | {mean_sd(g.mse, 1e3)} | {mean_sd(g.ssim)} | {diff:+.3f} | {p:.2g} |")
        lines.append("")
        p3s_path = out / "p3s.tsv"
        drop = {s: float((abl[abl.model == f"-{s}"].set_index(["subject", "session"]).mse
                          - base.mse).mean()) for s in SEQUENCES if f"-{s}" in set(abl.model)}
        if p3s_path.is_file() and len(drop) == len(SEQUENCES):
            p3s = pd.read_csv(p3s_path, sep="\t")
            for model, g in p3s.groupby("model", sort=False):
                score = g.groupby("sequence")["mean_saliency"].mean()
                seqs = list(SEQUENCES)
                rho, p = spearmanr([score[s] for s in seqs], [drop[s] for s in seqs])
                by_p3s = sorted(seqs, key=lambda s: -score[s])
                by_drop = sorted(seqs, key=lambda s: -drop[s])
                lines += [f"P3S ({model}, mean over {g.fold.nunique()} folds) vs drop-one MSE increase: "
                          f"Spearman rho = {rho:.2f} (p = {p:.2g}); P3S order {' > '.join(by_p3s)}; drop-one order "
                          f"{' > '.join(by_drop)}", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", type=Path, required=True, help="ms cohort manifest (one session per subject)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--steps", type=int, default=250, help="optimisation steps of every deep model")
    p.add_argument("--parts", nargs="+", default=["table22", "ablation", "table21"],
                   choices=["table22", "ablation", "table21"])
    p.add_argument("--table21-folds", type=int, default=None, help="folds of Table 2.1 (default all)")
    p.add_argument("--fold-list", type=int, nargs="+", default=None,
                   help="run only these folds (several processes into several --out folders)")
    p.add_argument("--ablation-features", type=int, default=32)
    p.add_argument("--tables", action="store_true", help="only rebuild tables.md from results.tsv")
    args = p.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.tables:
        print(tables(out))
        return 0
    rec = recipe(args.steps, args.ablation_features)
    (out / "recipe.json").write_text(json.dumps({"folds": args.folds, "steps": args.steps, **rec}, indent=2) + "\n")
    folds = folds_of(args.manifest, args.folds)
    results = out / "results.tsv"
    done = set()
    if results.is_file():
        prev = pd.read_csv(results, sep="\t")
        done = set(zip(prev.table, prev.model, prev.fold, strict=True))

    def job(table: str, label: str, config: str, overrides: list[str], fold: int) -> None:
        if (table, label, fold) in done:
            return
        rows = train_and_evaluate(table, label, config, overrides, fold, folds[fold], args.manifest, out)
        _append(results, rows)
        print(f"{table} {label} fold {fold}: MSE x1e3 {1e3 * np.mean([r['mse'] for r in rows]):.3f} "
              f"SSIM {np.mean([r['ssim'] for r in rows]):.4f} ({rows[0]['wall_seconds']:.0f} s)", flush=True)

    for part in args.parts:
        n_folds = args.table21_folds or args.folds if part == "table21" else args.folds
        for fold in range(n_folds):
            if args.fold_list is not None and fold not in args.fold_list:
                continue
            if part == "table22":
                for m in TABLE22:
                    job("table22", m, CONFIGS[m], rec[m], fold)
                    if m == "fcn":
                        _p3s(out, "table22", "fcn", fold)
            elif part == "ablation":
                for label, inputs in ABLATION.items():
                    norm = "{" + ", ".join(f"{c}: 'zscore:cohort'" for c in (*inputs, TARGET)) + "}"
                    job("ablation", label, "fcn_flair",
                        [*rec["ablation_fcn"], f"data.inputs=[{', '.join(inputs)}]", f"data.normalisation={norm}"],
                        fold)
                    if label == "all":
                        _p3s(out, "ablation", "all", fold)
            else:
                for label, kw in TABLE21.items():
                    args_ = "{" + ", ".join(f"{k}: {v}" for k, v in kw.items()) + "}"
                    job("table21", label, "fcn_flair", [*rec["fcn"], f"model.generator_args={args_}"], fold)
    text = tables(out)
    (out / "tables.md").write_text(text + "\n")
    print(text)
    return 0


def _p3s(out: Path, table: str, label: str, fold: int) -> None:
    path = out / "p3s.tsv"
    if path.is_file():
        prev = pd.read_csv(path, sep="\t")
        if ((prev.model == f"{table}/{label}") & (prev.fold == fold)).any():
            return
    safe = "".join(c if c.isalnum() or c in "+-=" else "_" for c in label)
    scores = p3s_scores(out / "runs" / table / safe / f"fold{fold}")
    _append(path, [{"model": f"{table}/{label}", "fold": fold, "sequence": s, "mean_saliency": v}
                   for s, v in scores.items()])


if __name__ == "__main__":
    raise SystemExit(main())
