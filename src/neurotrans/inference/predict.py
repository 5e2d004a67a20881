"""Prediction straight to NIfTI: slice-wise (one plane or the mean of three) or 3D sliding window.

Outputs lie on each input's own grid with its affine, in the target's original units:
SUVR for PET (the model is trained on SUVR images, so its output already is SUVR);
for targets normalised per image (min-max, z-score of MRI) the mean of the training
subjects' statistics is inverted, since a new subject's target statistics are unknown.

References: pix2pix MRI -> PET (papers/001): axial or three-plane slice predictions
reassembled into a 3D volume, three planes averaged.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from neurotrans.errors import InputError
from neurotrans.methods.base import Method
from neurotrans.training.checkpoint import load_checkpoint
from neurotrans.training.trainer import resolve_device

# targets whose normalised values are already the reported unit
UNIT_PRESERVING = ("suvr", "none")


@torch.no_grad()
def predict_slices(method: Method, inputs: np.ndarray, planes: Sequence[str], *, context: int = 0,
                   multiple: int = 1, batch_size: int = 16, device: str | torch.device = "cpu") -> np.ndarray:
    """Translate a volume slice by slice; the planes' predictions are averaged.

    Args:
        method: trained method (its ``predict``), in eval mode on ``device``.
        inputs: (C, X, Y, Z) normalised input channels.
        planes: ``["axial"]`` or the three planes.
        context: 2.5D context used in training.
        multiple: slices are zero-padded to a multiple of this and cropped back.
        batch_size: slices per forward pass.

    Returns:
        (X, Y, Z) float32 prediction in normalised units.
    """
    from neurotrans.data.slicing import assemble_slices, extract_slices, slice_shape

    method.eval()
    shape = inputs.shape[1:]
    total = np.zeros(shape, dtype=np.float64)
    for plane in planes:
        h, w = slice_shape(shape, plane)
        pad = (-(-h // multiple) * multiple, -(-w // multiple) * multiple)
        slices = extract_slices(inputs, plane, context=context, pad_to=pad)
        outs = []
        for start in range(0, len(slices), batch_size):
            x = torch.from_numpy(slices[start:start + batch_size]).to(device)
            outs.append(method.predict(x).float().cpu().numpy())
        total += assemble_slices(np.concatenate(outs), plane, shape)[0]
    return (total / len(planes)).astype(np.float32)


@torch.no_grad()
def predict_sliding_window(method: Method, inputs: np.ndarray, roi_size: Sequence[int], *, overlap: float = 0.5,
                           batch_size: int = 2, device: str | torch.device = "cpu") -> np.ndarray:
    """Translate a volume with a 3D model by Gaussian-weighted overlapping windows.

    Args:
        method: trained 3D method.
        inputs: (C, X, Y, Z) normalised input channels.
        roi_size: window size (voxels), each a multiple of the network's ``size_multiple``.
        overlap: window overlap fraction (CF-SAGAN: 0.5).

    Returns:
        (X, Y, Z) float32 prediction.

    References: MONAI ``sliding_window_inference``; CF-SAGAN (64^3 patches, 50 % overlap).
    """
    from monai.inferers import sliding_window_inference

    method.eval()
    x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))[None].to(device)
    out = sliding_window_inference(x, tuple(roi_size), batch_size, method.predict, overlap=overlap,
                                   mode="gaussian")
    return out[0, 0].float().cpu().numpy()


def load_trained(checkpoint: str | Path, device: str | torch.device = "cpu") -> tuple[Method, dict[str, Any]]:
    """Rebuild the method of a checkpoint with its weights; returns (method, meta)."""
    from neurotrans.config import config_from_dict
    from neurotrans.methods import build_method

    ckpt = load_checkpoint(checkpoint)
    meta = ckpt["meta"]
    cfg = config_from_dict(meta["config"])
    method = build_method(cfg.model, cfg.data.inputs, int(meta["in_channels"]), spatial_dims=int(meta["spatial_dims"]))
    method.load_state_dict(ckpt["method_state"])
    return method.to(device).eval(), meta


def invert_target(pred: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """Map a normalised prediction to the target's units (see the module docstring)."""
    from neurotrans.data.normalize import normaliser_from_dict

    stats = meta.get("target_stats") or []
    if not stats or stats[0].get("kind") in UNIT_PRESERVING:
        return pred
    mean = dict(stats[0])
    for key, value in stats[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            mean[key] = float(np.mean([s[key] for s in stats]))
    return normaliser_from_dict(mean).invert(pred).astype(np.float32)


def predict_subject(method: Method, meta: dict[str, Any], subject: Any, *, device: str | torch.device = "cpu") -> np.ndarray:
    """Prediction of one prepared subject, in target units, on its original input grid."""
    from neurotrans.data.preprocess import to_original_grid

    n_expected = int(meta["in_channels"]) // (2 * int(meta["context"]) + 1)
    if subject.inputs.shape[0] != n_expected:
        raise InputError(subject.key, f"has {subject.inputs.shape[0]} input channels, the model expects {n_expected}",
                         f"give the inputs {', '.join(meta['inputs'])}")
    pred = invert_target(predict_slices(method, subject.inputs, meta["planes"], context=int(meta["context"]),
                                        multiple=int(meta["size_multiple"]), device=device), meta)
    if subject.mask is not None:
        # inputs are brain-extracted: outside the brain mask the output is background (0), not
        # whatever the network extrapolates there
        pred = np.where(subject.mask, pred, 0.0).astype(np.float32)
    return to_original_grid(pred, subject)


def _config(meta: dict[str, Any]) -> Any:
    from neurotrans.config import config_from_dict

    return config_from_dict(meta["config"])


def _prepare(manifest: Any, i: int, meta: dict[str, Any]) -> Any:
    from neurotrans.data.preprocess import prepare_subject
    from neurotrans.training.run import working_grid

    cfg = _config(meta)
    return prepare_subject(manifest, i, list(meta["inputs"]), None, grid=working_grid(cfg.data.voxel_size),
                           normalisation=dict(cfg.data.normalisation), mask=meta.get("mask"))


def predict_command(checkpoint: str | Path, inputs: Sequence[str | Path] | None = None,
                    manifest: str | Path | None = None, out: str | Path = "predictions", device: str = "auto",
                    overwrite: bool = False, subjects: Sequence[str] | None = None) -> list[Path]:
    """``neurotrans predict``: write predicted volumes as NIfTI.

    Args:
        checkpoint: ``RUN/checkpoints/best.pt`` (or ``last.pt``).
        inputs: one file per input sequence, in the checkpoint's order -> ``out`` is a file.
        manifest: a cohort -> ``out`` is a folder of ``<subject>_<session>_<TARGET>.nii.gz``;
            rows: ``subjects`` if given, else the run's test subjects found in the
            manifest, else all rows.
        out: output file or folder.
        device: ``auto``, ``cpu`` or ``cuda``.
        overwrite: replace existing outputs.

    Returns:
        the written paths.
    """
    from neurotrans.io.manifest import Manifest, read_manifest
    from neurotrans.io.nifti import save_volume

    if (inputs is None) == (manifest is None):
        raise InputError("predict", "give either --input files or --manifest", "pass exactly one of the two")
    dev = resolve_device(device)
    method, meta = load_trained(checkpoint, dev)
    images = [c for c in meta["inputs"] if c != "coords"]
    out = Path(out)
    if inputs is not None:
        inputs = [Path(p) for p in inputs]
        if len(inputs) != len(images):
            raise InputError(", ".join(map(str, inputs)), f"{len(inputs)} input file(s) given, the model takes "
                             f"{len(images)} ({', '.join(images)})", f"pass --input {' '.join(images)} in that order")
        for p in inputs:
            if not p.is_file():
                raise InputError(p, "input file not found", "check the path")
        if out.exists() and not overwrite:
            raise InputError(out, "already exists", "pass --overwrite or another --out")
        table = pd.DataFrame([{"subject": "input", "session": "1", **{c: str(p.resolve())
                                                                      for c, p in zip(images, inputs, strict=True)}}])
        subject = _prepare(Manifest(table, Path.cwd()), 0, meta)
        data = predict_subject(method, meta, subject, device=dev)
        save_volume(out, data, subject.reference.affine, subject.reference.header, overwrite=overwrite)
        return [out]
    man = read_manifest(manifest)  # type: ignore[arg-type]
    rows = _rows(man, meta, subjects)
    written = []
    from tqdm.auto import tqdm

    for i in tqdm(rows, desc="predict", disable=len(rows) < 2):
        path = out / f"{man.key(i)}_{meta['target']}.nii.gz"
        if path.exists() and not overwrite:
            raise InputError(path, "already exists", "pass --overwrite or another --out")
        subject = _prepare(man, i, meta)
        data = predict_subject(method, meta, subject, device=dev)
        written.append(save_volume(path, data, subject.reference.affine, subject.reference.header,
                                   overwrite=overwrite))
    return written


def _rows(man: Any, meta: dict[str, Any], subjects: Sequence[str] | None) -> list[int]:
    table_subjects = man.table["subject"].astype(str)
    if subjects is not None:
        chosen = set(map(str, subjects))
    else:
        test = set(meta.get("test_subjects") or [])
        chosen = test if test and test <= set(table_subjects) else set(table_subjects)
    rows = [i for i in range(len(man)) if table_subjects.iloc[i] in chosen]
    if not rows:
        raise InputError(man.source or man.root, "no manifest row to predict", "check the subject ids")
    return rows
