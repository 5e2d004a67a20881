"""Every method: finite losses and gradients on tiny inputs; pix2pix against a hand-written step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from neurotrans.config import config_from_dict
from neurotrans.methods import (
    METHODS,
    ErrorSums,
    ESITMethod,
    ModelIO,
    NLLSums,
    Pix2Pix,
    SupervisedMethod,
    build_method,
    method_config_class,
)
from neurotrans.methods.cyclegan import CycleGANConfig
from neurotrans.methods.dualglow import DualGlowConfig
from neurotrans.methods.esit import ESITConfig
from neurotrans.methods.pix2pix import Pix2PixConfig
from neurotrans.methods.supervised import SupervisedConfig
from neurotrans.methods.unit import UNITConfig
from neurotrans.networks import build_network


def _batch(c: int = 2, b: int = 2, hw: tuple[int, ...] = (16, 16)) -> dict:
    g = torch.Generator().manual_seed(0)
    return {"input": torch.rand(b, c, *hw, generator=g), "target": torch.rand(b, 1, *hw, generator=g),
            "mask": (torch.rand(b, 1, *hw, generator=g) > 0.3).float()}


def _small(method: str):
    gan = {"generator_args": {"base": 2, "depth": 2}, "discriminator_args": {"patch_size": 8, "features": [4]}}
    if method in ("cgan", "cfsagan"):  # the thesis's myelin GANs, in 2D here
        return method_config_class(method)(generator="unet_sketcher_z", discriminator="patch_classifier", **gan)
    if method == "cascade":
        return method_config_class(method)(stages=({"generator": "unet_sketcher_z", "steps": 1, **gan},
                                                   {"generator": "unet_sketcher", "loss": "l1", **gan}))
    if method == "esit":
        return ESITConfig(generator="esit", generator_args={"n_regions": 4, "features": [8], "tissue_features": [8]})
    if method == "unit":
        return UNITConfig(generator_args={"base": 4, "n_res_encoder": 1, "n_res_generator": 1},
                          discriminator_args={"base": 4, "n_layers": 2, "n_scales": 2})
    if method == "cyclegan":  # two input channels, one target: no identity term
        return CycleGANConfig(generator_args={"base": 4, "n_blocks": 1}, discriminator_args={"base": 4, "n_layers": 1},
                              identity=0.0)
    if method == "dualglow":  # 3D whole volumes
        return DualGlowConfig(levels=2, steps=1, hidden=4, relation_hidden=4, relation_layers=2, relation_kernel=3)
    if method == "supervised":
        return SupervisedConfig(generator="unet_pix2pix", generator_args={"base": 4, "depth": 3}, loss="charbonnier")
    return Pix2PixConfig(generator="unet_pix2pix", generator_args={"base": 4, "depth": 3},
                         discriminator_args={"base": 4, "n_layers": 1})


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_group_gives_finite_losses_and_gradients(name):
    torch.manual_seed(0)
    inputs = ("GM", "WM", "CSF", "coords") if name == "esit" else ("T1w", "T2w")
    dims = 3 if name == "dualglow" else 2
    method = build_method(_small(name), ModelIO(in_channels=6 if name == "esit" else 2, inputs=inputs,
                                                spatial_dims=dims))
    batch = _batch(6 if name == "esit" else 2, hw=(8, 8, 8) if dims == 3 else (16, 16))
    groups = method.optimiser_groups()
    scheduled = list(dict.fromkeys(g for step in (0, 10**6) for g in method.schedule(step)))  # a cascade's stages
    assert set(scheduled) == set(groups)
    for group in scheduled:
        method.zero_grad(set_to_none=True)
        out = method.training_step(batch, group)
        assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
        out["loss"].backward()
        for net in groups[group].networks:
            for pname, p in method.networks[net].named_parameters():
                assert p.grad is not None and torch.isfinite(p.grad).all(), (group, net, pname)
    assert method.predict(batch["input"]).shape == batch["target"].shape
    val = method.validation_step(batch)
    errors = val.errors if isinstance(val, NLLSums) else val  # likelihood methods add their point errors
    assert isinstance(errors, ErrorSums) and errors.n == float(batch["mask"].sum())
    assert set(val.metrics()) == set(type(method).validation_metrics)


def test_pix2pix_steps_equal_the_reference_losses():
    torch.manual_seed(0)
    G = build_network("unet_pix2pix", spatial_dims=2, in_channels=1, out_channels=1, base=4, depth=2, dropout=0.0)
    D = build_network("patchgan", spatial_dims=2, in_channels=2, base=4, n_layers=1)
    method = Pix2Pix(G, D, lambda_rec=100.0, d_steps=2).eval()  # eval: no dropout/BN noise between calls
    batch = _batch(1)
    x, y = batch["input"], batch["target"]
    with torch.no_grad():
        fake = G(x)
        real_logits, fake_logits = D(torch.cat([x, y], 1)), D(torch.cat([x, fake], 1))
        d_ref = 0.5 * (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                       + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        g_ref = (F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
                 + 100.0 * (fake - y).abs().mean())
    assert method.schedule() == ["D", "D", "G"]
    torch.testing.assert_close(method.training_step(batch, "D")["loss"], d_ref)
    torch.testing.assert_close(method.training_step(batch, "G")["loss"], g_ref)
    # the G step leaves no gradient on D's parameters (D is frozen while G learns)
    method.training_step(batch, "G")["loss"].backward()
    assert all(p.grad is None for p in D.parameters())


def test_supervised_losses_and_builders_check_names():
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    batch = _batch(1)
    for loss, ref in (("l1", F.l1_loss), ("mse", F.mse_loss)):
        out = SupervisedMethod(net, loss=loss).training_step(batch, "main")["loss"]
        torch.testing.assert_close(out, ref(net(batch["input"]), batch["target"]))
    with pytest.raises(ValueError, match="pix2pix"):
        config_from_dict({"model": {"method": "pix2px"}})
    with pytest.raises(ValueError, match="coords"):
        build_method(_small("esit"), ModelIO(in_channels=3, inputs=("GM", "WM", "CSF")))
    with pytest.raises(ValueError, match="d_steps"):
        Pix2Pix(net, net, d_steps=0)
    assert isinstance(build_method(_small("esit"), ModelIO(in_channels=4, inputs=("GM", "coords"))), ESITMethod)
    assert build_method(_small("pix2pix"), ModelIO(in_channels=1, inputs=("T1w",))).size_multiple == 8


@pytest.mark.parametrize("model, match", [
    ({"method": "pix2pix", "discrimnator": "patchgan"}, "discriminator"),  # another method's key or a typo
    ({"method": "supervised", "discriminator": "patchgan"}, "discriminator"),  # pix2pix's key on supervised
    ({"method": "supervised", "lambda_rec": 10}, "lambda_rec"),
    ({"method": "supervised", "generator": "unet3"}, "unet"),
    ({"method": "pix2pix", "d_steps": 0}, "d_steps"),
    ({"method": "pix2pix", "loss": "l3"}, "l1"),
    ({"method": "esit", "generator": "esit"}, "coords"),  # ESIT's own check of the data section
])
def test_each_method_validates_its_own_config(model, match):
    with pytest.raises(ValueError, match=match):
        config_from_dict({"model": model})


def test_method_configs_round_trip_and_pix2pix_uses_the_papers_init():
    for model in ({"method": "supervised", "loss": "mse"}, {"method": "pix2pix", "lambda_rec": 10.0},
                  {"method": "esit"}):
        data = {"inputs": ["GM", "WM", "CSF", "coords"]} if model["method"] == "esit" else {}
        cfg = config_from_dict({"model": model, "data": data})
        assert cfg.to_dict()["model"]["method"] == model["method"]
        assert config_from_dict(cfg.to_dict()) == cfg
    cfg = config_from_dict({"model": {"method": "pix2pix", "generator": "unet_pix2pix",
                                      "generator_args": {"base": 8, "depth": 3}}})
    assert cfg.model.init == "normal"
    torch.manual_seed(0)
    method = build_method(cfg.model, ModelIO(in_channels=1))
    weights = torch.cat([m.weight.detach().flatten() for m in method.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(float(weights.std()) - 0.02) < 0.002 and abs(float(weights.mean())) < 0.002
