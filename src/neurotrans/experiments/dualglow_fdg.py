"""DUAL-GLOW on the simulated fdg cohort: Table 1 against U-Net and pix2pix, the age sweep
(Fig. 7), SVM diagnosis on real vs synthetic PET (Table 2) and uncertainty maps vs errors.

On the fixed split of ``compare_fdg`` (the packaged configs' split: 20 % test, 10 % validation,
stratified by group, seed 0), with fixed step counts:

1. trains ``dualglow_fdg``, ``dualglow_age_fdg``, ``unet_t1_fdg`` and ``pix2pix_axial_fdg``,
   predicts and evaluates the test subjects; Table 1 (paper format: CorCoef, PSNR, SSIM, MAE per
   method, mean +- SD over test subjects, SUVR) with paired t and Wilcoxon tests of DUAL-GLOW
   against each other model;
2. trains ``unet_t1_fdg`` on ``--folds`` folds of the development subjects (train + validation
   of the fixed split; fold k validates on part k and trains on the rest) and predicts the same
   test subjects with the fold ensemble and ``--uncertainty`` (mean and SD of the fold models);
3. DUAL-GLOW uncertainty: ``--samples`` samples at ``--temperature`` (default the config's) per test subject;
   for both sources, the correlation of the SD map with |prediction - real|, voxel-wise in the
   brain and across AAL2 regions;
4. the age sweep of ``dualglow_age_fdg``: every test subject's MRI with the ages ``--ages``;
   posterior cingulate/precuneus and anterior cingulate SUVR against age (``age_sweep.tsv`` in
   the run folder, shown by its report), the fraction of subjects whose SUVR falls at every
   step, and the cohort's own cross-sectional slope of real PET on age for comparison;
5. Table 2: an RBF SVM on AAL2 regional means of the real PET of the development subjects, CN
   vs MCI/AD (the paper's grouping: normal vs impaired), tested on the real and on each model's
   synthetic PET of the test subjects (accuracy, FNR, FPR).

Finished runs are reused (a run folder whose run.json records the asked steps), so the script
can be rerun to redo the analyses only.

Run: ``python -m neurotrans.experiments.dualglow_fdg --manifest /tmp/fdg40/manifest.tsv
--out runs/dualglow_fdg [--glow-steps 600 --unet-steps 400 --pix2pix-steps 400 --folds 5]``

References: Sun et al. 2019 (DUAL-GLOW, papers/002: Table 1, Table 2, Fig. 6-7).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from neurotrans.io.run import REFERENCE_LABEL, PredictionFolder, RunFolder

GLOW, GLOW_AGE, UNET, PIX2PIX = "dualglow_fdg", "dualglow_age_fdg", "unet_t1_fdg", "pix2pix_axial_fdg"
TABLE1_ROWS = {"pearson": "CorCoef", "psnr": "PSNR (dB)", "ssim": "SSIM", "mae": "MAE (SUVR)"}


def ensure_trained(config: str, manifest: Path, run_dir: Path, steps: int, overrides: Sequence[str] = ()) -> RunFolder:
    """Train ``config`` for ``steps`` steps into ``run_dir`` unless a finished run is there (resumes a cut one)."""
    from neurotrans.training.run import train_from_config

    run = RunFolder(run_dir)
    outcome = run.read_outcome()
    if outcome is not None and (outcome.steps >= steps or outcome.stopped.startswith("early stopping")):
        return run
    resume = run.checkpoint("last").is_file()
    train_from_config(config, [f"data.manifest={manifest}", f"trainer.max_steps={steps}", "trainer.progress=false",
                               *overrides], out=run.root, resume=resume, overwrite=not resume)
    return run


def predict_evaluate(checkpoints: Sequence[Path], manifest: Path, predictions: Path, evaluation: Path,
                     **predict_kw: object) -> Path:
    """Predict the (default: test) subjects and evaluate them, unless already evaluated."""
    from neurotrans.inference.predict import predict_command
    from neurotrans.metrics.evaluate import evaluate_command

    if not (evaluation / "per_subject.tsv").is_file():
        predict_command(list(checkpoints), manifest=manifest, out=predictions, overwrite=True, **predict_kw)
        evaluate_command(predictions, manifest, "FDG", mask="brainmask", out=evaluation, overwrite=True)
    return evaluation


def ensemble_splits(manifest: Path, info_split: dict[str, list[str]], folds: int, seed: int = 0) -> list[dict]:
    """Explicit splits of the fold models: the fixed split's test subjects, k folds of the rest."""
    from neurotrans.data.splits import kfold_splits
    from neurotrans.io.manifest import read_manifest

    dev = [*info_split["train"], *info_split["val"]]
    man = read_manifest(manifest)
    parts = kfold_splits(man.subset(set(dev)), folds, group="group", seed=seed, validation=False)
    return [{"train": f.train, "val": f.test, "test": list(info_split["test"])} for f in parts]


def table1(rows: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    """Paper Table 1: one row per metric, one column per method, ``mean +- SD`` over test subjects."""
    out = {}
    for label in order:
        g = rows[rows["method"] == label]
        out[label] = {name: f"{g[m].mean():.{2 if m == 'psnr' else 3}f} +- {g[m].std(ddof=1):.{2 if m == 'psnr' else 3}f}"
                      for m, name in TABLE1_ROWS.items()}
    return pd.DataFrame(out).rename_axis("metric").reset_index()


def markdown(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """A plain markdown table (no tabulate dependency)."""
    def cell(v: object) -> str:
        return format(v, floatfmt) if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + " --- |" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _volumes(manifest, row: int, folder: PredictionFolder, desc: str | None = None) -> tuple:
    from neurotrans.io.nifti import load_volume

    subject, session = str(manifest.table.iloc[row]["subject"]), str(manifest.table.iloc[row]["session"])
    path = folder.path(subject, session, "FDG", **({"desc": desc} if desc else {}))
    return load_volume(path), load_volume(manifest.path(row, "FDG")), load_volume(manifest.path(row, "brainmask"))


def uncertainty_rows(label: str, folder: PredictionFolder, manifest, subjects: Sequence[str]) -> pd.DataFrame:
    """Correlation of the SD maps with the absolute errors, per test subject."""
    from neurotrans.analysis.uncertainty import sd_error_correlation
    from neurotrans.data.atlas import load_atlas
    from neurotrans.data.grid import Grid
    from neurotrans.io.nifti import load_volume

    rows = []
    for i in range(len(manifest)):
        subject = str(manifest.table.iloc[i]["subject"])
        if subject not in subjects:
            continue
        pred, real, mask = _volumes(manifest, i, folder)
        sd = load_volume(folder.sd_path(subject, str(manifest.table.iloc[i]["session"]), "FDG"))
        labels, names = load_atlas("AAL2", Grid(real.shape, real.affine))
        corr = sd_error_correlation(sd.data, pred.data, real.data, mask.data > 0.5, labels, names)
        for r in corr.itertuples(index=False):
            rows.append({"model": label, "subject": subject, **r._asdict(),
                         "mean_sd": float(sd.data[mask.data > 0.5].mean())})
    return pd.DataFrame(rows)


def sweep_table(folder: PredictionFolder, manifest, subjects: Sequence[str], ages: Sequence[float]) -> pd.DataFrame:
    """ROI means of the sweep volumes (:data:`neurotrans.analysis.age_sweep.SWEEP_COLUMNS`)."""
    from neurotrans.analysis.age_sweep import roi_means
    from neurotrans.data.atlas import load_atlas
    from neurotrans.data.grid import Grid
    from neurotrans.inference.uncertainty import value_label
    from neurotrans.io.run import PREDICTION_DESC

    rows = []
    for i in range(len(manifest)):
        subject, session = str(manifest.table.iloc[i]["subject"]), str(manifest.table.iloc[i]["session"])
        if subject not in subjects:
            continue
        for age in ages:
            pred, real, mask = _volumes(manifest, i, folder, f"{PREDICTION_DESC}Age{value_label(age)}")
            labels, names = load_atlas("AAL2", Grid(real.shape, real.affine))
            for region, value in roi_means(pred.data, labels, names, mask=mask.data > 0.5).items():
                rows.append({"subject": subject, "session": session, "age": age, "region": region, "suvr": value,
                             "true_age": float(manifest.table.iloc[i]["age"])})
    return pd.DataFrame(rows)


def real_roi_table(manifest) -> pd.DataFrame:
    """ROI means of every subject's real PET with its age (the cohort's own aging)."""
    from neurotrans.analysis.age_sweep import roi_means
    from neurotrans.data.atlas import load_atlas
    from neurotrans.data.grid import Grid
    from neurotrans.io.nifti import load_volume

    rows = []
    for i in range(len(manifest)):
        real, mask = load_volume(manifest.path(i, "FDG")), load_volume(manifest.path(i, "brainmask"))
        labels, names = load_atlas("AAL2", Grid(real.shape, real.affine))
        for region, value in roi_means(real.data, labels, names, mask=mask.data > 0.5).items():
            rows.append({"subject": str(manifest.table.iloc[i]["subject"]), "age": float(manifest.table.iloc[i]["age"]),
                         "region": region, "suvr": value})
    return pd.DataFrame(rows)


def regional_features(volume: np.ndarray, affine: np.ndarray) -> dict[str, float]:
    """AAL2 regional means of one PET (the SVM's features)."""
    from neurotrans.analysis.regional import regional_means
    from neurotrans.data.atlas import load_atlas
    from neurotrans.data.grid import Grid

    labels, names = load_atlas("AAL2", Grid(volume.shape, affine))
    return regional_means(volume, labels, names)


def svm_table(manifest, dev: Sequence[str], test: Sequence[str], folders: dict[str, PredictionFolder]) -> pd.DataFrame:
    """Table 2: SVM trained on the real PET of ``dev``, tested on real and synthetic PET of ``test``.

    CN is negative, MCI and AD positive (the paper: normal vs MCI/LMCI/AD).
    """
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from neurotrans.io.nifti import load_volume

    def features(i: int, folder: PredictionFolder | None) -> dict[str, float]:
        if folder is None:
            vol = load_volume(manifest.path(i, "FDG"))
        else:
            vol = load_volume(folder.path(str(manifest.table.iloc[i]["subject"]),
                                          str(manifest.table.iloc[i]["session"]), "FDG"))
        return regional_features(vol.data, vol.affine)

    subjects = manifest.table["subject"].astype(str)
    groups = manifest.table["group"].astype(str)
    dev_rows = [i for i in range(len(manifest)) if subjects.iloc[i] in dev]
    test_rows = [i for i in range(len(manifest)) if subjects.iloc[i] in test]
    x_dev = pd.DataFrame([features(i, None) for i in dev_rows])
    y_dev = (groups.iloc[dev_rows] != "CN").to_numpy()
    y_test = (groups.iloc[test_rows] != "CN").to_numpy()
    model = make_pipeline(StandardScaler(), SVC(kernel="rbf", C=1.0, gamma="scale", class_weight="balanced"))
    model.fit(x_dev.to_numpy(), y_dev)
    rows = []
    for label, folder in {"ground truth": None, **folders}.items():
        x = pd.DataFrame([features(i, folder) for i in test_rows])[x_dev.columns].to_numpy()
        pred = model.predict(x)
        rows.append({"data": label, "accuracy": float(np.mean(pred == y_test)),
                     "fnr": float(np.mean(~pred[y_test])) if y_test.any() else float("nan"),
                     "fpr": float(np.mean(pred[~y_test])) if (~y_test).any() else float("nan"),
                     "n_test": len(test_rows), "n_impaired": int(y_test.sum()), "n_train": len(dev_rows)})
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> int:
    from neurotrans.analysis.age_sweep import cohort_slopes, sweep_summary
    from neurotrans.experiments.compare_fdg import model_tests, per_subject_rows
    from neurotrans.inference.predict import predict_command
    from neurotrans.io.manifest import read_manifest
    from neurotrans.report import build_report
    from neurotrans.report.sweep import age_sweep_figure

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("runs/dualglow_fdg"))
    p.add_argument("--glow-steps", type=int, default=600)
    p.add_argument("--unet-steps", type=int, default=400)
    p.add_argument("--pix2pix-steps", type=int, default=400)
    p.add_argument("--folds", type=int, default=5, help="fold models of the U-Net ensemble (0: none)")
    p.add_argument("--samples", type=int, default=8, help="DUAL-GLOW samples per subject for the SD maps")
    p.add_argument("--temperature", type=float, default=None, help="their temperature (default: the config's)")
    p.add_argument("--ages", type=float, nargs=3, default=[60.0, 90.0, 7], metavar=("START", "STOP", "N"))
    args = p.parse_args(argv)
    manifest_path, out = args.manifest.resolve(), args.out
    out.mkdir(parents=True, exist_ok=True)
    man = read_manifest(manifest_path)

    steps = {GLOW: args.glow_steps, GLOW_AGE: args.glow_steps, UNET: args.unet_steps, PIX2PIX: args.pix2pix_steps}
    runs = {name: ensure_trained(name, manifest_path, out / name, n) for name, n in steps.items()}
    evaluations = {name: [predict_evaluate([run.best_checkpoint()], manifest_path, run.predictions.root,
                                           run.evaluation)] for name, run in runs.items()}
    split = runs[UNET].read_info().split
    test, dev = list(split["test"]), [*split["train"], *split["val"]]
    assert all(r.read_info().split["test"] == split["test"] for r in runs.values()), "the configs' splits differ"

    ens_label, ens_pred = None, None
    if args.folds:
        fold_runs = []
        for k, s in enumerate(ensemble_splits(manifest_path, split, args.folds)):
            overrides = ["split.kind=explicit", f"split.train=[{','.join(s['train'])}]",
                         f"split.val=[{','.join(s['val'])}]", f"split.test=[{','.join(s['test'])}]"]
            fold_runs.append(ensure_trained(UNET, manifest_path, out / f"{UNET}_folds" / f"fold{k}", args.unet_steps,
                                            overrides))
        ens_label = f"{UNET} ({args.folds}-model ensemble)"
        ens_pred = PredictionFolder(out / f"{UNET}_ensemble" / "predictions")
        evaluations[ens_label] = [predict_evaluate([r.best_checkpoint() for r in fold_runs], manifest_path,
                                                   ens_pred.root, out / f"{UNET}_ensemble" / "evaluation",
                                                   uncertainty=True)]

    # Table 1 and paired tests (volume scope, SUVR)
    rows = per_subject_rows(evaluations, "original")
    rows.to_csv(out / "per_subject.tsv", sep="\t", index=False)
    order = [m for m in dict.fromkeys(rows["method"]) if m != REFERENCE_LABEL] + [REFERENCE_LABEL]
    t1 = table1(rows, order)
    t1.to_csv(out / "table1.tsv", sep="\t", index=False)
    tests = model_tests(rows)
    tests = tests[(tests["scope"] == "volume") & (tests["units"] == "original")
                  & tests["metric"].isin(list(TABLE1_ROWS))]
    glow_tests = tests[tests["method_a"].isin([GLOW, GLOW_AGE]) | tests["method_b"].isin([GLOW, GLOW_AGE])]
    glow_tests.to_csv(out / "tests.tsv", sep="\t", index=False)

    # uncertainty: DUAL-GLOW samples, U-Net fold ensemble
    unc = []
    for name in (GLOW, GLOW_AGE):
        folder = runs[name].variant_predictions("uncertainty")
        if not (folder.root / PredictionFolder.DESCRIPTION).is_file():
            predict_command(runs[name].best_checkpoint(), manifest=manifest_path, out=folder.root, overwrite=True,
                            uncertainty=True, samples=args.samples, temperature=args.temperature)
        unc.append(uncertainty_rows(name, folder, man, test))
    if ens_pred is not None:
        unc.append(uncertainty_rows(ens_label, ens_pred, man, test))
    unc_rows = pd.concat(unc, ignore_index=True)
    unc_rows.to_csv(out / "uncertainty_per_subject.tsv", sep="\t", index=False)
    unc_summary = (unc_rows.groupby(["model", "scope"], sort=False)
                   .agg(pearson=("pearson", "mean"), pearson_sd=("pearson", "std"), spearman=("spearman", "mean"),
                        n_subjects=("subject", "nunique"), mean_sd=("mean_sd", "mean")).reset_index())
    unc_summary.to_csv(out / "uncertainty.tsv", sep="\t", index=False)

    # the age sweep
    from neurotrans.inference.uncertainty import sweep_values

    ages = sweep_values(*args.ages)
    age_run = runs[GLOW_AGE]
    sweep_folder = age_run.variant_predictions("sweep")
    if not age_run.age_sweep.is_file():
        predict_command(age_run.best_checkpoint(), manifest=manifest_path, out=sweep_folder.root, overwrite=True,
                        age_sweep=tuple(args.ages))
        sweep_table(sweep_folder, man, test, ages).to_csv(age_run.age_sweep, sep="\t", index=False)
    sweep = pd.read_csv(age_run.age_sweep, sep="\t", dtype={"subject": str, "session": str})
    summary = sweep_summary(sweep)
    real = real_roi_table(man)
    cohort = cohort_slopes(real).rename(columns={"slope_per_decade": "cohort_slope_per_decade", "r": "cohort_r",
                                                 "p": "cohort_p", "n": "cohort_n"})
    summary = summary.merge(cohort, on="region")
    summary.to_csv(out / "age_sweep_summary.tsv", sep="\t", index=False)
    fig = age_sweep_figure(sweep)
    fig.savefig(out / "age_sweep.png", dpi=110, metadata={"Software": None})
    build_report(age_run.root, overwrite=True)

    # Table 2
    folders = {name: runs[name].predictions for name in runs}
    if ens_pred is not None:
        folders[ens_label] = ens_pred
    t2 = svm_table(man, dev, test, folders)
    t2.to_csv(out / "table2.tsv", sep="\t", index=False)

    text = ["# DUAL-GLOW on the simulated fdg cohort", "",
            f"Manifest {manifest_path}; test subjects {len(test)} (fixed split of compare_fdg), development {len(dev)}; "
            f"steps: DUAL-GLOW {args.glow_steps}, U-Net {args.unet_steps} (each fold model too), pix2pix "
            f"{args.pix2pix_steps}; {args.samples} DUAL-GLOW samples per subject at temperature "
            f"{'of the config' if args.temperature is None else args.temperature}.", "",
            "## Table 1 (mean +- SD over test subjects, whole volume inside the brain mask, SUVR)", "",
            markdown(t1), "", "## Paired tests involving DUAL-GLOW (two-sided, across test subjects)", "",
            markdown(glow_tests[["method_a", "method_b", "metric", "mean_diff", "p_t", "p_wilcoxon", "n"]],
                     ".4g"), "",
            "## Uncertainty: correlation of the SD map with |prediction - real| (mean over test subjects)", "",
            markdown(unc_summary), "",
            f"## Age sweep ({ages[0]:g} -> {ages[-1]:g}, {len(ages)} ages; slopes in SUVR per 10 years)", "",
            markdown(summary, ".4g"), "", "## Table 2: SVM (RBF) on AAL2 regional means, CN vs MCI/AD, trained on the "
            "real PET of the development subjects", "", markdown(t2)]
    (out / "results.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
