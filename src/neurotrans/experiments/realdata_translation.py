"""Real scans, leave-one-out: the random-forest baseline against the small-cohort deep recipe.

Three patients of ``../shared/realdata`` (two gliomas, one chronic stroke) on their native
1 mm grids. For T1w + T2w -> FLAIR and T1w -> T2w, each patient is left out in turn; the
random forest (``random_forest_<target>`` with the recipe's per-image z-score, native
grids) and the two deep recipes (``fcn_realdata_<target>``, a local 3D FCN, and
``unet_realdata_<target>``, the thesis's U-Net) are trained on the other two and predict
the left-out patient with the library's ``predict_subject``; so does their ``ensemble``,
the mean of the two predictions (what ``neurotrans predict`` writes given both
checkpoints), which averages the two networks' different failures (the figures over
several seeds are in ``configs/fcn_realdata_flair.yaml``; ``--replicates`` summarises runs with other
seeds, :func:`replicates`). Scores inside the
brain (the non-zero voxels of the T1w, the scans being brain-extracted), after scaling
each image to [0, 1] by its own 99.5th brain percentile (clipped): PSNR (peak 1), SSIM
(data range 1) and MAE, and Pearson's r, which no intensity scaling changes. Each image is
scaled by its own percentile, so a prediction whose brightest 0.5 % is too dim (a regression
to the mean where the target's bright tail cannot be predicted) is brightened as a whole and
pays for it in MAE and PSNR even where its structure is right; r separates the two. The
second table scores every prediction after matching its brain histogram to the training
patients' targets (pooled, each scaled the same way): a monotone map learned from training
data alone, which undoes that tail compression for any model alike.

Run: ``python -m neurotrans.experiments.realdata_translation --root ../shared/realdata --out runs/realdata_rf --crop``
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TASKS: dict[str, tuple[tuple[str, ...], str]] = {"flair": (("T1w", "T2w"), "FLAIR"), "t2w": (("T1w",), "T2w")}
PERCENTILE = 99.5
DEEP = ("fcn_realdata", "unet_realdata")  # packaged as <recipe>_<task>
ENSEMBLE = "ensemble"  # the mean of the deep recipes' predictions: the recipe


def scale_unit(image: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """``image / p99.5(image in brain)``, clipped to [0, 1]."""
    peak = float(np.percentile(image[brain], PERCENTILE))
    return np.clip(image / (peak if peak > 0 else 1.0), 0.0, 1.0)


def scores(pred: np.ndarray, real: np.ndarray, brain: np.ndarray) -> dict[str, float]:
    """PSNR, SSIM, MAE and Pearson's r inside ``brain`` of the [0, 1]-scaled images."""
    from neurotrans.metrics import image as im

    p, r = scale_unit(pred, brain), scale_unit(real, brain)
    return {"psnr": im.psnr(p, r, brain, data_range=1.0, convention="fixed"),
            "ssim": im.ssim(p, r, brain, data_range=1.0), "mae": im.mae(p, r, brain),
            "r": im.pearson(p, r, brain)}


def matched_to_training(pred: np.ndarray, brain: np.ndarray,
                        references: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """``pred`` with its brain histogram matched to the pooled [0, 1]-scaled ``(target, brain)`` references.

    A monotone intensity map (scikit-image's ``match_histograms``): it keeps the order of
    the voxels, so r barely changes, and gives the prediction the training targets' bright
    tail, which a model of the conditional mean compresses.
    """
    from skimage.exposure import match_histograms

    pool = np.concatenate([scale_unit(image, mask)[mask] for image, mask in references])
    out = np.zeros(pred.shape, dtype=np.float64)
    out[brain] = match_histograms(np.asarray(pred, dtype=np.float64)[brain], pool)
    return out


def load_images(manifest: Any, task: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every manifest row's ``(target, brain)`` for ``task``: the target image and the T1w's non-zero voxels."""
    from neurotrans.io.nifti import load_volume

    target = TASKS[task][1]
    return [(load_volume(manifest.path(i, target)).data.astype(np.float64), load_volume(manifest.path(i, "T1w")).data != 0)
            for i in range(len(manifest))]


def score_prediction(pred: np.ndarray, images: Sequence[tuple[np.ndarray, np.ndarray]], row: int) -> dict[str, float]:
    """Scores of ``pred`` against ``images[row]`` (:func:`load_images`), as is and histogram-matched
    (``hm_``) to the other rows."""
    real, brain = images[row]
    pred = np.asarray(pred, dtype=np.float64)
    matched = matched_to_training(pred, brain, [im for i, im in enumerate(images) if i != row])
    return {**scores(pred, real, brain), **{f"hm_{k}": v for k, v in scores(matched, real, brain).items()}}


SCORES = {"psnr": "PSNR", "ssim": "SSIM", "mae": "MAE", "r": "r"}  # MAE is the one where lower is better


def better_on(b: Any, a: Any, keys: Sequence[str] = ("psnr", "ssim", "mae")) -> list[str]:
    """The names of the scores among ``keys`` on which ``b`` beats ``a`` (mappings of scores; a score
    missing from either, as r from the results.tsv of older runs, counts as no win)."""
    def beats(k: str) -> bool:
        x, y = b.get(k, np.nan), a.get(k, np.nan)
        return bool(x < y if k == "mae" else x > y)  # False where either is NaN
    return [SCORES[k] for k in keys if beats(k)]


def cropped_manifest(manifest: Path, out: Path, margin: int = 4) -> Path:
    """Every image of ``manifest`` cropped to its subject's brain box (non-zero T1w + ``margin``).

    A crop is a change of grid by whole voxels (the affine moves with them), so the brain
    keeps its world coordinates and every score inside the brain is unchanged; the 240 x 240
    x 155 glioma grids shrink about 3x, and so does prediction time on a CPU.
    """
    from neurotrans.data.crop import crop_to_mask
    from neurotrans.data.grid import Grid
    from neurotrans.io.manifest import read_manifest, write_manifest
    from neurotrans.io.nifti import load_volume, save_volume

    man = read_manifest(manifest)
    table = man.table.copy()
    for i in range(len(man)):
        brain = load_volume(man.path(i, "T1w")).data != 0
        for column in man.image_columns:
            if man.path(i, column) is None:
                continue
            vol = load_volume(man.path(i, column))
            data, grid = crop_to_mask(vol.data, Grid(tuple(vol.shape), vol.affine), brain, margin)
            rel = f"{table.loc[i, 'subject']}/{column}.nii.gz"
            save_volume(out / rel, data, grid.affine, vol.header, overwrite=True)
            table.loc[i, column] = rel
    return write_manifest(table, out / "manifest.tsv")


def rf_overrides(task: str, n_samples: int) -> list[str]:
    """The random forest on the recipe's data settings (native grids, per-image z-score, leave-one-out)."""
    inputs, target = TASKS[task]
    norm = "{" + ", ".join(f"{c}: 'zscore:mask'" for c in (*inputs, target)) + "}"
    return [f"data.inputs=[{', '.join(inputs)}]", "data.voxel_size=null", f"data.normalisation={norm}",
            "split.kind=loo", f"model.n_samples={n_samples}"]


def run_fold(task: str, model: str, fold: int, manifest: Path, out: Path, extra: Sequence[str],
             images: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Train (or reuse) one model for one left-out patient and score its prediction against ``images``
    (:func:`load_images` of ``manifest``)."""
    from neurotrans.inference.predict import load_trained, predict_subject, prepare_for_prediction
    from neurotrans.io.manifest import read_manifest
    from neurotrans.io.nifti import save_volume
    from neurotrans.io.run import RunFolder
    from neurotrans.methods import FittedMethod
    from neurotrans.training.run import train_from_config

    run = out / "runs" / task / model / f"fold{fold}"
    folder = RunFolder(run)
    started = time.monotonic()
    config = f"{model}_{task}"
    if folder.read_outcome() is None:
        train_from_config(config, [f"data.manifest={manifest}", f"split.fold={fold}", "trainer.progress=false",
                                   *extra], out=run, overwrite=True)
    method, info = load_trained(folder.best_checkpoint())
    man = read_manifest(manifest)
    row = man.subjects.index(info.test_subjects[0])
    subject = prepare_for_prediction(man, row, info)
    if not isinstance(method, FittedMethod):  # wide windows: neither deep recipe has a normalisation layer
        info = dataclasses.replace(info, sampling={**info.sampling, "patch_size": [96, 96, 96], "overlap": 0.25})
    pred = predict_subject(method, info, subject)
    ref = subject.reference  # the input grid, which the target shares
    save_volume(run / "prediction.nii.gz", pred, ref.affine, ref.header, overwrite=True)  # for a look, and --rescore
    outcome = folder.read_outcome()
    return {"task": task, "model": model, "fold": fold, "subject": info.test_subjects[0],
            **score_prediction(pred, images, row), "steps": outcome.steps if outcome else -1,
            "seconds": time.monotonic() - started}


def ensemble_fold(task: str, models: Sequence[str], fold: int, subject: str, row: int, out: Path,
                  images: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """The mean of the deep recipes' saved predictions for one left-out patient (manifest row ``row``
    of ``images``), saved and scored.

    What ``neurotrans predict --checkpoint A/best.pt B/best.pt`` writes (an ensemble's
    prediction is its models' mean, ``inference.uncertainty``), except that here each
    network predicted with 96^3 windows, the CLI with its training patch: for TCGA-DU-7294
    FLAIR the CLI's ensemble scored PSNR 11.44 against 11.46 here.
    """
    from neurotrans.io.nifti import load_volume, save_volume

    vols = [load_volume(out / "runs" / task / m / f"fold{fold}" / "prediction.nii.gz") for m in models]
    pred = np.mean([v.data for v in vols], axis=0, dtype=np.float64).astype(np.float32)
    save_volume(out / "runs" / task / ENSEMBLE / f"fold{fold}" / "prediction.nii.gz", pred, vols[0].affine,
                vols[0].header, overwrite=True)
    return {"task": task, "model": ENSEMBLE, "fold": fold, "subject": subject,
            **score_prediction(pred, images, row), "steps": -1, "seconds": 0.0}


def rescore(results: pd.DataFrame, manifest: Path, out: Path) -> pd.DataFrame:
    """``results`` with every row that has a saved prediction scored again (new score columns filled in)."""
    from neurotrans.io.manifest import read_manifest
    from neurotrans.io.nifti import load_volume

    man = read_manifest(manifest)
    images: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}  # per task, read once
    rows = []
    for rec in results.to_dict("records"):
        task = str(rec["task"])
        saved = out / "runs" / task / str(rec["model"]) / f"fold{rec['fold']}" / "prediction.nii.gz"
        if saved.is_file():
            if task not in images:
                images[task] = load_images(man, task)
            rec = {**rec, **score_prediction(load_volume(saved).data, images[task], man.subjects.index(str(rec["subject"])))}
        rows.append(rec)
    return pd.DataFrame(rows)


def run_manifest(out: Path) -> Path:
    """The manifest an experiment folder's runs were trained and scored on: the cropped one if it made one."""
    for path in (Path(out) / "cropped" / "manifest.tsv", Path(out) / "manifest.tsv"):
        if path.is_file():
            return path
    raise FileNotFoundError(f"{out}: no manifest.tsv (nor cropped/manifest.tsv); is it an output folder of this "
                            "experiment? Pass the --out folders of finished runs")


def replicates(outs: Sequence[Path]) -> pd.DataFrame:
    """The same experiment run several times (``outs``: their --out folders, e.g. one per ``trainer.seed``),
    summarised per task, left-out patient and deep recipe against the forest.

    With three patients one run cannot tell a recipe from a lucky seed: seeds move a network
    by more than its margin over the forest. Each row gives the runs' scores (mean and SD),
    how many runs beat the forest on PSNR, SSIM and MAE together (``better_runs``: which, numbered
    from 0 in the order of ``outs``), and the scores of the mean
    of the runs' saved predictions (a seed ensemble). The forest is the first run's (it is
    deterministic: every run's must agree).
    """
    from neurotrans.io.manifest import read_manifest
    from neurotrans.io.nifti import load_volume

    if len(outs) < 2:
        raise ValueError("--replicates needs the --out folders of at least two runs of the experiment")
    for out in outs:
        if not (Path(out) / "results.tsv").is_file():
            raise FileNotFoundError(f"{out}: no results.tsv; pass the --out folders of runs of this experiment")
    runs = [pd.read_csv(Path(o) / "results.tsv", sep="\t").assign(run=i) for i, o in enumerate(outs)]
    res = pd.concat(runs, ignore_index=True)
    manifest = run_manifest(outs[0])
    man = read_manifest(manifest)
    images: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    rows = []
    for (task_key, subject), g in res.groupby(["task", "subject"], sort=False):
        task = str(task_key)
        forest = g[g.model == "random_forest"]
        if forest.empty:
            continue
        a = forest.iloc[0]
        if not np.allclose(forest.psnr, a.psnr, rtol=0, atol=1e-3):
            raise ValueError(f"the forest's PSNR for {subject} differs between the runs ({sorted(forest.psnr)}): "
                             "they are not runs of one experiment on the same data")
        for model, m in g[g.model != "random_forest"].groupby("model", sort=False):
            better = pd.Series([len(better_on(b, a)) == 3 for _, b in m.iterrows()], index=m.index, dtype=bool)
            rec: dict[str, Any] = {"task": task, "subject": subject, "model": model, "runs": len(m),
                                   "runs_better": int(better.sum()),
                                   "better_runs": ",".join(str(int(i)) for i in m.run[better]),
                                   **{f"rf_{k}": float(a[k]) for k in ("psnr", "ssim", "mae")}}
            for k in ("psnr", "ssim", "mae"):
                rec[f"{k}_mean"], rec[f"{k}_sd"] = float(m[k].mean()), float(m[k].std())  # SD NaN for one run
            saved = [Path(outs[int(r.run)]) / "runs" / task / str(model) / f"fold{int(r.fold)}" / "prediction.nii.gz"
                     for r in m.itertuples()]
            if len(saved) > 1 and all(p.is_file() for p in saved):
                if task not in images:
                    images[task] = load_images(man, task)
                row = man.subjects.index(str(subject))
                preds = [load_volume(p).data for p in saved]
                for p, pred in zip(saved, preds, strict=True):
                    if pred.shape != images[task][row][0].shape:
                        raise ValueError(f"{p}: shape {pred.shape}, but {subject}'s {TASKS[task][1]} in "
                                         f"{manifest} is {images[task][row][0].shape}; the runs "
                                         "must all be cropped (--crop) or all not")
                mean = score_prediction(np.mean(preds, axis=0, dtype=np.float64), images[task], row)
                rec.update({f"ens_{k}": mean[k] for k in ("psnr", "ssim", "mae")})
            rows.append(rec)
    return pd.DataFrame(rows)


def replicate_table(summary: pd.DataFrame) -> str:
    """Markdown of :func:`replicates`: per task, the forest, the runs' mean +- SD, wins, and the seed ensemble."""
    lines = []
    for task, g in summary.groupby("task", sort=False):
        inputs, target = TASKS[str(task)]
        lines += [f"### {' + '.join(inputs)} -> {target}: {int(g.runs.max())} runs against the forest "
                  "(PSNR / SSIM / MAE)", "",
                  "| left out | deep recipe | forest | runs: mean | runs: SD | runs better on all three "
                  "| mean of the runs' predictions | it is better on |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in g.itertuples():
            ens, wins = "not saved", ""
            if "ens_psnr" in g and not np.isnan(r.ens_psnr):
                ens = f"{r.ens_psnr:.2f} / {r.ens_ssim:.3f} / {r.ens_mae:.3f}"
                mean, forest = ({k: getattr(r, f"{pre}_{k}") for k in ("psnr", "ssim", "mae")} for pre in ("ens", "rf"))
                wins = ", ".join(better_on(mean, forest)) or "none"
            lines.append(f"| {r.subject} | {r.model} | {r.rf_psnr:.2f} / {r.rf_ssim:.3f} / {r.rf_mae:.3f} | "
                         f"{r.psnr_mean:.2f} / {r.ssim_mean:.3f} / {r.mae_mean:.3f} | "
                         f"{r.psnr_sd:.2f} / {r.ssim_sd:.3f} / {r.mae_sd:.3f} | {r.runs_better} of {r.runs} | "
                         f"{ens} | {wins} |")
        for model, m in g.groupby("model", sort=False):
            sets = [set(str(b).split(",")) - {"", "nan"} for b in m.better_runs]
            everywhere = set.intersection(*sets)
            lines += ["", f"{model}: {len(everywhere)} of {int(m.runs.max())} runs beat the forest on all three scores "
                          f"for each of the {len(m)} left-out patients" + (f" (runs {', '.join(sorted(everywhere))}, "
                                                                    "numbered as given)" if everywhere else "") + "."]
        lines.append("")
    return "\n".join(lines)


def table(results: pd.DataFrame, prefix: str = "") -> str:
    """Markdown: per task, left-out patient and deep recipe, its scores beside the forest's and where it wins.

    ``prefix="hm_"``: the scores after histogram matching to the training patients.
    """
    lines = []
    if prefix:
        if f"{prefix}psnr" not in results:
            return ""
        results = results.drop(columns=[k for k in SCORES if k in results]).rename(
            columns={f"{prefix}{k}": k for k in SCORES})
    how = ", histogram-matched to the training patients" if prefix else ""
    for task, g in results.groupby("task", sort=False):
        inputs, target = TASKS[str(task)]
        lines += [f"### {' + '.join(inputs)} -> {target} (leave-one-out, inside the brain, [0, 1] by p99.5{how})", "",
                  "| left out | deep recipe | RF PSNR | RF SSIM | RF MAE | RF r | PSNR | SSIM | MAE | r "
                  "| deep better on |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for subject, s in g.groupby("subject", sort=False):
            rf = s[s.model == "random_forest"]
            if rf.empty:
                continue
            a = rf.iloc[0]
            for _, b in s[s.model != "random_forest"].iterrows():
                r_a, r_b = a.get("r", np.nan), b.get("r", np.nan)  # results.tsv of older runs have no r
                wins = better_on(b, a, tuple(SCORES))
                lines.append(f"| {subject} | {b.model} | {a.psnr:.2f} | {a.ssim:.4f} | {a.mae:.4f} | {r_a:.4f} | "
                             f"{b.psnr:.2f} | {b.ssim:.4f} | {b.mae:.4f} | {r_b:.4f} | {', '.join(wins) or 'none'} |")
        lines.append("")
    return "\n".join(lines)


def tables(results: pd.DataFrame) -> str:
    """The scores as they are, then after histogram matching (where scored)."""
    return "\n".join(t for t in (table(results), table(results, "hm_")) if t)


def main(argv: Sequence[str] | None = None) -> int:
    from neurotrans.experiments.realdata import realdata_manifest
    from neurotrans.io.atomic import write_text_atomic
    from neurotrans.io.manifest import read_manifest

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[3].parent / "shared" / "realdata")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--rf-samples", type=int, default=20_000)
    p.add_argument("--folds", type=int, nargs="+", default=None, help="left-out patients to run (default all)")
    p.add_argument("--deep", nargs="+", default=list(DEEP), choices=DEEP,
                   help="deep recipes to train (default both); with several, their ensemble is scored too")
    p.add_argument("--set", action="append", default=[], help="overrides of the deep recipes")
    p.add_argument("--crop", action="store_true", help="crop every image to its brain box first (3x faster)")
    p.add_argument("--tables", action="store_true", help="only print the tables of results.tsv")
    p.add_argument("--rescore", action="store_true",
                   help="score the saved predictions of results.tsv again (new score columns), then print the tables")
    p.add_argument("--replicates", type=Path, nargs="+", metavar="RUN",
                   help="summarise these --out folders (the experiment run again, e.g. with --set trainer.seed=K) "
                        "into OUT/replicates.{tsv,md} and print it")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.replicates:
        summary = replicates(args.replicates)
        text = replicate_table(summary)
        write_text_atomic(args.out / "replicates.tsv", summary.to_csv(sep="\t", index=False, float_format="%.6g"))
        write_text_atomic(args.out / "replicates.md", text + "\n")
        print(text)
        return 0
    path = args.out / "results.tsv"
    if args.tables:
        print(tables(pd.read_csv(path, sep="\t")))
        return 0
    manifest = realdata_manifest(args.root, args.out)
    if args.crop:
        manifest = cropped_manifest(manifest, args.out / "cropped")
    if args.rescore:
        again = rescore(pd.read_csv(path, sep="\t"), manifest, args.out)
        again.to_csv(path, sep="\t", index=False, float_format="%.6g")
        print(tables(again))
        return 0
    man = read_manifest(manifest)
    n = len(man.subjects)
    for task in args.tasks:
        images = load_images(man, task)  # every fold scores against these
        for fold in args.folds if args.folds is not None else range(n):
            for model in ("random_forest", *args.deep, *([ENSEMBLE] if len(args.deep) > 1 else [])):
                done = pd.read_csv(path, sep="\t") if path.is_file() else pd.DataFrame(columns=["task", "model", "fold"])
                if ((done.task == task) & (done.model == model) & (done.fold == fold)).any():
                    continue
                if model == ENSEMBLE:
                    subject = str(done[(done.task == task) & (done.fold == fold)].subject.iloc[0])
                    rec = ensemble_fold(task, args.deep, fold, subject, man.subjects.index(subject), args.out, images)
                else:
                    extra = rf_overrides(task, args.rf_samples) if model == "random_forest" else list(args.set)
                    rec = run_fold(task, model, fold, manifest, args.out, extra, images)
                pd.concat([done, pd.DataFrame([rec])], ignore_index=True).to_csv(path, sep="\t", index=False,
                                                                                 float_format="%.6g")
                print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rec.items()}, flush=True)
    text = tables(pd.read_csv(path, sep="\t"))
    (args.out / "table.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
