"""``neurotrans demo``: simulate, train pix2pix on CPU within a time budget, predict, evaluate, report.

Everything lands in one folder::

    OUT/cohort/          the simulated fdg cohort (3 mm MNI grid)
    OUT/config.yaml, run.json, checkpoints/, log.jsonl   the training run
    OUT/predictions/     held-out subjects' predicted FDG (SUVR), NIfTI
    OUT/evaluation/      metrics per subject and summary (with the other-subjects reference)
    OUT/report/          the HTML report
    OUT/summary.json     the headline numbers

References: Isola et al. 2017 (pix2pix); papers/001 (pix2pix MRI -> FDG-PET, the
other-subjects reference of its Table 1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from neurotrans.errors import InputError
from neurotrans.io.atomic import write_text_atomic
from neurotrans.io.lock import folder_lock
from neurotrans.io.outputs import check_output_folder, remove_outputs
from neurotrans.io.run import REFERENCE_LABEL, RunFolder

DEMO_CONFIG = "pix2pix_axial_fdg"
# sized to learn within minutes on 2 CPU cores: narrow generator, 64x80 axial slices
DEMO_OVERRIDES = (
    "model.generator_args.features=[16, 32, 64, 128]",
    "model.discriminator_args.base=16",
    "data.batch_size=8",
    "optim.lr=0.001",
    "trainer.max_steps=0",  # the time budget ends training
    "trainer.val_every=100",
    "trainer.checkpoint_every=100",
    "split.test_fraction=0.2",
    "split.val_fraction=0.1",
)
OUT_ITEMS = ("cohort", *RunFolder.TRAINING_ITEMS, *RunFolder.DERIVED_ITEMS)


def summary_from_evaluation(evaluation: Path, label: str) -> dict[str, Any]:
    """Headline numbers of ``evaluation/summary.tsv``: model vs other-subjects reference (volume scope).

    Original units (SUVR) where the evaluation has them, else normalised units.
    """
    import pandas as pd

    s = pd.read_csv(evaluation / "summary.tsv", sep="\t")
    s = s[s["scope"] == "volume"]
    units = "original" if (s["units"] == "original").any() else "normalised"
    s = s[s["units"] == units]

    def pick(name: str) -> dict[str, float]:
        g = s[s["method"] == name]
        return {m: float(g.loc[g["metric"] == m, "mean"].iloc[0]) for m in ("mae", "psnr", "ssim")
                if (g["metric"] == m).any()}

    return {"units": units, "test": pick(label), "reference_other_subjects": pick(REFERENCE_LABEL)}


def demo_threads() -> int:
    """Torch threads for the demo: 2 on an idle 2-core machine, else 1.

    Two OpenMP threads on a busy machine wait for each other and run several times
    slower than one thread (measured here: 0.11 s per step with 1 thread, 4-5 s with 2
    under a load average of 9 on 2 cores).
    """
    import os

    cores = os.cpu_count() or 1
    return 2 if cores >= 2 and os.getloadavg()[0] < cores - 1 else 1


def run_demo(out: str | Path, minutes: float = 3.0, subjects: int = 40, seed: int = 0, overwrite: bool = False,
             progress: bool = True) -> dict[str, Any]:
    """Run the whole pipeline on a freshly simulated cohort; returns ``summary.json``'s content.

    Args:
        out: output folder.
        minutes: training time budget (CPU).
        subjects: cohort size (>= 10 for a train/val/test split).
        seed: seeds the cohort, the split and the training.
        overwrite: replace a previous demo in ``out``.
    """
    out = Path(out)
    if subjects < 10:
        raise InputError(f"--subjects {subjects}", "too few subjects for a train/validation/test split",
                         "use at least 10 (40 by default)")
    if not 0 < minutes < float("inf"):  # checked before minutes of simulation, not after
        raise InputError(f"--minutes {minutes}", "is not a positive training time", "use e.g. --minutes 3")
    check_output_folder(out)
    with folder_lock(RunFolder(out).lock_file, what="neurotrans demo"):  # train re-enters it
        return _run_demo(out, minutes, subjects, seed, overwrite, progress)


def _run_demo(out: Path, minutes: float, subjects: int, seed: int, overwrite: bool, progress: bool) -> dict[str, Any]:
    import torch

    from neurotrans.inference.predict import predict_command, prediction_label
    from neurotrans.metrics.evaluate import evaluate_command
    from neurotrans.phantom import simulate_cohort
    from neurotrans.report import build_report
    from neurotrans.training.run import train_from_config

    existing = [out / n for n in OUT_ITEMS if (out / n).exists() or (out / n).is_symlink()]
    if existing and not overwrite:
        raise InputError(out, "already holds a demo run", "pass --overwrite or choose another --out")
    remove_outputs(existing)
    torch.set_num_threads(demo_threads())

    simulate_cohort("fdg", out / "cohort", n_subjects=subjects, voxel_size=3.0, seed=seed, progress=progress)
    manifest = out / "cohort" / "manifest.tsv"
    overrides = [*DEMO_OVERRIDES, f"data.manifest={manifest}", f"split.seed={seed}", f"trainer.seed={seed}",
                 f"trainer.progress={str(progress).lower()}"]
    run = RunFolder(train_from_config(DEMO_CONFIG, overrides, out=out, max_minutes=minutes, device="cpu"))
    info, outcome = run.read_info(), run.read_outcome()
    assert info is not None and outcome is not None
    predict_command(run.best_checkpoint(), manifest=manifest, out=run.predictions.root, device="cpu")
    evaluate_command(run.predictions.root, manifest, "FDG", mask="brainmask", out=run.evaluation)
    summary = {"method": info.method, **summary_from_evaluation(run.evaluation, prediction_label(info)),
               "n_train": len(info.split["train"]), "n_val": len(info.split["val"]),
               "n_test": len(info.split["test"]), "train_steps": outcome.steps,
               "train_minutes": round(float(outcome.train_seconds) / 60, 2),
               "report": str(run.report / "report.html")}
    # the summary first, so that the report shows it
    write_text_atomic(run.summary_json, json.dumps(summary, indent=2) + "\n")
    build_report(run.root)
    print(json.dumps(summary, indent=2))
    return summary
