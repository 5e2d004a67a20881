"""Intensity normalisation: min-max, z-score, SUVR; invertible, with serialisable statistics.

Every normaliser is a small frozen dataclass holding the statistics it was fitted with,
so that predictions can be mapped back to the original units (``invert``) and the
statistics can travel inside a checkpoint (``to_dict`` / ``from_dict``).

A normalisation is named by a spec string ``"name[:option]"``:

- ``"minmax"``: (x - min) / (max - min) over all voxels, to [0, 1];
  ``"minmax:robust"`` uses the 0.5th and 99.5th percentiles (inside the mask if given),
  so a few hot voxels do not squash the range (values may then leave [0, 1]).
- ``"zscore"``: (x - mean) / std over all voxels of the sequence;
  ``"zscore:mask"`` computes mean and std inside the brain mask only;
  ``"zscore:cohort"``: one mean and std per sequence over the brain voxels of every
  training image (the MS thesis, ch. 2), fitted by :func:`fit_cohort_zscore` and applied
  unchanged to every subject, training or new.
- ``"suvr"`` / ``"suvr:pons"`` / ``"suvr:cerebellumPons"``: x / mean(x in the reference
  region), the region taken from clinica's masks resampled onto the image grid (so the
  image must be in MNI space).
- ``"none"``: identity.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from neurotrans.data.grid import Grid
from neurotrans.errors import InputError
from neurotrans.names import check_name

_EPS = 1e-8


@dataclass(frozen=True)
class Identity:
    """No intensity change (coordinates, already-normalised inputs)."""

    kind: ClassVar[str] = "none"

    @classmethod
    def fit(cls, data: np.ndarray, *, mask: np.ndarray | None = None, grid: Grid | None = None,
            option: str | None = None, where: str = "image") -> Identity:
        return cls()

    def apply(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float32)

    def invert(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Identity:
        return cls()


@dataclass(frozen=True)
class MinMax:
    """Map ``[lo, hi]`` to ``[0, 1]``: ``y = (x - lo) / (hi - lo)``.

    Args:
        lo: intensity mapped to 0 (original units).
        hi: intensity mapped to 1 (original units).

    References:
        pix2pix MRI->PET (Sikka et al.) and the ESIT paper scale images to [0, 1].
    """

    lo: float
    hi: float
    kind: ClassVar[str] = "minmax"

    @classmethod
    def fit(cls, data: np.ndarray, *, mask: np.ndarray | None = None, grid: Grid | None = None,
            option: str | None = None, where: str = "image") -> MinMax:
        """Fit on ``data`` (X, Y, Z); ``option="robust"`` uses the 0.5-99.5 percentiles."""
        if option not in (None, "robust"):
            raise ValueError(f"minmax option must be 'robust' or absent, got {option!r}")
        values = data[mask] if (option == "robust" and mask is not None and mask.any()) else data
        if option == "robust":
            lo, hi = np.percentile(values, [0.5, 99.5])
        else:
            lo, hi = float(values.min()), float(values.max())
        if hi - lo < _EPS:
            raise InputError(where, f"is constant ({lo:g}); min-max normalisation would divide by zero",
                             "check that the right file is in the manifest (a blank or all-zero image)")
        return cls(float(lo), float(hi))

    def apply(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float32) - self.lo) / (self.hi - self.lo)).astype(np.float32)

    def invert(self, y: np.ndarray) -> np.ndarray:
        return (np.asarray(y, dtype=np.float32) * (self.hi - self.lo) + self.lo).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MinMax:
        return cls(float(d["lo"]), float(d["hi"]))


@dataclass(frozen=True)
class ZScore:
    """``y = (x - mean) / std`` with statistics over all voxels (or inside the mask).

    References:
        Multiple-sclerosis thesis (ch. 2-4): each sequence z-scored before the 3D networks.
    """

    mean: float
    std: float
    kind: ClassVar[str] = "zscore"

    @classmethod
    def fit(cls, data: np.ndarray, *, mask: np.ndarray | None = None, grid: Grid | None = None,
            option: str | None = None, where: str = "image") -> ZScore:
        """Fit on ``data`` (X, Y, Z); ``option="mask"`` restricts the statistics to ``mask``."""
        if option == "cohort":
            raise InputError(where, "zscore:cohort statistics come from the whole training cohort, not one image",
                             "prepare subjects through neurotrans.data.pipeline (it fits them once) or pass "
                             "fitted statistics")
        if option not in (None, "mask"):
            raise ValueError(f"zscore option must be 'mask', 'cohort' or absent, got {option!r}")
        values = data
        if option == "mask":
            if mask is None or not mask.any():
                raise InputError(where, "z-score inside the mask was asked for but the mask is missing or empty",
                                 "give a non-empty brainmask column or use plain 'zscore'")
            values = data[mask]
        mean, std = float(values.mean(dtype=np.float64)), float(values.std(dtype=np.float64))
        if std < _EPS:
            raise InputError(where, "has zero variance; z-score normalisation would divide by zero",
                             "check that the right file is in the manifest (a blank or constant image)")
        return cls(mean, std)

    def apply(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float32) - self.mean) / self.std).astype(np.float32)

    def invert(self, y: np.ndarray) -> np.ndarray:
        return (np.asarray(y, dtype=np.float32) * self.std + self.mean).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ZScore:
        return cls(float(d["mean"]), float(d["std"]))


@dataclass(frozen=True)
class SUVR:
    """Standardised uptake value ratio: ``y = x / mean(x in the reference region)``.

    Args:
        reference: mean uptake in the reference region (original units).
        region: ``"pons"`` or ``"cerebellumPons"`` (clinica's eroded masks).

    References:
        clinica pet-linear (SUVR with pons / cerebellum+pons reference regions).
    """

    reference: float
    region: str = "pons"
    kind: ClassVar[str] = "suvr"

    @classmethod
    def fit(cls, data: np.ndarray, *, mask: np.ndarray | None = None, grid: Grid | None = None,
            option: str | None = None, where: str = "image") -> SUVR:
        """Fit on ``data`` (X, Y, Z) lying on ``grid`` (MNI space)."""
        from neurotrans.data.atlas import REFERENCE_REGIONS, reference_mask

        region = check_name(option or "pons", REFERENCE_REGIONS, "reference region")
        if grid is None:
            raise InputError(where, "SUVR needs the image grid to place the reference region",
                             "pass the working grid (images must be in MNI space)")
        ref = reference_mask(region, grid)
        if not ref.any():
            raise InputError(where, f"the {region} reference region falls outside the image grid",
                             "resample the PET to an MNI grid first (e.g. grid=mni_grid(1.5))")
        value = float(data[ref].mean(dtype=np.float64))
        if value <= _EPS:
            raise InputError(where, f"mean uptake in the {region} reference region is {value:g} (not positive)",
                             "check that the PET is in MNI space and not already normalised")
        return cls(value, region)

    def apply(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float32) / self.reference).astype(np.float32)

    def invert(self, y: np.ndarray) -> np.ndarray:
        return (np.asarray(y, dtype=np.float32) * self.reference).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "reference": self.reference, "region": self.region}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SUVR:
        return cls(float(d["reference"]), str(d.get("region", "pons")))


Normaliser = Identity | MinMax | ZScore | SUVR

NORMALISERS: dict[str, type[Identity] | type[MinMax] | type[ZScore] | type[SUVR]] = {
    "minmax": MinMax,
    "zscore": ZScore,
    "suvr": SUVR,
    "none": Identity,
}


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split ``"name[:option]"`` and check the name against :data:`NORMALISERS`."""
    name, _, option = spec.partition(":")
    check_name(name, tuple(NORMALISERS), "normalisation")
    return name, (option or None)


def fit_normaliser(spec: str, data: np.ndarray, *, mask: np.ndarray | None = None,
                   grid: Grid | None = None, where: str = "image") -> Normaliser:
    """Fit the normaliser named by ``spec`` (see the module docstring) on ``data``.

    Args:
        spec: e.g. ``"minmax"``, ``"zscore:mask"``, ``"suvr:cerebellumPons"``.
        data: the volume, shape ``(X, Y, Z)``, original units.
        mask: brain mask ``(X, Y, Z)`` bool, used by the masked/robust variants.
        grid: grid of ``data`` (needed by SUVR to place the reference region).
        where: file named in errors.
    """
    name, option = parse_spec(spec)
    return NORMALISERS[name].fit(data, mask=mask, grid=grid, option=option, where=where)


def normaliser_from_dict(d: dict[str, Any]) -> Normaliser:
    """Rebuild a normaliser from :meth:`to_dict` output (e.g. read from a checkpoint)."""
    kind = check_name(str(d.get("kind")), tuple(NORMALISERS), "normalisation")
    return NORMALISERS[kind].from_dict(d)


def fit_cohort_zscore(volumes: list[np.ndarray], masks: list[np.ndarray | None]) -> ZScore:
    """One mean and SD over the masked voxels of all ``volumes`` (pooled, not averaged per image).

    Args:
        volumes: the training images of one sequence, each ``(X, Y, Z)``, original units.
        masks: their brain masks (``None``: every voxel).

    References: Wei, PhD thesis 2020, ch. 2 (each sequence z-scored over the cohort).
    """
    total = total_sq = count = 0.0
    for vol, mask in zip(volumes, masks, strict=True):
        values = np.asarray(vol, dtype=np.float64)
        values = values[np.asarray(mask, dtype=bool)] if mask is not None else values.ravel()
        total += float(values.sum())
        total_sq += float(np.square(values).sum())
        count += values.size
    if count == 0:
        raise ValueError("no voxel to fit a cohort z-score on")
    mean = total / count
    std = float(np.sqrt(max(total_sq / count - mean * mean, 0.0)))
    if std < _EPS:
        raise ValueError("the cohort's images have zero variance; z-score would divide by zero")
    return ZScore(mean, std)


def default_normalisation(modality: str) -> str:
    """The papers' defaults: SUVR (pons) for FDG, DVR kept as it is for PIB, min-max for MRI.

    PIB DVR is already a ratio to a reference region (the thesis models DVR directly), so
    dividing it by the pons again would change its units.
    """
    if modality == "coords" or modality == "PIB":
        return "none"
    return "suvr:pons" if modality == "FDG" else "minmax"


def units_of(modality: str, spec: str) -> str:
    """Units of a target written back after ``spec``: ``SUVR``, ``DVR`` (PIB) or ``intensity``."""
    name, _ = parse_spec(spec)
    if name == "suvr":
        return "SUVR"
    return "DVR" if modality == "PIB" else "intensity"
