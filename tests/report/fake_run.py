"""A small but realistic run folder: tiny volumes, manifest, evaluation tables, training log.

(A module of its own, not conftest.py: test files import its constants, and several test
folders have a conftest module.)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from fake_run_info import write_run_json

from neurotrans.io.manifest import write_manifest
from neurotrans.io.nifti import save_volume
from neurotrans.io.run import PredictionFolder

SHAPE = (24, 28, 24)
# FSL-style LAS storage (x flipped) so that the report has to reorient to RAS
AFFINE = np.array([[-3.0, 0, 0, 36], [0, 3, 0, -42], [0, 0, 3, -30], [0, 0, 0, 1]])
SUBJECTS = [f"sub-{i:02d}" for i in range(1, 9)]
TRAIN, TEST = SUBJECTS[:4], SUBJECTS[4:]
METHOD = "pix2pix"


def brain(rng: np.random.Generator, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T1, FDG, brainmask) of an ellipsoid head whose anterior-superior part is brighter on PET."""
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, s) for s in SHAPE), indexing="ij")
    mask = (x**2 / 0.7 + y**2 / 0.8 + z**2 / 0.7) < 1
    t1 = np.where(mask, 0.6 + 0.3 * (np.abs(x) > 0.3), 0.0) + 0.02 * rng.standard_normal(SHAPE)
    fdg = np.where(mask, scale * (1.0 + 0.8 * (y > 0.4) + 0.5 * (z > 0.4)), 0.0)
    return t1.astype(np.float32), fdg.astype(np.float32), mask.astype(np.float32)


def write_run(root: Path, *, simulated: bool = True, run_json: bool = True, problems: bool = True,
              run_simulated: bool = False) -> Path:
    """Write cohort/ (manifest + images) and run/ (predictions, evaluation, log) under ``root``."""
    rng = np.random.default_rng(0)
    cohort, run = root / "cohort", root / "run"
    rows = []
    for i, s in enumerate(SUBJECTS):
        t1, fdg, mask = brain(rng, 1.0 + 0.05 * i)
        for name, data in (("T1w", t1), ("FDG", fdg), ("brainmask", mask)):
            save_volume(cohort / s / f"{s}_{name}.nii.gz", data, AFFINE)
        rows.append({"subject": s, "session": "M000", "group": "AD" if i % 2 else "CN",
                     "T1w": f"{s}/{s}_T1w.nii.gz", "FDG": f"{s}/{s}_FDG.nii.gz",
                     "brainmask": f"{s}/{s}_brainmask.nii.gz"})
        if s in TEST:
            noise = (0.05 + 0.05 * i) * rng.standard_normal(SHAPE)
            save_volume(PredictionFolder(run / "predictions").path(s, "M000", "FDG"), fdg + noise * mask, AFFINE)
    write_manifest(pd.DataFrame(rows), cohort / "manifest.tsv")
    (cohort / "dataset_description.json").write_text(json.dumps({"Name": "fake", "Simulated": simulated}))
    if run_json:
        write_run_json(run, method=METHOD, manifest=cohort / "manifest.tsv", inputs=("T1w",), target="FDG",
                       train=TRAIN, test=TEST, simulated=run_simulated)

    ev = run / "evaluation"
    ev.mkdir(parents=True, exist_ok=True)
    per = []
    for i, s in enumerate(TEST):
        for method, worse in ((METHOD, 1.0), ("other_subjects", 2.0)):
            for scope in ("volume", "mid_axial"):
                for units in ("normalised", "original"):
                    k = 1.0 if units == "normalised" else 5.0
                    mae = k * worse * (0.05 + 0.02 * i)
                    per.append({"subject": s, "session": "M000", "group": "CN", "method": method, "scope": scope,
                                "units": units, "mae": mae, "mse": mae**2 * 1.5, "psnr": 30 - 10 * mae,
                                "ssim": 0.9 - mae, "pearson": 0.95 - mae / 2})
    per_df = pd.DataFrame(per)
    per_df.to_csv(ev / "per_subject.tsv", sep="\t", index=False)
    long = per_df.melt(id_vars=["method", "scope", "units"], value_vars=["mae", "mse", "psnr", "ssim", "pearson"],
                       var_name="metric")
    summary = long.groupby(["method", "scope", "units", "metric"], sort=False)["value"].agg(
        ["mean", "std", "min", "max", "count"]).rename(columns={"count": "n"}).reset_index()
    summary.to_csv(ev / "summary.tsv", sep="\t", index=False)
    pd.DataFrame([{"method_a": METHOD, "method_b": "other_subjects", "scope": "volume", "units": "normalised",
                   "metric": "mae", "mean_diff": -0.08, "t": -5.1, "p_t": 0.014, "wilcoxon_w": 0.0,
                   "p_wilcoxon": 0.125, "n": 4}]).to_csv(ev / "tests.tsv", sep="\t", index=False)
    (ev / "conventions.json").write_text(json.dumps({
        "psnr": {"convention": "fixed", "data_range": 1.0}, "ssim": {"window": "gaussian", "sigma": 1.5},
        "mask": "brainmask", "normalisation": "min-max to [0, 1] per image", "method": METHOD, "target": "FDG"}))
    if problems:
        pd.DataFrame([{"subject": "sub-09", "session": "M000", "problem": "prediction missing <b>x</b>"}]).to_csv(
            ev / "problems.tsv", sep="\t", index=False)
    regions = [f"Region_{r:02d}_{'L' if r % 2 else 'R'}" for r in range(25)]
    regional = [{"subject": s, "session": "M000", "group": "AD" if i % 2 else "CN", "region": r,
                 "real": 1.0 + 0.02 * j, "synthetic": 1.0 + 0.02 * j + 0.01 * (j % 7) + 0.005 * i}
                for i, s in enumerate(TEST) for j, r in enumerate(regions)]
    pd.DataFrame(regional).to_csv(ev / "regional.tsv", sep="\t", index=False)
    regional_df = pd.DataFrame(regional)
    err = regional_df.assign(e=regional_df.synthetic - regional_df.real).groupby("region", sort=False)["e"]
    pd.DataFrame({"region": regions, "mae": err.apply(lambda e: e.abs().mean()).to_numpy(),
                  "bias": err.mean().to_numpy(), "pearson_r": 0.9, "n": len(TEST)}).to_csv(
        ev / "regional_summary.tsv", sep="\t", index=False)
    pd.DataFrame([{"data": d, "accuracy": a, "fnr": 0.1, "fpr": 0.2, "n_subjects": 8, "folds": 4}
                  for d, a in (("real", 0.9), ("synthetic", 0.8))]).to_csv(ev / "diagnosis.tsv", sep="\t", index=False)
    pd.DataFrame([{"quantity": "regional_mean", "bias": 0.035, "loa_low": -0.005, "loa_high": 0.075, "n": 100}]).to_csv(
        ev / "bland_altman.tsv", sep="\t", index=False)
    pd.DataFrame([{"data": "real", "index": "global", "term": t, "coef": c, "se": 0.1, "t": c / 0.1, "p": 0.04,
                   "beta_std": c / 2} for t, c in (("index", -0.8), ("age", 0.02))]).to_csv(
        ev / "edss_regression.tsv", sep="\t", index=False)
    # the trainer's records: train rows (group/term losses, lr), validation rows, an end row
    log = [{"step": k, "epoch": 0, "kind": "train", "generator/loss": 2.0 / (1 + k), "generator/g_rec": 0.1,
            "discriminator/loss": 0.7 - 0.01 * k, "lr": 2e-4} for k in range(20)]
    log += [{"step": k, "epoch": 0, "kind": "val", "val/mae": 0.2 - 0.01 * k, "val/psnr": 20 + k / 5,
             "best": True} for k in (5, 10, 15)]
    log += [{"step": 19, "epoch": 0, "kind": "end", "stopped": "finished", "elapsed_s": 3.2, "best_step": 15}]
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    return run
