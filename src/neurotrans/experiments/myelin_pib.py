"""The MS thesis's myelin experiment on the simulated ms cohort: ten models, 3-fold CV, t0 -> t1.

Simulates (or reuses) an ms cohort at 3 mm (28 subjects: 18 patients with t0 and t1, 10
controls, as the thesis), splits it into 3 subject-level folds stratified by group (each
fold: 1/3 test, 3 of the other subjects validate, the rest train, thesis Sec. 4.3.1), and
per fold trains on baseline (t0) scans only, predicts t0 and t1 of the test subjects and
evaluates them (image metrics, MS tables). Models (rows of thesis Tables 3.1-3.2, 4.1-4.2):
2-layer CNN, 3D U-Net (L1, WL1), Sketcher (L1, WL1), Refiner (L1, WL1, NWL1), CF-SAGAN,
Refiner CF-SAGAN. The Sketcher (L1) row is the Sketcher-Refiner run after its Sketcher
stage, and CF-SAGAN the Refiner CF-SAGAN run after its first stage (the same weights the
cascade then freezes). The three Refiners share that Sketcher: stage 0 is trained once and
each variant resumes from its checkpoint, which gives bit for bit the weights a run of
the variant from scratch gives (stage 0 does not depend on the Refiner's loss; see
tests/methods/test_cascade_training.py).

Pooled over folds it writes and prints: image quality (MSE, PSNR at t0, with paired tests
against the proposed models), myelin discrepancy in controls' WM / NAWM / lesions, which
orderings of thesis Tables 3.1, 3.2 and 4.2 hold, demyelination DICE at t0 and t1, the
dynamic indices and their DICE, Bland-Altman of WM/NAWM and lesion DVR, the EDSS
regression (Table 4.3 format) on true and synthetic indices, and the Refiners' visual
attention saliency (share of |d loss / d MRI| in lesions).

Run: ``nice -n 10 env OMP_NUM_THREADS=1 python -m neurotrans.experiments.myelin_pib --out
runs/myelin_pib --steps 100 [--fold 0]`` (``--fold`` runs one fold; a last call without it
reuses the finished folds and writes the tables).

References: Wei, PhD thesis 2020 (papers/003), ch. 3 (Tables 3.1-3.2, Fig. 3.7-3.9) and
ch. 4 (Tables 4.1-4.3, Sec. 4.3.4-4.3.6).
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neurotrans.io.run import RunFolder

FOLDS = 3
VAL_SUBJECTS = 3
STAGE0 = "stage0"


@dataclass(frozen=True)
class Model:
    """One row: a packaged config, its changes, and (cascades) which rows its stage 0 gives."""

    label: str
    config: str
    model: dict[str, Any] = field(default_factory=dict)  # replaces keys of the model section
    stage_loss: str | None = None  # cascade: the Refiner's loss
    stage0_label: str | None = None  # cascade: the row its first stage gives
    shares_stage0_with: str | None = None  # cascade: reuse this label's stage-0 checkpoint


MODELS = (
    Model("2-layer CNN", "unet3d_pib", {"generator": "cnn2layer", "generator_args": {"features": 10}}),
    Model("3D U-Net", "unet3d_pib"),
    Model("3D U-Net+WL1", "unet3d_pib", {"loss": "wl1"}),
    Model("Sketcher+WL1", "sketcher_pib", {"loss": "wl1"}),
    Model("Refiner (WL1)", "sketcher_refiner_pib", stage_loss="wl1", stage0_label="Sketcher"),
    Model("Refiner (L1)", "sketcher_refiner_pib", stage_loss="l1", shares_stage0_with="Refiner (WL1)"),
    Model("Refiner (NWL1)", "sketcher_refiner_pib", stage_loss="nwl1", shares_stage0_with="Refiner (WL1)"),
    Model("Refiner CF-SAGAN", "refiner_cfsagan_pib", stage0_label="CF-SAGAN"),
)
ROW_ORDER = ("2-layer CNN", "3D U-Net", "3D U-Net+WL1", "Sketcher", "Sketcher+WL1", "Refiner (L1)",
             "Refiner (WL1)", "Refiner (NWL1)", "CF-SAGAN", "Refiner CF-SAGAN")
PROPOSED = ("Refiner (WL1)", "Refiner CF-SAGAN")


def slug(label: str) -> str:
    """A folder name for a row label."""
    return "".join(c if c.isalnum() else "_" for c in label).strip("_").lower()


def thesis_folds(manifest: Any, seed: int = 0) -> list[dict[str, list[str]]]:
    """3 stratified folds; each trains on 2/3 of the subjects of which ``VAL_SUBJECTS`` validate."""
    from neurotrans.analysis.ms_scan import participants
    from neurotrans.data.splits import kfold_splits

    groups = participants(manifest)["group"]
    out = []
    for fold in kfold_splits(manifest, FOLDS, group="group", seed=seed, validation=False):
        train = list(fold.train)
        rng = np.random.default_rng(seed + len(out))
        controls = [s for s in train if groups.get(s) == "HC"]
        patients = [s for s in train if groups.get(s) != "HC"]
        val = sorted([*rng.choice(controls, 1, replace=False), *rng.choice(patients, VAL_SUBJECTS - 1, replace=False)])
        out.append({"train": [s for s in train if s not in val], "val": val, "test": list(fold.test)})
    return out


def model_config(m: Model, split: dict[str, list[str]], manifest: Path, cache: Path, steps: int,
                 lr: float, max_steps: int) -> Any:
    """The config of one model and fold (the packaged config with the experiment's settings)."""
    from neurotrans.config import config_from_dict, load_config

    values = load_config(m.config).to_dict()
    values["name"] = slug(m.label)
    values["model"].update(m.model)
    if values["model"]["method"] == "cascade":
        stages = values["model"]["stages"]
        stages[0]["steps"] = steps
        for k, s in enumerate(stages):
            s["lr"] = lr if k == 0 else lr / 2  # the thesis's ratio (1e-4 : 5e-5)
        if m.stage_loss:
            stages[1]["loss"] = m.stage_loss
    elif "lr" in values["model"]:
        values["model"]["lr"] = lr
    values["data"].update({"manifest": str(manifest), "cache_dir": str(cache), "patch_size": [32, 32, 32],
                           "patch_overlap": 0.25, "samples_per_volume": 0, "batch_size": 4})
    values["split"] = {"kind": "explicit", **split}
    values["optim"].update({"lr": lr})
    values["trainer"].update({"max_steps": max_steps, "val_every": steps, "checkpoint_every": steps,
                              "progress": False, "early_stopping": "none"})
    return config_from_dict(values)


def baseline_manifest(manifest: Path) -> Path:
    """``manifest_t0.tsv`` beside the cohort's manifest: its t0 rows (same folder, same relative paths)."""
    from neurotrans.io.manifest import read_manifest, write_manifest

    path = manifest.parent / "manifest_t0.tsv"
    if not path.is_file():
        table = read_manifest(manifest).table
        write_manifest(table[table["session"].astype(str) == "t0"], path)
    return path


def predict_and_evaluate(run: RunFolder, variant: str | None, manifest: Path, device: str = "auto") -> Path:
    """Predict the sessions of ``manifest`` of the run's test subjects from ``last.pt`` and evaluate them."""
    from neurotrans.inference.predict import predict_command
    from neurotrans.metrics.evaluate import evaluate, write_evaluation

    evaluation = run.variant_evaluation(variant)
    if (evaluation / "per_subject.tsv").is_file():
        return evaluation
    predictions = run.variant_predictions(variant)
    predict_command(run.checkpoint("last"), manifest=manifest, out=predictions.root, device=device, overwrite=True)
    result = evaluate(predictions.root, manifest, "PIB", mask="brainmask", other_subjects=False)
    write_evaluation(evaluation, result)
    return evaluation


def train(cfg: Any, out: Path, resume: bool, device: str = "auto") -> None:
    from neurotrans.training.run import train_from_config

    train_from_config(cfg, out=out, resume=resume, overwrite=not resume, device=device)


def run_fold(fold: int, split: dict[str, list[str]], args: argparse.Namespace) -> dict[str, Path]:
    """Train, predict and evaluate every model of one fold; ``{row label: evaluation folder}``."""
    root = args.out / f"fold{fold}"
    manifest = args.cohort / "manifest.tsv"
    cache = args.out / f"cache{fold}"  # one per fold: folds may run in parallel processes
    t0 = baseline_manifest(manifest)  # t1 is predicted for the proposed models only (CPU budget)
    out: dict[str, Path] = {}
    for m in MODELS:
        if m.label in args.skip:
            continue
        run = RunFolder(root / slug(m.label))
        done = (run.evaluation / "per_subject.tsv").is_file()
        cascade = m.stage0_label is not None or m.shares_stage0_with is not None
        cfg = model_config(m, split, manifest, cache, args.steps, args.lr, 2 * args.steps if cascade else args.steps)
        if not done:
            if not cascade:
                train(cfg, run.root, resume=False, device=args.device)
            else:
                if m.shares_stage0_with is not None:
                    source = RunFolder(root / slug(m.shares_stage0_with))
                    run.checkpoints.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source.checkpoints / f"{STAGE0}.pt", run.checkpoint("last"))
                else:
                    train(cfg.replace([f"trainer.max_steps={args.steps}"]), run.root, resume=False, device=args.device)
                    shutil.copy2(run.checkpoint("last"), run.checkpoints / f"{STAGE0}.pt")
                    out[m.stage0_label] = predict_and_evaluate(run, STAGE0, t0, args.device)  # type: ignore[index]
                train(cfg, run.root, resume=True, device=args.device)
        if m.stage0_label is not None:
            out[m.stage0_label] = predict_and_evaluate(run, STAGE0, t0, args.device)
        out[m.label] = predict_and_evaluate(run, None, manifest if m.label in PROPOSED else t0, args.device)
    return out


# ---------------------------------------------------------------- tables
def pooled(evaluations: dict[str, list[Path]], table: str) -> pd.DataFrame:
    """One evaluation table of every model and fold, with ``model`` and ``fold`` columns."""
    frames = []
    for label, folders in evaluations.items():
        for fold, folder in enumerate(folders):
            path = folder / f"{table}.tsv"
            if path.is_file():
                df = pd.read_csv(path, sep="\t", dtype={"subject": str, "session": str})
                frames.append(df.assign(model=label, fold=fold))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def markdown(df: pd.DataFrame, digits: int = 3) -> str:
    """A pipe table of ``df`` (floats with ``digits`` significant digits)."""
    def cell(v: Any) -> str:
        return f"{v:.{digits}g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + " --- |" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def mean_sd(x: pd.Series, digits: int) -> str:
    return f"{x.mean():.{digits}f} ({x.std(ddof=1):.{digits}f})"


def paired_p(a: pd.Series, b: pd.Series) -> float:
    from scipy.stats import ttest_rel

    keep = a.notna() & b.notna()
    return float(ttest_rel(a[keep], b[keep]).pvalue) if keep.sum() > 2 else float("nan")


def quality_table(per: pd.DataFrame, lesions: pd.DataFrame) -> pd.DataFrame:
    """Tables 3.1 + 3.2 (4.1 + 4.2) at t0: MSE, PSNR, discrepancy per ROI, paired p vs the proposed."""
    img = per[(per.scope == "volume") & (per.units == "original") & (per.session == "t0")]
    les = lesions[lesions.session == "t0"].copy()
    les["d_wm"] = (les.wm_real - les.wm_synthetic).abs()
    les["d_les"] = (les.lesion_real - les.lesion_synthetic).abs()
    rows = []
    for label in [r for r in ROW_ORDER if r in set(img.model)]:
        i, g = img[img.model == label].set_index("subject"), les[les.model == label].set_index("subject")
        row = {"model": label, "n": len(i), "MSE": mean_sd(i.mse, 4), "PSNR": mean_sd(i.psnr, 3),
               "WM in HC": mean_sd(g.d_wm[g.group == "HC"], 3), "NAWM": mean_sd(g.d_wm[g.group != "HC"], 3),
               "MS lesions": mean_sd(g.d_les.dropna(), 3),
               "_mse": i.mse.mean(), "_psnr": i.psnr.mean(), "_hc": g.d_wm[g.group == "HC"].mean(),
               "_nawm": g.d_wm[g.group != "HC"].mean(), "_les": g.d_les.mean()}
        for ref in PROPOSED:
            if ref in set(img.model) and ref != label:
                ri, rg = img[img.model == ref].set_index("subject"), les[les.model == ref].set_index("subject")
                row[f"p MSE vs {ref}"] = paired_p(i.mse, ri.mse.reindex(i.index))
                row[f"p lesions vs {ref}"] = paired_p(g.d_les, rg.d_les.reindex(g.index))
        rows.append(row)
    return pd.DataFrame(rows)


def orderings(q: pd.DataFrame) -> list[tuple[str, bool]]:
    """The thesis's claims (Tables 3.1, 3.2, 4.1, 4.2) checked on the pooled means (claims whose
    models were not all run are left out)."""
    v = q.set_index("model")
    ch3 = ("2-layer CNN", "3D U-Net", "3D U-Net+WL1", "Sketcher", "Sketcher+WL1")

    def lt(a: str, b: str, col: str) -> bool:
        return bool(v.loc[a, col] < v.loc[b, col])  # KeyError: a model not run

    claims = {
        "3.1 MSE: Refiner (WL1) < Sketcher < 3D U-Net < 2-layer CNN": lambda: all(
            lt(a, b, "_mse") for a, b in (("Refiner (WL1)", "Sketcher"), ("Sketcher", "3D U-Net"),
                                          ("3D U-Net", "2-layer CNN"))),
        "3.1 MSE: Refiner (WL1) lowest of the ch. 3 models": lambda: all(lt("Refiner (WL1)", o, "_mse") for o in ch3),
        "3.1 PSNR: Refiner (WL1) highest of the ch. 3 models": lambda: all(lt(o, "Refiner (WL1)", "_psnr")
                                                                          for o in ch3),
        "3.1 MSE: L1 < WL1 for the 3D U-Net": lambda: lt("3D U-Net", "3D U-Net+WL1", "_mse"),
        "3.1 MSE: L1 < WL1 for the Sketcher": lambda: lt("Sketcher", "Sketcher+WL1", "_mse"),
        "3.1 MSE: Sketcher < 3D U-Net": lambda: lt("Sketcher", "3D U-Net", "_mse"),
        "3.2 lesions: WL1 < L1 for the 3D U-Net": lambda: lt("3D U-Net+WL1", "3D U-Net", "_les"),
        "3.2 lesions: WL1 < L1 for the Sketcher": lambda: lt("Sketcher+WL1", "Sketcher", "_les"),
        "3.2 lesions: WL1 < L1 for the Refiner": lambda: lt("Refiner (WL1)", "Refiner (L1)", "_les"),
        "3.2 every ROI: Refiner (WL1) best of the ch. 3 models": lambda: all(
            lt("Refiner (WL1)", o, c) for o in ch3 for c in ("_hc", "_nawm", "_les")),
        "4.1 MSE: Refiner CF-SAGAN < CF-SAGAN < Refiner (WL1) ('Refiner cGAN')": lambda: (
            lt("Refiner CF-SAGAN", "CF-SAGAN", "_mse") and lt("CF-SAGAN", "Refiner (WL1)", "_mse")),
        "4.1 MSE: CF-SAGAN < Sketcher (cGAN)": lambda: lt("CF-SAGAN", "Sketcher", "_mse"),
        "4.1 MSE: Refiner CF-SAGAN lowest of all": lambda: all(lt("Refiner CF-SAGAN", o, "_mse")
                                                             for o in v.index if o != "Refiner CF-SAGAN"),
        "4.2 MSE: NWL1 < WL1 (Refiner)": lambda: lt("Refiner (NWL1)", "Refiner (WL1)", "_mse"),
        "4.2 MSE: L1 lowest of the Refiner losses": lambda: (
            lt("Refiner (L1)", "Refiner (WL1)", "_mse") and lt("Refiner (L1)", "Refiner (NWL1)", "_mse")),
        "4.2 lesions: NWL1 < L1 (Refiner)": lambda: lt("Refiner (NWL1)", "Refiner (L1)", "_les"),
    }
    out = []
    for name, claim in claims.items():
        try:
            out.append((name, bool(claim())))
        except KeyError:
            continue
    return out


def longitudinal(lesions: pd.DataFrame, indices: pd.DataFrame, model: str) -> dict[str, Any]:
    """DICE at t0/t1, the indices and their DICE, Bland-Altman and the EDSS regression of one model."""
    from neurotrans.metrics.evaluate_ms import edss_regression_table, ms_bland_altman

    les = lesions[(lesions.model == model) & (lesions.group != "HC")]
    idx = indices[indices.model == model].drop(columns=["model", "fold"])
    out: dict[str, Any] = {"model": model}
    for ses in ("t0", "t1"):
        out[f"demyelination DICE {ses}"] = mean_sd(les.demyelination_dice[les.session == ses].dropna(), 2)
    for k in ("global", "dynamic_demyelination", "dynamic_remyelination"):
        out[f"{k} real"] = mean_sd(idx[f"{k}_real"], 3)
        out[f"{k} synthetic"] = mean_sd(idx[f"{k}_synthetic"], 3)
        real, synthetic = idx[f"{k}_real"].to_numpy(float), idx[f"{k}_synthetic"].to_numpy(float)
        keep = np.isfinite(real) & np.isfinite(synthetic)
        out[f"{k} r"] = float(np.corrcoef(real[keep], synthetic[keep])[0, 1]) if keep.sum() > 2 else np.nan
    out["DICE dynamic demyelination"] = mean_sd(idx.dice_dynamic_demyelination.dropna(), 2)
    out["DICE dynamic remyelination"] = mean_sd(idx.dice_dynamic_remyelination.dropna(), 2)
    all_t0 = lesions[(lesions.model == model) & (lesions.session == "t0")].drop(columns=["model", "fold"])
    out["bland_altman"] = ms_bland_altman(all_t0)
    out["edss"] = edss_regression_table(idx)[0]
    return out


SALIENCY_MODELS = ("Refiner (L1)", "Refiner (WL1)", "Refiner (NWL1)")


def saliency_rows(args: argparse.Namespace, fold: int, split: dict[str, list[str]], labels: Sequence[str],
                  max_patients: int = 3) -> pd.DataFrame:
    """Visual attention saliency of the Refiners ``labels`` on fold ``fold``'s first test patients at t0.

    |d loss / d MRI| through the whole cascade (the frozen Sketcher included), maximum over
    the input sequences (thesis eq. 3.7); reported as the mean saliency in lesions, NAWM and
    CSF relative to the brain's, for the plain L1 loss and for each model's own loss.
    """
    import torch

    from neurotrans.data.pipeline import prepare, round_up
    from neurotrans.explain.saliency import attention_saliency
    from neurotrans.inference.predict import load_trained
    from neurotrans.io.manifest import read_manifest
    from neurotrans.methods.regions import Reconstruction

    rows = []
    man = read_manifest(args.cohort / "manifest.tsv")
    for label in labels:
        run = RunFolder(args.out / f"fold{fold}" / slug(label))
        method, info = load_trained(run.checkpoint("last"))
        from neurotrans.config import config_from_dict

        cfg = config_from_dict(info.config)
        subjects = prepare(man, split["test"], cfg.data, dict(info.cohort_stats))
        own = Reconstruction(cfg.model.stages[-1].loss, tuple(cfg.data.aux))
        patients = [s for s in subjects if s.session == "t0" and s.aux is not None and np.asarray(s.aux)[0].any()]
        for s in patients[:max_patients]:
            size = [round_up(n, method.size_multiple) for n in s.shape]
            pad = [(0, 0)] + [(0, p - n) for p, n in zip(size, s.shape, strict=True)]
            x = torch.from_numpy(np.pad(np.asarray(s.inputs, np.float32), pad))[None]
            y = torch.from_numpy(np.pad(np.asarray(s.target, np.float32), pad))[None]
            aux = torch.from_numpy(np.pad(np.asarray(s.aux, np.float32), pad))[None]
            crop = tuple(slice(0, n) for n in s.shape)
            for loss_name, loss in (("L1", torch.nn.functional.l1_loss),
                                    ("own", lambda p, t, a=aux, f=own: f(p, {"target": t, "aux": a}))):
                sal = attention_saliency(method.predict, x, y, loss=loss)[0].numpy()[crop]
                brain = np.asarray(s.mask, bool)
                les, nawm = np.asarray(s.aux[0], bool), np.asarray(s.aux[1], bool)
                csf = np.asarray(load_csf(man, s), bool) & brain
                base = sal[brain].mean()
                rows.append({"model": label, "loss": loss_name, "subject": s.subject,
                             "lesions": sal[les].mean() / base, "NAWM": sal[nawm & ~les].mean() / base,
                             "CSF": sal[csf].mean() / base})
    return pd.DataFrame(rows)


def load_csf(man: Any, subject: Any) -> np.ndarray:
    """The subject's CSF fraction map (> 0.5) on the working grid."""
    from neurotrans.io.nifti import load_volume

    row = [i for i in range(len(man)) if man.key(i) == subject.key][0]
    return load_volume(man.path(row, "CSF")).data > 0.5


def write_tables(args: argparse.Namespace, evaluations: dict[str, list[Path]],
                 saliency: pd.DataFrame | None) -> str:
    per, lesions, indices = (pooled(evaluations, t) for t in ("per_subject", "lesions", "indices"))
    q = quality_table(per, lesions)
    lines = [f"# Myelin PIB experiment ({int(per.fold.max()) + 1} fold(s), {args.steps} steps per stage, "
             f"lr {args.lr:g})", "", "## Tables 3.1/3.2 and 4.1: t0 test scans pooled over folds, mean (SD)", ""]
    cols = [c for c in q.columns if not c.startswith("_")]
    lines.append(markdown(q[cols]))
    lines += ["", "## Thesis orderings", ""]
    lines += [f"- {'holds' if ok else 'does NOT hold'}: {name}" for name, ok in orderings(q)]
    for model in PROPOSED:
        if model not in set(lesions.model):
            continue
        lo = longitudinal(lesions, indices, model)
        lines += ["", f"## {model}: static and dynamic demyelination (patients, test folds pooled)", ""]
        lines += [f"- {k}: {v:.3f}" if isinstance(v, float) else f"- {k}: {v}" for k, v in lo.items()
                  if k not in ("model", "bland_altman", "edss")]
        lines += ["", "Bland-Altman (t0, all test scans):", "", markdown(lo["bland_altman"], 4)]
        edss = lo["edss"]
        if len(edss):
            lines += ["", "EDSS ~ index + age + sex + lesion load (Table 4.3 format):", "",
                      markdown(edss)]
    if saliency is not None and len(saliency):
        s = saliency.groupby(["model", "loss"])[["lesions", "NAWM", "CSF"]].mean().reset_index()
        lines += ["", "## Visual attention saliency (fold 0, first 3 t0 test patients): mean in ROI / mean in brain",
                  "",
                  markdown(s)]
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tables.md").write_text(text)
    q.to_csv(args.out / "quality.tsv", sep="\t", index=False)
    for name, df in (("per_subject", per), ("lesions", lesions), ("indices", indices)):
        df.to_csv(args.out / f"pooled_{name}.tsv", sep="\t", index=False)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/myelin_pib"))
    p.add_argument("--cohort", type=Path, default=None, help="ms cohort folder (default: OUT/cohort, simulated)")
    p.add_argument("--subjects", type=int, default=28)
    p.add_argument("--steps", type=int, default=100, help="training steps per model and stage")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam lr (Refiners: half, the thesis's ratio)")
    p.add_argument("--fold", type=int, default=None, help="run only this fold")
    p.add_argument("--no-saliency", action="store_true")
    p.add_argument("--skip", nargs="*", default=[], help="row labels not to train (CPU budget)")
    p.add_argument("--saliency-for", default=None, help="only compute this Refiner's saliency (fold 0)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    args = p.parse_args(argv)
    args.out = args.out.resolve()
    args.cohort = (args.cohort or args.out / "cohort").resolve()
    if not (args.cohort / "manifest.tsv").is_file():
        from neurotrans.phantom import simulate_cohort

        simulate_cohort("ms", args.cohort, n_subjects=args.subjects, voxel_size=3.0, seed=0, progress=False)
    from neurotrans.io.manifest import read_manifest

    splits = thesis_folds(read_manifest(args.cohort / "manifest.tsv"))
    if args.saliency_for:  # one model's saliency, so that the three can run side by side
        rows = saliency_rows(args, 0, splits[0], [args.saliency_for])
        rows.to_csv(args.out / f"saliency_{slug(args.saliency_for)}.tsv", sep="\t", index=False)
        print(rows.groupby("loss")[["lesions", "NAWM", "CSF"]].mean())
        return 0
    folds = [args.fold] if args.fold is not None else list(range(FOLDS))
    evaluations: dict[str, list[Path]] = {}
    for fold in folds:
        for label, folder in run_fold(fold, splits[fold], args).items():
            evaluations.setdefault(label, []).append(folder)
    saliency = None
    if not args.no_saliency and 0 in folds:
        parts = []
        for label in SALIENCY_MODELS:
            path = args.out / f"saliency_{slug(label)}.tsv"
            if not path.is_file():
                saliency_rows(args, 0, splits[0], [label]).to_csv(path, sep="\t", index=False)
            parts.append(pd.read_csv(path, sep="\t"))
        saliency = pd.concat(parts, ignore_index=True)
        saliency.to_csv(args.out / "saliency.tsv", sep="\t", index=False)
    print(write_tables(args, evaluations, saliency))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
