"""Typed run configuration: frozen dataclasses, one per component, read from YAML.

A config file has the sections ``data``, ``split``, ``model``, ``optim`` and ``trainer``
(plus a top-level ``name``). Every key is checked: an unknown key raises ``ValueError``
naming the close matches. Command-line overrides use dotted keys (``trainer.max_steps=50``)
whose values are parsed with ``yaml.safe_load`` (never ``eval``). The resolved config is
saved next to every checkpoint (``config.yaml``) and inside it (``Config.to_dict``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from neurotrans.plain import to_plain

CONFIG_DIR = Path(__file__).resolve().parent / "experiments" / "configs"


AUGMENTATIONS = ("flip", "rot90", "scale", "gamma", "bias")
OPTIMISER_NAMES = ("adam", "adamw", "sgd", "adamax")
LR_SCHEDULES = ("constant", "linear", "cosine", "step")
SPLIT_KINDS = ("fixed", "kfold", "loo", "explicit")
EARLY_STOPPING = ("none", "patience", "up")
PLANE_CHOICES = ("axial", "coronal", "sagittal", "all")
PAIRINGS = ("paired", "unpaired")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _choice(value: str, allowed: tuple[str, ...], key: str) -> None:
    if value not in allowed:
        close = difflib.get_close_matches(str(value), list(allowed), n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"{key} = {value!r} is not one of {', '.join(allowed)}{hint}")


@dataclass(frozen=True)
class DataConfig:
    """What to read, how to normalise it and how to cut it into training samples.

    Args:
        manifest: manifest.tsv of the cohort.
        inputs: input columns, in channel order; ``coords`` is the pseudo-input of the
            3 MNI coordinate channels (ESIT's spatial encoding).
        target: the column to synthesise (e.g. ``FDG``); never one of the inputs.
        mask: mask column restricting losses/metrics (and the background of
            predictions), or ``None``.
        aux: extra mask columns carried in every batch as ``batch["aux"]`` (K channels),
            cut like the images: e.g. ``[lesions, NAWM]`` for region-weighted losses.
        covariates: numeric manifest columns carried in every batch as
            ``batch["covariates"]`` (e.g. ``[age]``, DUAL-GLOW's side information).
        sessions: sessions that train and validate (e.g. ``[t0]``: the MS thesis trains on
            baseline scans and applies the fixed model to follow-up ones); empty = all.
            Prediction still covers every session of the test subjects.
        voxel_size: resample everything onto the MNI grid of this voxel size (mm);
            ``None`` keeps each subject's native grid (real data).
        normalisation: column -> normaliser spec (``neurotrans.data.normalize``);
            ``zscore:cohort`` is one mean/SD per sequence over all training images (the
            MS thesis). Columns not named keep their modality's default (SUVR for FDG,
            DVR kept for PIB, min-max for MRI).
        spatial_dims: 2 (slices) or 3 (patches or whole volumes).
        plane: 2D: ``axial``, ``coronal``, ``sagittal`` or ``all`` (the three-plane model).
        context: 2D: 2.5D context, ``context`` neighbouring slices on each side as channels.
        patch_size: 3D: patch size in voxels; ``None`` trains on whole volumes (padded to
            the network's size multiple).
        patch_overlap: 3D: overlap of the regular patch grid and of sliding-window
            prediction (CF-SAGAN: 0.5).
        samples_per_volume: 3D: random patches per subject per epoch, centred on mask
            voxels; 0 uses the regular patch grid instead.
        augment: any of ``flip`` (left-right), ``rot90`` (90/180/270 degrees in-plane),
            ``scale`` (zoom 0.75 or 1.25), and for the input channels only ``gamma``
            (log-gamma in [-0.3, 0.3]) and ``bias`` (a smooth cubic bias field), each
            applied with probability ``augment_p``.
        augment_p: probability of each augmentation.
        batch_size: samples per batch.
        skip_empty: 2D: drop slices with an empty mask from training.
        num_workers: DataLoader worker processes (0: load in the main process).
        pin_memory: pinned host memory for batches; ``None`` = when training on CUDA.
        cache_dir: folder of the on-disk cache of prepared volumes (memory-mapped .npy):
            a large cohort never has to fit in RAM and later runs skip preprocessing.
        pairing: ``paired`` (each training sample is one subject's inputs and target) or
            ``unpaired`` (UNIT, CycleGAN): the training subjects are split at random
            (``split.seed``) into two disjoint halves, domain A giving the inputs and
            domain B the target, and training batches carry ``a``, ``b``, ``mask_a``,
            ``mask_b``; validation and test subjects stay paired (input -> target).
            Slices only, without augmentation, aux or covariates.
    """

    manifest: str = ""
    inputs: tuple[str, ...] = ("T1w",)
    target: str = "FDG"
    mask: str | None = "brainmask"
    aux: tuple[str, ...] = ()
    covariates: tuple[str, ...] = ()
    sessions: tuple[str, ...] = ()
    voxel_size: float | None = 3.0
    normalisation: dict[str, str] = field(default_factory=dict)
    spatial_dims: int = 2
    plane: str = "axial"
    context: int = 0
    patch_size: tuple[int, ...] | None = None
    patch_overlap: float = 0.5
    samples_per_volume: int = 0
    augment: tuple[str, ...] = ()
    augment_p: float = 0.5
    batch_size: int = 8
    skip_empty: bool = True
    num_workers: int = 0
    pin_memory: bool | None = None
    cache_dir: str | None = None
    pairing: str = "paired"

    def __post_init__(self) -> None:
        _require(len(self.inputs) > 0, "data.inputs must name at least one column")
        _require(len(set(self.inputs)) == len(self.inputs), f"data.inputs lists a column twice: {list(self.inputs)}")
        _require(self.target not in self.inputs,
                 f"data.target {self.target!r} is also an input: the model would copy it (a leak); "
                 "remove it from data.inputs")
        _require(self.target not in self.aux and (self.mask is None or self.target != self.mask),
                 f"data.target {self.target!r} cannot also be a mask or aux column")
        _require(self.voxel_size is None or self.voxel_size > 0, f"data.voxel_size must be > 0, got {self.voxel_size}")
        _require(self.spatial_dims in (2, 3), f"data.spatial_dims must be 2 or 3, got {self.spatial_dims}")
        _choice(self.plane, PLANE_CHOICES, "data.plane")
        _require(self.context >= 0, f"data.context must be >= 0, got {self.context}")
        _require(self.batch_size >= 1, f"data.batch_size must be >= 1, got {self.batch_size}")
        _require(self.num_workers >= 0, f"data.num_workers must be >= 0, got {self.num_workers}")
        _require(0 <= self.patch_overlap < 1, f"data.patch_overlap must lie in [0, 1), got {self.patch_overlap}")
        _require(self.samples_per_volume >= 0, f"data.samples_per_volume must be >= 0, got {self.samples_per_volume}")
        _require(0 <= self.augment_p <= 1, f"data.augment_p must lie in [0, 1], got {self.augment_p}")
        for name in self.augment:
            _choice(name, AUGMENTATIONS, "data.augment")
        _choice(self.pairing, PAIRINGS, "data.pairing")
        if self.pairing == "unpaired":
            _require(self.spatial_dims == 2, "data.pairing=unpaired draws slices: set data.spatial_dims=2")
            _require(not (self.augment or self.aux or self.covariates),
                     "data.pairing=unpaired takes no data.augment, data.aux or data.covariates: leave them out")
        if self.spatial_dims == 2:
            _require(self.patch_size is None, "data.patch_size is for 3D data: set data.spatial_dims=3 or drop it")
            _require(self.samples_per_volume == 0, "data.samples_per_volume is for 3D patches (data.spatial_dims=3)")
        else:
            _require(self.context == 0, "data.context (2.5D) is for slices; with data.spatial_dims=3 set it to 0")
            _require(self.plane == "axial", "data.plane is for slices; with data.spatial_dims=3 leave it out")
            if self.patch_size is not None:
                _require(len(self.patch_size) == 3 and min(self.patch_size) >= 1,
                         f"data.patch_size must be 3 positive sizes, got {list(self.patch_size)}")
            else:
                _require(self.samples_per_volume == 0, "data.samples_per_volume needs data.patch_size")
        from neurotrans.data.normalize import parse_spec

        for column, spec in self.normalisation.items():
            try:
                parse_spec(str(spec))
            except ValueError as err:
                raise ValueError(f"data.normalisation.{column}: {err}") from None

    @property
    def image_inputs(self) -> tuple[str, ...]:
        """The input columns that are images (not the ``coords`` pseudo-input)."""
        return tuple(c for c in self.inputs if c != "coords")

    @property
    def n_input_channels(self) -> int:
        """Channels per sample: inputs (``coords`` counts 3) x slices of 2.5D context."""
        per = sum(3 if c == "coords" else 1 for c in self.inputs)
        return per * (2 * self.context + 1)


@dataclass(frozen=True)
class SplitConfig:
    """Subject-level split into train / validation / test.

    Args:
        kind: ``fixed`` (fractions drawn once with ``seed``), ``kfold`` (fold ``fold`` of
            ``folds`` stratified folds is the test set, the next fold validates), ``loo``
            (leave-one-out: subject number ``fold`` is the test set, no validation) or
            ``explicit``.
        test_fraction: share of test subjects (``fixed``).
        val_fraction: share of validation subjects (``fixed``; 0 = none).
        folds: number of folds (``kfold``).
        fold: which fold / left-out subject.
        stratify: manifest column to stratify on (``kfold``/``fixed``), or ``None``.
        seed: seed of the draw.
        train, val, test: subject ids (``explicit``).
        holdout: share of each training subject's brain held out of training and used to
            validate (early stopping, best checkpoint): a slab across the last array axis at
            the middle of the brain (:func:`neurotrans.data.pipeline.hold_out_slabs`). For
            cohorts too small to spare a validation subject (leave-one-out on a few real
            patients); 0 = off.
    """

    kind: str = "fixed"
    test_fraction: float = 0.2
    val_fraction: float = 0.1
    folds: int = 5
    fold: int = 0
    stratify: str | None = "group"
    seed: int = 0
    train: tuple[str, ...] = ()
    val: tuple[str, ...] = ()
    test: tuple[str, ...] = ()
    holdout: float = 0.0

    def __post_init__(self) -> None:
        _choice(self.kind, SPLIT_KINDS, "split.kind")
        _require(0 <= self.holdout <= 0.5, f"split.holdout must lie in [0, 0.5], got {self.holdout}")
        _require(0 <= self.test_fraction < 1 and 0 <= self.val_fraction < 1
                 and self.test_fraction + self.val_fraction < 1,
                 f"split.test_fraction ({self.test_fraction}) and split.val_fraction ({self.val_fraction}) "
                 "must lie in [0, 1) and leave training subjects")
        _require(self.folds >= 2, f"split.folds must be >= 2, got {self.folds}")
        _require(self.fold >= 0, f"split.fold must be >= 0, got {self.fold}")
        if self.kind == "kfold":
            _require(self.fold < self.folds, f"split.fold must be in [0, {self.folds}), got {self.fold}")
        if self.kind == "explicit":
            _require(len(self.train) > 0, "split.kind=explicit needs split.train subject ids")
            overlap = (set(self.train) & set(self.test)) | (set(self.train) & set(self.val))
            _require(not overlap, f"split.train shares subjects with val/test: {sorted(overlap)[:5]}")


@dataclass(frozen=True)
class OptimConfig:
    """Optimisers (one per method group; groups may override lr).

    Args:
        name: ``adam``, ``adamw``, ``sgd`` (the FCN thesis) or ``adamax`` (DUAL-GLOW).
        lr: learning rate.
        betas: Adam/AdamW/Adamax betas.
        momentum: SGD momentum.
        weight_decay: decoupled for AdamW, L2 for the others.
        group_lr: group name -> learning rate overriding ``lr`` (e.g. ``{D: 1e-4}``).
        schedule: how every group's rate changes with the step (a pure function of it,
            :func:`neurotrans.training.schedule.lr_factor`, so a resumed run goes on exactly):
            ``constant``; ``linear``, constant for ``decay_start`` steps, then down to 0 at
            ``trainer.max_steps`` (pix2pix's and CycleGAN's reference code, epochs there);
            ``cosine``, the same with a half cosine; ``step``, times ``gamma`` every
            ``step_size`` steps (the UNIT reference code: 0.5 every 100,000 iterations).
        decay_start: steps at the full rate before a ``linear`` or ``cosine`` decay.
        step_size: steps between two ``step`` decays.
        gamma: factor of each ``step`` decay, in (0, 1).
    """

    name: str = "adam"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    momentum: float = 0.0
    weight_decay: float = 0.0
    group_lr: dict[str, float] = field(default_factory=dict)
    schedule: str = "constant"
    decay_start: int = 0
    step_size: int = 0
    gamma: float = 0.5

    def __post_init__(self) -> None:
        _choice(self.name, OPTIMISER_NAMES, "optim.name")
        _choice(self.schedule, LR_SCHEDULES, "optim.schedule")
        _require(self.decay_start >= 0, f"optim.decay_start must be >= 0 steps, got {self.decay_start}")
        _require(self.schedule != "step" or self.step_size >= 1,
                 f"optim.schedule=step needs optim.step_size >= 1 (steps between decays), got {self.step_size}")
        _require(0 < self.gamma < 1, f"optim.gamma must lie in (0, 1) (e.g. 0.5), got {self.gamma}")
        _require(self.lr > 0 and math.isfinite(self.lr), f"optim.lr must be a positive number, got {self.lr}")
        _require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
                 f"optim.betas must be two numbers in [0, 1), got {list(self.betas)}")
        _require(0 <= self.momentum < 1, f"optim.momentum must lie in [0, 1), got {self.momentum}")
        _require(self.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        for group, lr in self.group_lr.items():
            _require(isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0,
                     f"optim.group_lr.{group} must be a positive number, got {lr!r}")

    def check_horizon(self, max_steps: int) -> None:
        """A ``linear`` or ``cosine`` decay needs ``trainer.max_steps`` above ``decay_start`` (it ends there)."""
        if self.schedule in ("linear", "cosine"):
            _require(max_steps > self.decay_start,
                     f"optim.schedule={self.schedule} decays to 0 at trainer.max_steps, which must be set and above "
                     f"optim.decay_start ({self.decay_start}); got trainer.max_steps={max_steps}")


@dataclass(frozen=True)
class TrainerConfig:
    """Loop, checkpoints, logging, stopping.

    Args:
        out: run folder.
        seed: seeds torch, numpy, python (once, at the entry point) and the data order.
        max_steps: optimisation iterations (one batch each); 0 = no limit.
        max_epochs: passes over the training samples; 0 = no limit.
        max_minutes: wall-clock budget of training (``None`` = none).
        val_every: validate every this many steps (and at the end).
        checkpoint_every: write ``last.pt`` every this many steps.
        early_stopping: ``none``, ``patience`` (no improvement in ``patience``
            validations) or ``up`` (Prechelt's UP_s: validation error rose in
            ``strips`` successive strips of ``strip_length`` validations).
        patience, strips, strip_length: parameters of the two rules.
        monitor: validation metric to minimise, one the method reports (image methods:
            ``mae``, ``mse``; flows: ``nll``); ``None`` = the method's first.
        amp: mixed precision on CUDA: bfloat16 autocast where the GPU has it (no loss
            scaling), float16 with a GradScaler on older GPUs; CPUs and methods that need
            float32 (flows: ``Method.mixed_precision``) train in float32.
        deterministic: ``torch.use_deterministic_algorithms(True, warn_only=True)``.
        progress: tqdm progress bar.
        val_subjects_max: validate on at most this many validation subjects.
        log_every: write training losses to the log every this many steps.
        fused_optimiser: Adam/AdamW/SGD as one fused kernel (same update up to rounding);
            ``auto`` = on CPU, where it was measured (``neurotrans.training.accel`` has the figures).
        cpu_bf16: on CPU, run the networks' forward under bfloat16 autocast (fp32 weights,
            optimiser and losses): 1.7x faster 2D pix2pix steps on a CPU with AVX512-BF16, same
            validation error within seed noise; not bit-comparable with fp32, hence opt-in;
            methods that need float32 (``Method.mixed_precision``: flows) stay float32.
        channels_last: NHWC weights for 2D networks; ``auto`` = off (measured no faster on CPU).
        compile: ``torch.compile`` every network's forward (in place: checkpoints unchanged);
            ``auto`` = off (measured slower for the pix2pix step on CPU).
        ema: decay of an exponential moving average of the weights (Polyak averaging),
            updated after every step; ``0`` = off. When on, validation, early stopping,
            ``best.pt``, ``last.pt``'s model and so every prediction use the averaged
            weights, which follow the last ~1 / (1 - ema) steps; the trained weights travel
            in the checkpoint to resume from. Buffers (batch-norm statistics) are the trained
            weights', as in torch's ``AveragedModel(use_buffers=False)``.
        init: a checkpoint (``RUN/checkpoints/best.pt``) whose model weights start this run
            instead of a random initialisation: fine-tuning a model trained on another cohort
            (e.g. a simulated one) on a small one. It must be a run of the same method and
            network settings on the same inputs, target, normalisation and covariates (whose
            standardisation, DUAL-GLOW's side information, it keeps); ``None`` = random.
            Only a fresh run reads it: ``--resume`` goes on from ``last.pt``.
    """

    out: str = "runs/run"
    seed: int = 0
    max_steps: int = 1000
    max_epochs: int = 0
    max_minutes: float | None = None
    val_every: int = 200
    checkpoint_every: int = 200
    early_stopping: str = "none"
    patience: int = 10
    strips: int = 3
    strip_length: int = 5
    monitor: str | None = None
    amp: bool = True
    deterministic: bool = True
    progress: bool = True
    val_subjects_max: int = 8
    log_every: int = 10
    fused_optimiser: bool | str = "auto"
    cpu_bf16: bool = False
    channels_last: bool | str = "auto"
    compile: bool | str = "auto"
    ema: float = 0.0
    init: str | None = None

    def __post_init__(self) -> None:
        _require(self.init is None or bool(str(self.init).strip()),
                 "trainer.init must name a checkpoint file (RUN/checkpoints/best.pt) or be null")
        _require(0.0 <= self.ema < 1.0, f"trainer.ema must lie in [0, 1) (0 = off; e.g. 0.99), got {self.ema}")
        _require(self.seed >= 0, f"trainer.seed must be >= 0, got {self.seed}")
        _require(self.max_steps >= 0, f"trainer.max_steps must be >= 0 (0 = no limit), got {self.max_steps}")
        _require(self.max_epochs >= 0, f"trainer.max_epochs must be >= 0 (0 = no limit), got {self.max_epochs}")
        _require(self.max_minutes is None or (self.max_minutes > 0 and math.isfinite(self.max_minutes)),
                 f"trainer.max_minutes must be a positive number of minutes, got {self.max_minutes}")
        for key in ("val_every", "checkpoint_every", "patience", "strips", "strip_length", "log_every",
                    "val_subjects_max"):
            value = getattr(self, key)
            _require(value >= 1, f"trainer.{key} must be >= 1, got {value}")
        _choice(self.early_stopping, EARLY_STOPPING, "trainer.early_stopping")
        _require(isinstance(self.cpu_bf16, bool), f"trainer.cpu_bf16 must be true or false, got {self.cpu_bf16!r}")
        for key in ("fused_optimiser", "channels_last", "compile"):
            value = getattr(self, key)
            _require(isinstance(value, bool) or value == "auto",
                     f"trainer.{key} must be true, false or auto, got {value!r}")


SECTIONS: dict[str, type] = {"data": DataConfig, "split": SplitConfig, "optim": OptimConfig,
                             "trainer": TrainerConfig}


def _default_model() -> Any:
    from neurotrans.methods import method_config_class

    return method_config_class("supervised")()


@dataclass(frozen=True)
class Config:
    """A whole run: one dataclass per component; ``model`` is the method's own config.

    Method-specific checks of the data section (ESIT's coordinate inputs, a network that
    cannot take the data's dimensionality) live in the method's config, which is asked
    here, when the config is built, before any data are read.
    """

    name: str = "run"
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    model: Any = field(default_factory=_default_model)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        self.optim.check_horizon(self.trainer.max_steps)
        check = getattr(self.model, "check_data", None)
        if check is not None:
            check(self.data)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists for tuples), safe for YAML and ``torch.load(weights_only=True)``."""
        values = to_plain(dataclasses.asdict(self))
        values["model"] = {"method": self.model.method, **values["model"]}
        return values

    def replace(self, overrides: Iterable[str] = ()) -> Config:
        """A copy with dotted ``key=value`` overrides applied."""
        return config_from_dict(apply_overrides(self.to_dict(), overrides))


def _unknown(key: str, allowed: Iterable[str], where: str) -> ValueError:
    allowed = sorted(allowed)
    close = difflib.get_close_matches(key, allowed, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"allowed: {', '.join(allowed)}"
    return ValueError(f"unknown config key {where}{key!r}; {hint}")


_YAML11_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Coerce YAML values to the annotated type (lists -> tuples, ints -> floats)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if value is None:
        if hint is type(None) or type(None) in args:
            return None
        raise ValueError(f"config key {where} may not be null")
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except (TypeError, ValueError):
                continue
        raise ValueError(f"config key {where}: {value!r} is not a {hint}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            value = [value]
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, where) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"config key {where} must be a mapping, got {value!r}")
        return dict(value)
    if hint is float:
        if isinstance(value, str) and _YAML11_FLOAT.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string: `--set optim.lr=1e-4` is a number
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"config key {where} must be a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"config key {where} must be an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"config key {where} must be true or false, got {value!r}")
        return value
    if hint is str:
        if isinstance(value, (dict, list)):
            raise ValueError(f"config key {where} must be a string, got {value!r}")
        return str(value)
    return value


def _section(cls: type, values: Mapping[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            raise _unknown(key, names, where)
        kwargs[key] = _coerce(value, hints[key], f"{where}{key}")
    return cls(**kwargs)


def config_from_dict(values: Mapping[str, Any]) -> Config:
    """Build a :class:`Config` from a nested mapping, checking every key."""
    values = dict(values or {})
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key == "name":
            kwargs["name"] = str(value)
        elif key in SECTIONS or key == "model":
            if value is not None and not isinstance(value, Mapping):
                raise ValueError(f"config section {key!r} must be a mapping, got {value!r}")
            kwargs[key] = (_model_section(value or {}) if key == "model"
                           else _section(SECTIONS[key], value or {}, f"{key}."))
        else:
            raise _unknown(key, [*SECTIONS, "model", "name"], "")
    return Config(**kwargs)


def _model_section(values: Mapping[str, Any]) -> Any:
    """The ``model`` section: ``method`` picks the method, whose own config takes the rest."""
    from neurotrans.methods import method_config_class

    values = dict(values)
    method = str(values.pop("method", "supervised"))
    return _section(method_config_class(method), values, f"model.({method}) ")


def apply_overrides(values: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` strings to a nested dict (values parsed by ``yaml.safe_load``)."""
    values = to_plain(values)
    for item in overrides or ():
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value (e.g. trainer.max_steps=100)")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = values
        for depth, part in enumerate(parts[:-1]):
            if depth == 0 and part not in (*SECTIONS, "model"):
                raise _unknown(part, [*SECTIONS, "model"], "")
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    return values


def packaged_configs() -> list[str]:
    """Names of the example configs shipped in ``experiments/configs``."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve_config_path(path_or_name: str | Path) -> Path:
    """A YAML path, or the path of a packaged config named without extension."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    packaged = CONFIG_DIR / f"{path.name.removesuffix('.yaml')}.yaml"
    if packaged.is_file() and path.parent == Path("."):
        return packaged
    from neurotrans.errors import InputError

    close = difflib.get_close_matches(path.stem, packaged_configs(), n=3, cutoff=0.5)
    hint = f" (close packaged names: {', '.join(close)})" if close else ""
    raise InputError(path, f"config file not found{hint}",
                     f"pass a YAML file or one of the packaged configs: {', '.join(packaged_configs())}")


def load_config(path_or_name: str | Path | Mapping[str, Any] | Config, overrides: Iterable[str] = ()) -> Config:
    """Read a YAML config (or a packaged config's name) and apply dotted overrides.

    Args:
        path_or_name: YAML path, packaged name (``pix2pix_axial_fdg``), a mapping or a Config.
        overrides: ``["trainer.max_steps=50", "data.manifest=/tmp/fdg40/manifest.tsv"]``.
    """
    from neurotrans.errors import InputError

    source = path_or_name if isinstance(path_or_name, (str, Path)) else "config"
    try:
        return _load_config(path_or_name, overrides)
    except InputError:
        raise
    except ValueError as err:  # unknown keys and bad values: one clear error for the CLI
        raise InputError(source, str(err), "fix that key or value in the YAML file or the --set override") from None


def _load_config(path_or_name: str | Path | Mapping[str, Any] | Config, overrides: Iterable[str]) -> Config:
    if isinstance(path_or_name, Config):
        values = path_or_name.to_dict()
    elif isinstance(path_or_name, Mapping):
        values = dict(path_or_name)
    else:
        path = resolve_config_path(path_or_name)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            from neurotrans.errors import InputError

            raise InputError(path, f"is not valid YAML ({err})", "fix the syntax") from None
        if not isinstance(values, Mapping):
            raise ValueError(f"{path}: a config must be a mapping of sections")
    return config_from_dict(apply_overrides(dict(values), overrides))


def dump_config(config: Config) -> str:
    """YAML text of a config (what ``config.yaml`` in a run folder holds)."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
