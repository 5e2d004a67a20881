"""The cascade under the real trainer: stage 1 frozen while stage 2 trains, bit-identical resume.

A tiny 3D Sketcher-Refiner (stage 0: 2 steps, stage 1: the rest) on a toy dataset of
random volumes with lesion / NAWM masks; the Trainer steps the method's schedule, calls
``method.train()`` before every batch and checkpoints everything.
"""

from __future__ import annotations

import shutil

import pytest
import torch
from torch.utils.data import Dataset

from neurotrans.config import OptimConfig, TrainerConfig, config_from_dict
from neurotrans.methods import ModelIO, build_method
from neurotrans.training.trainer import Trainer, seed_everything

IO = ModelIO(in_channels=2, spatial_dims=3, inputs=("MTR", "DTI_RD"), aux=("lesions", "NAWM"))
GAN = {"generator_args": {"base": 2, "depth": 2}, "discriminator_args": {"patch_size": 8, "features": [4, 8]}}
STAGE0_STEPS = 2


class Toy(Dataset):
    """Eight random 16^3 samples with two input channels, a PET and lesion / NAWM masks."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(8, 2, 16, 16, 16, generator=g)
        self.y = torch.rand(8, 1, 16, 16, 16, generator=g) + 1
        les = (torch.rand(8, 1, 16, 16, 16, generator=g) > 0.9).float()
        self.aux = torch.cat([les, (torch.rand(8, 1, 16, 16, 16, generator=g) > 0.5).float() * (1 - les)], 1)

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> dict:
        return {"input": self.x[i], "target": self.y[i], "mask": torch.ones_like(self.y[i]), "aux": self.aux[i]}


def cascade(refiner_loss: str = "wl1"):
    seed_everything(0)  # as train_from_config: seeded once, before the networks are built
    stages = [{"generator": "unet_sketcher_z", "steps": STAGE0_STEPS, "lr": 1e-3, **GAN,
               "generator_args": {**GAN["generator_args"], "noise_at_eval": True}},
              {"generator": "unet_sketcher", "loss": refiner_loss, "lr": 5e-4, "d_steps": 2, **GAN,
               "real_range": [0.9, 1.0], "fake_range": [0.0, 0.1]}]
    cfg = config_from_dict({"model": {"method": "cascade", "stages": stages},
                            "data": {"inputs": ["MTR", "DTI_RD"], "target": "PIB", "aux": ["lesions", "NAWM"],
                                     "spatial_dims": 3}})
    return build_method(cfg.model, IO)


def trainer(method, out, max_steps: int, device: str = "cpu") -> Trainer:
    cfg = TrainerConfig(out=str(out), max_steps=max_steps, val_every=100, checkpoint_every=1, progress=False,
                        amp=False)
    return Trainer(method, [Toy()], [], trainer=cfg, optim=OptimConfig(name="adam", lr=1e-3), out=out, batch_size=2,
                   device=device)


def state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_stage_one_is_frozen_while_stage_two_trains(tmp_path):
    method = cascade()
    t = trainer(method, tmp_path, 5)
    batches = list(torch.utils.data.DataLoader(Toy(), batch_size=2))
    frozen = refiner = {}
    for step in range(5):
        if step == STAGE0_STEPS:
            frozen = {n: state(method.networks[n]) for n in ("G0", "D0")}
            refiner = {n: state(method.networks[n]) for n in ("G1", "D1")}
        t.train_iteration(batches[step % len(batches)])  # calls method.train() first, as fit() does
        t.state.step += 1
    assert int(method.active_stage) == 1
    for name, before in frozen.items():  # weights and batch-norm running statistics alike
        after = state(method.networks[name])
        assert any("running_mean" in k for k in after)
        for key, value in after.items():
            assert torch.equal(value, before[key]), (name, key)
        assert not method.networks[name].training
    for name, before in refiner.items():
        after = state(method.networks[name])
        assert any(not torch.equal(after[k], before[k]) for k in after if "weight" in k), name


@pytest.mark.parametrize("stop", [1, STAGE0_STEPS, STAGE0_STEPS + 1])
def test_resume_is_bit_identical_across_the_stage_boundary(tmp_path, stop, device):
    total = STAGE0_STEPS + 3
    straight = cascade()
    trainer(straight, tmp_path / "a", total, device).fit()
    interrupted = cascade()
    trainer(interrupted, tmp_path / "b", stop, device).fit()
    resumed = cascade()
    t = trainer(resumed, tmp_path / "b", total, device)
    t.resume()
    t.fit()
    a, b = straight.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key  # networks, BN statistics, label generators, active stage
    assert int(resumed.active_stage) == 1


def test_a_refiner_variant_resumed_from_a_shared_sketcher_equals_its_own_run(tmp_path):
    # what experiments/myelin_pib does to train the Sketcher once for three Refiner losses
    own = cascade("nwl1")
    trainer(own, tmp_path / "own", STAGE0_STEPS + 2).fit()
    shared = cascade("wl1")
    trainer(shared, tmp_path / "wl1", STAGE0_STEPS).fit()
    variant = cascade("nwl1")
    (tmp_path / "nwl1" / "checkpoints").mkdir(parents=True)
    shutil.copy2(tmp_path / "wl1" / "checkpoints" / "last.pt", tmp_path / "nwl1" / "checkpoints" / "last.pt")
    t = trainer(variant, tmp_path / "nwl1", STAGE0_STEPS + 2)
    t.resume()
    t.fit()
    a, b = own.state_dict(), variant.state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key
