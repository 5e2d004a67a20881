"""Cohorts simulated once per test session on the 3 mm grid (shared by xdist workers)."""

from __future__ import annotations

from pathlib import Path

import pytest
from filelock import FileLock

from neurotrans.phantom import simulate_cohort

FDG_SUBJECTS = 12  # 5 CN, 4 MCI, 3 AD
MS_SUBJECTS = 12  # 8 MS, 4 HC


def _shared_cohort(tmp_path_factory: pytest.TempPathFactory, worker_id: str, cohort: str, n: int) -> Path:
    # with pytest-xdist every worker has its own basetemp; their parent is shared, so the
    # (slow) cohort is simulated by whichever worker gets there first and reused by the other
    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        root = root.parent
    out = root / f"phantom_{cohort}_{n}"
    with FileLock(str(out) + ".lock"):
        if not (out / "manifest.tsv").exists():
            simulate_cohort(cohort, out, n_subjects=n, voxel_size=3.0, seed=0, progress=False)
    return out


@pytest.fixture(scope="session")
def fdg_cohort(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A 12-subject fdg cohort on the 3 mm grid (seed 0)."""
    return _shared_cohort(tmp_path_factory, worker_id, "fdg", FDG_SUBJECTS)


@pytest.fixture(scope="session")
def ms_cohort(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A 12-subject ms cohort (8 patients with t0 and t1, 4 controls) on the 3 mm grid (seed 0)."""
    return _shared_cohort(tmp_path_factory, worker_id, "ms", MS_SUBJECTS)
