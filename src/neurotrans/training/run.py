"""``neurotrans train``: config -> method -> subject-level split -> prepared samples -> trainer -> run folder.

The run folder's layout belongs to :class:`neurotrans.io.run.RunFolder`; what the run is
(config, names, units, statistics, grid, sampling, split) to :class:`~neurotrans.io.run.RunInfo`,
written into every checkpoint and as ``run.json``. The method is built from the config
before any image is read, so a bad network or method setting fails in a second.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from neurotrans import __version__
from neurotrans.config import Config, dump_config, load_config
from neurotrans.errors import InputError
from neurotrans.io.atomic import write_text_atomic
from neurotrans.io.lock import folder_lock
from neurotrans.io.manifest import read_manifest
from neurotrans.io.outputs import check_output_folder, remove_outputs
from neurotrans.io.run import RunFolder, RunInfo, TrainingOutcome


def is_simulated(manifest_path: str | Path) -> bool:
    """The manifest's dataset says it is simulated (``dataset_description.json``: ``Simulated``)."""
    desc = Path(manifest_path).parent / "dataset_description.json"
    try:
        return bool(json.loads(desc.read_text()).get("Simulated", False))
    except (OSError, ValueError, AttributeError):
        return False


def _check_run_folder(run: RunFolder, resume: bool, overwrite: bool) -> None:
    existing = run.existing(RunFolder.TRAINING_ITEMS + RunFolder.DERIVED_ITEMS)
    if resume:
        if not run.checkpoint("last").is_file():
            # the advice must lead somewhere: without a checkpoint, leftovers need --overwrite
            again = "--overwrite instead of --resume" if existing else "without --resume"
            raise InputError(run.root, "has no checkpoints/last.pt to resume from (the run never reached its first "
                             "checkpoint)", f"start the run again {again}")
        return
    if existing and not overwrite:
        if run.checkpoint("last").is_file():
            fix = "pass --resume to continue it, --overwrite to replace it, or --out to train into another folder"
        else:  # nothing to resume: --resume would only send the user back here
            fix = "pass --overwrite to start it again, or --out to train into another folder"
        raise InputError(run.root, "already holds a training run", fix)
    remove_outputs(existing)  # a new model: its old predictions, evaluation and report go too


def model_io(cfg: Config) -> object:
    """The :class:`~neurotrans.methods.ModelIO` the config's data give the method."""
    from neurotrans.methods import ModelIO

    return ModelIO(in_channels=cfg.data.n_input_channels, spatial_dims=cfg.data.spatial_dims,
                   inputs=tuple(cfg.data.inputs), n_covariates=len(cfg.data.covariates), aux=tuple(cfg.data.aux))


def build_from_config(cfg: Config) -> object:
    """The config's method with freshly initialised networks (``InputError`` on bad settings)."""
    from neurotrans.methods import build_method

    try:
        return build_method(cfg.model, model_io(cfg))  # type: ignore[arg-type]
    except ValueError as err:
        if isinstance(err, InputError):
            raise
        raise InputError("model", str(err), "fix the model section of the config or its --set overrides") from None


@dataclass(frozen=True)
class TrainingData:
    """What one run trains and validates on.

    Args:
        split: train / val / test subject ids (and ``domain_a`` / ``domain_b`` when unpaired).
        cohort_stats: statistics of the ``zscore:cohort`` columns.
        train: the prepared training subjects (both domains when unpaired): their statistics
            describe the run.
        val: what validates: the prepared validation subjects (whole volumes) and, with
            ``split.holdout``, the held-out slab of every training subject.
        fit: what trains: ``train``, or its pieces outside the held-out slabs.
        sampling: how samples are cut (``RunInfo.sampling``).
        train_sets, val_sets: the datasets handed to the trainer.
    """

    split: dict[str, list[str]]
    cohort_stats: dict[str, dict[str, Any]]
    train: list[Any]
    val: list[Any]
    fit: list[Any]
    sampling: dict[str, Any]
    train_sets: list[Any]
    val_sets: list[Any]


def prepare_training(cfg: Config, manifest: Any, multiple: int, *, share: tuple[int, int] = (0, 1)) -> TrainingData:
    """Split, normalise and cut the data of a run (paired, or two unpaired domains).

    ``share = (rank, world)``: in a data-parallel run every process prepares the same data;
    with a cache each fills its own part of it first (:func:`~neurotrans.data.cache.prepare_cohort`).
    """
    from neurotrans.data.pipeline import (
        build_datasets,
        build_unpaired_datasets,
        fit_cohort_stats,
        hold_out_slabs,
        prepare,
        prepare_unpaired,
        sampling_of,
        split_subjects,
    )

    parts = split_subjects(manifest, cfg.split)
    if not parts["train"]:
        raise InputError(manifest.source or manifest.root, "the split leaves no training subject",
                         "use more subjects or a smaller test/validation share")
    seed = cfg.trainer.seed
    if cfg.split.holdout and cfg.data.pairing == "unpaired":
        raise InputError(f"split.holdout={cfg.split.holdout}", "holds out slabs of paired subjects; unpaired "
                         "training validates on paired validation subjects", "set split.holdout=0 or pairing=paired")
    slabs: list[Any] = []
    if cfg.data.pairing == "unpaired":  # two domains from disjoint training subjects; validation stays paired
        train_a, train_b, cohort_stats = prepare_unpaired(manifest, parts["train"], cfg.data, seed=cfg.split.seed,
                                                          share=share)
        parts = {**parts, "domain_a": sorted({s.subject for s in train_a}),
                 "domain_b": sorted({s.subject for s in train_b})}
        train = fit = [*train_a, *train_b]
        sampling = sampling_of(cfg.data, [s.shape for s in train], multiple)
        train_sets = build_unpaired_datasets(train_a, train_b, cfg.data, sampling, multiple, seed=seed)
    else:
        cohort_stats = fit_cohort_stats(manifest, parts["train"], cfg.data, share=share)
        train = prepare(manifest, parts["train"], cfg.data, cohort_stats, share=share)
        fit = train
        if cfg.split.holdout:
            fit, slabs = hold_out_slabs(train, cfg.split.holdout)
            if not fit:
                raise InputError(f"split.holdout={cfg.split.holdout}", "leaves no training voxels (the brains span "
                                 "too few slices)", "lower split.holdout or set it to 0")
        sampling = sampling_of(cfg.data, [s.shape for s in train], multiple)
        train_sets = build_datasets(fit, cfg.data, sampling, multiple, seed=seed, train=True)
    val = [*prepare(manifest, parts["val"][: cfg.trainer.val_subjects_max], cfg.data, cohort_stats, share=share),
           *slabs]
    val_sets = build_datasets(val, cfg.data, sampling, multiple, seed=seed, train=False)
    return TrainingData(parts, cohort_stats, train, val, fit, sampling, train_sets, val_sets)


def run_info(cfg: Config, data: TrainingData, multiple: int) -> RunInfo:
    """The run's :class:`RunInfo`: what ``predict`` and every reader need to know about it."""
    from neurotrans.data.normalize import default_normalisation, units_of
    from neurotrans.data.pipeline import working_grid

    grid = working_grid(cfg.data.voxel_size)
    target = cfg.data.target
    target_spec = cfg.data.normalisation.get(target, default_normalisation(target))
    # a one-input model run backwards (unpaired) inverts with its input's statistics
    source = cfg.data.inputs[0] if len(cfg.data.inputs) == 1 else None
    return RunInfo(
        version=__version__, config=cfg.to_dict(), method=cfg.model.method, inputs=tuple(cfg.data.inputs),
        input_channels=tuple(data.train[0].input_names), target=target, units=units_of(target, target_spec),
        mask=cfg.data.mask, target_stats=tuple(s.stats[target] for s in data.train if target in s.stats),
        source_stats=tuple(s.stats[source] for s in data.train if source in s.stats),
        cohort_stats=data.cohort_stats,
        grid=None if grid is None else {"shape": list(grid.shape), "affine": np.asarray(grid.affine).tolist()},
        spatial_dims=cfg.data.spatial_dims, sampling=data.sampling, in_channels=cfg.data.n_input_channels,
        size_multiple=multiple, split=data.split, manifest=str(Path(cfg.data.manifest).resolve()),
        simulated=is_simulated(cfg.data.manifest))


def init_from_checkpoint(method: Any, cfg: Config, path: str | Path) -> dict[str, str]:
    """Load the model weights of the checkpoint ``path`` into ``method`` (``trainer.init``): fine-tuning.

    The checkpoint must be a run of the same method on the same inputs (in channel order),
    target, dimensionality, normalisation and side information (``data.covariates``), so
    that its weights mean here what they meant there; its network must have this run's
    settings (the weights load strictly). What it holds as ``method_state`` is what it
    predicts with (the average, when it kept one), with the standardisation of its side
    information, which the new run keeps rather than refits on its own subjects.

    Returns:
        ``{"checkpoint": absolute path, "sha256": its hash}`` for the run info.
    """
    from neurotrans.data.normalize import default_normalisation
    from neurotrans.methods.fitted import FittedMethod
    from neurotrans.training.checkpoint import file_sha256, load_method_state, load_run_checkpoint

    path = Path(path)
    where = f"trainer.init={path}"
    if isinstance(method, FittedMethod):
        raise InputError(where, f"method {cfg.model.method} is fitted in one pass, so it has no weights to start from",
                         "leave trainer.init out")
    ckpt, source = load_run_checkpoint(path)
    data = cfg.data

    def norm(columns: Sequence[str], spec: dict[str, Any]) -> list[str]:
        return [str(spec.get(c, default_normalisation(c))) for c in columns]

    theirs = source.config.get("data", {})
    for what, mine, other in (
            ("method", cfg.model.method, source.method),
            ("inputs", list(data.inputs), list(source.inputs)),
            ("target", data.target, source.target),
            ("spatial_dims", data.spatial_dims, source.spatial_dims),
            ("covariates", list(data.covariates), list(theirs.get("covariates", []))),
            ("normalisation", norm([*data.inputs, data.target], data.normalisation),
             norm([*source.inputs, source.target], theirs.get("normalisation", {})))):
        if mine != other:
            raise InputError(path, f"was trained with {what} {other}, this run has {mine}",
                             f"fine-tune from a run with the same {what}, or set this run's to match")
    load_method_state(method, ckpt, path, "this run's network",
                      "fine-tune from a run with the same model settings (generator and its arguments)")
    return {"checkpoint": str(path.resolve()), "sha256": file_sha256(path)}


def train_from_config(config: str | Path | Config, overrides: Sequence[str] = (), out: str | Path | None = None,
                      resume: bool = False, max_minutes: float | None = None, device: str = "auto",
                      overwrite: bool = False) -> Path:
    """Train the model a config describes; returns the run folder.

    Under ``torchrun`` every process runs this function: they train one model together
    (:mod:`neurotrans.training.distributed`), ``data.batch_size`` being the global batch;
    rank 0 writes the run folder.

    Args:
        config: YAML path, packaged config name or :class:`Config`.
        overrides: dotted ``key=value`` strings.
        out: run folder (default ``trainer.out``).
        resume: continue from ``out/checkpoints/last.pt`` (the resolved config must match).
        max_minutes: time budget, overriding ``trainer.max_minutes``.
        device: ``auto``, ``cpu`` or ``cuda`` (under torchrun: ``cuda:LOCAL_RANK``).
        overwrite: replace an existing run in ``out`` (with its predictions, evaluation, report).
    """
    from neurotrans.training.distributed import init_distributed

    overrides = list(overrides or ())
    if out is not None:
        overrides.append(f"trainer.out={Path(out)}")
    if max_minutes is not None:
        overrides.append(f"trainer.max_minutes={float(max_minutes)}")
    cfg = load_config(config, overrides)
    run = RunFolder(Path(cfg.trainer.out))
    check_output_folder(run.root)
    if not cfg.data.manifest:
        raise InputError("data.manifest", "the config names no manifest",
                         "pass --set data.manifest=PATH/manifest.tsv")
    try:
        dist = init_distributed(device)
    except ValueError as err:
        if isinstance(err, InputError):
            raise
        raise InputError(f"--device {device}", str(err), "use --device cpu or auto") from None
    try:
        root = _train(cfg, run, dist, resume=resume, overwrite=overwrite)
        dist.barrier()  # rank 0 has written the run folder; a group torn down under a busy peer aborts it
        return root
    finally:
        dist.close()


def _train(cfg: Config, run: RunFolder, dist: Any, *, resume: bool, overwrite: bool) -> Path:
    from neurotrans.methods.fitted import FittedMethod
    from neurotrans.training.fit import Fitter
    from neurotrans.training.trainer import Trainer, seed_everything

    if resume and run.config_yaml.is_file():
        saved = load_config(run.config_yaml)
        if saved.to_dict() | {"trainer": None} != cfg.to_dict() | {"trainer": None}:
            raise InputError(run.config_yaml, "differs from the config given with --resume",
                             "resume with the same config and overrides (only trainer settings may change)")
    seed_everything(cfg.trainer.seed, cfg.trainer.deterministic)  # once, before the networks are initialised
    method = build_from_config(cfg)
    if isinstance(method, FittedMethod) and dist.enabled:
        raise InputError(f"model.method={cfg.model.method}", f"is fitted in one pass (scikit-learn), not trained by "
                         f"gradient steps, so it cannot use the {dist.world} processes torchrun started",
                         "run `neurotrans train` without torchrun")
    init = None  # where the weights started: checked and loaded before any image is read
    if resume:  # the weights come from last.pt; where they first started is kept
        previous = run.read_info()
        init = None if previous is None else previous.init
    elif cfg.trainer.init is not None:
        init = init_from_checkpoint(method, cfg, cfg.trainer.init)
    manifest = read_manifest(cfg.data.manifest)
    prep = cfg
    if dist.enabled and not cfg.data.cache_dir:  # memory maps every process shares, not a cohort copy per process
        prep = replace(cfg, data=replace(cfg.data, cache_dir=str(run.cache)))
    with ExitStack() as held:
        def claim() -> None:  # one train per run folder: a second one into the same --out stops here
            held.enter_context(folder_lock(run.lock_file, what="neurotrans train"))
            _check_run_folder(run, resume, overwrite)

        dist.on_main(claim)  # rank 0 alone locks and checks; its refusal stops every process
        data = prepare_training(prep, manifest, method.size_multiple,  # type: ignore[attr-defined]
                                share=(dist.rank, dist.world))
        fit_covariates = getattr(method, "fit_covariates", None)
        if fit_covariates is not None and cfg.data.covariates and init is None:
            # side information standardised with training statistics, kept in the method's state
            # (so in every checkpoint; a resumed run loads the same values back). A fine-tuned run
            # keeps its init checkpoint's: the weights learnt the side information on that scale
            import torch

            from neurotrans.data.datasets import covariate_vector

            fit_covariates(torch.stack([covariate_vector(s, cfg.data.covariates) for s in data.train]))
        info = run_info(cfg, data, method.size_multiple)  # type: ignore[attr-defined]
        info = replace(info, init=init)
        if isinstance(method, FittedMethod):  # fitted on whole volumes in one pass, no gradient steps
            trainer = Fitter(method, data.fit, data.val, trainer=cfg.trainer, out=run.root, info=info.to_dict())
        else:
            dist.offset_rng(cfg.trainer.seed)  # a noise stream per process (data and networks are set)
            trainer = Trainer(method, data.train_sets, data.val_sets, trainer=cfg.trainer,  # type: ignore[assignment]
                              optim=cfg.optim, out=run.root, batch_size=cfg.data.batch_size, info=info.to_dict(),
                              device=dist.device, num_workers=cfg.data.num_workers, pin_memory=cfg.data.pin_memory,
                              dist=dist)
        if resume:
            trainer.resume()
        if dist.is_main:
            run.root.mkdir(parents=True, exist_ok=True)
            write_text_atomic(run.config_yaml, dump_config(cfg))
            run.write_info(info)
        state = trainer.fit()
        if dist.is_main:
            run.write_info(info, TrainingOutcome(steps=state.step, stopped=state.stopped, best_step=state.best_step,
                                                 best_val=None if state.best_step < 0 else state.best_score,
                                                 monitor=trainer.monitor, train_seconds=state.elapsed_s))
    return run.root
