"""Robustness check on the three real patients: T1w -> T2w and T1w + T2w -> FLAIR, leave-one-out.

Builds a manifest of ``../shared/realdata`` (glioma x2, stroke; different native grids
and storage types), trains each task once per left-out subject on the subjects' native
grids, and predicts the left-out subject onto its own grid. Three subjects judge that
the pipeline runs on real scans, not the quality of the translation.

Run: ``python -m neurotrans.experiments.realdata --root ../shared/realdata --out runs/realdata``
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

TASKS = ("t1_to_t2", "t1t2_to_flair")


def realdata_manifest(root: Path, out: Path) -> Path:
    """manifest.tsv of the subjects under ``root`` that hold T1w, T2w and FLAIR (the folder builder)."""
    from neurotrans.errors import InputError
    from neurotrans.io.builders import build_manifest
    from neurotrans.io.manifest import write_manifest

    path = Path(out) / "manifest.tsv"
    table = build_manifest("folder", root, path, overwrite=True).table
    needed = ["T1w", "T2w", "FLAIR"]
    if not set(needed) <= set(table.columns):
        raise InputError(root, "holds no folder with T1w, T2w and FLAIR", "point --root at shared/realdata")
    write_manifest(table.dropna(subset=needed).reset_index(drop=True), path)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    from neurotrans.inference.predict import predict_command
    from neurotrans.io.manifest import read_manifest
    from neurotrans.io.nifti import load_volume
    from neurotrans.io.run import RunFolder
    from neurotrans.metrics.image import pearson, ssim
    from neurotrans.training.run import train_from_config

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[3].parent / "shared" / "realdata")
    p.add_argument("--out", type=Path, default=Path("runs/realdata"))
    p.add_argument("--minutes", type=float, default=None, help="training budget per fold")
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = realdata_manifest(args.root, args.out)
    man = read_manifest(manifest)
    for task in TASKS:
        for fold, subject in enumerate(man.subjects):
            run = args.out / task / f"fold{fold}"
            train_from_config(task, [f"data.manifest={manifest}", f"split.fold={fold}", *args.set], out=run,
                              max_minutes=args.minutes, device=args.device, overwrite=True)
            folder = RunFolder(run)
            written = predict_command(folder.best_checkpoint(), manifest=manifest, out=folder.predictions.root,
                                      device=args.device, overwrite=True)
            row = man.subjects.index(subject)
            target = "T2w" if task == "t1_to_t2" else "FLAIR"
            for path in written:
                pred = load_volume(path)
                src = load_volume(man.path(row, "T1w"))
                real = load_volume(man.path(row, target))
                same = pred.shape == src.shape and bool((abs(pred.affine - src.affine) < 1e-4).all())
                brain = real.data > 0
                scale = float(real.data[brain].max())  # both images on the real image's [0, max] scale
                print(f"{task} left out {subject}: {path.name} shape {pred.shape} on the input grid: {same}; "
                      f"in the brain: r = {pearson(pred.data, real.data, mask=brain):.3f}, "
                      f"SSIM = {ssim(pred.data / scale, real.data / scale, mask=brain, data_range=1.0):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
