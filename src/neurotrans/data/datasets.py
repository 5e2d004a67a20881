"""torch Datasets over prepared subjects: paired slices, paired patches/volumes, unpaired domains.

Items are dicts of float32 tensors plus identifiers, so every method and the trainer
batch them with the default collate:

- slices: ``{"input": (C*(2k+1), H, W), "target": (1, H, W), "mask": (1, H, W), "key", "plane", "index"}``
- patches: ``{"input": (C, D, H, W), "target": (1, D, H, W), "mask": (1, D, H, W), "key", "start"}``
  (whole volumes: ``patch_size=None``, padded to a common size)

plus, when the subjects carry them, ``"aux"`` (K extra masks cut like the mask) and,
when ``covariates`` are named, ``"covariates"`` (a float vector per item).
- unpaired: ``{"a": (Ca*(2k+1), H, W), "b": (Cb*(2k+1), H, W), "mask_a", "mask_b", "key_a", "key_b", "plane", "index"}``

Subjects are :class:`~neurotrans.data.preprocess.PreparedSubject` objects, in memory or
memory-mapped from :mod:`neurotrans.data.cache` (slices are read lazily either way).

References:
    pix2pix MRI->PET (axial and three-plane slices), CF-SAGAN (64^3 patches, 50 % overlap),
    UNIT T1<->T2 (unpaired domains from different subjects).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from neurotrans.data.patches import patch_starts
from neurotrans.data.preprocess import PreparedSubject
from neurotrans.data.slicing import PLANES, get_slice, plane_axis, slice_shape
from neurotrans.errors import InputError
from neurotrans.names import check_name

Item = dict[str, Any]


def _planes(plane: str) -> tuple[str, ...]:
    if plane == "all":
        return PLANES
    return (check_name(plane, (*PLANES, "all"), "plane"),)


def _mask_volume(subject: PreparedSubject) -> np.ndarray:
    if subject.mask is not None:
        return np.asarray(subject.mask)[None]
    return np.ones((1, *subject.shape), dtype=bool)


def _common_pad(subjects: Sequence[PreparedSubject], planes: tuple[str, ...],
                pad_to: tuple[int, int] | None) -> tuple[int, int] | None:
    """Size every slice is padded to: ``pad_to``, or the largest slice when shapes differ."""
    sizes = {slice_shape(s.shape, p) for s in subjects for p in planes}
    if pad_to is not None:
        too_big = [hw for hw in sizes if hw[0] > pad_to[0] or hw[1] > pad_to[1]]
        if too_big:
            raise ValueError(f"pad_to {tuple(pad_to)} is smaller than slices of size {max(too_big)}")
        return tuple(pad_to)  # type: ignore[return-value]
    if len(sizes) <= 1:
        return None
    # planes/subjects of different sizes must still batch together
    return max(h for h, _ in sizes), max(w for _, w in sizes)


def _slice_index(subjects: Sequence[PreparedSubject], planes: tuple[str, ...],
                 skip_empty: bool) -> list[tuple[int, str, int]]:
    index = []
    for s_i, subject in enumerate(subjects):
        mask = _mask_volume(subject)[0]
        for plane in planes:
            axis = plane_axis(plane)
            if skip_empty:
                other = tuple(a for a in range(3) if a != axis)
                keep = np.flatnonzero(np.asarray(mask).any(axis=other))
            else:
                keep = np.arange(subject.shape[axis])
            index.extend((s_i, plane, int(k)) for k in keep)
    return index


def covariate_vector(subject: PreparedSubject, names: Sequence[str]) -> torch.Tensor:
    """The named covariates of a subject as float32 (``sex``: M = 1, F = 0).

    Raises:
        InputError: a covariate is missing or not numeric.
    """
    values = []
    for name in names:
        raw = subject.covariates.get(name)
        if name == "sex" and isinstance(raw, str):
            raw = {"m": 1.0, "male": 1.0, "f": 0.0, "female": 0.0}.get(raw.strip().lower(), raw)
        try:
            value = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            value = float("nan")
        if not np.isfinite(value):
            raise InputError(subject.key, f"covariate {name!r} is {raw!r}, not a number",
                             f"fill the {name} column of the manifest for every subject")
        values.append(value)
    return torch.tensor(values, dtype=torch.float32)


def _extras(subject: PreparedSubject, covariates: Sequence[str], cut: Callable[[np.ndarray], np.ndarray]) -> Item:
    extra: Item = {}
    if subject.aux is not None:
        extra["aux"] = torch.from_numpy(np.ascontiguousarray(cut(subject.aux), dtype=np.float32))
    if covariates:
        extra["covariates"] = covariate_vector(subject, covariates)
    return extra


def _with_targets(subjects: Sequence[PreparedSubject]) -> list[PreparedSubject]:
    """The subjects as a list; paired training needs every one to have a target."""
    missing = [s.key for s in subjects if s.target is None]
    if missing:
        raise InputError(missing[0], "has no target image for paired training",
                         "prepare the subjects with a target column")
    return list(subjects)


class PairedSliceDataset(Dataset):
    """2D (or 2.5D) slices of inputs and target, from one plane or all three.

    Args:
        subjects: prepared subjects with a target.
        plane: ``"axial"``, ``"coronal"``, ``"sagittal"`` or ``"all"`` (three-plane training).
        context: 2.5D context ``k`` (neighbouring slices stacked as input channels).
        pad_to: ``(H, W)`` common slice size; by default slices are padded to the largest
            one only when planes or subjects differ in size.
        skip_empty: drop slices with no brain-mask voxel.
        transform: optional deterministic-or-random callable ``item -> item``.
        covariates: manifest covariates returned as ``item["covariates"]``.
    """

    def __init__(self, subjects: Sequence[PreparedSubject], plane: str = "axial", context: int = 0,
                 pad_to: tuple[int, int] | None = None, skip_empty: bool = True,
                 transform: Callable[[Item], Item] | None = None, covariates: Sequence[str] = ()) -> None:
        self.subjects = _with_targets(subjects)
        self.covariates = tuple(covariates)
        self.planes = _planes(plane)
        self.context = int(context)
        self.pad_to = _common_pad(self.subjects, self.planes, pad_to)
        self.transform = transform
        self.index = _slice_index(self.subjects, self.planes, skip_empty)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> Item:
        s_i, plane, k = self.index[i]
        subject = self.subjects[s_i]
        item = {
            "input": torch.from_numpy(get_slice(subject.inputs, plane, k, context=self.context, pad_to=self.pad_to)),
            "target": torch.from_numpy(get_slice(subject.target, plane, k, pad_to=self.pad_to)),  # type: ignore[arg-type]
            "mask": torch.from_numpy(get_slice(_mask_volume(subject), plane, k, pad_to=self.pad_to)),
            "key": subject.key, "plane": plane, "index": k,
            **_extras(subject, self.covariates, lambda v: get_slice(v, plane, k, pad_to=self.pad_to)),
        }
        return self.transform(item) if self.transform else item


class PairedPatchDataset(Dataset):
    """3D patches (a regular overlapping grid or random draws) or whole volumes.

    Args:
        subjects: prepared subjects with a target.
        patch_size: ``(D, H, W)`` voxels, or ``None`` for whole volumes.
        overlap: fraction of overlap between grid patches (grid mode).
        samples_per_volume: draw this many random patches per subject instead of the grid;
            centres are drawn among brain-mask voxels. Draws depend on ``seed``, the item
            index and :meth:`set_epoch`, so a run is reproducible.
        seed: random seed of the draws.
        transform: optional callable ``item -> item``.
        pad_to: whole volumes (``patch_size=None``): zero-pad every volume at the far end
            to this size (a common size, a multiple of the network's), else keep each
            volume's own shape.
        covariates: manifest covariates returned as ``item["covariates"]``.
    """

    def __init__(self, subjects: Sequence[PreparedSubject], patch_size: Sequence[int] | None = (64, 64, 64),
                 overlap: float = 0.5, samples_per_volume: int | None = None, seed: int = 0,
                 transform: Callable[[Item], Item] | None = None, pad_to: Sequence[int] | None = None,
                 covariates: Sequence[str] = ()) -> None:
        self.subjects = _with_targets(subjects)
        self.covariates = tuple(covariates)
        self.pad_to = tuple(int(p) for p in pad_to) if pad_to is not None else None
        if self.pad_to is not None:
            too_big = [s.shape for s in self.subjects if any(a > b for a, b in zip(s.shape, self.pad_to, strict=True))]
            if too_big:
                raise ValueError(f"pad_to {self.pad_to} is smaller than volumes of shape {too_big[0]}")
        self.patch_size = tuple(int(p) for p in patch_size) if patch_size is not None else None
        self.samples_per_volume = samples_per_volume
        self.seed, self.epoch = seed, 0
        self.transform = transform
        self._centres: dict[int, np.ndarray] = {}
        if self.patch_size is None:
            self.index: list[tuple[int, tuple[int, ...] | None]] = [(s, None) for s in range(len(self.subjects))]
        elif samples_per_volume is not None:
            self.index = [(s, None) for s in range(len(self.subjects)) for _ in range(samples_per_volume)]
        else:
            self.index = [(s, st) for s, subj in enumerate(self.subjects)
                          for st in patch_starts(subj.shape, self.patch_size, overlap)]

    def set_epoch(self, epoch: int) -> None:
        """Change the random draws (call once per epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.index)

    def _random_start(self, i: int, s_i: int) -> tuple[int, ...]:
        subject = self.subjects[s_i]
        rng = np.random.default_rng((self.seed, self.epoch, i))
        size = np.array(self.patch_size)
        shape = np.array(subject.shape)
        if subject.mask is not None:
            # a random brain voxel as centre keeps patches off the empty background
            if s_i not in self._centres:
                self._centres[s_i] = np.flatnonzero(np.asarray(subject.mask)[:: 2, :: 2, :: 2])
            flat = self._centres[s_i]
            centre = np.array(np.unravel_index(rng.choice(flat), tuple(-(-shape // 2)))) * 2
        else:
            centre = rng.integers(0, shape)
        return tuple(int(v) for v in np.clip(centre - size // 2, 0, np.maximum(shape - size, 0)))

    def __getitem__(self, i: int) -> Item:
        s_i, start = self.index[i]
        subject = self.subjects[s_i]
        if self.patch_size is None:
            region: tuple[slice, ...] = (slice(None),) * 3
            start = (0, 0, 0)
        else:
            if start is None:
                start = self._random_start(i, s_i)
            region = tuple(slice(a, a + p) for a, p in zip(start, self.patch_size, strict=True))

        size = self.patch_size or self.pad_to

        def cut(vol: np.ndarray) -> np.ndarray:
            arr = np.asarray(vol[(slice(None), *region)], dtype=np.float32)
            if size is not None and arr.shape[1:] != size:
                pad = [(0, 0)] + [(0, p - s) for p, s in zip(size, arr.shape[1:], strict=True)]
                arr = np.pad(arr, pad)
            return np.ascontiguousarray(arr)

        item = {"input": torch.from_numpy(cut(subject.inputs)),
                "target": torch.from_numpy(cut(subject.target)),  # type: ignore[arg-type]
                "mask": torch.from_numpy(cut(_mask_volume(subject))), "key": subject.key,
                "start": torch.tensor(start), **_extras(subject, self.covariates, cut)}
        return self.transform(item) if self.transform else item


class Augmented(Dataset):
    """A dataset whose items pass through a random transform seeded by (seed, epoch, index).

    The draws do not depend on which DataLoader worker loads an item nor on what was
    loaded before, so a resumed run sees the same augmented items as an uninterrupted one.

    Args:
        dataset: the wrapped dataset (its ``set_epoch`` is forwarded when it has one).
        transform: ``transform(item, generator) -> item`` (``neurotrans.data.augment``).
        seed: the run's seed.
    """

    def __init__(self, dataset: Dataset, transform: Callable[[Item, torch.Generator], Item], seed: int = 0) -> None:
        self.dataset, self.transform, self.seed, self.epoch = dataset, transform, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Item:
        generator = torch.Generator().manual_seed(((self.seed * 1_000_003 + self.epoch) * 10_000_019 + int(i)) % 2**63)
        return self.transform(self.dataset[i], generator)


class UnpairedDataset(Dataset):
    """Slices from two domains drawn from disjoint subjects (unpaired translation).

    Domain A yields each A subject's ``inputs``; domain B yields each B subject's ``inputs``
    too (prepare B subjects with the B modality as input). Item ``i`` pairs A slice
    ``i mod len(A)`` with a B slice drawn at random (seeded by ``seed``, epoch and ``i``).

    Args:
        domain_a: subjects of domain A (e.g. prepared with inputs ``["T1w"]``).
        domain_b: subjects of domain B (e.g. prepared with inputs ``["T2w"]``); no subject
            may appear in both.
        plane, context, pad_to, skip_empty: as in :class:`PairedSliceDataset`.
        seed: seed of the B draws.
    """

    def __init__(self, domain_a: Sequence[PreparedSubject], domain_b: Sequence[PreparedSubject],
                 plane: str = "axial", context: int = 0, pad_to: tuple[int, int] | None = None,
                 skip_empty: bool = True, seed: int = 0) -> None:
        self.a, self.b = list(domain_a), list(domain_b)
        if not self.a or not self.b:
            raise ValueError("both domains need at least one subject")
        shared = sorted({s.subject for s in self.a} & {s.subject for s in self.b})
        if shared:
            raise InputError(", ".join(shared[:5]), "subject(s) appear in both domains of an unpaired dataset",
                             "draw the two domains from disjoint subjects (e.g. split_domains)")
        self.planes = _planes(plane)
        self.context = int(context)
        self.pad_to = _common_pad(self.a + self.b, self.planes, pad_to)
        self.index_a = _slice_index(self.a, self.planes, skip_empty)
        self.index_b = _slice_index(self.b, self.planes, skip_empty)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return max(len(self.index_a), len(self.index_b))

    def _get(self, subjects: list[PreparedSubject], entry: tuple[int, str, int]) -> tuple[torch.Tensor, ...]:
        s_i, plane, k = entry
        s = subjects[s_i]
        image = get_slice(s.inputs, plane, k, context=self.context, pad_to=self.pad_to)
        mask = get_slice(_mask_volume(s), plane, k, pad_to=self.pad_to)
        return torch.from_numpy(image), torch.from_numpy(mask)

    def __getitem__(self, i: int) -> Item:
        entry_a = self.index_a[i % len(self.index_a)]
        j = int(np.random.default_rng((self.seed, self.epoch, i)).integers(len(self.index_b)))
        entry_b = self.index_b[j]
        a, mask_a = self._get(self.a, entry_a)
        b, mask_b = self._get(self.b, entry_b)
        return {"a": a, "b": b, "mask_a": mask_a, "mask_b": mask_b, "key_a": self.a[entry_a[0]].key,
                "key_b": self.b[entry_b[0]].key, "plane": entry_a[1], "index": entry_a[2]}


def split_domains(subjects: Sequence[str], seed: int = 0) -> tuple[list[str], list[str]]:
    """Split subject ids into two disjoint halves (domain A, domain B) at random."""
    ids = sorted(set(subjects))
    perm = np.random.default_rng(seed).permutation(len(ids))
    half = len(ids) // 2
    return [ids[j] for j in sorted(perm[:half])], [ids[j] for j in sorted(perm[half:])]
