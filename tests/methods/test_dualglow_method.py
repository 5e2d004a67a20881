"""The DUAL-GLOW method: config checks, eq. 12 against the network, side information, validation
sums, and through the real trainer: the NLL falls, a resumed run is bit-identical."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from neurotrans.config import Config, DataConfig, OptimConfig, TrainerConfig
from neurotrans.losses.flow import dequantize
from neurotrans.methods import METHODS, ModelIO, build_method
from neurotrans.methods.dualglow import DualGlowConfig, DualGlowMethod
from neurotrans.training.trainer import Trainer

SIZE = (8, 8, 8)
TINY = dict(levels=2, steps=2, hidden=8, relation_hidden=8, relation_layers=2, relation_kernel=3, side_hidden=4)


def tiny(side_kinds: tuple[str, ...] = (), **kw) -> DualGlowMethod:
    cfg = DualGlowConfig(**{**TINY, "side_kinds": side_kinds, **kw})
    return build_method(cfg, ModelIO(in_channels=1, spatial_dims=3, inputs=("T1w",), n_covariates=len(side_kinds)))


def volumes(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MRI in [0, 1], PET (SUVR) a smooth function of it, and ages."""
    g = torch.Generator().manual_seed(seed)
    mri = torch.nn.functional.avg_pool3d(torch.rand(n, 1, *SIZE, generator=g), 3, 1, 1)
    mri = (mri - mri.amin()) / (mri.amax() - mri.amin())
    age = 60 + 30 * torch.rand(n, 1, generator=g)
    pet = 0.4 + 1.2 * mri * (1.0 - 0.005 * (age.view(n, 1, 1, 1, 1) - 60))
    return mri, pet, age


def batch_of(n: int = 2, seed: int = 0, side: bool = False) -> dict:
    mri, pet, age = volumes(n, seed)
    batch = {"input": mri, "target": pet, "mask": torch.ones_like(pet)}
    if side:
        batch["covariates"] = age
    return batch


@pytest.mark.parametrize("field, value", [("levels", 0), ("steps", 0), ("hidden", -1), ("scale", "tanh"),
                                          ("side_kinds", ("ordinal",)), ("side_weight", -0.1),
                                          ("mri_weight", float("nan")), ("quant_step", 0.0), ("pet_scale", -2.0),
                                          ("temperature", -1.0), ("samples", 1), ("relation_kernel", 4)])
def test_bad_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        DualGlowConfig(**{field: value})


@pytest.mark.parametrize("data, match", [
    ({"spatial_dims": 2}, "whole 3D volumes"),
    ({"spatial_dims": 3, "patch_size": (32, 32, 32)}, "whole 3D volumes"),
    ({"spatial_dims": 3, "covariates": ("age",)}, "one kind per data.covariates"),
])
def test_data_it_cannot_train_on_is_refused_when_the_config_is_built(data, match):
    with pytest.raises(ValueError, match=match):
        Config(data=DataConfig(**data), model=DualGlowConfig())


def test_registered_with_its_config():
    assert METHODS["dualglow"] is DualGlowMethod and DualGlowMethod.Config is DualGlowConfig
    assert DualGlowMethod.validation_metrics == ("nll", "mae", "mse")
    method = tiny()
    assert method.size_multiple == 4 and set(method.optimiser_groups()) == {"main"}


@pytest.mark.parametrize("side_kinds", [(), ("continuous",)])
def test_loss_is_eq_12_of_the_network_on_the_scaled_pet(side_kinds):
    method = tiny(side_kinds, pet_scale=2.0, quant_step=1 / 64)
    batch = batch_of(side=bool(side_kinds))
    if side_kinds:
        method.fit_covariates(batch["covariates"] + 5.0)
    method.train()
    torch.manual_seed(1)
    out = method.training_step(batch, "main")
    # the same noise draws by hand: eq. 12 from the network's log-densities of the dequantised pair
    method.eval()
    torch.manual_seed(1)
    x_mri = dequantize(batch["input"], 1 / 64)
    x_pet = dequantize(batch["target"] / 2.0, 1 / 64)
    side = None
    if side_kinds:
        side = (batch["covariates"] - method.side_mean) / method.side_std
    with torch.no_grad():
        logp = method.flow.log_prob(x_mri, x_pet, side)
    d = x_pet[0].numel()
    bpv = {k: float(((-v - d * math.log(1 / 64)) / (d * math.log(2.0))).mean()) for k, v in logp.items()}
    assert float(out["bpv_pet"]) == pytest.approx(bpv["pet"], rel=1e-5)
    assert float(out["bpv_mri"]) == pytest.approx(bpv["mri"], rel=1e-5)
    expected = bpv["pet"] + 1e-3 * bpv["mri"]
    if side_kinds:
        expected += 0.01 * (float(out["side_pet"]) + float(out["side_mri"]))
    assert float(out["loss"].detach()) == pytest.approx(expected, rel=1e-5)
    assert out["loss"].requires_grad and not out["bpv_pet"].requires_grad


def test_side_information_is_standardised_with_the_training_statistics():
    method = tiny(("continuous", "binary"))
    values = torch.tensor([[60.0, 1.0], [70.0, 0.0], [80.0, 1.0], [90.0, 0.0]])
    with pytest.raises(RuntimeError, match="fit_covariates"):
        method.side(values, 4)
    method.fit_covariates(values)
    ages = values[:, 0].numpy()
    expected_age = (ages - ages.mean()) / ages.std()
    side = method.side(values, 4)
    np.testing.assert_allclose(side[:, 0].numpy(), expected_age, rtol=1e-6)
    np.testing.assert_array_equal(side[:, 1].numpy(), values[:, 1].numpy())  # binary: unchanged
    state = method.state_dict()  # the statistics travel in every checkpoint
    assert {"side_mean", "side_std", "side_fitted"} <= set(state)
    other = tiny(("continuous", "binary"))
    other.load_state_dict(state)
    torch.testing.assert_close(other.side(values, 4), side)
    with pytest.raises(ValueError, match="side information"):
        method.side(None, 4)


def test_validation_sums_are_the_pet_nll_and_the_point_prediction_errors():
    method = tiny()
    batch = batch_of(3)
    method.train()
    method.training_step(batch, "main")  # actnorm initialisation
    method.eval()
    sums = method.validation_step(batch)
    metrics = sums.metrics()
    again = method.validation_step(batch)  # seeded dequantisation: the same number twice
    assert again.metrics()["nll"] == metrics["nll"]
    generator = torch.Generator().manual_seed(method.val_seed)
    with torch.no_grad():
        bpv = method.flow(batch["input"], batch["target"] / method.pet_scale, quant_step=method.quant_step,
                          generator=generator)["bpv_pet"]
    assert metrics["nll"] == pytest.approx(float(bpv), rel=1e-5)
    pred = method.predict(batch["input"])
    assert metrics["mae"] == pytest.approx(float((pred - batch["target"]).abs().mean()), rel=1e-5)
    assert sums.n == batch["target"].numel()


class Volumes(Dataset):
    def __init__(self, n: int = 6, side: bool = False) -> None:
        self.mri, self.pet, self.age = volumes(n, seed=3)
        self.side = side

    def __len__(self) -> int:
        return len(self.mri)

    def __getitem__(self, i: int) -> dict:
        item = {"input": self.mri[i], "target": self.pet[i], "mask": torch.ones_like(self.pet[i])}
        if self.side:
            item["covariates"] = self.age[i]
        return item


def _trainer(out, steps: int, side: bool = False, seed: int = 0, device: str = "cpu") -> Trainer:
    torch.manual_seed(seed)
    method = tiny(("continuous",) if side else ())
    if side:
        method.fit_covariates(Volumes(side=True).age)
    # validation draws from the global RNG (DataLoader seeds): the same schedule in every run compared
    cfg = TrainerConfig(out=str(out), max_steps=steps, val_every=4, checkpoint_every=4, progress=False,
                        log_every=1, seed=seed)
    return Trainer(method, [Volumes(side=side)], [Volumes(3, side=side)], trainer=cfg,
                   optim=OptimConfig(name="adamax", lr=1e-3, betas=(0.9, 0.999)), out=out, batch_size=2,
                   device=device)


@pytest.mark.parametrize("side", [False, True])
def test_a_seeded_short_run_lowers_the_nll_through_the_trainer(tmp_path, side, device):
    trainer = _trainer(tmp_path, 24, side, device=device)
    assert not trainer.method.flow.initialized
    trainer.train_iteration(next(iter(trainer._loader(trainer.train_data, [[(0, 0), (0, 1)]]))))
    assert trainer.method.flow.initialized  # actnorm initialised on the first training batch
    before = trainer.validate()
    trainer.fit()
    after = trainer.validate()
    # 24 AdaMax steps: the validation NLL (bits per voxel, seeded dequantisation) falls by > 0.25 bit
    assert after["nll"] < before["nll"] - 0.25, (before, after)
    assert np.isfinite(after["mae"])


def test_resume_is_bit_identical_and_keeps_the_actnorm_initialisation(tmp_path, device):
    straight = _trainer(tmp_path / "a", 8, side=True, device=device)
    straight.fit()
    half = _trainer(tmp_path / "b", 4, side=True, device=device)
    half.fit()
    resumed = _trainer(tmp_path / "b", 8, side=True, seed=0, device=device)
    # a fresh, uninitialised model: the checkpoint, not a second data-dependent init, sets actnorm
    assert not resumed.method.flow.initialized
    resumed.resume()
    assert resumed.method.flow.initialized
    state = resumed.method.state_dict()
    assert all(torch.equal(state[k], v) for k, v in half.method.state_dict().items())
    resumed.fit()
    for key, value in straight.method.state_dict().items():
        assert torch.equal(resumed.method.state_dict()[key], value), key
