"""Every method: finite losses and gradients on tiny inputs; pix2pix against a hand-written step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from neurotrans.config import ModelConfig
from neurotrans.methods import METHODS, ESITMethod, Pix2Pix, SupervisedMethod, build_method
from neurotrans.networks import build_network


def _batch(c: int = 2, b: int = 2, hw: tuple[int, int] = (16, 16)) -> dict:
    g = torch.Generator().manual_seed(0)
    return {"input": torch.rand(b, c, *hw, generator=g), "target": torch.rand(b, 1, *hw, generator=g),
            "mask": (torch.rand(b, 1, *hw, generator=g) > 0.3).float()}


def _small(method: str) -> ModelConfig:
    if method == "esit":
        return ModelConfig(method="esit", generator="esit",
                           generator_args={"n_regions": 4, "features": [8], "tissue_features": [8]})
    return ModelConfig(method=method, generator="unet_pix2pix", generator_args={"base": 4, "depth": 3},
                       discriminator_args={"base": 4, "n_layers": 1}, loss="charbonnier" if method == "supervised"
                       else "l1")


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_group_gives_finite_losses_and_gradients(name):
    torch.manual_seed(0)
    inputs = ("GM", "WM", "CSF", "coords") if name == "esit" else ("T1w", "T2w")
    method = build_method(_small(name), inputs, 6 if name == "esit" else 2)
    batch = _batch(6 if name == "esit" else 2)
    groups = method.optimiser_groups()
    assert set(method.schedule()) == set(groups)
    for group in method.schedule():
        method.zero_grad(set_to_none=True)
        out = method.training_step(batch, group)
        assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
        out["loss"].backward()
        for net in groups[group].networks:
            for pname, p in method.networks[net].named_parameters():
                assert p.grad is not None and torch.isfinite(p.grad).all(), (group, net, pname)
    assert method.predict(batch["input"]).shape == batch["target"].shape
    val = method.validation_step(batch)
    assert val["n"] == float(batch["mask"].sum())


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
        build_method(ModelConfig(method="pix2px"), ("T1w",), 1)
    with pytest.raises(ValueError, match="coords"):
        build_method(_small("esit"), ("GM", "WM", "CSF"), 3)
    with pytest.raises(ValueError, match="d_steps"):
        Pix2Pix(net, net, d_steps=0)
    assert isinstance(build_method(_small("esit"), ("GM", "coords"), 4), ESITMethod)
    assert build_method(_small("pix2pix"), ("T1w",), 1).size_multiple == 8
