"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint is a plain dict of tensors, dicts, lists, strings, numbers, bools and
``None`` only, so that loading never unpickles code.
"""

from __future__ import annotations

import hashlib
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurotrans.errors import InputError
from neurotrans.io.atomic import write_atomic
from neurotrans.io.run import RunInfo

FORMAT = 1


GOOD_CHECKPOINT = ("pass RUN/checkpoints/best.pt or last.pt written by `neurotrans train` (train the model "
                   "again with this version if you have none)")


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (a killed write leaves the old file).

    ``torch.save`` writes through a Python file object: a full disk then raises ``OSError``
    (reported as one line naming the file) rather than torch's internal ``RuntimeError``.
    """
    payload = {"format": FORMAT, **payload}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            torch.save(payload, fh)

    return write_atomic(path, write)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    A file holding pickled Python objects (a whole model, a foreign training script's
    state) is refused, never unpickled: unpickling can run code. The message says what the
    file is and where a good one comes from.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(path, "is a folder, not a checkpoint file", GOOD_CHECKPOINT)
    if not path.is_file():
        raise InputError(path, "checkpoint not found", "pass RUN/checkpoints/best.pt or last.pt of a trained run")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "unsupported global" not in str(err).lower():
            raise InputError(path, "is not a readable PyTorch checkpoint: another kind of file, or a truncated one "
                             "(UnpicklingError)", GOOD_CHECKPOINT) from None
        # torch's own text here recommends the unsafe route; say what the file is instead
        raise InputError(path, "holds pickled Python objects besides tensors (e.g. a whole saved model or another "
                         "program's state), which neurotrans never unpickles because that can run code",
                         GOOD_CHECKPOINT) from None
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise InputError(path, f"is not a readable PyTorch checkpoint: another kind of file, or a truncated one "
                         f"({type(err).__name__})", GOOD_CHECKPOINT) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise InputError(path, "is a PyTorch file but not a neurotrans checkpoint (its format key is missing or "
                         "of another version)", GOOD_CHECKPOINT)
    return ckpt


def load_run_checkpoint(path: str | Path) -> tuple[dict[str, Any], RunInfo]:
    """A trained run's checkpoint and its :class:`RunInfo` (:func:`load_checkpoint`, then the info checked)."""
    ckpt = load_checkpoint(path)
    if "info" not in ckpt:
        raise InputError(path, "holds no run info (written by an older neurotrans)", "retrain the model with this version")
    if not isinstance(ckpt["info"], dict):
        raise InputError(path, "holds a run info that is not a mapping", "retrain the model with this version")
    return ckpt, RunInfo.from_dict(ckpt["info"], path)


def load_method_state(method: Any, ckpt: dict[str, Any], path: str | Path, network: str, fix: str) -> None:
    """Load ``ckpt``'s model weights into ``method`` strictly; one line naming ``path`` if they do not fit."""
    try:
        method.load_state_dict(ckpt["method_state"])
    except (RuntimeError, KeyError, TypeError) as err:
        raise InputError(path, f"its weights do not fit {network} ({err})", fix) from None


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file (the checkpoints named in prediction sidecars and in a fine-tuned run's info)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def rng_state() -> dict[str, Any]:
    """RNG states of python, numpy and torch (CPU and CUDA) as checkpoint-safe values."""
    version, internal, gauss = random.getstate()
    key, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": {"key": key, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured.

    Generator states are CPU byte tensors whatever device the checkpoint was mapped to
    (``torch.set_rng_state`` and numpy take nothing else).
    """
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["key"], n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached"]))
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
