"""The UNIT T1 <-> T2 ablation (papers/004, Fig. 7), CycleGAN beside it, and the real-scan check.

On a simulated ms cohort (``neurotrans simulate ms --subjects 24 --voxel-size 3``) every
variant of the report is trained on unpaired axial slices (domains from disjoint training
subjects, ``unit_t1t2``), CycleGAN on the same split (``cyclegan_t1t2``). After each of a
few epochs the held-out, paired test scans are translated both ways and scored inside the
brain mask in min-max units (SSIM, PSNR with peak 1, MAE); after the last epoch also the
anatomy check: Dice of the brain masks and of 3-class k-means tissue maps of the input vs
the raw network output (:func:`neurotrans.analysis.anatomy.anatomy_dice`), next to the same
Dice between the real T1 and T2 of the scan (what a perfect translation would score).
``--realdata`` adds the leave-one-out runs on ``shared/realdata`` (native grids): each fold
predicts its left-out subject both ways through ``neurotrans predict`` (NIfTI on the input's
grid) and is scored the same way.

Writes ``OUT/results.tsv`` (one row per variant, epoch, scan and direction),
``OUT/tables.md`` (the ablation at the last epoch, SSIM by epoch as Fig. 7b, anatomy,
UNIT vs CycleGAN, real scans), ``OUT/ssim_by_epoch.png`` and ``OUT/montage.png``.

Run: ``python -m neurotrans.experiments.unit_t1t2 --manifest runs/ms24/manifest.tsv --out runs/unit_t1t2
[--epochs 1 2 3 4] [--set optim.lr=0.001] [--realdata ../shared/realdata]``

References: Maheshwari & Pant, papers/004 (ablation Fig. 7a, SSIM by epoch Fig. 7b);
Welander et al. 2018 (CycleGAN vs UNIT, T1 <-> T2).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: The report's ablation (Fig. 7a rows), as ``--set`` switches of ``unit_t1t2``; then CycleGAN.
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "baseline": ("unit_t1t2", []),
    "+CL": ("unit_t1t2", ["model.charbonnier=true"]),
    "+SN": ("unit_t1t2", ["model.spectral_norm=true"]),
    "attn G": ("unit_t1t2", ["model.attention=generator"]),
    "attn G +CL": ("unit_t1t2", ["model.attention=generator", "model.charbonnier=true"]),
    "+CL +SN": ("unit_t1t2", ["model.charbonnier=true", "model.spectral_norm=true"]),
    "attn E +CL +SN": ("unit_t1t2", ["model.attention=encoder", "model.charbonnier=true",
                                     "model.spectral_norm=true"]),
    "CycleGAN": ("cyclegan_t1t2", []),
}
COPY = "input copied"  # a translator that changes nothing: the floor any translation must beat
BEST = "attn E +CL +SN"  # the report's best model, shown by epoch beside the baseline (Fig. 7b)
DIRECTIONS = ("T1w->T2w", "T2w->T1w")
METRICS = ("ssim", "psnr", "mae")
ANATOMY = ("dice_mask", "dice_tissue")
QUIET = ["trainer.progress=false"]
#: real scans (native 1 mm grids, 240 x 240 slices): a short run per fold, a robustness check
REAL_DEFAULTS = ["trainer.max_steps=60", "data.batch_size=4", "trainer.checkpoint_every=20"]


def folder_name(variant: str) -> str:
    """A file-system name for a variant (``attn E +CL +SN`` -> ``attn_E_CL_SN``)."""
    return "_".join(variant.replace("+", " ").split())


def score_scan(method: Any, info: Any, manifest: Any, row: int, *, anatomy: bool) -> list[dict[str, Any]]:
    """Both directions of one paired scan, in min-max units on the working grid.

    Returns one dict per direction: SSIM (data range 1), PSNR (peak 1) and MAE inside the
    scan's brain mask; with ``anatomy`` also the anatomy Dice of the input vs the raw
    network output and of the real input vs the real target.
    """
    from neurotrans.analysis.anatomy import anatomy_dice
    from neurotrans.inference.predict import predict_slices, prepare_for_prediction
    from neurotrans.metrics.image import mae, psnr, ssim

    t1 = prepare_for_prediction(manifest, row, info)
    t2 = prepare_for_prediction(manifest, row, info, reverse=True)
    images = {"T1w": t1.inputs, "T2w": t2.inputs}
    mask = t1.mask
    out = []
    for direction in DIRECTIONS:
        src, dst = direction.split("->")
        translate = method.predict if src == info.inputs[0] else method.predict_reverse
        raw = predict_slices(translate, images[src], ["axial"], multiple=int(info.size_multiple))
        truth = images[dst][0]
        record: dict[str, Any] = {"scan": manifest.key(row), "direction": direction,
                                  "ssim": ssim(raw, truth, mask=mask, data_range=1.0),
                                  "psnr": psnr(raw, truth, mask=mask, data_range=1.0),
                                  "mae": mae(raw, truth, mask=mask)}
        if anatomy:
            record.update({k: v for k, v in anatomy_dice(images[src][0], raw).items() if k in ANATOMY})
            record.update({f"real_{k}": v for k, v in anatomy_dice(images[src][0], truth).items() if k in ANATOMY})
        out.append(record)
    return out


class CopyInput:
    """Returns its input in both directions (the ``input copied`` reference rows)."""

    def predict(self, x: Any, covariates: Any = None) -> Any:
        return x

    predict_reverse = predict


def score_run(checkpoint: Path, manifest_path: Path, *, anatomy: bool, copy: bool = False) -> list[dict[str, Any]]:
    """Both directions of every paired test scan of a run (``score_scan``); ``copy``: of :class:`CopyInput`."""
    import torch

    from neurotrans.inference.predict import load_trained
    from neurotrans.io.manifest import read_manifest

    method, info = load_trained(checkpoint, "cpu")
    method = CopyInput() if copy else method
    man = read_manifest(manifest_path)
    test = set(info.test_subjects)
    rows = [i for i in range(len(man)) if str(man.table.iloc[i]["subject"]) in test]
    with torch.no_grad():
        return [r for i in rows for r in score_scan(method, info, man, i, anatomy=anatomy)]


def train_in_stages(variant: str, manifest: Path, out: Path, epochs: Sequence[int], device: str,
                    extra: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Train one variant epoch stage after epoch stage (resuming), scoring ``last.pt`` after each."""
    from neurotrans.io.run import RunFolder
    from neurotrans.training.checkpoint import load_checkpoint
    from neurotrans.training.run import train_from_config

    config, switches = VARIANTS[variant]
    run = RunFolder(out / "runs" / folder_name(variant))
    cache = out / "scores" / f"{folder_name(variant)}.json"
    done: dict[str, Any] = json.loads(cache.read_text()) if cache.is_file() else {}
    rows = []
    for k, epoch in enumerate(epochs):
        last = epoch == epochs[-1]
        key = f"{epoch}{'+anatomy' if last else ''}"
        if key not in done:
            reached = (load_checkpoint(run.checkpoint("last"))["trainer"]["epoch"]
                       if run.checkpoint("last").is_file() else -1)
            if reached < epoch:
                train_from_config(config, [f"data.manifest={manifest}", *switches, *extra, *QUIET,
                                           "trainer.max_steps=0", f"trainer.max_epochs={epoch}"],
                                  out=run.root, device=device, resume=reached >= 0 and k > 0,
                                  overwrite=reached >= 0 and k == 0)
            outcome = run.read_outcome()
            done[key] = {"train_seconds": outcome.train_seconds if outcome else float("nan"),
                         "steps": outcome.steps if outcome else 0,
                         "rows": score_run(run.checkpoint("last"), manifest, anatomy=last)}
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(done, indent=1))
        stage = done[key]
        rows += [{"variant": variant, "epoch": epoch, "steps": stage["steps"],
                  "train_seconds": stage["train_seconds"], **r} for r in stage["rows"]]
    return rows


def realdata_folds(root: Path, out: Path, device: str, extra: Sequence[str], variants: Sequence[str]
                   ) -> list[dict[str, Any]]:
    """Leave-one-out on the real scans: train, predict both ways as NIfTI, score the left-out subject."""
    import torch

    from neurotrans.experiments.realdata import realdata_manifest
    from neurotrans.inference.predict import load_trained, predict_command
    from neurotrans.io.manifest import read_manifest
    from neurotrans.io.nifti import load_volume
    from neurotrans.io.run import RunFolder
    from neurotrans.metrics.image import ssim
    from neurotrans.training.run import train_from_config

    manifest = realdata_manifest(root, out / "realdata")
    man = read_manifest(manifest)
    rows = []
    for variant in variants:
        config, switches = VARIANTS[variant]
        for fold, subject in enumerate(man.subjects):
            run = RunFolder(out / "realdata" / folder_name(variant) / f"fold{fold}")
            if not run.checkpoint("last").is_file():
                train_from_config(config, [f"data.manifest={manifest}", "data.voxel_size=null", "split.kind=loo",
                                           f"split.fold={fold}", *switches, *QUIET, *extra],
                                  out=run.root, device=device, overwrite=True)
            i = man.subjects.index(subject)
            method, info = load_trained(run.checkpoint("last"), "cpu")
            rows_i = [r for r in range(len(man)) if str(man.table.iloc[r]["subject"]) == subject]
            with torch.no_grad():  # normalised SSIM and the anatomy check on the raw network output
                raw = {r["direction"]: r for r in score_scan(method, info, man, rows_i[0], anatomy=True)}
            for direction in DIRECTIONS:
                src, dst = direction.split("->")
                pred_dir = run.root / f"predictions_{src}_to_{dst}"
                (path,) = predict_command(run.checkpoint("last"), manifest=manifest, out=pred_dir, device=device,
                                          overwrite=True, subjects=[subject], direction=direction)
                pred, source, real = load_volume(path), load_volume(man.path(i, src)), load_volume(man.path(i, dst))
                brain = real.data > 0
                scale = float(real.data[brain].max())
                on_grid = pred.shape == source.shape and bool(np.allclose(pred.affine, source.affine, atol=1e-4))
                rows.append({"variant": variant, "scan": subject, "direction": direction, "on_input_grid": on_grid,
                             "file": str(path.relative_to(out)),
                             "ssim_nifti": ssim(pred.data / scale, real.data / scale, mask=brain, data_range=1.0),
                             **{k: v for k, v in raw[direction].items() if k not in ("scan", "direction")}})
    return rows


def _mean_sd(values: pd.Series) -> str:
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}" if len(values) > 1 else f"{values.mean():.3f}"


def tables(results: pd.DataFrame, real: pd.DataFrame | None, epochs: Sequence[int]) -> str:
    """The markdown tables of ``tables.md``."""
    final = results[results["epoch"] == max(epochs)]
    present = list(dict.fromkeys(results["variant"]))
    order = [v for v in VARIANTS if v in present] + [v for v in present if v not in VARIANTS]
    lines = [f"## Ablation after epoch {max(epochs)} (Fig. 7a): mean ± SD over the test scans, inside the brain",
             "", "| model | " + " | ".join(f"{m.upper()} {d}" for m in METRICS for d in DIRECTIONS) + " |",
             "|---|" + "---|" * (len(METRICS) * len(DIRECTIONS))]
    for v in order:
        rows = final[final["variant"] == v]
        cells = [_mean_sd(rows[rows["direction"] == d][m]) for m in METRICS for d in DIRECTIONS]
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    lines += ["", "## SSIM by epoch (Fig. 7b format)", "",
              "| model | epoch | steps | " + " | ".join(f"SSIM {d}" for d in DIRECTIONS) + " |", "|---|---|---|---|---|"]
    for v in order:
        for epoch in epochs:
            rows = results[(results["variant"] == v) & (results["epoch"] == epoch)]
            if len(rows):
                cells = [f"{rows[rows['direction'] == d]['ssim'].mean():.4f}" for d in DIRECTIONS]
                lines.append(f"| {v} | {epoch} | {int(rows['steps'].iloc[0])} | " + " | ".join(cells) + " |")
    lines += ["", "## Anatomy check: Dice of input vs raw output (brain mask; 3 k-means tissue classes)", "",
              "| model | " + " | ".join(f"{a} {d}" for a in ANATOMY for d in DIRECTIONS) + " |",
              "|---|" + "---|" * (len(ANATOMY) * len(DIRECTIONS))]
    for v in order:
        rows = final[final["variant"] == v]
        lines.append(f"| {v} | " + " | ".join(_mean_sd(rows[rows["direction"] == d][a])
                                             for a in ANATOMY for d in DIRECTIONS) + " |")
    rows = final[final["variant"] == order[0]]
    lines.append("| real input vs real target | " + " | ".join(_mean_sd(rows[rows["direction"] == d][f"real_{a}"])
                                                            for a in ANATOMY for d in DIRECTIONS) + " |")
    if real is not None and len(real):
        lines += ["", "## Real scans, leave-one-out (native grids)", "",
                  "SSIM (NIfTI): the written prediction vs the real image, both divided by the real image's brain "
                  "maximum; SSIM (min-max) and the anatomy Dice as for the simulated scans (raw network output).", "",
                  "| model | left out | direction | on input grid | SSIM (NIfTI) | SSIM (min-max) | dice_mask | "
                  "dice_tissue | real dice_mask | real dice_tissue |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in real.itertuples():
            lines.append(f"| {r.variant} | {r.scan} | {r.direction} | {r.on_input_grid} | {r.ssim_nifti:.3f} | "
                         f"{r.ssim:.3f} | {r.dice_mask:.3f} | {r.dice_tissue:.3f} | {r.real_dice_mask:.3f} | "
                         f"{r.real_dice_tissue:.3f} |")
    return "\n".join(lines) + "\n"


def ssim_figure(results: pd.DataFrame, path: Path) -> Path:
    """SSIM against epoch per variant, one panel per direction (Fig. 7b as curves)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, direction in zip(axes, DIRECTIONS, strict=True):
        sub = results[results["direction"] == direction]
        for v in [v for v in VARIANTS if v in set(sub["variant"])]:
            curve = sub[sub["variant"] == v].groupby("epoch")["ssim"].mean()
            ax.plot(curve.index, curve.values, marker="o", label=v,
                    linewidth=2.5 if v in ("baseline", BEST) else 1.2)
        copied = sub[sub["variant"] == COPY]["ssim"]
        if len(copied):
            ax.axhline(copied.mean(), color="grey", linestyle="--", label=COPY)
        ax.set_title(f"SSIM {direction} (test scans, inside the brain)")
        ax.set_xlabel("epoch")
        ax.set_xticks(sorted(int(e) for e in sub["epoch"].unique()))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("SSIM")
    axes[1].legend(fontsize=8)
    fig.savefig(path, dpi=100)
    return path


def montage_figure(out: Path, manifest_path: Path, variants: Sequence[str], path: Path) -> Path:
    """Mid-axial slice of the first test scan, both directions, for each variant's last checkpoint."""
    import torch
    from matplotlib.figure import Figure

    from neurotrans.inference.predict import load_trained, predict_slices, prepare_for_prediction
    from neurotrans.io.manifest import read_manifest

    man = read_manifest(manifest_path)
    fig = Figure(figsize=(2 * (len(variants) + 2), 4.4), layout="constrained")
    axes = fig.subplots(2, len(variants) + 2, squeeze=False)
    for col, variant in enumerate(variants):
        method, info = load_trained(out / "runs" / folder_name(variant) / "checkpoints" / "last.pt", "cpu")
        row = next(i for i in range(len(man)) if str(man.table.iloc[i]["subject"]) in info.test_subjects)
        t1, t2 = prepare_for_prediction(man, row, info), prepare_for_prediction(man, row, info, reverse=True)
        z = int(np.argmax(t1.mask.sum(axis=(0, 1))))  # the axial slice with the most brain
        with torch.no_grad():
            pairs = [(t1.inputs, t2.inputs[0], method.predict), (t2.inputs, t1.inputs[0], method.predict_reverse)]
            for r, (src, real, translate) in enumerate(pairs):
                pred = predict_slices(translate, src, ["axial"], multiple=int(info.size_multiple))
                panels = [(0, src[0], f"{DIRECTIONS[r].split('->')[0]} input"), (1, real, "real")] if col == 0 else []
                for c, image, title in [*panels, (col + 2, pred, variant)]:
                    axes[r, c].imshow(image[:, :, z].T, origin="lower", cmap="gray", vmin=0, vmax=1)
                    axes[r, c].set_title(title, fontsize=9)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(f"{man.key(row)}, axial slice {z}: T1w->T2w (top), T2w->T1w (bottom), min-max units")
    fig.savefig(path, dpi=80)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", type=Path, required=True, help="simulated ms cohort (24 subjects, 3 mm)")
    p.add_argument("--out", type=Path, default=Path("runs/unit_t1t2"))
    p.add_argument("--epochs", type=int, nargs="+", default=[1, 2, 3, 4], help="epochs scored (Fig. 7b)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--set", action="append", default=[], help="extra overrides for every simulated run")
    p.add_argument("--realdata", type=Path, default=None, help="shared/realdata: add the leave-one-out runs")
    p.add_argument("--real-variants", nargs="+", default=["baseline"], choices=list(VARIANTS))
    p.add_argument("--real-set", action="append", default=[],
                   help=f"overrides for the real-scan runs, after {' '.join(REAL_DEFAULTS)} and --set")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    epochs = sorted(set(args.epochs))
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for variant in args.variants:
        rows += train_in_stages(variant, args.manifest.resolve(), args.out, epochs, args.device, args.set)
        print(f"{variant}: done", flush=True)
    first = args.out / "runs" / folder_name(args.variants[0]) / "checkpoints" / "last.pt"
    rows += [{"variant": COPY, "epoch": epochs[-1], "steps": 0, "train_seconds": 0.0, **r}
             for r in score_run(first, args.manifest.resolve(), anatomy=True, copy=True)]
    results = pd.DataFrame(rows)
    results.to_csv(args.out / "results.tsv", sep="\t", index=False)
    real = None
    if args.realdata is not None:
        real = pd.DataFrame(realdata_folds(args.realdata, args.out, args.device,
                                           [*REAL_DEFAULTS, *args.set, *args.real_set], args.real_variants))
        real.to_csv(args.out / "realdata.tsv", sep="\t", index=False)
    text = tables(results, real, epochs)
    (args.out / "tables.md").write_text(text)
    ssim_figure(results, args.out / "ssim_by_epoch.png")
    montage_figure(args.out, args.manifest.resolve(), args.variants, args.out / "montage.png")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
