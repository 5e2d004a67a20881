"""P3S maps of a trained run: per input sequence, averaged over its test subjects, written as NIfTI.

``neurotrans explain saliency RUN_DIR`` reads the run's checkpoint, prepares each test
subject exactly as in training (normalised inputs and target on the working grid), and
differentiates the squared error inside the mask, ``||I - I_hat||^2``, with respect to every
input voxel of every sequence (:func:`neurotrans.explain.saliency.p3s_saliency`). The model
is applied to the whole volume as a differentiable function of it: 3D models in one
forward pass (padded to their size multiple; valid for the fully convolutional networks
here, which is what their sliding-window prediction approximates), 2D models slice by
slice in their trained plane with the same 2.5D context and padding as training, so a
context slice receives the gradient of every output slice it feeds.

Written into ``OUT`` (default ``RUN_DIR/explain/saliency``):

- ``p3s_<sequence>.nii.gz``: the mean map over test subjects on their common working
  grid (the run's MNI grid, or native grids that coincide); subjects on different native
  grids (real scans) cannot be averaged voxel-wise, and
  ``sub-<s>_ses-<t>_p3s_<sequence>.nii.gz`` per subject on its own input grid are written
  instead;
- ``p3s_<sequence>.png``: a montage (axial slices of the mean input and its saliency);
- ``p3s_ranking.tsv``: sequences ranked by the mean saliency inside the brain mask,
  averaged over subjects, with each subject's score.

References: Wei 2020 PhD thesis ch. 2.2.2 (P3S map, eq. 2.3) and ch. 2.3.3 (ranking of
the sequences, checked by dropping each in turn); Simonyan et al. 2014.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as TF
from torch import Tensor

from neurotrans.errors import InputError

RANKING_FILE = "p3s_ranking.tsv"
_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}


def _pad_far(x: Tensor, multiple: int) -> Tensor:
    """Zero-pad the spatial axes of ``x`` (B, C, *S) at their far end to a multiple of ``multiple``."""
    pad: list[int] = []
    for n in reversed(x.shape[2:]):
        pad += [0, (-n) % multiple]
    return TF.pad(x, pad) if any(pad) else x


def _centre_pad(x: Tensor, size: tuple[int, int]) -> tuple[Tensor, tuple[int, int]]:
    """Centre zero-padding of the last two axes to ``size`` (as ``extract_slices``); returns the offsets."""
    h, w = x.shape[-2:]
    a, c = (size[0] - h) // 2, (size[1] - w) // 2
    return TF.pad(x, [c, size[1] - w - c, a, size[0] - h - a]), (a, c)


def volume_predictor(predict: Callable[[Tensor], Tensor], sampling: dict[str, Any], multiple: int,
                     planes: Sequence[str] = ("axial",)) -> Callable[[Tensor], Tensor]:
    """A differentiable whole-volume model ``(1, C, X, Y, Z) -> (1, 1, X, Y, Z)`` from a method's ``predict``.

    Args:
        predict: the method's batch prediction (slices or 3D windows).
        sampling: ``RunInfo.sampling`` (``slices`` with ``context``, ``patches`` or ``volume``).
        multiple: the network's size multiple (``RunInfo.size_multiple``).
        planes: 2D models: the planes averaged (``planes_for(info)``).
    """
    if sampling["kind"] != "slices":
        def predict_3d(x: Tensor) -> Tensor:
            shape = x.shape[2:]
            out = predict(_pad_far(x, multiple))
            return out[..., : shape[0], : shape[1], : shape[2]]

        return predict_3d
    k = int(sampling.get("context", 0))

    def predict_2d(x: Tensor) -> Tensor:
        total = None
        for plane in planes:
            axis = _AXIS[plane] + 2
            n = x.shape[axis]
            vol = x[0].movedim(axis - 1, 0)  # (N, C, H, W)
            idx = torch.clamp(torch.arange(-k, n + k, device=x.device), 0, n - 1)  # edge slices repeat
            padded = vol[idx]
            slices = torch.stack([padded[j:j + n] for j in range(2 * k + 1)], 1).flatten(1, 2)
            h, w = slices.shape[-2:]
            size = (-(-h // multiple) * multiple, -(-w // multiple) * multiple)
            slices, (a, c) = _centre_pad(slices, size)
            out = predict(slices)[:, :, a:a + h, c:c + w]  # (N, 1, H, W)
            out = out.movedim(0, axis - 1)[None]  # back to (1, 1, X, Y, Z)
            total = out if total is None else total + out
        return total / len(planes)  # type: ignore[operator]

    return predict_2d


def subject_p3s(method: Any, info: Any, subject: Any, *, device: str | torch.device = "cpu") -> np.ndarray:
    """P3S maps ``(C, X, Y, Z)`` of one prepared subject (with target) on its working grid."""
    from neurotrans.explain.saliency import p3s_saliency
    from neurotrans.inference.predict import planes_for

    if subject.target is None:
        raise InputError(subject.key, "has no target image", "P3S needs the real target of each subject")
    planes = planes_for(info) if info.sampling["kind"] == "slices" else ["axial"]
    model = volume_predictor(lambda x: method.predict(x), info.sampling, int(info.size_multiple), planes)
    x = torch.from_numpy(np.ascontiguousarray(subject.inputs))[None].to(device)
    y = torch.from_numpy(np.ascontiguousarray(subject.target))[None].to(device)
    mask = None if subject.mask is None else torch.from_numpy(subject.mask)[None, None].to(device)
    return p3s_saliency(model, x, y, mask)[0].detach().cpu().numpy().astype(np.float32)


@dataclass(frozen=True)
class RunSaliency:
    """P3S of a run's test subjects.

    Args:
        names: input channel names, in channel order.
        subjects: ``subject_session`` keys.
        maps: per subject ``(C, X, Y, Z)`` on its working grid.
        masks: per subject bool ``(X, Y, Z)`` or ``None``.
        inputs: per subject ``(C, X, Y, Z)`` normalised inputs (for the montages).
        prepared: the prepared subjects (grids, to write maps back on input grids).
        common_grid: all maps share one working grid (the run's MNI grid, or identical native grids).
    """

    names: tuple[str, ...]
    subjects: tuple[str, ...]
    maps: tuple[np.ndarray, ...]
    masks: tuple[np.ndarray | None, ...]
    inputs: tuple[np.ndarray, ...]
    prepared: tuple[Any, ...]
    common_grid: bool

    def ranking(self) -> pd.DataFrame:
        """Sequences ranked by mean saliency inside the mask (averaged over subjects): one row each."""
        scores = np.array([[float(m[c][k].mean()) if k is not None else float(m[c].mean())
                            for c in range(len(self.names))] for m, k in zip(self.maps, self.masks, strict=True)])
        mean = scores.mean(0)
        order = np.argsort(-mean, kind="stable")
        rows = []
        for rank, c in enumerate(order, start=1):
            rows.append({"rank": rank, "sequence": self.names[c], "mean_saliency": float(mean[c]),
                         "share": float(mean[c] / mean.sum()) if mean.sum() > 0 else float("nan"),
                         **{f"{s}": float(scores[i, c]) for i, s in enumerate(self.subjects)}})
        return pd.DataFrame(rows)


def run_saliency(run_dir: str | Path, *, checkpoint: str | Path | None = None, subjects: Sequence[str] | None = None,
                 device: str = "cpu") -> RunSaliency:
    """P3S maps of a trained image model for its test subjects (or ``subjects``).

    Raises:
        InputError: no run, a fitted (non-differentiable) method, no subject to explain.
    """
    from neurotrans.config import config_from_dict
    from neurotrans.data.pipeline import working_grid
    from neurotrans.data.preprocess import prepare_subject
    from neurotrans.inference.predict import load_trained
    from neurotrans.io.manifest import read_manifest
    from neurotrans.io.run import RunFolder
    from neurotrans.methods.fitted import FittedMethod

    run = RunFolder(Path(run_dir))
    ckpt = Path(checkpoint) if checkpoint is not None else run.best_checkpoint()
    if not ckpt.is_file():
        raise InputError(run.root, "holds no checkpoint (checkpoints/best.pt or last.pt)",
                         "pass the folder of a trained run (`neurotrans train --out`)")
    method, info = load_trained(ckpt, device)
    if isinstance(method, FittedMethod):
        raise InputError(ckpt, f"is a fitted {info.method} model, which has no input gradient",
                         "explain a network trained by gradient steps (supervised, cnn2layer, pix2pix...)")
    cfg = config_from_dict(info.config)
    man = read_manifest(info.manifest)
    wanted = set(map(str, subjects)) if subjects is not None else set(info.test_subjects)
    rows = [i for i in range(len(man)) if str(man.table.iloc[i]["subject"]) in wanted]
    if not rows:
        raise InputError(info.manifest, "has no row of the subjects to explain "
                         f"({', '.join(sorted(wanted)[:5]) or 'the run has no test subjects'})",
                         "pass --subjects ids of this manifest")
    grid = working_grid(cfg.data.voxel_size)
    out: dict[str, list[Any]] = {"keys": [], "maps": [], "masks": [], "inputs": [], "prepared": []}
    for i in rows:
        s = prepare_subject(man, i, list(info.inputs), info.target, grid=grid,
                            normalisation=dict(cfg.data.normalisation), mask=info.mask,
                            fitted=dict(info.cohort_stats) or None)
        out["keys"].append(s.key)
        out["maps"].append(subject_p3s(method, info, s, device=device))
        out["masks"].append(s.mask)
        out["inputs"].append(s.inputs)
        out["prepared"].append(s)
    first = out["prepared"][0]
    common = all(tuple(s.grid.shape) == tuple(first.grid.shape) and np.allclose(s.grid.affine, first.grid.affine)
                 for s in out["prepared"])
    return RunSaliency(names=tuple(first.input_names), subjects=tuple(out["keys"]), maps=tuple(out["maps"]),
                       masks=tuple(out["masks"]), inputs=tuple(out["inputs"]), prepared=tuple(out["prepared"]),
                       common_grid=common)


def _montage(image: np.ndarray, saliency: np.ndarray, affine: np.ndarray, name: str, n_slices: int = 6) -> Any:
    """Axial slices (columns) of the mean input (top) and its mean P3S map (bottom)."""
    from matplotlib.figure import Figure

    from neurotrans.report.montage import to_ras

    img, _ = to_ras(image, affine)
    sal, _ = to_ras(saliency, affine)
    nz = np.flatnonzero(sal.reshape(-1, sal.shape[2]).max(0) > 0)
    lo, hi = (int(nz[0]), int(nz[-1])) if nz.size else (0, sal.shape[2] - 1)
    zs = np.linspace(lo, hi, n_slices + 2)[1:-1].round().astype(int)
    vmax = float(np.percentile(sal[sal > 0], 99.5)) if (sal > 0).any() else 1.0
    fig = Figure(figsize=(1.6 * n_slices, 3.6))
    axes = fig.subplots(2, n_slices, squeeze=False)
    for j, z in enumerate(zs):
        axes[0, j].imshow(img[:, :, z].T, cmap="gray", origin="lower")
        axes[1, j].imshow(sal[:, :, z].T, cmap="hot", origin="lower", vmin=0.0, vmax=vmax)
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel(name)
    axes[1, 0].set_ylabel("P3S")
    fig.suptitle(f"P3S map of {name} (mean over test subjects)")
    return fig


def saliency_command(run_dir: str | Path, out: str | Path | None = None, *, checkpoint: str | Path | None = None,
                     subjects: Sequence[str] | None = None, device: str = "cpu", overwrite: bool = False) -> list[Path]:
    """``neurotrans explain saliency``: write the P3S maps, montages and ranking of a run.

    Args:
        run_dir: a trained run folder.
        out: output folder (default ``RUN_DIR/explain/saliency``).
        checkpoint: checkpoint to explain (default the run's best, else last).
        subjects: subject ids (default the run's test subjects).
        device: ``cpu`` or ``cuda``.
        overwrite: replace the files of an earlier call.

    Returns:
        the written paths.

    Raises:
        InputError: ``out`` holds files and ``overwrite`` is off, or :func:`run_saliency`'s errors.
    """
    from neurotrans.data.preprocess import to_original_grid
    from neurotrans.io.atomic import write_text_atomic
    from neurotrans.io.nifti import save_volume

    out = Path(out) if out is not None else Path(run_dir) / "explain" / "saliency"
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(out, "already holds saliency results", "pass --overwrite or another --out")
    result = run_saliency(run_dir, checkpoint=checkpoint, subjects=subjects, device=device)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    first = result.prepared[0]
    for c, name in enumerate(result.names):
        safe = "".join(ch for ch in name if ch.isalnum() or ch in "-_")
        if result.common_grid:
            mean_map = np.mean([m[c] for m in result.maps], axis=0).astype(np.float32)
            mean_input = np.mean([x[c] for x in result.inputs], axis=0).astype(np.float32)
            written.append(save_volume(out / f"p3s_{safe}.nii.gz", mean_map, first.grid.affine, overwrite=True))
            fig = _montage(mean_input, mean_map, first.grid.affine, name)
        else:
            for s, m in zip(result.prepared, result.maps, strict=True):
                data = to_original_grid(m[c], s)
                path = out / f"sub-{s.subject.removeprefix('sub-')}_ses-{s.session.removeprefix('ses-')}_p3s_{safe}.nii.gz"
                written.append(save_volume(path, data, s.reference.affine, s.reference.header, overwrite=True))
            fig = _montage(result.inputs[0][c], result.maps[0][c], first.grid.affine, f"{name} ({first.key})")
        png = out / f"p3s_{safe}.png"
        fig.savefig(png, dpi=80)
        written.append(png)
    table = result.ranking()
    written.append(write_text_atomic(out / RANKING_FILE, table.to_csv(sep="\t", index=False, float_format="%.6g")))
    return written


__all__ = ["RANKING_FILE", "RunSaliency", "run_saliency", "saliency_command", "subject_p3s", "volume_predictor"]
