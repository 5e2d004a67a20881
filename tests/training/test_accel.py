"""The trainer's speed switches: validated, exact where promised, invisible to checkpoints."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.data import TensorDataset

from neurotrans.config import TrainerConfig, load_config
from neurotrans.methods import ModelIO, build_method
from neurotrans.methods.pix2pix import Pix2PixConfig
from neurotrans.training import accel
from neurotrans.training.checkpoint import load_checkpoint
from neurotrans.training.run import train_from_config
from neurotrans.training.trainer import Trainer

CPU = torch.device("cpu")
OFF = {"fused_optimiser": False, "channels_last": False, "compile": False, "cpu_bf16": False}


def _method(seed: int = 0):
    torch.manual_seed(seed)
    cfg = Pix2PixConfig(generator="unet_pix2pix", generator_args={"base": 4, "depth": 3},
                        discriminator_args={"base": 4, "n_layers": 1})
    return build_method(cfg, ModelIO(in_channels=1))


def _train(switches: dict, tmp_path, steps: int = 3, method=None):
    """``steps`` pix2pix iterations on fixed random slices; the trainer afterwards."""
    method = method or _method()
    cfg = TrainerConfig(out=str(tmp_path), progress=False, **switches)
    # the switches are the CPU's (on a GPU machine, device auto would train in CUDA's bf16 instead)
    trainer = Trainer(method, [TensorDataset(torch.zeros(1))], [], trainer=cfg, optim=load_config({}).optim,
                      out=tmp_path, batch_size=4, device=CPU)
    g = torch.Generator().manual_seed(1)
    batch = {"input": torch.rand(4, 1, 16, 24, generator=g), "target": torch.rand(4, 1, 16, 24, generator=g)}
    torch.manual_seed(2)  # dropout
    for _ in range(steps):
        trainer.train_iteration(batch)
    return trainer


def _state(trainer: Trainer) -> dict[str, torch.Tensor]:
    return trainer.method.state_dict()


@pytest.mark.parametrize("key", ["fused_optimiser", "channels_last", "compile"])
def test_switches_take_true_false_or_auto(key):
    for value in (True, False, "auto"):
        assert getattr(TrainerConfig(**{key: value}), key) == value
    with pytest.raises(ValueError, match=f"trainer.{key} must be true, false or auto"):
        TrainerConfig(**{key: "yes"})
    assert getattr(load_config({}, [f"trainer.{key}=true"]).trainer, key) is True
    with pytest.raises(ValueError, match=f"trainer.{key}"):
        load_config({}, [f"trainer.{key}=fast"])


def test_cpu_bf16_is_a_plain_bool():
    assert load_config({}, ["trainer.cpu_bf16=true"]).trainer.cpu_bf16 is True
    with pytest.raises(ValueError, match="trainer.cpu_bf16 must be true or false"):
        TrainerConfig(cpu_bf16="auto")  # type: ignore[arg-type]


def test_auto_resolves_as_measured():
    assert accel.resolve(TrainerConfig(), CPU) == {"fused_optimiser": True, "cpu_bf16": False,
                                                   "channels_last": False, "compile": False}
    assert accel.resolve(TrainerConfig(cpu_bf16=True), CPU)["channels_last"] is False
    cuda = accel.resolve(TrainerConfig(cpu_bf16=True), torch.device("cuda"))  # resolving touches no GPU
    assert cuda == {"fused_optimiser": False, "cpu_bf16": False, "channels_last": False, "compile": False}
    assert accel.resolve(TrainerConfig(**{**OFF, "channels_last": True}), CPU)["channels_last"] is True
    assert accel.resolve(TrainerConfig(cpu_bf16=True), CPU, mixed_precision=False)["cpu_bf16"] is False  # flows


def test_the_trainer_builds_fused_optimisers_with_the_groups_hyper_parameters(tmp_path):
    trainer = _train({**OFF, "fused_optimiser": True}, tmp_path, steps=0)
    for opt in trainer.optimisers.values():  # pix2pix: D and G, Adam(2e-4, (0.5, 0.999))
        assert opt.defaults["fused"] and all(g["fused"] for g in opt.param_groups)
        assert all(g["lr"] == 2e-4 and g["betas"] == (0.5, 0.999) for g in opt.param_groups)
    assert not any(o.defaults.get("fused") for o in _train(OFF, tmp_path / "off", steps=0).optimisers.values())
    cfg = TrainerConfig(fused_optimiser=True)
    assert accel.fused_kwargs(torch.optim.Adamax, cfg, CPU) == {}  # no fused kernel: plain
    assert accel.fused_kwargs(torch.optim.AdamW, cfg, CPU) == {"fused": True}


@pytest.mark.parametrize("switches", [{"fused_optimiser": True}, {"channels_last": True},
                                      {"fused_optimiser": True, "channels_last": True}])
def test_exact_switches_train_to_the_same_weights(switches, tmp_path):
    """fp32 switches change the kernels, not the arithmetic: same weights up to float rounding."""
    ref = _state(_train(OFF, tmp_path / "ref"))
    got = _state(_train({**OFF, **switches}, tmp_path / "got"))
    assert ref.keys() == got.keys()
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=1e-4, atol=1e-6, msg=k)


def test_compiled_training_matches_eager(tmp_path, monkeypatch):
    """torch.compile (inductor, C++ kernels) trains to the eager weights; dropout from the eager RNG."""
    import torch._dynamo
    import torch._inductor.config

    monkeypatch.setattr(torch._inductor.config, "fallback_random", True)
    ref = _state(_train(OFF, tmp_path / "ref"))
    try:
        got = _state(_train({**OFF, "compile": True}, tmp_path / "got"))
    finally:
        torch._dynamo.reset()
    assert ref.keys() == got.keys()
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=1e-4, atol=1e-6, msg=k)


def test_bf16_gradients_follow_fp32(tmp_path):
    """bf16 autocast rounds the convolutions' operands: first-step gradients point the same way."""
    ref = _train(OFF, tmp_path / "ref", steps=1).method
    got = _train({**OFF, "cpu_bf16": True}, tmp_path / "got", steps=1).method
    for (name, p), q in zip(ref.named_parameters(), got.parameters(), strict=True):
        assert q.dtype == torch.float32 and q.grad is not None and q.grad.dtype == torch.float32
        if p.grad.norm() > 0:
            cos = torch.nn.functional.cosine_similarity(p.grad.flatten(), q.grad.flatten(), dim=0)
            assert cos > 0.95, name
    out = got.networks["G"](torch.rand(2, 1, 16, 24))
    assert out.dtype == torch.float32  # networks hand back fp32 to the losses


def test_autocast_ends_with_the_forward_even_when_it_fails():
    net = accel.autocast_forward(torch.nn.Conv2d(2, 3, 3), "cpu", torch.bfloat16)
    with pytest.raises(RuntimeError):
        net(torch.rand(1, 5, 8, 8))  # wrong channel count
    assert not torch.is_autocast_enabled("cpu")
    assert net(torch.rand(1, 2, 8, 8)).dtype == torch.float32 and not torch.is_autocast_enabled("cpu")


def test_switches_leave_checkpoints_and_copies_alone(tmp_path):
    method = _method()
    keys = {k: (v.shape, v.dtype) for k, v in method.state_dict().items()}
    switches = {"fused_optimiser": True, "channels_last": True, "cpu_bf16": True, "compile": True}
    trainer = Trainer(method, [TensorDataset(torch.zeros(1))], [], trainer=TrainerConfig(out=str(tmp_path), **switches),
                      optim=load_config({}).optim, out=tmp_path, batch_size=4, device=CPU)
    assert {k: (v.shape, v.dtype) for k, v in trainer.method.state_dict().items()} == keys  # no _orig_mod.
    assert all(getattr(net, "_compiled_call_impl", None) is not None for net in method.networks.values())
    payload = trainer.checkpoint_payload()
    assert set(payload["method_state"]) == set(keys)
    copy.deepcopy(method)  # hooks are plain objects: the method still copies


def test_resume_with_bf16_and_channels_last_is_exact(tiny_cohort, tmp_path):
    """A run stopped at a checkpoint and resumed with the switches on ends with the same weights."""
    model = {"method": "pix2pix", "generator": "unet_pix2pix", "generator_args": {"base": 4, "depth": 2},
             "discriminator_args": {"base": 4, "n_layers": 1}}
    cfg = {"model": model,
           "data": {"manifest": str(tiny_cohort), "voxel_size": None, "normalisation": {"FDG": "zscore"},
                    "batch_size": 4},
           "split": {"kind": "fixed", "test_fraction": 0.34, "val_fraction": 0.17},
           "trainer": {"max_steps": 6, "val_every": 3, "checkpoint_every": 3, "progress": False,
                       "cpu_bf16": True, "channels_last": True}}
    full = train_from_config(cfg, out=tmp_path / "full", device="cpu")
    half = train_from_config(cfg, ["trainer.max_steps=3"], out=tmp_path / "half", device="cpu")
    resumed = train_from_config(cfg, out=half, resume=True, device="cpu")
    a = load_checkpoint(full / "checkpoints" / "last.pt")
    b = load_checkpoint(resumed / "checkpoints" / "last.pt")
    assert a["trainer"]["step"] == b["trainer"]["step"] == 6
    assert a["method_state"].keys() == b["method_state"].keys()
    assert all(torch.equal(a["method_state"][k], b["method_state"][k]) for k in a["method_state"])
    # and the checkpoint loads into a model built without any switch
    build_method(load_config(cfg).model, ModelIO(in_channels=1)).load_state_dict(a["method_state"])
