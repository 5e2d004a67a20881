"""The run contract: what a trained run is (``RunInfo``) and where its files live (``RunFolder``).

Every reader and writer of a run folder goes through these two classes, so no file name
or JSON key is spelled twice::

    RUN/config.yaml                  the resolved config
    RUN/run.json                     RunInfo + the training outcome
    RUN/checkpoints/{last,best}.pt   weights, optimiser states and the same RunInfo
    RUN/log.jsonl, RUN/log.csv       the trainer's log
    RUN/predictions/                 a BIDS-derivatives dataset of predicted volumes
    RUN/evaluation/                  tables written by `neurotrans evaluate`
    RUN/report/                      report.html and figures/
    RUN/explain/                     `neurotrans explain` outputs (layout: neurotrans.explain.folder)
    RUN/summary.json                 the demo's headline numbers
    RUN/age_sweep.tsv                regional means of an age sweep (side-information models)

Predictions follow BIDS derivatives: ``sub-<s>/ses-<t>/<datatype>/
sub-<s>_ses-<t>[_trc-<tracer>]_desc-<desc>_<suffix>.nii.gz`` (``PredictionFolder``), so a
subject id can never name a path outside the folder: ids must be BIDS labels.

References: DESIGN.md rule 12; BIDS 1.9 derivatives (common data types, ``desc``).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurotrans.errors import InputError
from neurotrans.io.atomic import write_text_atomic
from neurotrans.plain import to_plain

REFERENCE_LABEL = "other_subjects"  # the pix2pix paper's "other subjects" reference, in every table
PREDICTION_DESC = "neurotrans"
SD_DESC = "neurotransSD"
_LABEL = re.compile(r"^[A-Za-z0-9]+$")
PET_TRACERS = ("FDG", "PIB")


def bids_label(value: str, entity: str) -> str:
    """The BIDS label of a subject or session id (``sub-001`` -> ``001``), checked.

    Args:
        value: the id as written in a manifest (with or without the ``sub-``/``ses-`` prefix).
        entity: ``"sub"`` or ``"ses"``.

    Raises:
        InputError: the label is not alphanumeric (it would name another folder, e.g.
            ``../sub-007``).
    """
    text = str(value)
    label = text[len(entity) + 1:] if text.startswith(f"{entity}-") else text
    if not _LABEL.match(label):
        what = "subject" if entity == "sub" else "session"
        clean = re.sub("[^A-Za-z0-9]", "", label)
        clean = clean.removeprefix(entity) or "01"
        raise InputError(text, f"is not a valid BIDS {what} label (letters and digits only)",
                         f"rename the {what} in the manifest, e.g. {entity}-{clean}")
    return label


def datatype_and_suffix(modality: str) -> tuple[str, str, str | None]:
    """BIDS ``(datatype, suffix, tracer)`` of a predicted modality (``FDG`` -> ``pet, pet, FDG``)."""
    if modality in PET_TRACERS:
        return "pet", "pet", modality
    if modality.startswith("DTI_"):
        return "dwi", re.sub("[^A-Za-z0-9]", "", modality), None
    return "anat", re.sub("[^A-Za-z0-9]", "", modality), None


@dataclass(frozen=True)
class PredictionFolder:
    """A BIDS-derivatives folder of predicted volumes (one per subject, session and target).

    Args:
        root: the folder (``RUN/predictions`` or any ``predict --out``).
    """

    root: Path

    DESCRIPTION = "dataset_description.json"

    def path(self, subject: str, session: str, target: str, *, desc: str = PREDICTION_DESC) -> Path:
        """Where the prediction of ``target`` for one subject and session lives."""
        sub, ses = bids_label(subject, "sub"), bids_label(session, "ses")
        datatype, suffix, tracer = datatype_and_suffix(target)
        trc = f"_trc-{tracer}" if tracer else ""
        name = f"sub-{sub}_ses-{ses}{trc}_desc-{desc}_{suffix}.nii.gz"
        path = self.root / f"sub-{sub}" / f"ses-{ses}" / datatype / name
        self.check_inside(path)
        return path

    def sd_path(self, subject: str, session: str, target: str) -> Path:
        """The voxel-wise SD map beside a prediction (sampling or fold ensemble)."""
        return self.path(subject, session, target, desc=SD_DESC)

    def sidecar(self, image: Path) -> Path:
        """The JSON sidecar of a predicted image."""
        return image.with_name(image.name.removesuffix(".nii.gz") + ".json")

    def check_inside(self, path: Path) -> None:
        """Refuse any path that would land outside the folder."""
        root = self.root.resolve()
        if root != path.resolve() and root not in path.resolve().parents:
            # only a symlink inside the folder can get here (ids are BIDS labels): never write through it
            raise InputError(path, f"lies outside the output folder {self.root} (through a symlink)",
                             "remove the symlinks inside the output folder, or choose another --out")

    def scan(self, target: str) -> list[Path]:
        """Every prediction of ``target`` in the folder (to find files without a manifest row)."""
        datatype, suffix, tracer = datatype_and_suffix(target)
        trc = f"_trc-{tracer}" if tracer else ""
        return sorted(self.root.glob(f"sub-*/ses-*/{datatype}/sub-*_ses-*{trc}_desc-{PREDICTION_DESC}_{suffix}.nii.gz"))

    def write_description(self, generated_by: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> Path:
        """``dataset_description.json`` of the derivatives dataset (BIDS 1.9)."""
        desc = {"Name": "neurotrans predictions", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
                "GeneratedBy": [dict(generated_by)], **dict(extra or {})}
        return write_text_atomic(self.root / self.DESCRIPTION, json.dumps(desc, indent=2) + "\n")

    def read_description(self) -> dict[str, Any]:
        """The folder's dataset_description.json, ``{}`` when absent."""
        path = self.root / self.DESCRIPTION
        if not path.is_file():
            return {}
        return _read_json(path)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(path, f"is not valid JSON ({err})",
                         "delete it and rerun the step that writes it") from None
    if not isinstance(data, dict):
        raise InputError(path, "holds a JSON value that is not an object", "delete it and rerun the step that writes it")
    return data


@dataclass(frozen=True)
class RunInfo:
    """What a trained model is: carried by every checkpoint and written as ``run.json``.

    Args:
        version: neurotrans version that trained it.
        config: the resolved config (``Config.to_dict()``).
        method: key of ``METHODS``.
        inputs: input columns, in channel order (``coords`` = the 3 MNI coordinate channels).
        input_channels: the expanded channel names (``coords_x``...).
        target: the predicted modality.
        units: units of written predictions (``SUVR``, ``DVR`` or ``intensity``).
        mask: mask column (losses, metrics, background of predictions), or ``None``.
        target_stats: the training subjects' target normaliser statistics (to invert
            per-image normalisations of a new subject, whose target is unknown).
        cohort_stats: column -> normaliser statistics fitted once on the training cohort
            (``zscore:cohort``), applied unchanged to every subject.
        grid: the working grid (``{"shape", "affine"}``) or ``None`` (native grids).
        spatial_dims: 2 (slices) or 3 (patches or volumes).
        sampling: ``{"kind": "slices", "planes", "context"}``, ``{"kind": "patches",
            "patch_size", "overlap"}`` or ``{"kind": "volume", "roi_size"}``.
        in_channels: channels of the network input.
        size_multiple: spatial sizes the network needs (2**depth of a U-Net).
        split: ``{"train", "val", "test"}`` subject ids (unpaired runs add the training
            subjects of each domain, ``domain_a`` and ``domain_b``).
        manifest: absolute path of the training manifest.
        simulated: the training data are a simulated cohort.
        source_stats: a one-input model's training statistics of that input (to invert a
            prediction in the reverse direction, target -> input, of an unpaired model).
        init: the checkpoint whose weights started training (``trainer.init``):
            ``{"checkpoint": absolute path, "sha256": its hash}``, or ``None`` (random).
    """

    version: str
    config: dict[str, Any]
    method: str
    inputs: tuple[str, ...]
    input_channels: tuple[str, ...]
    target: str
    units: str
    mask: str | None
    target_stats: tuple[dict[str, Any], ...]
    cohort_stats: dict[str, dict[str, Any]]
    grid: dict[str, Any] | None
    spatial_dims: int
    sampling: dict[str, Any]
    in_channels: int
    size_multiple: int
    split: dict[str, list[str]]
    manifest: str
    simulated: bool = False
    source_stats: tuple[dict[str, Any], ...] = ()
    init: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (safe for JSON and ``torch.load(weights_only=True)``)."""
        return to_plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str | Path = "run info") -> RunInfo:
        """Rebuild from :meth:`to_dict`'s output (extra keys, e.g. the training outcome, ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.name not in values and f.default is dataclasses.MISSING)
        if missing:
            raise InputError(where, f"lacks the run fields {', '.join(missing)} (written by another version?)",
                             "retrain with this version of neurotrans")
        kw = {k: v for k, v in values.items() if k in names}
        kw["inputs"] = tuple(kw["inputs"])
        kw["input_channels"] = tuple(kw["input_channels"])
        kw["target_stats"] = tuple(kw["target_stats"])
        kw["source_stats"] = tuple(kw.get("source_stats", ()))
        return cls(**kw)

    @property
    def test_subjects(self) -> list[str]:
        return list(self.split.get("test", []))

    @property
    def train_subjects(self) -> list[str]:
        return list(self.split.get("train", []))


@dataclass(frozen=True)
class TrainingOutcome:
    """How training ended (``run.json``'s ``training`` entry).

    Args:
        steps: optimisation steps taken.
        stopped: why it stopped (``finished``, early stopping, time budget).
        best_step: step of the best validation score (-1: no validation).
        best_val: that score (``None`` without validation).
        monitor: the validation metric monitored.
        train_seconds: wall-clock training time.
    """

    steps: int = 0
    stopped: str = ""
    best_step: int = -1
    best_val: float | None = None
    monitor: str = ""
    train_seconds: float = 0.0


@dataclass(frozen=True)
class RunFolder:
    """The one place that knows a run folder's layout.

    Args:
        root: the run folder (``neurotrans train --out``).
    """

    root: Path

    # the lock file (``lock_file``) is no training output: --overwrite must never delete the lock it holds
    TRAINING_ITEMS = ("checkpoints", "log.jsonl", "log.csv", "run.json", "config.yaml")
    DERIVED_ITEMS = ("predictions", "evaluation", "report", "summary.json", "explain", "age_sweep.tsv")

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config_yaml(self) -> Path:
        return self.root / "config.yaml"

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint(self, name: str = "last") -> Path:
        """``checkpoints/<name>.pt`` (``last`` or ``best``)."""
        return self.checkpoints / f"{name}.pt"

    def best_checkpoint(self) -> Path:
        """``best.pt`` when validation chose one, else ``last.pt``."""
        best = self.checkpoint("best")
        return best if best.is_file() else self.checkpoint("last")

    @property
    def log_jsonl(self) -> Path:
        return self.root / "log.jsonl"

    @property
    def log_csv(self) -> Path:
        return self.root / "log.csv"

    @property
    def predictions(self) -> PredictionFolder:
        return PredictionFolder(self.root / "predictions")

    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation"

    def variant_predictions(self, variant: str | None) -> PredictionFolder:
        """Predictions of a test-time variant (``planes-all``: three planes averaged) beside the main ones."""
        return self.predictions if not variant else PredictionFolder(self.root / f"predictions_{variant}")

    def variant_evaluation(self, variant: str | None) -> Path:
        """The evaluation of a variant's predictions."""
        return self.evaluation if not variant else self.root / f"evaluation_{variant}"

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def explain(self) -> Path:
        return self.root / "explain"

    @property
    def summary_json(self) -> Path:
        return self.root / "summary.json"

    @property
    def age_sweep(self) -> Path:
        """``age_sweep.tsv``: regional means of the PETs generated at several ages (DUAL-GLOW)."""
        return self.root / "age_sweep.tsv"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    @property
    def cache(self) -> Path:
        """The on-disk cache of a data-parallel run whose config names no ``data.cache_dir``.

        Kept by ``--overwrite`` (its entries are keyed by content, so a new run reuses them).
        """
        return self.root / "cache"

    def existing(self, items: tuple[str, ...]) -> list[Path]:
        """The items of ``items`` present in the folder."""
        return [self.root / n for n in items if (self.root / n).exists()]

    def write_info(self, info: RunInfo, outcome: TrainingOutcome | None = None) -> Path:
        """``run.json``: the run info plus, once trained, its outcome."""
        data = info.to_dict()
        if outcome is not None:
            data["training"] = dataclasses.asdict(outcome)
        return write_text_atomic(self.run_json, json.dumps(data, indent=2, allow_nan=True) + "\n")

    def read_info(self) -> RunInfo | None:
        """The run info of ``run.json`` (``None`` when absent)."""
        if not self.run_json.is_file():
            return None
        return RunInfo.from_dict(_read_json(self.run_json), self.run_json)

    def read_outcome(self) -> TrainingOutcome | None:
        """The training outcome of ``run.json`` (``None`` before training ends)."""
        if not self.run_json.is_file():
            return None
        data = _read_json(self.run_json).get("training")
        if not isinstance(data, dict):
            return None
        names = {f.name for f in dataclasses.fields(TrainingOutcome)}
        return TrainingOutcome(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def of_predictions(cls, pred_dir: str | Path) -> RunFolder | None:
        """The run a prediction folder belongs to (its parent holds run.json), else ``None``."""
        parent = Path(pred_dir).resolve().parent
        return cls(parent) if (parent / "run.json").is_file() else None


def iter_runs(root: str | Path) -> Iterator[RunFolder]:
    """Run folders directly under ``root`` (those with a run.json), sorted by name."""
    for path in sorted(Path(root).iterdir()):
        if (path / "run.json").is_file():
            yield RunFolder(path)


__all__ = ["PredictionFolder", "REFERENCE_LABEL", "RunFolder", "RunInfo", "TrainingOutcome", "bids_label",
           "datatype_and_suffix", "iter_runs"]
