"""From a data config to what training and prediction need: split, prepared subjects, datasets.

One path for every dimensionality (``data.spatial_dims``):

- 2D: slices of one plane or of all three (the pix2pix "augmented" model), with 2.5D
  context, padded to the network's size multiple;
- 3D patches: a regular grid (``patch_overlap``) or ``samples_per_volume`` random
  patches centred on brain voxels, redrawn each epoch;
- 3D whole volumes: padded at the far end to a common size, a multiple of the network's.

How a model samples its data is recorded as ``RunInfo.sampling`` so that prediction cuts
new volumes the same way (slices, or sliding windows of the patch / volume size).

References: papers/001 (axial and three-plane slices), papers/003 ch. 3 (whole volumes)
and ch. 4 (64^3 patches, 50 % overlap, rotation/scaling augmentation).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from neurotrans.config import DataConfig, SplitConfig
from neurotrans.data.crop import mask_box, shifted_grid
from neurotrans.data.grid import Grid, mni_grid
from neurotrans.data.preprocess import PreparedSubject
from neurotrans.errors import InputError
from neurotrans.io.manifest import Manifest


def working_grid(voxel_size: float | None) -> Grid | None:
    """The MNI grid of ``voxel_size`` mm, or ``None`` for each subject's native grid."""
    return None if voxel_size is None else mni_grid(float(voxel_size))


def split_subjects(manifest: Manifest, split: SplitConfig) -> dict[str, list[str]]:
    """Subject-level train / val / test lists from the split config.

    References: subject-level k-fold (ESIT paper, 5-fold CV); leave-one-out for the
    three real patients.
    """
    from neurotrans.data.splits import fixed_split, kfold_splits

    subjects = manifest.subjects
    where = manifest.source or manifest.root
    if split.kind == "fixed":
        try:
            return fixed_split(manifest, test_fraction=split.test_fraction, val_fraction=split.val_fraction,
                               group=split.stratify, seed=split.seed).to_dict()
        except ValueError as err:  # too few subjects (or groups) for the fractions: the data's fault, one line
            if isinstance(err, InputError):
                raise
            raise InputError(where, str(err), "use more subjects, or smaller split.test_fraction and "
                             "split.val_fraction") from None
    if split.kind == "kfold":
        if len(subjects) < split.folds:
            raise InputError(where, f"has {len(subjects)} subjects, fewer than split.folds={split.folds}",
                             "use fewer folds or more subjects")
        return kfold_splits(manifest, split.folds, group=split.stratify, seed=split.seed)[split.fold].to_dict()
    if split.kind == "loo":
        if split.fold >= len(subjects):
            raise InputError(where, f"has {len(subjects)} subjects; split.fold={split.fold} leaves none out",
                             f"use split.fold in [0, {len(subjects)})")
        test = subjects[split.fold]
        return {"train": [s for s in subjects if s != test], "val": [], "test": [test]}
    unknown = [s for s in (*split.train, *split.val, *split.test) if s not in subjects]
    if unknown:
        raise InputError(where, f"split names subjects not in the manifest: {', '.join(unknown[:5])}",
                         "fix split.train/val/test")
    return {"train": list(split.train), "val": list(split.val), "test": list(split.test)}


def _piece(subject: PreparedSubject, lo: int, hi: int) -> PreparedSubject:
    """The part ``[lo, hi)`` of ``subject`` along its last axis (a view; the grid moves with it)."""
    cut = (slice(None), slice(None), slice(None), slice(lo, hi))
    shape = (*subject.shape[:2], hi - lo)
    return replace(subject, inputs=subject.inputs[cut],
                   target=None if subject.target is None else subject.target[cut],
                   mask=None if subject.mask is None else subject.mask[cut[1:]],
                   aux=None if subject.aux is None else subject.aux[cut],
                   grid=shifted_grid(subject.grid, (0, 0, lo), shape))


def hold_out_slabs(subjects: Sequence[PreparedSubject], fraction: float
                   ) -> tuple[list[PreparedSubject], list[PreparedSubject]]:
    """Split every subject into training pieces and a held-out validation slab.

    The slab spans ``fraction`` of the brain's extent along the last array axis (the
    whole volume without a mask), centred on the brain's middle, where the slices hold
    every tissue; the pieces below and above it train. Patches are cut inside a piece, so
    no training target voxel lies in the slab: its error estimates the error on unseen
    voxels of the same patients, which is what early stopping needs when a cohort is too
    small to spare a validation subject (the thesis stops on validation error, ch. 2.2.4).
    A piece without brain voxels is dropped.

    Returns:
        ``(training pieces, validation slabs)``; each keeps its subject's key and statistics.
    """
    if not 0 < fraction <= 0.5:
        raise ValueError(f"fraction must lie in (0, 0.5], got {fraction}")
    train, val = [], []
    for s in subjects:
        n = s.shape[2]
        first, last = 0, n
        if s.mask is not None and s.mask.any():
            start, shape = mask_box(np.asarray(s.mask))
            first, last = start[2], start[2] + shape[2]
        width = max(1, round(fraction * (last - first)))
        lo = (first + last - width) // 2
        hi = lo + width
        val.append(_piece(s, lo, hi))
        pieces = [_piece(s, a, b) for a, b in ((0, lo), (hi, n)) if b > a]
        train += [p for p in pieces if p.mask is None or p.mask.any()]
    return train, val


def cohort_columns(data: DataConfig) -> list[str]:
    """Columns normalised with one set of statistics over the training cohort (``zscore:cohort``).

    Only the inputs and the target count: a config may name more sequences than it reads,
    so that switching ``data.inputs`` (MTR / MTR+RD / MTR+DTI) needs no other change.
    """
    used = {*data.inputs, data.target}
    return [c for c, spec in data.normalisation.items()
            if str(spec).replace(" ", "") == "zscore:cohort" and c in used]


def fit_cohort_stats(manifest: Manifest, subjects: Iterable[str], data: DataConfig, *,
                     share: tuple[int, int] = (0, 1)) -> dict[str, dict[str, Any]]:
    """Statistics of the ``zscore:cohort`` columns over the brain voxels of the training subjects.

    ``share``: see :func:`~neurotrans.data.cache.prepare_cohort`.
    """
    from neurotrans.data.normalize import fit_cohort_zscore

    columns = cohort_columns(data)
    if not columns:
        return {}
    raw = _prepare(manifest, subjects, data, {}, with_target=True, identity=columns, share=share)
    stats = {}
    for c in columns:
        volumes, masks = [], []
        for s in raw:
            if c == data.target:
                volumes.append(s.target[0])  # type: ignore[index]
            else:
                volumes.append(s.inputs[s.input_names.index(c)])
            masks.append(s.mask)
        try:
            stats[c] = fit_cohort_zscore(volumes, masks).to_dict()
        except ValueError as err:
            raise InputError(manifest.source or manifest.root, f"column {c}: {err}",
                             "check the images of that column") from None
    return stats


def _prepare(manifest: Manifest, subjects: Iterable[str], data: DataConfig, cohort_stats: dict[str, dict[str, Any]],
             *, with_target: bool, identity: Sequence[str] = (), share: tuple[int, int] = (0, 1)
             ) -> list[PreparedSubject]:
    from neurotrans.data.cache import prepare_cohort

    normalisation = {**data.normalisation, **dict.fromkeys(identity, "none")}
    return prepare_cohort(select_sessions(manifest.subset(set(subjects)), data.sessions), list(data.inputs),
                          data.target if with_target else None,
                          grid=working_grid(data.voxel_size), normalisation=normalisation, mask=data.mask,
                          cache_dir=data.cache_dir, aux=data.aux, fitted=cohort_stats or None, share=share)


def select_sessions(manifest: Manifest, sessions: Sequence[str]) -> Manifest:
    """The rows of ``sessions`` only (``data.sessions``; empty keeps every row).

    References: thesis ch. 4.3.1: models trained and validated on baseline (t0) scans,
    then applied unchanged to the follow-up (t1) scans of the test subjects.
    """
    if not sessions:
        return manifest
    keep = manifest.table["session"].astype(str).isin({str(s) for s in sessions})
    return Manifest(manifest.table[keep].reset_index(drop=True), manifest.root, manifest.source)


def prepare(manifest: Manifest, subjects: Iterable[str], data: DataConfig, cohort_stats: dict[str, dict[str, Any]],
            *, with_target: bool = True, share: tuple[int, int] = (0, 1)) -> list[PreparedSubject]:
    """Prepared subjects of ``subjects`` (the sessions ``data.sessions`` names; all if none), in manifest order.

    With ``data.cache_dir`` they are memory-mapped from the on-disk cache (filled on first use;
    ``share``: see :func:`~neurotrans.data.cache.prepare_cohort`).
    """
    return _prepare(manifest, subjects, data, cohort_stats, with_target=with_target, share=share)


def prepare_unpaired(manifest: Manifest, subjects: Iterable[str], data: DataConfig, *, seed: int,
                     share: tuple[int, int] = (0, 1)) -> tuple[list[PreparedSubject], list[PreparedSubject], dict[str, dict[str, Any]]]:
    """Domains A and B of unpaired training (``data.pairing=unpaired``) from disjoint halves of ``subjects``.

    The subjects are split at random (:func:`~neurotrans.data.datasets.split_domains`, by
    subject id, so all sessions of a subject land in one domain). Domain A is prepared with
    ``data.inputs`` and no target; domain B with the target column as its only input (what
    :class:`~neurotrans.data.datasets.UnpairedDataset` reads), so no subject contributes
    images to both domains. ``zscore:cohort`` statistics are fitted on each domain's own
    subjects (inputs on A, target on B). ``share``: see :func:`~neurotrans.data.cache.prepare_cohort`.

    Returns:
        ``(domain_a, domain_b, cohort_stats)``.

    References: UNIT T1<->T2 (Welander et al. 2018; papers/004): the two domains from
    different subjects.
    """
    from neurotrans.data.cache import prepare_cohort
    from neurotrans.data.datasets import split_domains
    from neurotrans.data.normalize import fit_cohort_zscore

    ids_a, ids_b = split_domains(list(subjects), seed=seed)
    if not ids_a or not ids_b:
        raise InputError(manifest.source or manifest.root, "unpaired training needs at least two training subjects "
                         "(one per domain)", "use more subjects or a smaller test/validation share")
    grid = working_grid(data.voxel_size)

    def domain(ids: list[str], columns: list[str], normalisation: dict[str, str],
               fitted: dict[str, dict[str, Any]]) -> list[PreparedSubject]:
        return prepare_cohort(manifest.subset(set(ids)), columns, None, grid=grid, normalisation=normalisation,
                              mask=data.mask, cache_dir=data.cache_dir, fitted=fitted or None, share=share)

    stats: dict[str, dict[str, Any]] = {}
    cohort = cohort_columns(data)
    for ids, columns in ((ids_a, list(data.inputs)), (ids_b, [data.target])):
        todo = [c for c in columns if c in cohort]
        if todo:
            raw = domain(ids, todo, dict.fromkeys(todo, "none"), {})
            for k, c in enumerate(todo):
                stats[c] = fit_cohort_zscore([s.inputs[k] for s in raw], [s.mask for s in raw]).to_dict()
    a = domain(ids_a, list(data.inputs), dict(data.normalisation), stats)
    b = domain(ids_b, [data.target], dict(data.normalisation), stats)
    return a, b, stats


def planes_of(plane: str) -> list[str]:
    """The planes a model is trained on (``all`` = the three-plane model)."""
    from neurotrans.data.slicing import PLANES

    return list(PLANES) if plane == "all" else [plane]


def round_up(size: int, multiple: int) -> int:
    """``size`` rounded up to a multiple of ``multiple``."""
    return int(-(-int(size) // multiple) * multiple)


def sampling_of(data: DataConfig, shapes: Sequence[Sequence[int]], multiple: int) -> dict[str, Any]:
    """How samples are cut (``RunInfo.sampling``), checked against the network's size multiple.

    Args:
        data: the data config.
        shapes: spatial shapes of the training subjects' working grids.
        multiple: the method's size multiple.
    """
    if data.spatial_dims == 2:
        return {"kind": "slices", "planes": planes_of(data.plane), "context": data.context}
    if data.patch_size is not None:
        bad = [p for p in data.patch_size if p % multiple]
        if bad:
            raise InputError("data.patch_size", f"{list(data.patch_size)} is not a multiple of {multiple}, which "
                             "the network needs", f"use sizes divisible by {multiple} (e.g. 32 or 64)")
        return {"kind": "patches", "patch_size": list(data.patch_size), "overlap": data.patch_overlap}
    roi = [round_up(max(int(s[a]) for s in shapes), multiple) for a in range(3)]
    return {"kind": "volume", "roi_size": roi, "overlap": data.patch_overlap}


def _pad_2d(shapes: Sequence[Sequence[int]], plane: str, multiple: int) -> tuple[int, int]:
    from neurotrans.data.slicing import slice_shape

    hs, ws = zip(*(slice_shape(tuple(s), plane) for s in shapes), strict=True)
    return round_up(max(hs), multiple), round_up(max(ws), multiple)


def build_unpaired_datasets(domain_a: Sequence[PreparedSubject], domain_b: Sequence[PreparedSubject],
                            data: DataConfig, sampling: dict[str, Any], multiple: int, *, seed: int) -> list[Dataset]:
    """Training datasets of unpaired slices: one :class:`~neurotrans.data.datasets.UnpairedDataset` per plane."""
    from neurotrans.data.datasets import UnpairedDataset

    shapes = [s.shape for s in (*domain_a, *domain_b)]
    return [UnpairedDataset(domain_a, domain_b, plane=p, context=int(sampling["context"]),
                            pad_to=_pad_2d(shapes, p, multiple), skip_empty=data.skip_empty, seed=seed)
            for p in sampling["planes"]]


def augmentation(data: DataConfig) -> Any:
    """The random transform ``data.augment`` asks for, or ``None``."""
    if not data.augment:
        return None
    from neurotrans.data.augment import Compose, RandomFlipRotateScale, RandomIntensity

    names = set(data.augment)
    transforms: list[Any] = []
    if names & {"flip", "rot90", "scale"}:
        transforms.append(RandomFlipRotateScale(flip="flip" in names, rot90="rot90" in names, scale="scale" in names,
                                                p=data.augment_p, spatial_dims=data.spatial_dims))
    if names & {"gamma", "bias"}:
        transforms.append(RandomIntensity(gamma=0.3 if "gamma" in names else 0.0, bias=0.3 if "bias" in names else 0.0,
                                          p=data.augment_p, spatial_dims=data.spatial_dims))
    return transforms[0] if len(transforms) == 1 else Compose(tuple(transforms))


def build_datasets(subjects: Sequence[PreparedSubject], data: DataConfig, sampling: dict[str, Any], multiple: int,
                   *, seed: int, train: bool) -> list[Dataset]:
    """Training (``train=True``: augmented, random patches) or validation datasets.

    Returns one dataset per slice plane (slices of different planes never share a
    batch), or one dataset of patches / volumes.
    """
    from neurotrans.data.datasets import Augmented, PairedPatchDataset, PairedSliceDataset

    if not subjects:
        return []
    shapes = [s.shape for s in subjects]
    kind = sampling["kind"]
    if kind == "slices":
        sets: list[Dataset] = [
            PairedSliceDataset(subjects, plane=p, context=int(sampling["context"]), pad_to=_pad_2d(shapes, p, multiple),
                               skip_empty=data.skip_empty, covariates=data.covariates)
            for p in sampling["planes"]]
    elif kind == "patches":
        random_draws = train and data.samples_per_volume > 0
        sets = [PairedPatchDataset(subjects, patch_size=sampling["patch_size"],
                                   overlap=float(sampling["overlap"]) if train else 0.0,
                                   samples_per_volume=data.samples_per_volume if random_draws else None, seed=seed,
                                   covariates=data.covariates)]
    else:
        pad = [round_up(max(int(s[a]) for s in shapes), multiple) for a in range(3)]
        pad = [max(p, r) for p, r in zip(pad, sampling["roi_size"], strict=True)]
        sets = [PairedPatchDataset(subjects, patch_size=None, pad_to=pad, covariates=data.covariates)]
    transform = augmentation(data) if train else None
    if transform is not None:
        sets = [Augmented(ds, transform, seed=seed) for ds in sets]
    return sets
