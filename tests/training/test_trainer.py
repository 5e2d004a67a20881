"""The trainer: seeded runs reproduce, a killed run resumes to the same weights (and to the same
moving average of them), budgets stop."""

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
from run_configs import tiny_config as _config

from neurotrans.errors import InputError
from neurotrans.inference.predict import load_trained
from neurotrans.io.run import RunFolder
from neurotrans.training.checkpoint import file_sha256, load_checkpoint
from neurotrans.training.run import train_from_config
from neurotrans.training.trainer import Trainer, epoch_batches


def _checkpoint(run: Path, name: str = "last") -> dict:
    return load_checkpoint(run / "checkpoints" / f"{name}.pt")


def _weights(run: Path, name: str = "last") -> dict[str, torch.Tensor]:
    return _checkpoint(run, name)["method_state"]


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


# ---------------------------------------------------------------- the weights' moving average (trainer.ema)
def _val_scores(run: Path) -> list[float]:
    return [r["val/mae"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if r["kind"] == "val"]


def test_the_average_is_the_exponential_moving_average_of_the_trained_weights(tiny_cohort, tmp_path, monkeypatch):
    decay = 0.7
    raw: list[dict[str, torch.Tensor]] = []  # the trained weights after every step
    original = Trainer.train_iteration

    def recording(self: Trainer, batch):  # type: ignore[no-untyped-def]
        out = original(self, batch)
        raw.append({k: p.detach().clone() for k, p in self.method.named_parameters()})
        return out

    monkeypatch.setattr(Trainer, "train_iteration", recording)
    run = train_from_config(_config(tiny_cohort, "supervised", steps=6, ema=decay), out=tmp_path / "ema")
    monkeypatch.undo()
    assert len(raw) == 6
    expected = dict(raw[0])  # the first update copies the weights, as torch's AveragedModel does
    for weights in raw[1:]:
        expected = {k: decay * expected[k] + (1 - decay) * weights[k] for k in expected}
    ckpt = _checkpoint(run)
    assert ckpt["ema_updates"] == 6
    for name, value in expected.items():
        torch.testing.assert_close(ckpt["method_state"][name], value, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ckpt["train_method_state"][name], raw[-1][name], rtol=0, atol=0)
    assert not torch.equal(ckpt["method_state"][name], ckpt["train_method_state"][name])


@pytest.mark.parametrize("method", ["supervised", "pix2pix"])
def test_averaging_leaves_training_alone_and_the_average_validates_and_predicts(tiny_cohort, tmp_path, method):
    plain = train_from_config(_config(tiny_cohort, method, 9, ema=0.0), out=tmp_path / "plain")
    averaged = train_from_config(_config(tiny_cohort, method, 9, ema=0.9), out=tmp_path / "ema")
    # the same trained weights: the average only reads them
    assert _same(_checkpoint(plain)["method_state"], _checkpoint(averaged)["train_method_state"])
    assert "train_method_state" not in _checkpoint(plain)
    # validation (and so early stopping and best.pt) sees the average, not the trained weights
    assert _val_scores(plain) != _val_scores(averaged)
    # an average that never moves from the first step's weights validates as those weights (instance
    # norm: no batch-norm statistics, which are the trained weights')
    frozen = train_from_config(_config(tiny_cohort, method, 9, "instance", ema=1 - 1e-9), out=tmp_path / "frozen")
    first = train_from_config(_config(tiny_cohort, method, 1, "instance", ema=0.0), out=tmp_path / "1")
    scores = _val_scores(frozen)
    assert max(scores) - min(scores) < 1e-5 and abs(scores[0] - _val_scores(first)[0]) < 1e-5
    best = RunFolder(averaged).best_checkpoint()
    model, _ = load_trained(best)
    loaded = {k: v.detach().cpu() for k, v in model.state_dict().items()}  # type: ignore[attr-defined]
    assert _same(loaded, load_checkpoint(best)["method_state"])  # predict uses the average


def test_a_killed_run_with_an_average_resumes_to_the_same_average(tiny_cohort, tmp_path, monkeypatch, device):
    cfg = _config(tiny_cohort, "supervised", 9, ema=0.8)
    full = train_from_config(cfg, out=tmp_path / "full", device=device)
    train_killed_at(cfg, tmp_path / "killed", 7, monkeypatch, device)  # dies after the checkpoint of step 6
    assert _checkpoint(tmp_path / "killed")["ema_updates"] == 6
    resumed = train_from_config(cfg, out=tmp_path / "killed", resume=True, device=device)
    for key in ("method_state", "train_method_state"):
        assert _same(_checkpoint(full)[key], _checkpoint(resumed)[key])
    assert _same(_checkpoint(full, "best")["method_state"], _checkpoint(resumed, "best")["method_state"])
    assert _checkpoint(resumed)["ema_updates"] == 9


def test_averaging_can_be_switched_on_or_off_when_resuming(tiny_cohort, tmp_path):
    run = train_from_config(_config(tiny_cohort, "supervised", 3, ema=0.0), out=tmp_path / "run")
    on = train_from_config(_config(tiny_cohort, "supervised", 6, ema=0.5), out=run, resume=True)
    assert _checkpoint(on)["ema_updates"] == 3  # started at the first resumed step
    off = train_from_config(_config(tiny_cohort, "supervised", 8, ema=0.0), out=on, resume=True)
    # training went on from the trained weights, not from the average
    straight = train_from_config(_config(tiny_cohort, "supervised", 8, ema=0.0), out=tmp_path / "straight")
    assert _same(_checkpoint(off)["method_state"], _checkpoint(straight)["method_state"])


@pytest.mark.parametrize("bad", [1.0, -0.1, 2])
def test_a_decay_outside_zero_one_is_refused(tiny_cohort, tmp_path, bad):
    with pytest.raises((InputError, ValueError), match="trainer.ema"):
        train_from_config(_config(tiny_cohort, "supervised", ema=bad), out=tmp_path / "bad")


def test_a_run_initialised_from_a_checkpoint_starts_from_its_weights(tiny_cohort, tmp_path):
    # the source trains on the whole cohort but its validation subjects: made to start others
    source = train_from_config(_config(tiny_cohort, "supervised", 4, norm="instance"), ["split.test_fraction=0"],
                               out=tmp_path / "source")
    assert RunFolder(source).read_info().test_subjects == []
    best = source / "checkpoints" / "best.pt"
    frozen = ["optim.lr=1e-30"]  # steps that move nothing: the weights stay where training started
    tuned = train_from_config(_config(tiny_cohort, "supervised", 2, norm="instance", seed=1, init=str(best)), frozen,
                              out=tmp_path / "tuned")
    fresh = train_from_config(_config(tiny_cohort, "supervised", 2, norm="instance", seed=1), frozen,
                              out=tmp_path / "fresh")
    start = load_checkpoint(best)["method_state"]
    assert all(torch.allclose(_weights(tuned)[k], start[k]) for k in start)
    assert not all(torch.allclose(_weights(fresh)[k], start[k]) for k in start)  # seed 1 starts elsewhere
    assert RunFolder(tuned).read_info().init == {"checkpoint": str(best.resolve()), "sha256": file_sha256(best)}
    assert RunFolder(fresh).read_info().init is None


@pytest.mark.parametrize(("source", "run", "says"), [
    ({"method": "pix2pix"}, {}, "method pix2pix"),
    ({}, {"data": {"normalisation": {"FDG": "minmax"}}}, "normalisation"),
    ({}, {"data": {"inputs": ["T1w", "GM"]}}, "inputs"),
    ({}, {"data": {"target": "WM"}}, "target"),
    ({}, {"model": {"generator_args": {"base": 8, "depth": 2, "norm": "batch"}}}, "do not fit"),
    ({}, {"model": {"method": "random_forest", "n_trees": 2}, "data": {"spatial_dims": 3}}, "fitted in one pass"),
])
def test_a_checkpoint_that_does_not_fit_the_run_is_refused_before_any_image_is_read(
        tiny_cohort, tmp_path, monkeypatch, source, run, says):
    base = _config(tiny_cohort, source.get("method", "supervised"), 2)
    best = train_from_config(base, out=tmp_path / "source") / "checkpoints" / "best.pt"
    cfg = _config(tiny_cohort, "supervised", 2, init=str(best))
    for section, values in run.items():
        cfg[section] = values if section == "model" and "method" in values else {**cfg[section], **values}
    import neurotrans.training.run as training

    def no_reading(*args, **kwargs):
        raise AssertionError("the manifest was read before the checkpoint was checked")

    monkeypatch.setattr(training, "read_manifest", no_reading)
    with pytest.raises(InputError, match=says):
        train_from_config(cfg, out=tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_missing_init_checkpoint_is_named(tiny_cohort, tmp_path):
    with pytest.raises(InputError, match="nowhere.pt: checkpoint not found"):
        train_from_config(_config(tiny_cohort, "supervised", 2, init=str(tmp_path / "nowhere.pt")), out=tmp_path / "r")
    with pytest.raises((InputError, ValueError), match="trainer.init"):
        train_from_config(_config(tiny_cohort, "supervised", 2, init=" "), out=tmp_path / "r")


def test_a_killed_fine_tuning_run_resumes_without_its_init_checkpoint(tiny_cohort, tmp_path, monkeypatch, device):
    source = train_from_config(_config(tiny_cohort, "supervised", 3), out=tmp_path / "source", device=device)
    best = tmp_path / "init.pt"
    best.write_bytes((source / "checkpoints" / "best.pt").read_bytes())
    cfg = _config(tiny_cohort, "supervised", 9, seed=1, init=str(best))
    full = train_from_config(cfg, out=tmp_path / "full", device=device)
    provenance = RunFolder(full).read_info().init
    train_killed_at(cfg, tmp_path / "killed", 7, monkeypatch, device)  # dies after the checkpoint of step 6
    best.unlink()  # the resumed run's weights come from its last.pt
    resumed = train_from_config(cfg, out=tmp_path / "killed", resume=True, device=device)
    assert _same(_weights(full), _weights(resumed))
    assert RunFolder(resumed).read_info().init == provenance
    assert _checkpoint(resumed)["info"]["init"] == provenance


def _dualglow(manifest: Path, covariates: list[str], steps: int = 2, **trainer: object) -> dict:
    model = {"method": "dualglow", "levels": 2, "steps": 1, "hidden": 4, "relation_hidden": 4, "relation_layers": 2,
             "relation_kernel": 3, "side_kinds": ["continuous"] * len(covariates)}
    return {"model": model,
            "data": {"manifest": str(manifest), "voxel_size": None, "normalisation": {"FDG": "none"},
                     "spatial_dims": 3, "patch_size": None, "batch_size": 2, "covariates": covariates},
            "optim": {"name": "adamax", "lr": 1e-3},
            "split": {"kind": "fixed", "test_fraction": 0.34, "val_fraction": 0.17, "stratify": None},
            "trainer": {"max_steps": steps, "val_every": 2, "checkpoint_every": 2, "progress": False, **trainer}}


def _side(run: Path) -> tuple[torch.Tensor, torch.Tensor]:
    state = _weights(run)
    return state["side_mean"], state["side_std"]


def test_a_fine_tuned_model_keeps_the_standardisation_its_weights_learnt_the_side_information_on(tiny_cohort, tmp_path):
    """DUAL-GLOW with age: the source (trained on other subjects, so other age statistics) sets the scale."""
    source = train_from_config(_dualglow(tiny_cohort, ["age"]), ["split.test_fraction=0"], out=tmp_path / "source")
    best = source / "checkpoints" / "best.pt"
    tuned = train_from_config(_dualglow(tiny_cohort, ["age"], init=str(best)), out=tmp_path / "tuned")
    fresh = train_from_config(_dualglow(tiny_cohort, ["age"]), out=tmp_path / "fresh")
    assert not torch.equal(_side(source)[0], _side(fresh)[0])  # the two splits' training ages differ
    assert all(torch.equal(a, b) for a, b in zip(_side(tuned), _side(source), strict=True))


def test_a_checkpoint_trained_on_other_side_information_is_refused(tiny_cohort, tmp_path):
    table = (tiny_cohort.parent / "manifest.tsv").read_text().splitlines()
    years = [str(12 + i) for i in range(len(table) - 1)]
    other = tiny_cohort.parent / "manifest_education.tsv"  # next to the images its paths name
    other.write_text("\n".join([table[0] + "\teducation"] + [f"{r}\t{y}" for r, y in zip(table[1:], years, strict=True)])
                     + "\n")
    best = train_from_config(_dualglow(other, ["education"]), out=tmp_path / "source") / "checkpoints" / "best.pt"
    with pytest.raises(InputError, match=r"covariates \['education'\], this run has \['age'\]"):
        train_from_config(_dualglow(other, ["age"], init=str(best)), out=tmp_path / "run")
