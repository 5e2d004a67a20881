"""The weights' moving average (``trainer.ema``): exact EMA, used to validate and predict, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from killed_run import train_killed_at

from neurotrans.errors import InputError
from neurotrans.inference.predict import load_trained
from neurotrans.io.run import RunFolder
from neurotrans.training.checkpoint import load_checkpoint
from neurotrans.training.run import train_from_config
from neurotrans.training.trainer import Trainer


def _config(manifest: Path, method: str = "supervised", steps: int = 9, ema: float = 0.5, norm: str = "batch"
            ) -> dict:
    model = {"method": method, "generator": "unet_pix2pix", "generator_args": {"base": 4, "depth": 2, "norm": norm}}
    if method == "pix2pix":
        model["discriminator_args"] = {"base": 4, "n_layers": 1}
    return {"model": model,
            "data": {"manifest": str(manifest), "voxel_size": None, "normalisation": {"FDG": "zscore"},
                     "batch_size": 4},
            "split": {"kind": "fixed", "test_fraction": 0.34, "val_fraction": 0.17},
            "trainer": {"max_steps": steps, "val_every": 2, "checkpoint_every": 3, "progress": False,
                        "log_every": 1, "ema": ema}}


def _ckpt(run: Path, name: str = "last") -> dict:
    return load_checkpoint(run / "checkpoints" / f"{name}.pt")


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


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
    run = train_from_config(_config(tiny_cohort, steps=6, ema=decay), out=tmp_path / "ema")
    monkeypatch.undo()
    assert len(raw) == 6
    expected = dict(raw[0])  # the first update copies the weights, as torch's AveragedModel does
    for weights in raw[1:]:
        expected = {k: decay * expected[k] + (1 - decay) * weights[k] for k in expected}
    ckpt = _ckpt(run)
    assert ckpt["ema_updates"] == 6
    for name, value in expected.items():
        torch.testing.assert_close(ckpt["method_state"][name], value, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ckpt["train_method_state"][name], raw[-1][name], rtol=0, atol=0)
    assert not torch.equal(ckpt["method_state"][name], ckpt["train_method_state"][name])


@pytest.mark.parametrize("method", ["supervised", "pix2pix"])
def test_averaging_leaves_training_alone_and_the_average_validates_and_predicts(tiny_cohort, tmp_path, method):
    plain = train_from_config(_config(tiny_cohort, method, ema=0.0), out=tmp_path / "plain")
    averaged = train_from_config(_config(tiny_cohort, method, ema=0.9), out=tmp_path / "ema")
    # the same trained weights: the average only reads them
    assert _same(_ckpt(plain)["method_state"], _ckpt(averaged)["train_method_state"])
    assert "train_method_state" not in _ckpt(plain)
    # validation (and so early stopping and best.pt) sees the average, not the trained weights
    assert _val_scores(plain) != _val_scores(averaged)
    # an average that never moves from the first step's weights validates as those weights (instance
    # norm: no batch-norm statistics, which are the trained weights')
    frozen = train_from_config(_config(tiny_cohort, method, ema=1 - 1e-9, norm="instance"), out=tmp_path / "frozen")
    first = train_from_config(_config(tiny_cohort, method, steps=1, ema=0.0, norm="instance"), out=tmp_path / "1")
    scores = _val_scores(frozen)
    assert max(scores) - min(scores) < 1e-5 and abs(scores[0] - _val_scores(first)[0]) < 1e-5
    best = RunFolder(averaged).best_checkpoint()
    model, _ = load_trained(best)
    loaded = {k: v.detach().cpu() for k, v in model.state_dict().items()}  # type: ignore[attr-defined]
    assert _same(loaded, load_checkpoint(best)["method_state"])  # predict uses the average


def test_a_killed_run_with_an_average_resumes_to_the_same_average(tiny_cohort, tmp_path, monkeypatch, device):
    cfg = _config(tiny_cohort, steps=9, ema=0.8)
    full = train_from_config(cfg, out=tmp_path / "full", device=device)
    train_killed_at(cfg, tmp_path / "killed", 7, monkeypatch, device)  # dies after the checkpoint of step 6
    assert _ckpt(tmp_path / "killed")["ema_updates"] == 6
    resumed = train_from_config(cfg, out=tmp_path / "killed", resume=True, device=device)
    for key in ("method_state", "train_method_state"):
        assert _same(_ckpt(full)[key], _ckpt(resumed)[key])
    assert _same(_ckpt(full, "best")["method_state"], _ckpt(resumed, "best")["method_state"])
    assert _ckpt(resumed)["ema_updates"] == 9


def test_averaging_can_be_switched_on_or_off_when_resuming(tiny_cohort, tmp_path):
    run = train_from_config(_config(tiny_cohort, steps=3, ema=0.0), out=tmp_path / "run")
    on = train_from_config(_config(tiny_cohort, steps=6, ema=0.5), out=run, resume=True)
    assert _ckpt(on)["ema_updates"] == 3  # started at the first resumed step
    off = train_from_config(_config(tiny_cohort, steps=8, ema=0.0), out=on, resume=True)
    # training went on from the trained weights, not from the average
    straight = train_from_config(_config(tiny_cohort, steps=8, ema=0.0), out=tmp_path / "straight")
    assert _same(_ckpt(off)["method_state"], _ckpt(straight)["method_state"])


@pytest.mark.parametrize("bad", [1.0, -0.1, 2])
def test_a_decay_outside_zero_one_is_refused(tiny_cohort, tmp_path, bad):
    with pytest.raises((InputError, ValueError), match="trainer.ema"):
        train_from_config(_config(tiny_cohort, ema=bad), out=tmp_path / "bad")
