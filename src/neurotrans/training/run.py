"""``neurotrans train``: config -> subject-level split -> prepared slices -> trainer -> run folder.

A run folder holds ``config.yaml`` (the resolved config), ``run.json`` (method, manifest,
names and the subject split), ``checkpoints/{last,best}.pt``, ``log.jsonl`` and ``log.csv``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neurotrans import __version__
from neurotrans.config import Config, SplitConfig, dump_config, load_config
from neurotrans.errors import InputError
from neurotrans.io.atomic import write_text_atomic
from neurotrans.io.manifest import Manifest, read_manifest

RUN_FILES = ("checkpoints", "log.jsonl", "log.csv", "run.json", "config.yaml")


def split_subjects(manifest: Manifest, split: SplitConfig) -> dict[str, list[str]]:
    """Subject-level train / val / test lists from the split config.

    References: subject-level k-fold (ESIT paper, 5-fold CV); leave-one-out for the
    three real patients.
    """
    from neurotrans.data.splits import fixed_split, kfold_splits

    subjects = manifest.subjects
    if split.kind == "fixed":
        fold = fixed_split(manifest, test_fraction=split.test_fraction, val_fraction=split.val_fraction,
                           group=split.stratify, seed=split.seed)
        return fold.to_dict()
    if split.kind == "kfold":
        if not 0 <= split.fold < split.folds:
            raise ValueError(f"split.fold must be in [0, {split.folds}), got {split.fold}")
        return kfold_splits(manifest, split.folds, group=split.stratify, seed=split.seed)[split.fold].to_dict()
    if split.kind == "loo":
        if not 0 <= split.fold < len(subjects):
            raise ValueError(f"split.fold must be in [0, {len(subjects)}) for leave-one-out, got {split.fold}")
        test = subjects[split.fold]
        return {"train": [s for s in subjects if s != test], "val": [], "test": [test]}
    if split.kind == "explicit":
        unknown = [s for s in (*split.train, *split.val, *split.test) if s not in subjects]
        if unknown:
            raise InputError(manifest.source or manifest.root, f"split names subjects not in the manifest: "
                             f"{', '.join(unknown[:5])}", "fix split.train/val/test")
        return {"train": list(split.train), "val": list(split.val), "test": list(split.test)}
    raise ValueError(f"unknown split.kind {split.kind!r}; choose fixed, kfold, loo or explicit")


def working_grid(voxel_size: float | None) -> Any:
    """The MNI grid of ``voxel_size`` mm, or ``None`` for each subject's native grid."""
    from neurotrans.data.grid import mni_grid

    return None if voxel_size is None else mni_grid(float(voxel_size))


def prepare_rows(manifest: Manifest, subjects: Iterable[str], config: Config, *, with_target: bool = True) -> list:
    """Prepared subjects (all sessions) of ``subjects``, in manifest order.

    With ``data.cache_dir`` they are memory-mapped from the on-disk cache (filled on first use).
    """
    from neurotrans.data.cache import prepare_cohort

    return prepare_cohort(manifest.subset(set(subjects)), list(config.data.inputs),
                          config.data.target if with_target else None, grid=working_grid(config.data.voxel_size),
                          normalisation=dict(config.data.normalisation), mask=config.data.mask,
                          cache_dir=config.data.cache_dir)


def planes_of(plane: str) -> list[str]:
    """The planes a model is trained on (``all`` = the three-plane model)."""
    from neurotrans.data.slicing import PLANES

    return list(PLANES) if plane == "all" else [plane]


def padded_size(shapes: Sequence[tuple[int, int, int]], plane: str, multiple: int) -> tuple[int, int]:
    """Slice size of ``plane`` covering every shape, rounded up to ``multiple``."""
    from neurotrans.data.slicing import slice_shape

    hs, ws = zip(*(slice_shape(tuple(s), plane) for s in shapes), strict=True)
    return tuple(int(-(-max(v) // multiple) * multiple) for v in (hs, ws))  # type: ignore[return-value]


def slice_datasets(subjects: list, config: Config, multiple: int, *, skip_empty: bool | None = None) -> list:
    """One :class:`PairedSliceDataset` per training plane, padded to ``multiple``."""
    from neurotrans.data.datasets import PairedSliceDataset

    shapes = [s.shape for s in subjects]
    skip = config.data.skip_empty if skip_empty is None else skip_empty
    return [PairedSliceDataset(subjects, plane=p, context=config.data.context,
                               pad_to=padded_size(shapes, p, multiple), skip_empty=skip)
            for p in planes_of(config.data.plane)]


def _is_simulated(manifest_path: Path) -> bool:
    desc = Path(manifest_path).parent / "dataset_description.json"
    try:
        return bool(json.loads(desc.read_text()).get("Simulated", False))
    except (OSError, ValueError):
        return False


def _check_run_folder(run: Path, resume: bool, overwrite: bool) -> None:
    existing = [run / f for f in RUN_FILES if (run / f).exists()]
    if resume:
        if not (run / "checkpoints" / "last.pt").is_file():
            raise InputError(run, "has no checkpoints/last.pt to resume from", "train without --resume first")
        return
    if existing and not overwrite:
        raise InputError(run, "already holds a training run", "pass --resume to continue it, --overwrite to "
                         "replace it, or --out to train into another folder")
    for path in existing:
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def train_from_config(config: str | Path | Config, overrides: Sequence[str] = (), out: str | Path | None = None,
                      resume: bool = False, max_minutes: float | None = None, device: str = "auto",
                      overwrite: bool = False) -> Path:
    """Train the model a config describes; returns the run folder.

    Args:
        config: YAML path, packaged config name or :class:`Config`.
        overrides: dotted ``key=value`` strings.
        out: run folder (default ``trainer.out``).
        resume: continue from ``out/checkpoints/last.pt`` (the resolved config must match).
        max_minutes: time budget, overriding ``trainer.max_minutes``.
        device: ``auto``, ``cpu`` or ``cuda``.
        overwrite: replace an existing run in ``out``.
    """
    from neurotrans.methods import build_method
    from neurotrans.training.trainer import Trainer, seed_everything

    overrides = list(overrides or ())
    if out is not None:
        overrides.append(f"trainer.out={Path(out)}")
    if max_minutes is not None:
        overrides.append(f"trainer.max_minutes={float(max_minutes)}")
    cfg = load_config(config, overrides)
    run = Path(cfg.trainer.out)
    if not cfg.data.manifest:
        raise InputError("data.manifest", "the config names no manifest",
                         "pass --set data.manifest=PATH/manifest.tsv")
    _check_run_folder(run, resume, overwrite)
    if resume and (run / "config.yaml").is_file():
        saved = load_config(run / "config.yaml")
        if saved.to_dict() | {"trainer": None} != cfg.to_dict() | {"trainer": None}:
            raise InputError(run / "config.yaml", "differs from the config given with --resume",
                             "resume with the same config and overrides (only trainer settings may change)")
    if cfg.model.method == "esit" and cfg.data.context:
        raise ValueError("ESIT splits tissue and coordinate channels: use data.context=0")
    manifest = read_manifest(cfg.data.manifest)
    parts = split_subjects(manifest, cfg.split)
    train = prepare_rows(manifest, parts["train"], cfg)
    val = prepare_rows(manifest, parts["val"][: cfg.trainer.val_subjects_max], cfg)
    if not train:
        raise InputError(manifest.source or manifest.root, "the split leaves no training subject",
                         "use more subjects or a smaller test/validation share")
    n_in = train[0].inputs.shape[0]
    seed_everything(cfg.trainer.seed, cfg.trainer.deterministic)  # network initialisation is seeded too
    method = build_method(cfg.model, cfg.data.inputs, n_in * (2 * cfg.data.context + 1), spatial_dims=2)
    multiple = max(method.size_multiple, 1)
    train_sets = slice_datasets(train, cfg, multiple)
    val_sets = slice_datasets(val, cfg, multiple) if val else []
    grid = working_grid(cfg.data.voxel_size)
    meta: dict[str, Any] = {
        "version": __version__, "config": cfg.to_dict(), "method": cfg.model.method,
        "inputs": list(cfg.data.inputs), "input_channels": list(train[0].input_names), "target": cfg.data.target,
        "mask": cfg.data.mask, "grid": None if grid is None else {"shape": list(grid.shape),
                                                                  "affine": np.asarray(grid.affine).tolist()},
        "planes": planes_of(cfg.data.plane), "context": cfg.data.context, "size_multiple": multiple,
        "in_channels": n_in * (2 * cfg.data.context + 1), "spatial_dims": 2,
        "target_stats": [s.stats[cfg.data.target] for s in train],
        "train_subjects": parts["train"], "val_subjects": parts["val"], "test_subjects": parts["test"],
        "manifest": str(Path(cfg.data.manifest).resolve()),
    }
    trainer = Trainer(method, train_sets, val_sets, trainer=cfg.trainer, optim=cfg.optim, out=run,
                      batch_size=cfg.data.batch_size, meta=meta, device=device)
    if resume:
        trainer.resume()
    run.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run / "config.yaml", dump_config(cfg))
    info = {"method": cfg.model.method, "manifest": meta["manifest"], "inputs": meta["inputs"],
            "target": cfg.data.target, "train_subjects": parts["train"], "val_subjects": parts["val"],
            "test_subjects": parts["test"], "simulated": _is_simulated(Path(cfg.data.manifest)),
            "n_train_slices": sum(len(d) for d in train_sets), "version": __version__}
    write_text_atomic(run / "run.json", json.dumps(info, indent=2) + "\n")
    state = trainer.fit()
    info.update({"steps": state.step, "stopped": state.stopped, "best_step": state.best_step,
                 "best_val": None if state.best_step < 0 else state.best_score, "train_seconds": state.elapsed_s})
    write_text_atomic(run / "run.json", json.dumps(info, indent=2) + "\n")
    return run
