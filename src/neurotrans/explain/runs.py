"""A trained run opened for explanation: its method, run info, manifest and prepared subjects.

Shared by ``neurotrans explain cca`` and ``neurotrans explain esit``: both reload the best
checkpoint, prepare subjects exactly as the model's training data were (same grid,
normalisation, mask), and refuse, with one line naming the run and the fix, what they cannot
explain. Nothing in ``RUN/explain/<part>`` is replaced unless asked.

References: the ESIT paper ("Demystifying T1-MRI to FDG-PET translation", Sec. 3: 20 subjects
sampled from each model's training data).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from neurotrans.errors import InputError
from neurotrans.io.manifest import Manifest, read_manifest
from neurotrans.io.run import RunFolder, RunInfo

# the one network of methods that translate with a single network (supervised, esit; pix2pix's G)
TRANSLATOR_KEYS = ("net", "G")


@dataclass
class OpenRun:
    """A trained run ready to be explained.

    Args:
        folder: the run folder.
        info: its run info (from the checkpoint).
        method: the method with the trained weights, in eval mode.
        manifest: the cohort it was trained on.
    """

    folder: RunFolder
    info: RunInfo
    method: Any
    manifest: Manifest

    @property
    def name(self) -> str:
        return str(self.info.config.get("name") or self.info.method)

    @property
    def generator_name(self) -> str:
        """The config's network key (``unet_esit_paper``, ``esit``...), for messages."""
        model = self.info.config.get("model") or {}
        return str(model.get("generator") or "?")

    @property
    def plane(self) -> str:
        """The slicing plane of a 2D model (axial when it was trained on all three)."""
        planes = list(self.info.sampling.get("planes", ["axial"]))
        return "axial" if "axial" in planes else planes[0]

    def translator(self) -> nn.Module:
        """The method's one translating network (``net`` or pix2pix's ``G``)."""
        nets = dict(self.method.networks.items())
        for key in TRANSLATOR_KEYS:
            if key in nets:
                return nets[key]
        raise InputError(self.folder.root, f"method {self.info.method} has networks {', '.join(nets)}, none of "
                         "them a single translator", "explain a supervised, esit or pix2pix run")

    def rows(self, subjects: Sequence[str]) -> list[int]:
        """Manifest rows (all sessions) of ``subjects``, in manifest order."""
        wanted = {str(s) for s in subjects}
        return [i for i in range(len(self.manifest)) if str(self.manifest.table.iloc[i]["subject"]) in wanted]

    def prepare(self, i: int) -> Any:
        """Row ``i`` prepared as the training data were (inputs normalised, no target)."""
        from neurotrans.inference.predict import prepare_for_prediction

        return prepare_for_prediction(self.manifest, i, self.info)

    def split_of(self, subject: str) -> str:
        """``train``, ``val``, ``test`` or ``none`` for a subject id."""
        for part in ("train", "val", "test"):
            if str(subject) in {str(s) for s in self.info.split.get(part, [])}:
                return part
        return "none"


def open_run(run_dir: str | Path, device: str = "cpu") -> OpenRun:
    """Load a trained run folder (best checkpoint, manifest) for explanation.

    Raises:
        InputError: no run folder, no checkpoint, or the manifest it was trained on is gone.
    """
    from neurotrans.inference.predict import load_trained

    folder = RunFolder(Path(run_dir))
    if not folder.root.is_dir():
        raise InputError(folder.root, "run folder not found", "pass the folder given to `neurotrans train --out`")
    checkpoint = folder.best_checkpoint()
    if not checkpoint.is_file():
        raise InputError(folder.root, "holds no checkpoints/best.pt or last.pt", "train the model first "
                         "(`neurotrans train CONFIG --out RUN`)")
    method, info = load_trained(checkpoint, device=device)
    manifest_path = Path(info.manifest)
    if not manifest_path.is_file():
        raise InputError(manifest_path, f"the manifest the run {folder.root} was trained on is missing",
                         "restore the cohort at that path (or re-simulate it with the same seed)")
    return OpenRun(folder, info, method, read_manifest(manifest_path))


def sample_subjects(subjects: Sequence[str], n: int, seed: int = 0) -> list[str]:
    """``n`` subjects drawn without replacement (numpy PCG64, ``seed``), in their given order.

    All of them when there are ``n`` or fewer.
    """
    subjects = list(dict.fromkeys(str(s) for s in subjects))
    if n < 1:
        raise ValueError(f"the number of subjects must be positive, got {n}")
    if len(subjects) <= n:
        return subjects
    chosen = set(np.random.default_rng(seed).choice(len(subjects), size=n, replace=False).tolist())
    return [s for j, s in enumerate(subjects) if j in chosen]


def check_output(folder: Path, overwrite: bool, command: str) -> None:
    """Refuse an existing, non-empty output folder unless ``overwrite``."""
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise InputError(folder, "already holds an explanation", f"pass --overwrite to replace it ({command})")


def clear_output(folder: Path, overwrite: bool, command: str) -> None:
    """:func:`check_output`, then remove the folder, so no file of an earlier explanation remains."""
    check_output(folder, overwrite, command)
    if folder.exists():
        shutil.rmtree(folder)


def check_plain_inputs(run: OpenRun, command: str) -> None:
    """Refuse runs whose network takes more than the image channels (2.5D context, covariates)."""
    config = run.info.config
    data = config.get("data") or {}
    context = int(run.info.sampling.get("context", 0) or 0)
    if context:
        raise InputError(run.folder.root, f"was trained on slices with 2.5D context (data.context={context}); "
                         f"`{command}` reads single slices", "explain a model trained with data.context=0")
    if data.get("covariates"):
        raise InputError(run.folder.root, f"its network also takes covariates ({', '.join(data['covariates'])}); "
                         f"`{command}` runs the network on images alone", "explain a model without data.covariates")


__all__ = ["OpenRun", "check_output", "check_plain_inputs", "clear_output", "open_run", "sample_subjects"]
