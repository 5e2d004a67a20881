"""One MS scan read from a manifest row: PIB DVR, tissue masks and distance from CSF.

The phantom summary (:mod:`neurotrans.phantom.summary`) and the MS evaluation
(:mod:`neurotrans.metrics.evaluate_ms`) both read scans here, so a number in the cohort
summary and the same number in the evaluation are measured under the same rules:

- a mask voxel is in the mask when its value is > 0.5 (probability maps included);
- WM, NAWM and lesions are intersected with the brain mask when the manifest has one;
- controls need no lesion or NAWM image (no lesions; NAWM = WM), patients need both;
- distance from CSF is the Euclidean distance in mm to the nearest CSF voxel;
- the distance bins of the control reference are one voxel wide, at most 3 mm.

References:
    Wei, PhD thesis 2020, Sec. 3.3.5 and 4.2.5; Bodini et al., Ann. Neurol. 2016.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from neurotrans.analysis import myelin
from neurotrans.errors import InputError
from neurotrans.io.manifest import Manifest
from neurotrans.io.nifti import load_volume

CONTROL_GROUP = "HC"
MASK_THRESHOLD = 0.5
MS_MASKS = ("lesions", "NAWM", "WM", "CSF")
MAX_BIN_MM = 3.0  # coarser bins would mix cortex-near and deep WM, whose DVR differs
PARTICIPANT_COLUMNS = ("group", "EDSS", "age", "sex")


@dataclass(frozen=True)
class MSScan:
    """One scan of an MS cohort, on the PIB grid.

    Args:
        subject: subject id as in the manifest.
        session: session id.
        group: ``HC`` (control) or a patient group (``MS``).
        pib: real PIB DVR, shape ``(X, Y, Z)``.
        wm: boolean WM mask.
        nawm: boolean normal-appearing WM mask (= ``wm`` for a control without one).
        lesions: boolean lesion mask (empty for a control without one).
        distance: distance from CSF in mm, shape ``(X, Y, Z)``.
        voxel_size: voxel spacing in mm.
    """

    subject: str
    session: str
    group: str
    pib: np.ndarray
    wm: np.ndarray
    nawm: np.ndarray
    lesions: np.ndarray
    distance: np.ndarray
    voxel_size: tuple[float, float, float]

    @property
    def patient(self) -> bool:
        return self.group != CONTROL_GROUP

    @property
    def voxel_mm3(self) -> float:
        return float(np.prod(self.voxel_size))

    @property
    def wm_roi(self) -> np.ndarray:
        """Where the WM DVR is measured: NAWM of a patient, WM of a control."""
        return self.nawm if self.patient else self.wm


def participants(manifest: Manifest) -> pd.DataFrame:
    """One row per subject (index: subject id) with group, EDSS, age and sex.

    Taken from the manifest, and for the columns it lacks from ``participants.tsv`` beside it.

    Raises:
        InputError: no group column anywhere, or a participants.tsv without an id column.
    """
    table = manifest.table.copy()
    table["subject"] = table["subject"].astype(str)
    out = table.groupby("subject", sort=False).first()[[c for c in PARTICIPANT_COLUMNS if c in table.columns]]
    missing = [c for c in PARTICIPANT_COLUMNS if c not in out.columns]
    path = manifest.root / "participants.tsv"
    if missing and path.is_file():
        part = pd.read_csv(path, sep="\t", dtype=str)
        idcol = "subject" if "subject" in part.columns else "participant_id"
        if idcol not in part.columns:
            raise InputError(path, "has neither a subject nor a participant_id column", "add one")
        part = part.set_index(part[idcol].astype(str))
        for c in missing:
            if c in part.columns:
                out[c] = part[c].reindex(out.index)
    if "group" not in out.columns:
        raise InputError(manifest.source or manifest.root, "no group column (HC/MS) in the manifest or participants.tsv",
                         "add a group column: HC for controls, MS for patients")
    for c in ("EDSS", "age"):
        if c in out.columns:
            out[c] = pd.to_numeric(out[c], errors="coerce")
    return out


def _mask(manifest: Manifest, i: int, column: str, shape: tuple[int, ...], required: bool) -> np.ndarray | None:
    path = manifest.path(i, column) if column in manifest.table.columns else None
    if path is None:
        if required:
            raise InputError(manifest.source or manifest.root, f"row {manifest.key(i)} has no {column} image",
                             f"fill the {column} column of the manifest")
        return None
    data = load_volume(path).data
    if data.shape != shape:
        raise InputError(path, f"grid {data.shape} differs from the PIB image's {shape}",
                         "resample the mask onto the PIB grid")
    return data > MASK_THRESHOLD


def load_ms_scan(manifest: Manifest, i: int, group: str, target: str = "PIB") -> MSScan:
    """Read row ``i`` of an MS manifest under the rules of this module.

    Args:
        manifest: the cohort manifest (columns ``target``, WM, CSF; lesions and NAWM for patients;
            brainmask optional).
        i: row index.
        group: the subject's group (:func:`participants`); ``HC`` marks a control.
        target: the PIB DVR column.

    Raises:
        InputError: a missing image, a mask on another grid, or an empty CSF mask.
    """
    row = manifest.table.iloc[i]
    path = manifest.path(i, target)
    if path is None:
        raise InputError(manifest.source or manifest.root, f"row {manifest.key(i)} has no {target} image",
                         f"fill the {target} column of the manifest")
    pib = load_volume(path)
    patient = group != CONTROL_GROUP
    brain = _mask(manifest, i, "brainmask", pib.shape, required=False)
    wm = _mask(manifest, i, "WM", pib.shape, required=True)
    csf = _mask(manifest, i, "CSF", pib.shape, required=True)
    lesions = _mask(manifest, i, "lesions", pib.shape, required=patient)
    nawm = _mask(manifest, i, "NAWM", pib.shape, required=patient)
    lesions = np.zeros(pib.shape, bool) if lesions is None else lesions
    nawm = wm if nawm is None else nawm
    if brain is not None:
        wm, nawm, lesions = wm & brain, nawm & brain, lesions & brain
    if not csf.any():
        raise InputError(manifest.path(i, "CSF"), "CSF mask is empty: distances from CSF are undefined",
                         "check the CSF image (values > 0.5 mark CSF)")
    return MSScan(subject=str(row["subject"]), session=str(row["session"]), group=group, pib=pib.data,
                  wm=wm, nawm=nawm, lesions=lesions, distance=myelin.distance_from_csf(csf, pib.voxel_size),
                  voxel_size=pib.voxel_size)


def reference_bin_mm(voxel_size: tuple[float, ...]) -> float:
    """Width of the distance-from-CSF bins: one (isotropic-equivalent) voxel, at most 3 mm."""
    return float(min(np.cbrt(np.prod(voxel_size)), MAX_BIN_MM))


def control_reference(controls: list[MSScan], images: list[np.ndarray] | None = None,
                      bin_mm: float | None = None) -> myelin.ControlReference:
    """The controls' WM DVR per distance bin (:func:`neurotrans.analysis.myelin.control_reference`).

    Args:
        controls: the control scans.
        images: DVR images to tabulate instead of the scans' real PIB (e.g. synthetic PIB).
        bin_mm: bin width in mm; default :func:`reference_bin_mm` of the first control.
    """
    if not controls:
        raise ValueError("no healthy control: the demyelination threshold needs controls")
    images = [c.pib for c in controls] if images is None else images
    step = bin_mm if bin_mm is not None else reference_bin_mm(controls[0].voxel_size)
    return myelin.control_reference(images, [c.wm for c in controls], [c.distance for c in controls], step)


__all__ = ["CONTROL_GROUP", "MSScan", "control_reference", "load_ms_scan", "participants", "reference_bin_mm"]
