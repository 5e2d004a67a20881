"""Prediction straight to NIfTI: slice-wise (one plane or the mean of three) or 3D sliding window.

How a volume is cut is what the checkpoint's ``RunInfo.sampling`` says: a 2D model
translates slices and reassembles them; a 3D model (patches or whole volumes) runs
MONAI's sliding-window inference with Gaussian blending, windows of its training patch
(or padded volume) size, so memory stays bounded whatever the volume size.

Outputs lie on each input's own grid with its affine, in the target's units: SUVR for
FDG and DVR for PIB (the model is trained in those units); for targets normalised per
image (min-max, z-score of MRI) the mean of the training subjects' statistics is
inverted, since a new subject's target statistics are unknown. A cohort-level z-score is
inverted exactly.

Manifest predictions form a BIDS-derivatives dataset (``neurotrans.io.run.PredictionFolder``)
with a JSON sidecar per image (method, checkpoint SHA-256, version, inputs, units,
simulated flag).

References: pix2pix MRI -> PET (papers/001): axial or three-plane slice predictions
reassembled into a 3D volume (the three-plane model is predicted on axial slices;
averaging the planes is a separate test-time option); MONAI ``sliding_window_inference``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from neurotrans import __version__
from neurotrans.errors import InputError
from neurotrans.io.atomic import write_text_atomic
from neurotrans.io.outputs import check_output_file, check_output_folder
from neurotrans.io.run import PredictionFolder, RunInfo
from neurotrans.methods.base import Method
from neurotrans.training.checkpoint import file_sha256, load_method_state, load_run_checkpoint
from neurotrans.training.trainer import resolve_device

# targets whose normalised values are already the reported unit
UNIT_PRESERVING = ("suvr", "none")
PLANE_OPTIONS = ("trained", "axial", "coronal", "sagittal", "all")
TRACERS = {"FDG": "F18", "PIB": "C11"}  # BIDS-PET TracerRadionuclide of each predicted tracer


@torch.no_grad()
def predict_slices(predictor: Callable[[torch.Tensor], torch.Tensor], inputs: np.ndarray, planes: Sequence[str], *,
                   context: int = 0, multiple: int = 1, batch_size: int = 16,
                   device: str | torch.device = "cpu") -> np.ndarray:
    """Translate a volume slice by slice; the planes' predictions are averaged.

    Args:
        predictor: batch of slices (B, C, H, W) -> (B, 1, H, W) (a method's ``predict``).
        inputs: (C, X, Y, Z) normalised input channels.
        planes: ``["axial"]`` or the three planes.
        context: 2.5D context used in training.
        multiple: slices are zero-padded to a multiple of this and cropped back.
        batch_size: slices per forward pass.

    Returns:
        (X, Y, Z) float32 prediction in normalised units.
    """
    from neurotrans.data.slicing import assemble_slices, extract_slices, slice_shape

    shape = inputs.shape[1:]
    total = np.zeros(shape, dtype=np.float64)
    for plane in planes:
        h, w = slice_shape(shape, plane)
        pad = (-(-h // multiple) * multiple, -(-w // multiple) * multiple)
        slices = extract_slices(inputs, plane, context=context, pad_to=pad)
        outs = []
        for start in range(0, len(slices), batch_size):
            x = torch.from_numpy(slices[start:start + batch_size]).to(device)
            outs.append(predictor(x).float().cpu().numpy())
        total += assemble_slices(np.concatenate(outs), plane, shape)[0]
    return (total / len(planes)).astype(np.float32)


@torch.no_grad()
def predict_sliding_window(predictor: Callable[[torch.Tensor], torch.Tensor], inputs: np.ndarray,
                           roi_size: Sequence[int], *, overlap: float = 0.5, batch_size: int = 4,
                           device: str | torch.device = "cpu") -> np.ndarray:
    """Translate a volume with a 3D model by Gaussian-weighted overlapping windows.

    Args:
        predictor: batch of windows (B, C, D, H, W) -> (B, 1, D, H, W).
        inputs: (C, X, Y, Z) normalised input channels.
        roi_size: window size (voxels), each a multiple of the network's size multiple.
        overlap: window overlap fraction (CF-SAGAN: 0.5).
        batch_size: windows per forward pass (> 1: PyTorch's CPU convolutions with few
            channels take a 7x slower path for a batch of one).

    Returns:
        (X, Y, Z) float32 prediction.

    References: MONAI ``sliding_window_inference``; CF-SAGAN (64^3 patches, 50 % overlap).
    """
    from monai.inferers import sliding_window_inference

    x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))[None].to(device)
    out = sliding_window_inference(x, tuple(int(r) for r in roi_size), batch_size, predictor, overlap=overlap,
                                   mode="gaussian")
    return out[0, 0].float().cpu().numpy()


def load_trained(checkpoint: str | Path, device: str | torch.device = "cpu") -> tuple[Method, RunInfo]:
    """Rebuild the method of a checkpoint with its weights; returns ``(method, info)``."""
    from neurotrans.config import config_from_dict
    from neurotrans.training.run import build_from_config

    ckpt, info = load_run_checkpoint(checkpoint)
    try:
        cfg = config_from_dict(info.config)
    except ValueError as err:
        raise InputError(checkpoint, f"its config no longer loads ({err})", "retrain with this version") from None
    method = build_from_config(cfg)
    load_method_state(method, ckpt, checkpoint, "the network its config describes", "retrain with this version")
    return method.to(device).eval(), info  # type: ignore[attr-defined]


def invert_target(pred: np.ndarray, info: RunInfo, *, reverse: bool = False) -> np.ndarray:
    """Map a normalised prediction to the target's units (see the module docstring).

    ``reverse``: the prediction is of the input modality (an unpaired model run target ->
    input), inverted with the training subjects' statistics of that input.
    """
    from neurotrans.data.normalize import normaliser_from_dict

    stats = list(info.source_stats if reverse else info.target_stats)
    if not stats or stats[0].get("kind") in UNIT_PRESERVING:
        return pred
    mean = dict(stats[0])
    for key, value in stats[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            mean[key] = float(np.mean([s[key] for s in stats]))
    return normaliser_from_dict(mean).invert(pred).astype(np.float32)


def planes_for(info: RunInfo, planes: str = "trained") -> list[str]:
    """The slice planes used at prediction time.

    ``trained``: axial if the model was trained on axial slices (the pix2pix paper predicts
    its three-plane model on axial slices too), else its one plane. ``all``: the mean of
    the three planes' predictions (a test-time ensemble; the model must have been trained
    on all three). A single plane must be one the model was trained on.
    """
    trained = list(info.sampling.get("planes", []))
    if planes == "trained":
        return ["axial"] if "axial" in trained else trained[:1]
    if planes == "all":
        if len(trained) < 3:
            raise InputError(f"--planes {planes}", f"the model was trained on {', '.join(trained)} slices only",
                             "average planes only with a three-plane model (data.plane=all)")
        return trained
    if planes not in trained:
        raise InputError(f"--planes {planes}", f"the model was trained on {', '.join(trained)} slices",
                         f"choose one of: trained, {', '.join(trained)}")
    return [planes]


def direction_of(info: RunInfo, direction: str | None = None) -> bool:
    """Whether ``direction`` (``SRC->DST``, e.g. ``T2w->T1w``) is the reverse of the trained one.

    ``None`` or ``trained`` is the trained direction (inputs -> target); the reverse
    (target -> input) exists for one-input models only (and methods with ``predict_reverse``).
    """
    images = [c for c in info.inputs if c != "coords"]
    trained = f"{'+'.join(images)}->{info.target}"
    reverse = f"{info.target}->{images[0]}" if len(info.inputs) == 1 and images else None
    given = (direction or "trained").replace(" ", "")
    if given in ("trained", trained):
        return False
    if given == reverse:
        return True
    choices = " or ".join(c for c in (trained, reverse) if c)
    raise InputError(f"--direction {direction}", f"the model translates {choices}",
                     f"choose --direction {choices} (or leave it out: {trained})")


def predict_subject(method: Method, info: RunInfo, subject: Any, *, device: str | torch.device = "cpu",
                    planes: str = "trained", batch_size: int | None = None, reverse: bool = False,
                    predict_fn: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor] | None = None
                    ) -> np.ndarray:
    """Prediction of one prepared subject, in target units, on its original input grid.

    ``reverse``: translate the target modality back to the input one (``method.predict_reverse``;
    the subject prepared with ``prepare_for_prediction(..., reverse=True)``), in the input's units.
    ``predict_fn(x, covariates)`` replaces ``method.predict`` (e.g. one draw of a sampling
    method, :mod:`neurotrans.inference.uncertainty`).
    """
    from neurotrans.config import config_from_dict
    from neurotrans.data.datasets import covariate_vector
    from neurotrans.data.preprocess import to_original_grid
    from neurotrans.methods.fitted import FittedMethod

    n_expected = 1 if reverse else int(info.in_channels) // (2 * int(info.sampling.get("context", 0)) + 1)
    if subject.inputs.shape[0] != n_expected:
        raise InputError(subject.key, f"has {subject.inputs.shape[0]} input channels, the model expects {n_expected}",
                         f"give the inputs {info.target if reverse else ', '.join(info.inputs)}")
    if reverse and not callable(getattr(method, "predict_reverse", None)):
        raise InputError(f"--direction {info.target}->{info.inputs[0]}",
                         f"method {info.method} translates one way only", "leave --direction out")
    translate = method.predict_reverse if reverse else method.predict  # type: ignore[attr-defined]
    cfg = config_from_dict(info.config)
    covariates = None
    if cfg.data.covariates:
        covariates = covariate_vector(subject, cfg.data.covariates)[None].to(device)

    run = translate if predict_fn is None else predict_fn

    def predictor(x: torch.Tensor) -> torch.Tensor:
        cov = None if covariates is None else covariates.expand(x.shape[0], -1)
        return run(x, cov)

    method.eval()
    sampling = info.sampling
    if isinstance(method, FittedMethod):  # the classical baselines predict whole volumes inside the mask
        pred = method.predict_volume(subject.inputs, subject.mask)
    elif sampling["kind"] == "slices":
        pred = predict_slices(predictor, subject.inputs, planes_for(info, planes), context=int(sampling["context"]),
                              multiple=int(info.size_multiple), device=device, batch_size=batch_size or 16)
    else:
        if planes != "trained":
            raise InputError(f"--planes {planes}", "is for slice models; this model is 3D", "leave --planes out")
        roi = sampling["patch_size"] if sampling["kind"] == "patches" else sampling["roi_size"]
        inputs, shape = subject.inputs, subject.inputs.shape[1:]
        if sampling["kind"] == "volume" and all(s <= r for s, r in zip(shape, roi, strict=True)):
            # zero-padded at the far end, as in training (MONAI would pad both sides, shifting the
            # volume against the 2**L squeeze grid of a flow)
            inputs = np.pad(inputs, [(0, 0)] + [(0, int(r) - s) for s, r in zip(shape, roi, strict=True)])
        pred = predict_sliding_window(predictor, inputs, roi, overlap=float(sampling.get("overlap", 0.5)),
                                      device=device, batch_size=batch_size or 4)
        pred = pred[: shape[0], : shape[1], : shape[2]]
    pred = invert_target(pred, info, reverse=reverse)
    if subject.mask is not None:
        # inputs are brain-extracted: outside the brain mask the output is background (0), not
        # whatever the network extrapolates there
        pred = np.where(subject.mask, pred, 0.0).astype(np.float32)
    bad = int(np.count_nonzero(~np.isfinite(pred)))
    if bad:  # refused here, not written as a volume that every reader refuses later
        raise InputError(f"{info.method} prediction for {subject.key}", f"has {bad} NaN/Inf voxels",
                         "check the run's training log for a diverged loss; a flow's sample can overflow "
                         "in the tails: lower --temperature (Glow samples at 0.7)")
    return to_original_grid(pred, subject)


def prepare_for_prediction(manifest: Any, i: int, info: RunInfo, *, reverse: bool = False) -> Any:
    """Prepare row ``i`` exactly as the model's training data were (no target needed).

    ``reverse``: the target column is the (only) input, for a target -> input prediction.
    """
    from neurotrans.config import config_from_dict
    from neurotrans.data.pipeline import working_grid
    from neurotrans.data.preprocess import prepare_subject

    cfg = config_from_dict(info.config)
    inputs = [info.target] if reverse else list(info.inputs)
    return prepare_subject(manifest, i, inputs, None, grid=working_grid(cfg.data.voxel_size),
                           normalisation=dict(cfg.data.normalisation), mask=info.mask,
                           fitted=dict(info.cohort_stats) or None)


def prediction_label(info: RunInfo, planes: str = "trained") -> str:
    """The row label of these predictions in evaluation tables (config name, plus the variant)."""
    name = str(info.config.get("name") or info.method)
    return f"{name} (planes averaged)" if planes == "all" else name


def predict_command(checkpoint: str | Path | Sequence[str | Path], inputs: Sequence[str | Path] | None = None,
                    manifest: str | Path | None = None, out: str | Path = "predictions", device: str = "auto",
                    overwrite: bool = False, subjects: Sequence[str] | None = None,
                    planes: str = "trained", bids: str | Path | None = None,
                    direction: str | None = None, uncertainty: bool = False,
                    samples: int | None = None, temperature: float | None = None, seed: int = 0,
                    age: float | None = None, age_sweep: Sequence[float] | None = None) -> list[Path]:
    """``neurotrans predict``: write predicted volumes as NIfTI.

    Args:
        checkpoint: ``RUN/checkpoints/best.pt`` (or ``last.pt``); several checkpoints of one
            task (the folds of a config) form an ensemble: the prediction is their mean.
        inputs: one file per input sequence, in the checkpoint's order -> ``out`` is a file.
        manifest: a cohort -> ``out`` is a BIDS-derivatives folder; rows: ``subjects`` if
            given, else the run's test subjects found in the manifest, else all rows.
        bids: a BIDS dataset, read as ``neurotrans data manifest bids`` would (instead of
            ``manifest``).
        out: output file or folder (checked before any work).
        device: ``auto``, ``cpu`` or ``cuda``.
        overwrite: replace existing outputs.
        planes: slice models: ``trained`` (default), one plane, or ``all`` (plane-averaged).
        direction: ``SRC->DST``; ``None`` = the trained direction. The reverse one (target ->
            input, unpaired models) reads the target column (or one ``--input`` file of it)
            and writes the input modality's BIDS-derivatives file.
        uncertainty: also write the voxel-wise SD map beside each prediction (``desc-neurotransSD``,
            or ``<out>_sd.nii.gz`` with ``inputs``): across the ensemble's models, or across
            ``samples`` draws at ``temperature`` of a sampling method (DUAL-GLOW); see
            :mod:`neurotrans.inference.uncertainty`.
        samples, temperature: sampling settings (default: the model's config).
        seed: seed of the samples.
        age: side information overriding the subjects' ``age`` (models trained with it).
        age_sweep: ``(start, stop, n)``: also write one point prediction per age
            (``desc-neurotransAge<age>``, or ``<out>_age-<age>.nii.gz`` with ``inputs``).

    Returns:
        the written paths.
    """
    from neurotrans.inference.uncertainty import (
        can_sample,
        check_ensemble,
        check_overrides,
        predict_maps,
        sweep_values,
        uncertainty_description,
        value_label,
    )
    from neurotrans.io.manifest import Manifest, read_manifest
    from neurotrans.io.nifti import check_volume_file, save_volume
    from neurotrans.io.run import PREDICTION_DESC

    if sum(x is not None for x in (inputs, manifest, bids)) != 1:
        raise InputError("predict", "give one source of inputs", "pass exactly one of --input, --manifest or --bids")
    if planes not in PLANE_OPTIONS:
        raise InputError(f"--planes {planes}", "is not a plane option", f"choose one of {', '.join(PLANE_OPTIONS)}")
    out = Path(out)
    checkpoints = [Path(checkpoint)] if isinstance(checkpoint, (str, Path)) else [Path(c) for c in checkpoint]
    if not checkpoints:
        raise InputError("--checkpoint", "names no checkpoint", "pass RUN/checkpoints/best.pt (several for an ensemble)")
    ages = [] if age_sweep is None else sweep_values(*age_sweep)
    overrides = {} if age is None else {"age": float(age)}
    extra_files = (["sd"] if uncertainty else []) + [f"age-{value_label(a)}" for a in ages]
    if inputs is not None:  # the output path is checked before the checkpoint is even read
        check_output_file(out, overwrite=overwrite, suffixes=(".nii", ".nii.gz"))
        for tag in extra_files:
            check_output_file(tagged_file(out, tag), overwrite=overwrite, suffixes=(".nii", ".nii.gz"))
    else:
        check_output_folder(out)
    try:
        dev = resolve_device(device)
    except ValueError as err:
        raise InputError(f"--device {device}", str(err), "use --device cpu or auto") from None
    models = [load_trained(c, dev) for c in checkpoints]
    check_ensemble(models, checkpoints)
    method, info = models[0]
    for _, other in models:
        check_overrides({**overrides, **({"age": 0.0} if ages else {})}, other, "--age-sweep" if ages else "--age")
    if uncertainty and len(models) == 1 and not can_sample(method):
        raise InputError(f"--uncertainty with {checkpoints[0]}", f"method {info.method} draws no samples",
                         "give the checkpoints of several models of this task (its cross-validation folds) for an "
                         "ensemble SD map")

    def maps(subject: Any, extra: dict[str, float] | None = None,
             with_sd: bool = uncertainty) -> tuple[np.ndarray, np.ndarray | None]:
        return predict_maps(models, subject, uncertainty=with_sd, samples=samples, temperature=temperature,
                            seed=seed, device=dev, planes=planes, overrides={**overrides, **(extra or {})},
                            reverse=reverse)

    shas: list[str] = []

    def described(sidecar: dict[str, Any], kind: str, value: float | None = None) -> dict[str, Any]:
        # the SD map and the sweep volumes: the prediction's sidecar, saying what they are instead
        own = sidecar["neurotrans"]
        if overrides:
            own["covariates"] = dict(overrides)
        if kind == "sd":
            sidecar["Description"] = "voxel-wise SD (same units) of " + sidecar["Description"]
            own["uncertainty"] = uncertainty_description(models, shas, samples=samples, temperature=temperature,
                                                         seed=seed)
        elif kind == "sweep":
            own["covariates"] = {**dict(overrides), "age": value}
        return sidecar

    if info.sampling["kind"] == "slices":
        planes_for(info, planes)  # refuse a bad --planes before any work
    reverse = direction_of(info, direction)
    if reverse and not callable(getattr(method, "predict_reverse", None)):
        raise InputError(f"--direction {direction}", f"method {info.method} translates one way only",
                         "leave --direction out")
    images = [c for c in info.inputs if c != "coords"]
    produced, units = info.target, info.units
    if reverse:  # the unpaired model run backwards: target -> input
        from neurotrans.config import config_from_dict
        from neurotrans.data.normalize import default_normalisation, units_of

        produced, images = images[0], [info.target]
        units = units_of(produced, config_from_dict(info.config).data.normalisation.get(
            produced, default_normalisation(produced)))
    if inputs is not None:
        inputs = [Path(p) for p in inputs]
        if len(inputs) != len(images):
            raise InputError(", ".join(map(str, inputs)), f"{len(inputs)} input file(s) given, the model takes "
                             f"{len(images)} ({', '.join(images)})", f"pass --input {' '.join(images)} in that order")
        for p in inputs:
            if not p.is_file():
                raise InputError(p, "input file not found", "check the path")
        table = pd.DataFrame([{"subject": "input", "session": "1", **{c: str(p.resolve())
                                                                      for c, p in zip(images, inputs, strict=True)}}])
        subject = prepare_for_prediction(Manifest(table, Path.cwd()), 0, info, reverse=reverse)
        data, sd = maps(subject)
        written = [save_volume(out, data, subject.reference.affine, subject.reference.header, overwrite=overwrite)]
        if sd is not None:
            written.append(save_volume(tagged_file(out, "sd"), sd, subject.reference.affine, subject.reference.header,
                                       overwrite=overwrite))
        for a in ages:
            written.append(save_volume(tagged_file(out, f"age-{value_label(a)}"), maps(subject, {"age": a}, False)[0],
                                       subject.reference.affine, subject.reference.header, overwrite=overwrite))
        return written
    if bids is not None:
        from neurotrans.io.builders import scan_manifest

        man = scan_manifest("bids", bids)
    else:
        man = read_manifest(manifest)  # type: ignore[arg-type]
    rows = _rows(man, info, subjects, [other for _, other in models[1:]])
    folder = PredictionFolder(out)
    paths = {i: folder.path(str(man.table.iloc[i]["subject"]), str(man.table.iloc[i]["session"]), produced)
             for i in rows}  # every id is checked before anything is written
    ids = {i: (str(man.table.iloc[i]["subject"]), str(man.table.iloc[i]["session"])) for i in rows}
    sd_paths = {i: folder.sd_path(*ids[i], produced) for i in rows} if uncertainty else {}
    sweep_paths = {(i, a): folder.path(*ids[i], produced, desc=f"{PREDICTION_DESC}Age{value_label(a)}")
                   for i in rows for a in ages}
    for i in rows:  # every input's header, before the first prediction is written
        for c in images:
            source = man.path(i, c)
            if source is None:
                raise InputError(man.source or man.root, f"row {man.key(i)} has no {c} image",
                                 f"fill the {c} column for this row or leave the subject out")
            check_volume_file(source)
    outputs = [*paths.values(), *sd_paths.values(), *sweep_paths.values()]
    clash = [p for p in outputs if p.exists()]
    if clash and not overwrite:
        raise InputError(clash[0], f"already exists ({len(clash)} of the {len(outputs)} outputs do)",
                         "pass --overwrite or another --out")
    shas.extend(file_sha256(c) for c in checkpoints)
    sha: str | list[str] = shas[0] if len(shas) == 1 else list(shas)
    label = prediction_label(info, planes) + (f" ({len(models)}-model ensemble)" if len(models) > 1 else "")
    label += f" ({info.target}->{produced})" if reverse else ""
    sources = SourceLinks.of([man.path(i, c) for i in rows for c in images], folder.root)
    folder.root.mkdir(parents=True, exist_ok=True)
    folder.write_description({"Name": "neurotrans", "Version": __version__,
                              "Description": f"{label}: {produced} predicted from {', '.join(images)}"},
                             {"SourceDatasets": [{"URL": sources.location}], "DatasetLinks": sources.links(),
                              "neurotrans": {"label": label, "method": info.method, "target": produced,
                                             "units": units, "planes": planes,
                                             "checkpoint_sha256": sha, "simulated": info.simulated}})
    readme = folder.root / "README"
    if not readme.exists() or overwrite:
        write_text_atomic(readme, _readme(info, label))
    written = []
    from tqdm.auto import tqdm

    for i in tqdm(rows, desc="predict", disable=len(rows) < 2):
        subject = prepare_for_prediction(man, i, info, reverse=reverse)
        data, sd = maps(subject)
        used = [sources.uri(man.path(i, c)) for c in images]
        masked = bool(subject.mask is not None)
        volumes = [(paths[i], data, "prediction", None)]
        if sd is not None:
            volumes.append((sd_paths[i], sd, "sd", None))
        volumes += [(sweep_paths[i, a], maps(subject, {"age": a}, False)[0], "sweep", a) for a in ages]
        for target_path, volume, kind, value in volumes:
            path = save_volume(target_path, volume, subject.reference.affine, subject.reference.header,
                               overwrite=overwrite)
            sidecar = described(prediction_sidecar(info, label, planes, sha, used, masked, target=produced,
                                                   units=units, inputs=images), kind, value)
            write_text_atomic(folder.sidecar(path), json.dumps(sidecar, indent=2) + "\n")
            written.append(path)
    return written


def tagged_file(path: Path, tag: str) -> Path:
    """``pred.nii.gz`` -> ``pred_<tag>.nii.gz`` (the SD map and sweep volumes of ``--input`` predictions)."""
    suffix = ".nii.gz" if path.name.endswith(".nii.gz") else path.suffix
    return path.with_name(path.name[: len(path.name) - len(suffix)] + f"_{tag}" + suffix)


def prediction_sidecar(info: RunInfo, label: str, planes: str, sha: str | list[str], sources: list[str],
                       masked: bool, *, target: str | None = None, units: str | None = None,
                       inputs: Sequence[str] | None = None) -> dict[str, Any]:
    """The JSON sidecar of one predicted image: BIDS-derivatives fields, then neurotrans' own.

    ``Sources`` and ``SpatialReference`` are BIDS URIs of the input images (the prediction
    lies on the first input's grid). For a PET target, the facts BIDS-PET asks for that hold
    for a synthetic image are given (tracer, radionuclide, units, skull stripping); the
    acquisition fields (injection, scanner, reconstruction, timing) are left out: there
    was no acquisition. neurotrans' own fields sit under one ``neurotrans`` key.
    """
    target = target or info.target
    units = units or info.units
    inputs = list(inputs if inputs is not None else info.inputs)
    sidecar: dict[str, Any] = {
        "Description": f"{target} synthesised by neurotrans ({label}, method {info.method}) from "
                       f"{', '.join(inputs)}; a model prediction, not a measured image",
        "Sources": sources, "SpatialReference": sources[0] if sources else None}
    if target in TRACERS:
        sidecar |= {"TracerName": target, "TracerRadionuclide": TRACERS[target], "Units": units,
                    "SkullStripped": masked}
    sidecar = {k: v for k, v in sidecar.items() if v is not None}
    sidecar["neurotrans"] = {
        "method": info.method, "label": label, "checkpoint_sha256": sha, "version": __version__,
        "inputs": inputs, "target": target, "units": units, "planes": planes, "simulated": info.simulated}
    return sidecar


def _readme(info: RunInfo, label: str) -> str:
    lines = [f"neurotrans predictions: {info.target} synthesised from {', '.join(info.inputs)} by {label} "
             f"(method {info.method}, neurotrans {__version__}).", "",
             "A BIDS-derivatives dataset: each image lies on its first input's grid, in the units its sidecar "
             "names; the sidecars' Sources point to the inputs (DatasetLinks in dataset_description.json).",
             "These are model predictions, not measured images."]
    if info.simulated:
        lines.append("The model was trained on a simulated cohort.")
    return "\n".join(lines) + "\n"


class SourceLinks:
    """BIDS URIs (``bids:inputs:<path>``) for the input images, linked from the prediction folder.

    One ``DatasetLinks`` entry, ``inputs``, names the folder holding every input (their
    common parent), as a path relative to the prediction folder when one exists, else a
    ``file://`` URI.

    Args:
        base: the common folder of the inputs.
        location: how the prediction folder reaches it.
    """

    NAME = "inputs"

    def __init__(self, base: Path, location: str) -> None:
        self.base, self.location = base, location

    @classmethod
    def of(cls, paths: Sequence[Path | None], root: Path) -> SourceLinks:
        files = [os.path.abspath(p) for p in paths if p is not None]
        base = Path(os.path.commonpath([os.path.dirname(f) for f in files])) if files else Path(os.path.abspath(root))
        try:
            location = Path(os.path.relpath(base, os.path.abspath(root))).as_posix()
        except ValueError:  # another drive (Windows)
            location = base.as_uri()
        return cls(base, location)

    def links(self) -> dict[str, str]:
        return {self.NAME: self.location}

    def uri(self, path: Path | None) -> str:
        rel = Path(os.path.relpath(os.path.abspath(path), self.base)).as_posix() if path is not None else ""
        return f"bids:{self.NAME}:{rel}"


def _rows(man: Any, info: RunInfo, subjects: Sequence[str] | None, others: Sequence[RunInfo] = ()) -> list[int]:
    table_subjects = man.table["subject"].astype(str)
    if subjects is not None:
        chosen = set(map(str, subjects))
    else:
        test = set(info.test_subjects)
        for other in others:  # an ensemble: the subjects held out from every model
            test &= set(other.test_subjects)
        if others and not test and info.test_subjects and set(info.test_subjects) <= set(table_subjects):
            raise InputError(man.source or man.root, "the ensemble's models share no test subject (cross-validation "
                             "folds each hold out others): each model's test subjects are another's training data",
                             "pass --subjects with subjects none of the models trained on")
        chosen = test if test and test <= set(table_subjects) else set(table_subjects)
    rows = [i for i in range(len(man)) if table_subjects.iloc[i] in chosen]
    if not rows:
        raise InputError(man.source or man.root, "no manifest row to predict", "check the subject ids")
    return rows
