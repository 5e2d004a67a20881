"""Shared test fixtures: small NIfTI files in tmp_path, the shared real data, fast torch."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

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


@pytest.fixture
def realdata() -> Path:
    """The three real patients of ../shared/realdata; skips where the folder is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real scans not available at {REALDATA} (they live in the project's shared/ folder)")
    return REALDATA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
