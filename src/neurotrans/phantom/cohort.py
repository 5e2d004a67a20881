"""Write a simulated cohort as a BIDS-like folder with participants.tsv and manifest.tsv."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from neurotrans import __version__
from neurotrans.errors import InputError
from neurotrans.io.atomic import write_text_atomic
from neurotrans.io.manifest import read_manifest, write_manifest
from neurotrans.io.nifti import save_volume
from neurotrans.names import COHORTS, IMAGE_COLUMNS, check_name
from neurotrans.phantom.anatomy import Template, load_template
from neurotrans.phantom.mri import STRUCTURAL
from neurotrans.phantom.subject import SimulatedSubject

DISCLAIMER = ("This is a simulation built on real anatomy (ICBM152 2009a templates, AAL2 atlas), "
              "not patient data: results on it do not replace validation on real scans.")
MASK_SUFFIX = {"brainmask": "desc-brain_mask", "GM": "label-GM_probseg", "WM": "label-WM_probseg",
               "CSF": "label-CSF_probseg", "lesions": "label-lesion_mask", "NAWM": "label-NAWM_mask"}
BINARY = ("brainmask", "lesions", "NAWM")
DERIVATIVES = Path("derivatives") / "phantom"


@dataclass(frozen=True)
class CohortResult:
    """Where a simulated cohort was written and how it was made.

    Args:
        cohort: ``fdg`` or ``ms``.
        out: the cohort folder.
        manifest: ``out/manifest.tsv`` (one row per subject and session).
        participants: ``out/participants.tsv`` (one row per subject, with the cohort's scores).
        n_subjects: number of subjects.
        n_images: number of NIfTI files written.
        voxel_size: grid spacing (mm).
        seed: the seed everything was drawn from.
    """

    cohort: str
    out: Path
    manifest: Path
    participants: Path
    n_subjects: int
    n_images: int
    voxel_size: float
    seed: int


def _image_path(subject: str, session: str, column: str) -> Path:
    """Relative path of an image column (BIDS-like; masks and latent maps in derivatives)."""
    if column in MASK_SUFFIX:
        return DERIVATIVES / subject / f"{subject}_{MASK_SUFFIX[column]}.nii.gz"
    if column.startswith("latent_"):
        name = column.removeprefix("latent_")
        return DERIVATIVES / subject / f"ses-{session}" / f"{subject}_ses-{session}_desc-{name}_map.nii.gz"
    kind = "pet" if column in ("FDG", "PIB") else "dwi" if column.startswith("DTI_") else "anat"
    return Path(subject) / f"ses-{session}" / kind / f"{subject}_ses-{session}_{column}.nii.gz"


def _check_out(out: Path, overwrite: bool) -> None:
    held = [n for n in ("manifest.tsv", "participants.tsv") if (out / n).exists()]
    if held and not overwrite:
        raise InputError(out, f"already holds a cohort ({', '.join(held)})",
                         "pass --overwrite (overwrite=True) to replace it, or choose another output folder")
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a folder", "choose a folder path for --out")
    if overwrite and (out / "manifest.tsv").exists():
        # remove the previous cohort's images (only files its manifest lists inside `out`)
        try:
            old = read_manifest(out / "manifest.tsv")
        except InputError:
            return
        root = out.resolve()
        for i, _ in old.rows():
            for column in old.table.columns:
                if column in IMAGE_COLUMNS or str(column).startswith("latent_"):
                    p = old.path(i, column)
                    if p is not None and p.is_file() and root in p.resolve().parents:
                        p.unlink()


def _subject_builder(cohort: str, tpl: Template, rng: np.random.Generator, n: int,
                     mri_contrasts: tuple[str, ...]) -> Callable[[np.random.Generator, int], SimulatedSubject]:
    if cohort == "fdg":
        from neurotrans.phantom.fdg import assign_groups, simulate_fdg_subject

        groups = assign_groups(rng, n)
        return lambda r, i: simulate_fdg_subject(r, tpl, groups[i], mri_contrasts)
    from neurotrans.phantom.ms import assign_groups as ms_groups
    from neurotrans.phantom.ms import simulate_ms_subject

    groups = ms_groups(rng, n)
    return lambda r, i: simulate_ms_subject(r, tpl, groups[i])


def simulate_cohort(
    cohort: str,
    out: Path,
    *,
    n_subjects: int = 40,
    voxel_size: float = 1.5,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    mri_contrasts: tuple[str, ...] | None = None,
) -> CohortResult:
    """Simulate cohort ``fdg`` or ``ms`` on real anatomy and write it to ``out``.

    Args:
        cohort: ``fdg`` (CN/MCI/AD, T1w + FDG SUVR) or ``ms`` (MS/HC, multi-sequence MRI + PIB DVR,
            sessions t0 and t1 for patients).
        out: output folder (created); an existing cohort there needs ``overwrite=True``.
        n_subjects: number of subjects.
        voxel_size: grid spacing in mm (1.5 -> 121x145x121, 3 -> 61x73x61).
        seed: the same seed gives byte-identical files.
        overwrite: replace a cohort already in ``out``.
        progress: show a progress bar over subjects.
        mri_contrasts: fdg only: extra structural contrasts among ``T2w PDw FLAIR DIR T1SE``
            (ms always writes all of them).

    Returns:
        a :class:`CohortResult` (paths of the manifest and participants table).

    References:
        PHANTOM.md; thesis ch. 4 (ms cohort, t0/t1 design, EDSS).
    """
    check_name(cohort, COHORTS, "cohort")
    if int(n_subjects) < 1:
        raise InputError("--subjects", f"asks for {n_subjects} subjects", "simulate at least 1 subject")
    if cohort == "ms" and int(n_subjects) < 2:
        raise InputError("--subjects", "the ms cohort needs patients and controls",
                         "simulate at least 2 subjects")
    contrasts = tuple(check_name(c, STRUCTURAL, "MRI contrast") for c in (mri_contrasts or ()))
    out = Path(out)
    _check_out(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    tpl = load_template(float(voxel_size))

    cohort_seq, *subject_seqs = np.random.SeedSequence(int(seed)).spawn(int(n_subjects) + 1)
    build = _subject_builder(cohort, tpl, np.random.default_rng(cohort_seq), int(n_subjects), contrasts)
    participants: list[dict] = []
    rows: list[dict] = []
    n_images = 0
    from tqdm import tqdm

    for i in tqdm(range(int(n_subjects)), desc=f"simulate {cohort}", unit="subject", disable=not progress):
        subject = f"sub-{i + 1:03d}"
        sim = build(np.random.default_rng(subject_seqs[i]), i)
        participants.append({"subject": subject, **sim.participant})
        mask_paths = {}
        for column, data in sim.masks.items():
            rel = _image_path(subject, "", column)
            _save(out / rel, data, tpl, column, overwrite)
            mask_paths[column] = rel.as_posix()
            n_images += 1
        for sess in sim.sessions:
            row = {"subject": subject, "session": sess.session, "age": sess.age,
                   "sex": sim.participant["sex"], "group": sim.participant["group"], **sess.covariates}
            for column, data in sess.images.items():
                rel = _image_path(subject, sess.session, column)
                _save(out / rel, data, tpl, column, overwrite)
                row[column] = rel.as_posix()
                n_images += 1
            row.update(mask_paths)
            rows.append(row)

    table = pd.DataFrame(rows)
    images = [c for c in IMAGE_COLUMNS if c in table.columns]
    latent = [c for c in table.columns if str(c).startswith("latent_")]
    first = [c for c in table.columns if c not in images and c not in latent]
    table = table[first + images + latent]
    write_text_atomic(out / "dataset_description.json", _description(cohort, seed, voxel_size, n_subjects))
    participants_path = out / "participants.tsv"
    write_text_atomic(participants_path, pd.DataFrame(participants).to_csv(sep="\t", index=False,
                                                                            lineterminator="\n"))
    manifest_path = write_manifest(table, out / "manifest.tsv")
    return CohortResult(cohort, out, manifest_path, participants_path, int(n_subjects), n_images,
                        float(voxel_size), int(seed))


def _save(path: Path, data: np.ndarray, tpl: Template, column: str, overwrite: bool) -> None:
    dtype = np.uint8 if column in BINARY else np.float32
    path.parent.mkdir(parents=True, exist_ok=True)
    save_volume(path, data, tpl.grid.affine, overwrite=overwrite, dtype=dtype)


def _description(cohort: str, seed: int, voxel_size: float, n_subjects: int) -> str:
    desc = {
        "Name": f"neurotrans simulated cohort '{cohort}'",
        "BIDSVersion": "1.9.0",
        "DatasetType": "raw",
        "Simulated": True,
        "Description": DISCLAIMER,
        "GeneratedBy": [{"Name": "neurotrans.phantom", "Version": __version__}],
        "cohort": cohort,
        "seed": int(seed),
        "voxel_size": float(voxel_size),
        "n_subjects": int(n_subjects),
    }
    return json.dumps(desc, indent=2) + "\n"
