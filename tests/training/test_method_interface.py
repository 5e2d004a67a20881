"""The trainer serves other kinds of methods unchanged: a likelihood objective, several optimisers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from neurotrans.config import OptimConfig, TrainerConfig
from neurotrans.errors import InputError
from neurotrans.methods.base import Method, OptimGroup
from neurotrans.training.checkpoint import load_checkpoint
from neurotrans.training.trainer import Trainer, epoch_batches, to_device


class Points(Dataset):
    def __init__(self, n: int = 64, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.a = 2.0 + 0.5 * torch.randn(n, 1, 4, 4, generator=g)
        self.b = -1.0 + torch.randn(n, 1, 4, 4, generator=g)

    def __len__(self) -> int:
        return len(self.a)

    def __getitem__(self, i: int) -> dict:
        return {"input": self.a[i], "target": self.b[i], "a": self.a[i], "b": self.b[i]}


class AffineFlow(Method):
    """x = mu + exp(log_sigma) z, z ~ N(0, 1): the objective is the negative log-likelihood."""

    def __init__(self) -> None:
        super().__init__({"flow": nn.ParameterDict({"mu": nn.Parameter(torch.zeros(1)),
                                                    "log_sigma": nn.Parameter(torch.zeros(1))})})

    def training_step(self, batch, group):
        p = self.networks["flow"]
        z = (batch["input"] - p["mu"]) * torch.exp(-p["log_sigma"])
        nll = (0.5 * z**2 + 0.5 * math.log(2 * math.pi) + p["log_sigma"]).mean()  # log det = -log_sigma
        return {"loss": nll, "nll": nll.detach()}

    def predict(self, x, covariates=None):
        return x


class TwoDomains(Method):
    """UNIT-shaped: two translators in one group, one critic per domain, each with its own optimiser."""

    def __init__(self) -> None:
        conv = lambda: nn.Conv2d(1, 1, 3, padding=1)  # noqa: E731
        super().__init__({"g_ab": conv(), "g_ba": conv(), "d_a": conv(), "d_b": conv()})

    def optimiser_groups(self):
        return {"dis_a": OptimGroup(("d_a",)), "dis_b": OptimGroup(("d_b",)),
                "gen": OptimGroup(("g_ab", "g_ba"), {"lr": 1e-2})}

    def schedule(self, step=0):
        return ["dis_a", "dis_b", "gen"]

    def training_step(self, batch, group):
        a, b, n = batch["a"], batch["b"], self.networks
        if group == "dis_a":
            return {"loss": (n["d_a"](a) - 1).square().mean() + n["d_a"](n["g_ba"](b).detach()).square().mean()}
        if group == "dis_b":
            return {"loss": (n["d_b"](b) - 1).square().mean() + n["d_b"](n["g_ab"](a).detach()).square().mean()}
        cycle = (n["g_ba"](n["g_ab"](a)) - a).abs().mean() + (n["g_ab"](n["g_ba"](b)) - b).abs().mean()
        adv = (n["d_b"](n["g_ab"](a)) - 1).square().mean() + (n["d_a"](n["g_ba"](b)) - 1).square().mean()
        return {"loss": cycle + adv, "cycle": cycle.detach()}

    def predict(self, x, covariates=None):
        return self.networks["g_ab"](x)


def _trainer(method, tmp_path, steps=60, lr=0.05, device="cpu"):
    cfg = TrainerConfig(out=str(tmp_path), max_steps=steps, val_every=1000, checkpoint_every=1000, progress=False)
    return Trainer(method, [Points()], [], trainer=cfg, optim=OptimConfig(name="adam", lr=lr, betas=(0.9, 0.999)),
                   out=tmp_path, batch_size=16, device=device)


def test_likelihood_objective_fits_the_data(tmp_path, device):
    flow = AffineFlow()
    _trainer(flow, tmp_path, steps=300, device=device).fit()
    data = Points().a
    assert abs(flow.networks["flow"]["mu"].item() - float(data.mean())) < 0.05
    assert abs(flow.networks["flow"]["log_sigma"].exp().item() - float(data.std())) < 0.05


def test_each_optimiser_updates_only_its_networks(tmp_path, device):
    method = TwoDomains()
    trainer = _trainer(method, tmp_path, steps=1, device=device)
    assert set(trainer.optimisers) == {"dis_a", "dis_b", "gen"}
    assert trainer.optimisers["gen"].param_groups[0]["lr"] == 1e-2
    before = {k: v.clone() for k, v in method.state_dict().items()}
    batch = next(iter([Points()[i] for i in range(1)]))
    batch = to_device({k: v[None] for k, v in batch.items()}, trainer.device)  # where the weights are
    for group, nets in (("dis_a", {"d_a"}), ("gen", {"g_ab", "g_ba"})):
        opt = trainer.optimisers[group]
        opt.zero_grad()
        method.training_step(batch, group)["loss"].backward()
        opt.step()
        changed = {k.split(".")[1] for k, v in method.state_dict().items() if not torch.equal(v, before[k])}
        assert changed == nets, group
        before = {k: v.clone() for k, v in method.state_dict().items()}
    state = _trainer(TwoDomains(), tmp_path / "run", steps=20, device=device).fit()
    assert state.step == 20 and (tmp_path / "run" / "checkpoints" / "last.pt").is_file()


class DivergesAt(AffineFlow):
    """The affine flow whose loss turns NaN from step ``at`` on."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def training_step(self, batch, group):
        out = super().training_step(batch, group)
        self.calls += 1
        if self.calls > self.at:
            out["loss"] = out["loss"] * float("nan")
        return out


@pytest.mark.parametrize("at, log_every", [(0, 1), (4, 10), (12, 5)])
def test_a_diverged_loss_is_reported_at_its_step_and_never_checkpointed(tmp_path, device, at, log_every):
    # losses are checked in bulk (no host sync per step), yet the error names the first bad step
    cfg = TrainerConfig(out=str(tmp_path), max_steps=40, val_every=1000, checkpoint_every=7, progress=False,
                        log_every=log_every)
    trainer = Trainer(DivergesAt(at), [Points()], [], trainer=cfg, optim=OptimConfig(name="adam", lr=0.05),
                      out=tmp_path, batch_size=16, device=device)
    with pytest.raises(InputError, match=f"step {at}.*nan.*diverged"):
        trainer.fit()
    last = tmp_path / "checkpoints" / "last.pt"
    if last.is_file():  # only checkpoints of steps before the divergence, with finite weights
        ckpt = load_checkpoint(last)
        assert ckpt["trainer"]["step"] <= at
        assert all(torch.isfinite(v).all() for v in ckpt["method_state"].values())
    else:
        assert at < 7


class EpochTagged(Dataset):
    """Items that say which epoch the dataset was set to when they were read, and their index."""

    def __init__(self, n: int = 12) -> None:
        self.n, self.epoch = n, -1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {"input": torch.tensor([float(self.epoch), float(i)]), "target": torch.zeros(2)}


class Recorder(Method):
    """Remembers the (epoch, index) of every sample it trains on; one parameter, so it has an optimiser."""

    def __init__(self) -> None:
        super().__init__({"w": nn.Linear(1, 1)})
        self.seen: list[tuple[int, int]] = []

    def training_step(self, batch, group):
        self.seen += [(int(e), int(i)) for e, i in batch["input"].tolist()]
        return {"loss": self.networks["w"].weight.square().sum()}

    def predict(self, x, covariates=None):
        return x


@pytest.mark.parametrize("workers", [0, 2])
def test_one_loader_for_the_run_keeps_each_epochs_order_and_resumes_at_an_epoch_boundary(tmp_path, workers):
    # the loader (and its workers) lives for the whole run; items still see their own epoch
    expected = [(e, i) for e in range(3) for b in epoch_batches([12], 4, seed=5, epoch=e) for i in b]

    def trainer(method, steps=0, epochs=0):
        cfg = TrainerConfig(out=str(tmp_path), max_steps=steps, max_epochs=epochs, val_every=1000,
                            checkpoint_every=3, progress=False, seed=5)
        return Trainer(method, [EpochTagged()], [], trainer=cfg, optim=OptimConfig(name="sgd", lr=0.1),
                       out=tmp_path, batch_size=4, device="cpu", num_workers=workers)

    whole = Recorder()
    state = trainer(whole, epochs=3).fit()
    assert whole.seen == expected and state.step == 9 and state.epoch == 3
    first = Recorder()
    assert trainer(first, steps=3).fit().step == 3  # stops after the first epoch's last batch (a checkpoint)
    rest = Recorder()
    t = trainer(rest, epochs=3)
    t.resume()
    t.fit()
    assert first.seen + rest.seen == expected
