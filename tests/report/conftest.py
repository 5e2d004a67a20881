"""Fixtures: the fake run folder of fake_run.py, per test or built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_run import write_run


@pytest.fixture
def make_run(tmp_path: Path):
    """Factory: ``make_run(simulated=..., run_json=..., problems=..., run_simulated=...)`` -> run folder."""
    return lambda **kw: write_run(tmp_path, **kw)


@pytest.fixture(scope="session")
def built_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full fake run with its report built once per session (building takes a few seconds)."""
    from neurotrans.report import build_report

    run = write_run(tmp_path_factory.mktemp("built"))
    build_report(run)
    return run
