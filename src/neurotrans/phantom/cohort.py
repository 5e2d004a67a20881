"""Write a simulated cohort as a BIDS-like folder with participants.tsv and manifest.tsv."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from neurotrans import __version__
from neurotrans.errors import InputError
from neurotrans.io.atomic import write_text_atomic
from neurotrans.io.manifest import read_manifest, write_manifest
from neurotrans.io.nifti import save_volume
from neurotrans.io.outputs import check_output_folder
from neurotrans.names import COHORTS, IMAGE_COLUMNS, check_name
from neurotrans.phantom.anatomy import Template, load_template
from neurotrans.phantom.mri import STRUCTURAL

DISCLAIMER = ("This is a simulation built on real anatomy (ICBM152 2009a templates, AAL2 atlas), "
              "not patient data: results on it do not replace validation on real scans.")
MASK_SUFFIX = {"brainmask": "desc-brain_mask", "GM": "label-GM_probseg", "WM": "label-WM_probseg",
               "CSF": "label-CSF_probseg", "lesions": "label-lesion_mask", "NAWM": "label-NAWM_mask",
               "GM_true": "label-GM_desc-truth_probseg", "WM_true": "label-WM_desc-truth_probseg",
               "CSF_true": "label-CSF_desc-truth_probseg"}
BINARY = ("brainmask", "lesions", "NAWM")
DERIVATIVES = Path("derivatives") / "phantom"
VOXEL_RANGE_MM = (0.5, 10.0)  # finer grids exceed memory (0.5 mm: 361x433x361), coarser ones hold no anatomy


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
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a folder", "choose a folder path for --out")
    held = [n for n in ("manifest.tsv", "participants.tsv") if (out / n).exists()]
    if held and not overwrite:
        raise InputError(out, f"already holds a cohort ({', '.join(held)})",
                         "pass --overwrite (overwrite=True) to replace it, or choose another output folder")
    check_output_folder(out)
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


@dataclass(frozen=True)
class _Job:
    """One subject to simulate and write (picklable, so that worker processes can run it)."""

    cohort: str
    voxel_size: float
    index: int
    group: str
    contrasts: tuple[str, ...]
    seed: np.random.SeedSequence
    out: Path
    overwrite: bool


def _prepare(cohort: str, voxel_size: float, rng: np.random.Generator, n: int) -> list[str]:
    """Fill the per-grid caches (before worker processes fork) and draw the groups."""
    load_template(voxel_size)
    if cohort == "fdg":
        from neurotrans.phantom.fdg import _cohort_maps, assign_groups

        _cohort_maps(voxel_size)
    else:
        from neurotrans.phantom.lesions import _lesion_sites
        from neurotrans.phantom.ms import assign_groups

        _lesion_sites(voxel_size)
    return assign_groups(rng, n)


def _run_job(job: _Job) -> tuple[dict, list[dict], int] | tuple[str, str, str]:
    """Simulate one subject and write its images; returns its participant row, manifest rows, file count.

    An :class:`InputError` (a file that would be overwritten) comes back as ``(where, problem, fix)``:
    its three-argument constructor does not survive the trip between processes.
    """
    try:
        return _simulate_and_write(job)
    except InputError as err:
        return err.where, err.problem, err.fix


def _simulate_and_write(job: _Job) -> tuple[dict, list[dict], int]:
    tpl = load_template(job.voxel_size)
    rng = np.random.default_rng(job.seed)
    if job.cohort == "fdg":
        from neurotrans.phantom.fdg import simulate_fdg_subject

        sim = simulate_fdg_subject(rng, tpl, job.group, job.contrasts)
    else:
        from neurotrans.phantom.ms import simulate_ms_subject

        sim = simulate_ms_subject(rng, tpl, job.group)
    subject = f"sub-{job.index + 1:03d}"
    n_images = 0
    mask_paths = {}
    for column, data in sim.masks.items():
        rel = _image_path(subject, "", column)
        _save(job.out / rel, data, tpl, column, job.overwrite)
        mask_paths[column] = rel.as_posix()
        n_images += 1
    rows = []
    for sess in sim.sessions:
        row = {"subject": subject, "session": sess.session, "age": sess.age,
               "sex": sim.participant["sex"], "group": sim.participant["group"], **sess.covariates}
        for column, data in sess.images.items():
            rel = _image_path(subject, sess.session, column)
            _save(job.out / rel, data, tpl, column, job.overwrite)
            row[column] = rel.as_posix()
            n_images += 1
        row.update(mask_paths)
        rows.append(row)
    return {"subject": subject, **sim.participant}, rows, n_images


def _worker_init(parent: int) -> None:
    """Set up a worker: Ctrl-C is the parent's to handle, and the worker ends when the parent is gone.

    A parent killed by SIGTERM or SIGKILL runs no clean-up, and a worker waiting for its
    next job would wait forever, writing what it had started: a watchdog thread ends the
    worker as soon as it has been orphaned (its temp files are swept by the next write).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, name="orphan-watchdog", daemon=True).start()


def _default_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (macOS, Windows)
        cores = os.cpu_count() or 1
    return max(1, min(2, cores))


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
    workers: int | None = None,
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
        workers: processes simulating subjects in parallel (default: up to 2, the cores available);
            the files do not depend on it.

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
    if not (isinstance(voxel_size, (int, float)) and math.isfinite(voxel_size)
            and VOXEL_RANGE_MM[0] <= voxel_size <= VOXEL_RANGE_MM[1]):
        raise InputError(f"--voxel-size {voxel_size}", f"is outside {VOXEL_RANGE_MM[0]}-{VOXEL_RANGE_MM[1]} mm",
                         "use 1.5 (the papers' grid) or 3 (fast)")
    if int(seed) < 0:
        raise InputError(f"--seed {seed}", "is negative", "use a seed >= 0")
    contrasts = tuple(check_name(c, STRUCTURAL, "MRI contrast") for c in (mri_contrasts or ()))
    out = Path(out)
    _check_out(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    cohort_seq, *subject_seqs = np.random.SeedSequence(int(seed)).spawn(int(n_subjects) + 1)
    groups = _prepare(cohort, float(voxel_size), np.random.default_rng(cohort_seq), int(n_subjects))
    jobs = [_Job(cohort, float(voxel_size), i, groups[i], contrasts, subject_seqs[i], out, overwrite)
            for i in range(int(n_subjects))]
    n_workers = min(int(workers or _default_workers()), len(jobs))
    from tqdm import tqdm

    bar = {"desc": f"simulate {cohort}", "unit": "subject", "total": len(jobs), "disable": not progress}
    if n_workers <= 1:
        results = [_run_job(job) for job in tqdm(jobs, **bar)]
    else:
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        # leaving the block for any reason (Ctrl-C, an error) terminates the workers; a parent
        # that is killed outright leaves them to their watchdog (_worker_init)
        with ctx.Pool(n_workers, initializer=_worker_init, initargs=(os.getpid(),)) as pool:
            results = list(tqdm(pool.imap(_run_job, jobs), **bar))
    for r in results:
        if isinstance(r[0], str):
            raise InputError(*r)
    participants = [r[0] for r in results]
    rows = [row for r in results for row in r[1]]
    n_images = sum(r[2] for r in results)

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
