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
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parent / "experiments" / "configs"


@dataclass(frozen=True)
class DataConfig:
    """What to read and how to slice it.

    Args:
        manifest: manifest.tsv of the cohort.
        inputs: input columns, in channel order; ``coords`` is the pseudo-input of the
            3 MNI coordinate channels (ESIT's spatial encoding).
        target: the column to synthesise (e.g. ``FDG``).
        mask: mask column restricting losses/metrics, or ``None``.
        voxel_size: resample everything onto the MNI grid of this voxel size (mm);
            ``None`` keeps each subject's native grid (real data).
        normalisation: column -> normaliser name (``neurotrans.data.normalize.NORMALISERS``);
            columns not named keep the data layer's default for their modality.
        plane: ``axial``, ``coronal``, ``sagittal`` or ``all`` (the three-plane model).
        context: 2.5D: ``context`` neighbouring slices on each side become extra channels.
        batch_size: slices per batch.
        skip_empty: drop slices with an empty mask from training.
        cache_dir: folder of the on-disk cache of prepared volumes (memory-mapped .npy,
            keyed by subject and preprocessing): a large cohort never has to fit in RAM
            and later runs skip the preprocessing. ``None`` keeps prepared subjects in RAM.
    """

    manifest: str = ""
    inputs: tuple[str, ...] = ("T1w",)
    target: str = "FDG"
    mask: str | None = "brainmask"
    voxel_size: float | None = 3.0
    normalisation: dict[str, str] = field(default_factory=dict)
    plane: str = "axial"
    context: int = 0
    batch_size: int = 8
    skip_empty: bool = True
    cache_dir: str | None = None


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


@dataclass(frozen=True)
class ModelConfig:
    """Method and networks.

    Args:
        method: key of ``neurotrans.methods.METHODS``.
        generator: key of ``neurotrans.networks.NETWORKS`` (the translator network).
        generator_args: keyword arguments of that network besides dims and channels.
        discriminator: network key of the critic (adversarial methods).
        discriminator_args: its keyword arguments.
        loss: reconstruction loss (``l1``, ``mse``, ``charbonnier``).
        lambda_rec: weight of the reconstruction loss next to the adversarial one
            (pix2pix: 100).
        d_steps: discriminator steps per generator step.
    """

    method: str = "supervised"
    generator: str = "unet"
    generator_args: dict[str, Any] = field(default_factory=dict)
    discriminator: str = "patchgan"
    discriminator_args: dict[str, Any] = field(default_factory=dict)
    loss: str = "l1"
    lambda_rec: float = 100.0
    d_steps: int = 1


@dataclass(frozen=True)
class OptimConfig:
    """Optimisers (one per method group; groups may override lr).

    Args:
        name: ``adam`` or ``adamw``.
        lr: learning rate.
        betas: Adam betas.
        weight_decay: decoupled for AdamW, L2 for Adam.
        group_lr: group name -> learning rate overriding ``lr`` (e.g. ``{D: 1e-4}``).
    """

    name: str = "adam"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0
    group_lr: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainerConfig:
    """Loop, checkpoints, logging, stopping.

    Args:
        out: run folder.
        seed: seeds torch, numpy, python and the data order.
        max_steps: optimisation iterations (one batch each); 0 = no limit.
        max_epochs: passes over the training slices; 0 = no limit.
        max_minutes: wall-clock budget of training (``None`` = none).
        val_every: validate every this many steps (and at the end).
        checkpoint_every: write ``last.pt`` every this many steps.
        early_stopping: ``none``, ``patience`` (no improvement in ``patience``
            validations) or ``up`` (Prechelt's UP_s: validation error rose in
            ``strips`` successive strips of ``strip_length`` validations).
        patience, strips, strip_length: parameters of the two rules.
        monitor: validation metric to minimise (``mae`` or ``loss``).
        amp: mixed precision where available (CUDA only).
        deterministic: ``torch.use_deterministic_algorithms(True, warn_only=True)``.
        progress: tqdm progress bar.
        val_subjects_max: validate on at most this many validation subjects.
        log_every: write training losses to the log every this many steps.
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
    monitor: str = "mae"
    amp: bool = True
    deterministic: bool = True
    progress: bool = True
    val_subjects_max: int = 8
    log_every: int = 10


SECTIONS: dict[str, type] = {"data": DataConfig, "split": SplitConfig, "model": ModelConfig,
                             "optim": OptimConfig, "trainer": TrainerConfig}


@dataclass(frozen=True)
class Config:
    """A whole run: one dataclass per component."""

    name: str = "run"
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists for tuples), safe for YAML and ``torch.load(weights_only=True)``."""
        return _plain(dataclasses.asdict(self))

    def replace(self, overrides: Iterable[str] = ()) -> Config:
        """A copy with dotted ``key=value`` overrides applied."""
        return config_from_dict(apply_overrides(self.to_dict(), overrides))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _unknown(key: str, allowed: Iterable[str], where: str) -> ValueError:
    allowed = sorted(allowed)
    close = difflib.get_close_matches(key, allowed, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"allowed: {', '.join(allowed)}"
    return ValueError(f"unknown config key {where}{key!r}; {hint}")


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
        elif key in SECTIONS:
            if value is not None and not isinstance(value, Mapping):
                raise ValueError(f"config section {key!r} must be a mapping, got {value!r}")
            kwargs[key] = _section(SECTIONS[key], value or {}, f"{key}.")
        else:
            raise _unknown(key, [*SECTIONS, "name"], "")
    return Config(**kwargs)


def apply_overrides(values: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` strings to a nested dict (values parsed by ``yaml.safe_load``)."""
    values = _plain(values)
    for item in overrides or ():
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value (e.g. trainer.max_steps=100)")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = values
        for depth, part in enumerate(parts[:-1]):
            if depth == 0 and part not in SECTIONS:
                raise _unknown(part, SECTIONS, "")
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
