"""Fixtures of the safety tests: the tiny cohort and trained run of safety_world.py, built once."""

from __future__ import annotations

import contextlib
import io

import pytest
from safety_world import World, tiny_config, write_cohort


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    import yaml

    from neurotrans.inference.predict import predict_command
    from neurotrans.metrics.evaluate import evaluate_command
    from neurotrans.report import build_report
    from neurotrans.training.run import train_from_config

    root = tmp_path_factory.mktemp("safety")
    (root / "cohort").mkdir()
    manifest = write_cohort(root / "cohort")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(manifest)))
    run = train_from_config(config, out=root / "run", device="cpu")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        predict_command(run / "checkpoints" / "last.pt", manifest=manifest, out=run / "predictions", device="cpu")
        evaluate_command(run / "predictions", manifest, "FDG", mask="brainmask")
        build_report(run)
    return World(root, manifest, run, config)
