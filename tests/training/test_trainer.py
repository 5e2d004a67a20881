"""The trainer: seeded runs reproduce, a killed run resumes to the same weights, budgets stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from killed_run import train_killed_at

from neurotrans.errors import InputError
from neurotrans.io.run import RunFolder
from neurotrans.training.checkpoint import load_checkpoint
from neurotrans.training.run import train_from_config
from neurotrans.training.trainer import epoch_batches


def _config(manifest: Path, method: str = "pix2pix", steps: int = 8) -> dict:
    model = {"method": method, "generator": "unet_pix2pix", "generator_args": {"base": 4, "depth": 2}}
    if method == "pix2pix":
        model["discriminator_args"] = {"base": 4, "n_layers": 1}
    return {"model": model,
            "data": {"manifest": str(manifest), "voxel_size": None, "normalisation": {"FDG": "zscore"},
                     "batch_size": 4},
            "split": {"kind": "fixed", "test_fraction": 0.34, "val_fraction": 0.17},
            "trainer": {"max_steps": steps, "val_every": 4, "checkpoint_every": 3, "progress": False,
                        "log_every": 1}}


def _weights(run: Path, name: str = "last") -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / f"{name}.pt")["method_state"]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_epoch_batches_are_a_pure_function_of_seed_and_epoch():
    a = epoch_batches([10, 7], 3, seed=1, epoch=2)
    assert a == epoch_batches([10, 7], 3, seed=1, epoch=2)
    assert a != epoch_batches([10, 7], 3, seed=1, epoch=3)
    flat = [i for b in a for i in b]
    assert len(flat) == len(set(flat)) == 9 + 6  # incomplete batches dropped
    assert all(max(b) < 10 or min(b) >= 10 for b in a)  # never mixes two datasets


def test_seeded_runs_are_identical_and_seeds_matter(tiny_cohort, tmp_path, device):
    cfg = _config(tiny_cohort, steps=5)
    a = train_from_config(cfg, out=tmp_path / "a", device=device)
    b = train_from_config(cfg, out=tmp_path / "b", device=device)
    c = train_from_config(cfg, ["trainer.seed=1"], out=tmp_path / "c", device=device)
    assert _same(_weights(a), _weights(b))
    assert not _same(_weights(a), _weights(c))
    log = [json.loads(x) for x in (a / "log.jsonl").read_text().splitlines()]
    assert {"D/loss", "G/loss", "G/g_rec"} <= set(log[0]) and any(r["kind"] == "val" for r in log)
    assert (a / "log.csv").is_file() and (a / "config.yaml").is_file()
    folder = RunFolder(a)
    info, outcome = folder.read_info(), folder.read_outcome()
    assert info.method == "pix2pix" and outcome.steps == 5 and not info.simulated
    assert not set(info.split["train"]) & set(info.split["test"])
    assert load_checkpoint(folder.checkpoint("last"))["info"] == info.to_dict()  # one contract, twice written


def test_training_from_the_memory_mapped_cache_gives_the_same_weights(tiny_cohort, tmp_path):
    cfg = _config(tiny_cohort, steps=4)
    in_ram = train_from_config(cfg, out=tmp_path / "ram")
    cached_cfg = {**cfg, "data": {**cfg["data"], "cache_dir": str(tmp_path / "cache")}}
    first = train_from_config(cached_cfg, out=tmp_path / "disk1")  # fills the cache
    entries = sorted(p.name for p in (tmp_path / "cache").iterdir())
    second = train_from_config(cached_cfg, out=tmp_path / "disk2")  # reads it back as memory maps
    assert entries and sorted(p.name for p in (tmp_path / "cache").iterdir()) == entries
    assert _same(_weights(in_ram), _weights(first)) and _same(_weights(first), _weights(second))


@pytest.mark.parametrize("method", ["supervised", "pix2pix"])
def test_resume_after_exception_matches_uninterrupted_run(tiny_cohort, tmp_path, monkeypatch, device, method):
    cfg = _config(tiny_cohort, method=method, steps=9)
    full = train_from_config(cfg, out=tmp_path / "full", device=device)
    train_killed_at(cfg, tmp_path / "killed", 7, monkeypatch, device)  # dies after the checkpoint of step 6
    assert load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pt")["trainer"]["step"] == 6
    with pytest.raises(InputError, match="resume"):
        train_from_config(cfg, out=tmp_path / "killed", device=device)
    resumed = train_from_config(cfg, out=tmp_path / "killed", resume=True, device=device)
    assert _same(_weights(full), _weights(resumed))
    assert _same(_weights(full, "best"), _weights(resumed, "best"))
    steps = [json.loads(x)["step"] for x in (resumed / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)  # no duplicated log lines from the killed part


def test_resume_after_sigkill_matches_uninterrupted_run(tiny_cohort, tmp_path):
    """A real process killed by SIGKILL right after its first checkpoint, then resumed."""
    cfg = _config(tiny_cohort, steps=8)
    script = textwrap.dedent(f"""
        import os, signal, torch
        torch.set_num_threads(1)
        from neurotrans.training.trainer import Trainer
        from neurotrans.training.run import train_from_config
        save = Trainer.save
        def save_then_die(self, name):
            path = save(self, name)
            if name == "last":
                os.kill(os.getpid(), signal.SIGKILL)
            return path
        Trainer.save = save_then_die
        train_from_config({cfg!r}, out={str(tmp_path / 'killed')!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pt")["trainer"]["step"] == 3
    resumed = train_from_config(cfg, out=tmp_path / "killed", resume=True)
    full = train_from_config(cfg, out=tmp_path / "full")
    assert _same(_weights(full), _weights(resumed))


def test_time_budget_and_early_stopping(tiny_cohort, tmp_path, device):
    cfg = _config(tiny_cohort, method="supervised", steps=0)
    run = train_from_config(cfg, ["trainer.max_steps=0"], out=tmp_path / "budget", max_minutes=0.02, device=device)
    outcome = RunFolder(run).read_outcome()
    assert "time budget" in outcome.stopped and outcome.steps >= 1
    # lr so large that the validation error grows: UP_1 with strips of 1 evaluation stops early
    run = train_from_config(cfg, ["trainer.max_steps=200", "trainer.val_every=1", "trainer.early_stopping=up",
                                  "trainer.strips=1", "trainer.strip_length=1", "optim.lr=5.0"],
                            out=tmp_path / "early", device=device)
    outcome = RunFolder(run).read_outcome()
    assert outcome.stopped.startswith("early stopping") and outcome.steps < 200 and outcome.monitor == "mae"
