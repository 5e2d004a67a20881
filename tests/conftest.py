"""Shared test fixtures: small NIfTI files in tmp_path, the shared real data, fast torch."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock

# tests run on 2 CPU cores, often two workers at once: one thread each avoids oversubscription
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REALDATA = SHARED / "realdata"


@pytest.fixture(autouse=True)
def _torch_threads():
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    torch.set_num_threads(1)
    yield


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return torch.cuda.is_available()


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request: pytest.FixtureRequest) -> str:
    """Every device a training or prediction test must pass on: the CPU always, CUDA where torch sees a GPU.

    A CPU-only suite once hid a resume that crashed on every GPU; the ``cuda`` variants run
    wherever ``torch.cuda.is_available()`` and are skipped, with the reason, elsewhere
    (CI). ``pytest -m cuda`` runs only them.
    """
    if request.param == "cuda" and not _cuda_available():
        pytest.skip("needs a CUDA device (torch.cuda.is_available() is False here)")
    return request.param


@pytest.fixture
def realdata() -> Path:
    """The three real patients of ../shared/realdata; skips where the folder is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real scans not available at {REALDATA} (they live in the project's shared/ folder)")
    return REALDATA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


FDG_SUBJECTS = 12  # 5 CN, 4 MCI, 3 AD
MS_SUBJECTS = 12  # 8 MS, 4 HC


def _shared_cohort(tmp_path_factory: pytest.TempPathFactory, worker_id: str, cohort: str, n: int) -> Path:
    from neurotrans.phantom import simulate_cohort

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
    """A 12-subject simulated fdg cohort on the 3 mm grid (seed 0), shared by the session."""
    return _shared_cohort(tmp_path_factory, worker_id, "fdg", FDG_SUBJECTS)


@pytest.fixture(scope="session")
def ms_cohort(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A 12-subject ms cohort (8 patients with t0 and t1, 4 controls) on the 3 mm grid (seed 0)."""
    return _shared_cohort(tmp_path_factory, worker_id, "ms", MS_SUBJECTS)
