"""Tiny trained runs on the shared fdg cohort: the paper's U-Net and an ESIT, one step each."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

TINY = ["trainer.max_steps=1", "trainer.val_every=1", "trainer.checkpoint_every=1", "trainer.progress=false",
        "trainer.val_subjects_max=1"]
TINY_NETS = {"unet_paper_fdg": "model.generator_args={base: 2, depth: 4}",
             "esit_fdg": "model.generator_args={n_regions: 3, features: [4], tissue_features: [4]}"}


@pytest.fixture(scope="session")
def trained_runs(fdg_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"unet_paper_fdg": run, "esit_fdg": run}`` trained once per session (do not write into them)."""
    from neurotrans.training.run import train_from_config

    root = tmp_path_factory.mktemp("explain_runs")
    return {name: train_from_config(name, [f"data.manifest={fdg_cohort / 'manifest.tsv'}", args, *TINY],
                                    out=root / name)
            for name, args in TINY_NETS.items()}


@pytest.fixture
def run_copy(trained_runs: dict[str, Path], tmp_path: Path):
    """Factory: a private copy of a trained run (``run_copy("esit_fdg", "name")``), to explain into."""
    def copy(name: str, as_name: str | None = None) -> Path:
        return Path(shutil.copytree(trained_runs[name], tmp_path / (as_name or name)))

    return copy
