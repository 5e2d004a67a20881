"""A RunInfo for tests that fabricate a run folder (written with RunFolder.write_info, as the trainer does)."""

from __future__ import annotations

from pathlib import Path

from neurotrans import __version__
from neurotrans.io.run import RunFolder, RunInfo


def fake_run_info(*, method: str = "pix2pix", target: str = "FDG", inputs: tuple[str, ...] = ("T1w",),
                  train: list[str] = (), val: list[str] = (), test: list[str] = (), manifest: str | Path = "",
                  simulated: bool = False) -> RunInfo:
    """The fields evaluation and report read; the rest hold plausible placeholder values."""
    return RunInfo(version=__version__, config={}, method=method, inputs=tuple(inputs), input_channels=tuple(inputs),
                   target=target, units="SUVR" if target == "FDG" else "DVR" if target == "PIB" else "intensity",
                   mask="brainmask", target_stats=(), cohort_stats={}, grid=None, spatial_dims=2,
                   sampling={"kind": "slices", "planes": ["axial"], "context": 0}, in_channels=len(inputs),
                   size_multiple=1, split={"train": list(train), "val": list(val), "test": list(test)},
                   manifest=str(manifest), simulated=simulated)


def write_run_json(run_dir: Path, **kw) -> Path:
    """``run_dir/run.json`` of :func:`fake_run_info` (keyword arguments as there)."""
    return RunFolder(run_dir).write_info(fake_run_info(**kw))
