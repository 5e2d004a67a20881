"""optim.schedule: the learning-rate factor against torch's schedulers, in the trainer, on resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from killed_run import train_killed_at
from run_configs import tiny_config
from torch.utils.data import TensorDataset

from neurotrans.config import OptimConfig, TrainerConfig, config_from_dict
from neurotrans.errors import InputError
from neurotrans.training.checkpoint import load_checkpoint
from neurotrans.training.run import train_from_config
from neurotrans.training.schedule import lr_factor
from neurotrans.training.trainer import Trainer


def _torch_factors(make, steps: int) -> list[float]:
    """The factors torch's scheduler ``make(optimiser)`` sets for steps 0 .. steps - 1 (reference)."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make(opt)
    factors = []
    for _ in range(steps):
        factors.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return factors


@pytest.mark.parametrize(("cfg", "reference"), [
    (OptimConfig(schedule="linear"),
     lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=1.0, end_factor=0.0, total_iters=40)),
    (OptimConfig(schedule="cosine"), lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=40)),
    (OptimConfig(schedule="step", step_size=7, gamma=0.3),
     lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.3)),
    (OptimConfig(schedule="step", step_size=1, gamma=0.9),
     lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.9)),
])
def test_the_factor_is_torchs_scheduler(cfg, reference):
    ours = [lr_factor(cfg, step, 40) for step in range(40)]
    assert ours == pytest.approx(_torch_factors(reference, 40), abs=1e-12)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_a_decay_waits_for_its_start_and_ends_at_zero(schedule):
    cfg = OptimConfig(schedule=schedule, decay_start=30)
    assert [lr_factor(cfg, s, 50) for s in (0, 29, 30)] == [1.0, 1.0, 1.0]
    assert 0.0 < lr_factor(cfg, 31, 50) < 1.0
    assert lr_factor(cfg, 40, 50) == pytest.approx(0.5)  # halfway, for both shapes
    factors = [lr_factor(cfg, s, 50) for s in range(30, 60)]
    assert all(a > b for a, b in zip(factors[:20], factors[1:20], strict=False))
    assert factors[20:] == [0.0] * 10  # past max_steps (a resumed run given more steps) it stays at 0


def test_a_trainer_built_without_a_config_refuses_a_decay_without_room(tmp_path):
    for schedule in ("linear", "cosine"):
        with pytest.raises(ValueError, match="trainer.max_steps"):
            Trainer(None, [TensorDataset(torch.zeros(1))], [], trainer=TrainerConfig(out=str(tmp_path), max_steps=10),
                    optim=OptimConfig(schedule=schedule, decay_start=10), out=tmp_path, batch_size=1)


def test_constant_is_one_everywhere():
    assert {lr_factor(OptimConfig(), s, 10) for s in (0, 5, 10, 1000)} == {1.0}


@pytest.mark.parametrize(("optim", "trainer", "says"), [
    ({"schedule": "cosine"}, {"max_steps": 0, "max_epochs": 3}, "trainer.max_steps"),
    ({"schedule": "linear", "decay_start": 100}, {"max_steps": 100}, "above optim.decay_start"),
    ({"schedule": "step"}, {}, "optim.step_size"),
    ({"schedule": "step", "step_size": 10, "gamma": 1.0}, {}, "optim.gamma"),
    ({"schedule": "step", "step_size": 10, "gamma": 0.0}, {}, "optim.gamma"),
    ({"schedule": "linear", "decay_start": -1}, {}, "optim.decay_start"),
    ({"schedule": "exponential"}, {}, "optim.schedule"),
    ({"schedule": "cosin"}, {}, "did you mean cosine"),
])
def test_bad_schedules_are_refused_with_the_key_to_fix(optim, trainer, says):
    with pytest.raises(ValueError, match=says):
        config_from_dict({"optim": optim, "trainer": trainer})


def _config(manifest: Path, steps: int, method: str = "pix2pix", **optim: object) -> dict:
    return {**tiny_config(manifest, method, steps),
            "optim": {"lr": 1e-3, "group_lr": {"D": 4e-4} if method == "pix2pix" else {}, **optim}}


def _train_log(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("kind") == "train"]


def _lrs(run: Path, name: str = "last") -> dict[str, list[float]]:
    saved = load_checkpoint(run / "checkpoints" / f"{name}.pt")["optimisers"]
    return {group: [pg["lr"] for pg in state["param_groups"]] for group, state in saved.items()}


def test_every_group_follows_the_schedule_from_its_own_rate(tiny_cohort, tmp_path):
    """pix2pix: G at optim.lr and D at its group_lr both decay by the same factor; the log has it."""
    run = train_from_config(_config(tiny_cohort, 8, schedule="step", step_size=3, gamma=0.5), out=tmp_path / "run")
    # the optimisers' last step was step 7, whose factor is 0.5 ** (7 // 3)
    assert _lrs(run) == {"G": [pytest.approx(1e-3 / 4)], "D": [pytest.approx(4e-4 / 4)]}
    log = _train_log(run)
    assert [r["lr_factor"] for r in log] == pytest.approx([0.5 ** ((r["step"] - 1) // 3) for r in log])
    constant = train_from_config(_config(tiny_cohort, 4), out=tmp_path / "constant")
    assert _lrs(constant) == {"G": [1e-3], "D": [4e-4]} and "lr_factor" not in _train_log(constant)[0]


def test_a_decay_changes_the_weights_and_a_constant_schedule_does_not(tiny_cohort, tmp_path):
    def weights(run: Path) -> dict:
        return load_checkpoint(run / "checkpoints" / "last.pt")["method_state"]

    plain = weights(train_from_config(_config(tiny_cohort, 6, "supervised"), out=tmp_path / "plain"))
    constant = weights(train_from_config(_config(tiny_cohort, 6, "supervised", schedule="constant"),
                                         out=tmp_path / "constant"))
    late = weights(train_from_config(_config(tiny_cohort, 6, "supervised", schedule="linear", decay_start=5),
                                     out=tmp_path / "late"))  # only the last step, at 1 - 0/1 = 1: unchanged
    cosine = weights(train_from_config(_config(tiny_cohort, 6, "supervised", schedule="cosine"),
                                       out=tmp_path / "cosine"))
    assert all(torch.equal(plain[k], constant[k]) and torch.equal(plain[k], late[k]) for k in plain)
    assert any(not torch.equal(plain[k], cosine[k]) for k in plain if plain[k].is_floating_point())


@pytest.mark.parametrize("method", ["supervised", "pix2pix"])
def test_a_killed_run_with_a_schedule_resumes_exactly(tiny_cohort, tmp_path, monkeypatch, device, method):
    """The factor is a function of the step: the resumed run sets the uninterrupted run's rates."""
    cfg = _config(tiny_cohort, 9, method, schedule="cosine", decay_start=2)
    full = train_from_config(cfg, out=tmp_path / "full", device=device)
    train_killed_at(cfg, tmp_path / "killed", 7, monkeypatch, device)  # dies after the checkpoint of step 6
    resumed = train_from_config(cfg, out=tmp_path / "killed", resume=True, device=device)
    a = load_checkpoint(full / "checkpoints" / "last.pt")["method_state"]
    b = load_checkpoint(resumed / "checkpoints" / "last.pt")["method_state"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _lrs(full) == _lrs(resumed)
    assert [r["lr_factor"] for r in _train_log(resumed) if r["step"] > 6] == pytest.approx(
        [r["lr_factor"] for r in _train_log(full) if r["step"] > 6])


def test_a_schedule_without_a_step_limit_is_refused_before_training(tiny_cohort, tmp_path):
    cfg = _config(tiny_cohort, 0, "supervised", schedule="linear")
    cfg["trainer"]["max_epochs"] = 2
    with pytest.raises((InputError, ValueError), match="trainer.max_steps"):
        train_from_config(cfg, out=tmp_path / "run")
