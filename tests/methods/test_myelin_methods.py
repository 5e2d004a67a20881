"""The MS thesis's methods (cgan, cfsagan, cascade, supervised WL1/NWL1) on tiny 3D inputs.

Checked: every group's networks get gradients and only they change; each D step sees a
fresh fake; smoothed labels match a hand computation and resume from the state dict;
WL1 / NWL1 read the lesion / NAWM masks of ``batch["aux"]`` (against the loss functions
and the thesis formulas); configs validate themselves.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from neurotrans.config import config_from_dict
from neurotrans.losses import gan_targets, lesion_regions, nwl1_loss, weighted_l1_loss
from neurotrans.methods import METHODS, Cascade, ConditionalGAN, ModelIO, build_method
from neurotrans.methods.cascade import CascadeConfig

IO = ModelIO(in_channels=2, spatial_dims=3, inputs=("MTR", "DTI_RD"), aux=("lesions", "NAWM"))
D_ARGS = {"patch_size": 8, "features": [4, 8]}
G_ARGS = {"base": 2, "depth": 2}
CFS_G = {"features": [2, 4, 8], "attention_level": 1, "attention_pool": 2}
CFS_D = {"patch_size": 8, "features": [4, 8], "attention_level": 1, "attention_pool": 2}
DATA = {"inputs": ["MTR", "DTI_RD"], "target": "PIB", "aux": ["lesions", "NAWM"], "spatial_dims": 3}


def sketcher(**kw):
    return {"generator": "unet_sketcher_z", "generator_args": {**G_ARGS, "noise_at_eval": False},
            "discriminator_args": D_ARGS, **kw}


def refiner(**kw):
    return {"generator": "unet_sketcher", "generator_args": G_ARGS, "discriminator_args": D_ARGS, "loss": "wl1",
            "lr": 5e-5, **kw}


MODELS = {
    "cgan": {"method": "cgan", "generator_args": G_ARGS, "discriminator_args": D_ARGS, "loss": "wl1"},
    "cfsagan": {"method": "cfsagan", "generator_args": CFS_G, "discriminator_args": CFS_D, "loss": "nwl1"},
    "cascade": {"method": "cascade", "stages": [sketcher(steps=1), refiner(loss="nwl1")]},
    "supervised": {"method": "supervised", "generator": "unet_sketcher", "generator_args": G_ARGS, "loss": "wl1"},
}


def build(name: str, seed: int = 0, **model):
    torch.manual_seed(seed)
    cfg = config_from_dict({"model": {**MODELS[name], **model}, "data": DATA})
    return build_method(cfg.model, IO)


def batch(seed: int = 0, b: int = 2, size: int = 16) -> dict:
    g = torch.Generator().manual_seed(seed)
    shape = (b, 1, size, size, size)
    lesions = (torch.rand(shape, generator=g) > 0.9).float()
    nawm = (torch.rand(shape, generator=g) > 0.5).float() * (1 - lesions)
    return {"input": torch.randn(b, 2, size, size, size, generator=g), "target": torch.rand(shape, generator=g) + 1,
            "mask": torch.ones(shape), "aux": torch.cat([lesions, nawm], 1)}


def params(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.named_parameters()}


def test_registry_and_thesis_defaults():
    assert {"cgan", "cfsagan", "cascade"} <= set(METHODS)
    cfg = config_from_dict({"model": {"method": "cascade"}, "data": DATA})
    s, r = cfg.model.stages
    assert (s.generator, s.loss, s.lr, r.generator, r.loss, r.lr) == ("unet_sketcher_z", "l1", 1e-4, "unet_sketcher",
                                                                     "wl1", 5e-5)
    cfs = config_from_dict({"model": {"method": "cfsagan"}, "data": DATA}).model
    assert (cfs.d_steps, cfs.real_range, cfs.fake_range, cfs.lr) == (2, (0.9, 1.0), (0.0, 0.1), 1e-4)
    gan = config_from_dict({"model": {"method": "cgan"}}).model
    assert (gan.d_steps, gan.real_range, gan.fake_range, gan.lr, gan.discriminator) == (
        1, (1.0, 1.0), (0.0, 0.0), 1e-4, "patch_classifier")
    for model in MODELS.values():
        c = config_from_dict({"model": model, "data": DATA})
        assert config_from_dict(c.to_dict()) == c


@pytest.mark.parametrize("name, step", [("cgan", 0), ("cfsagan", 0), ("cascade", 0), ("cascade", 1),
                                        ("supervised", 0)])
def test_each_group_gets_gradients_and_only_its_networks_change(name, step):
    method = build(name)
    groups = method.optimiser_groups()
    x = batch()
    if isinstance(method, Cascade):
        assert method.schedule(step) == ([f"D{step}", f"G{step}"] if step == 0 else [f"D{step}"] * 1 + [f"G{step}"])
    for group in method.schedule(step):
        method.train()
        before = {n: params(net) for n, net in method.networks.items()}
        method.zero_grad(set_to_none=True)
        out = method.training_step(x, group)
        assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
        out["loss"].backward()
        mine = set(groups[group].networks)
        opt = torch.optim.SGD([p for n in mine for p in method.networks[n].parameters()], lr=0.1)
        for n, net in method.networks.items():
            for pname, p in net.named_parameters():
                if n in mine:
                    assert p.grad is not None and torch.isfinite(p.grad).all(), (group, n, pname)
                else:
                    assert p.grad is None, (group, n, pname)  # frozen D, earlier stages, idle stages
        opt.step()
        for n, net in method.networks.items():
            changed = any(not torch.equal(before[n][k], v) for k, v in net.named_parameters())
            assert changed == (n in mine), (group, n)


def test_cascade_freezes_earlier_stages_and_predicts_up_to_the_active_stage():
    method = build("cascade")
    x = batch()
    method.train()
    method.training_step(x, "G1")
    assert int(method.active_stage) == 1
    for name in ("G0", "D0"):
        net = method.networks[name]
        assert not net.training and not any(p.requires_grad for p in net.parameters())
    assert method.networks["G1"].training
    method.eval()
    with torch.no_grad():
        refined = method.predict(x["input"])
        sketch = method.networks["G0"](x["input"])
        torch.testing.assert_close(refined, method.networks["G1"](torch.cat([x["input"], sketch], 1)))
        method.active_stage.fill_(0)
        torch.testing.assert_close(method.predict(x["input"]), sketch)


@pytest.mark.parametrize("name, group", [("cfsagan", "D"), ("cascade", "D1")])
def test_every_discriminator_step_sees_a_fresh_fake(name, group):
    method = build(name, **({"d_steps": 2} if name == "cfsagan" else {}))
    if name == "cascade":
        method.d_steps[1] = 2
    gen = method.networks["G" if name == "cfsagan" else "G1"]
    disc = method.networks["D" if name == "cfsagan" else "D1"]
    fakes, seen = [], []
    gen.register_forward_hook(lambda m, i, o: fakes.append(o.detach().clone()))
    disc.register_forward_hook(lambda m, i, o: seen.append(i[0][:, -1:].detach().clone()))
    x = batch()
    schedule = method.schedule(0 if name == "cfsagan" else 5)
    assert schedule == [group, group, group.replace("D", "G")]
    method.train()
    for g in schedule:
        method.training_step(x, g)
    assert len(fakes) == 3  # one generator pass per step: never a cached fake
    assert not torch.allclose(fakes[0], fakes[1])  # a new draw of dropout (and z)
    # each D step scores the real PET, then the fake of its own step
    torch.testing.assert_close(seen[0], x["target"])
    torch.testing.assert_close(seen[1], fakes[0])
    torch.testing.assert_close(seen[3], fakes[1])


def test_smoothed_labels_match_a_hand_computation_and_resume_from_the_state_dict():
    method = build("cgan", real_range=[0.9, 1.0], fake_range=[0.0, 0.1])
    assert isinstance(method, ConditionalGAN)
    adv = method.gan.adversarial
    x = batch()
    method.train()
    start = adv.generator.get_state()
    out = method.training_step(x, "D")
    D = method.networks["D"]
    with torch.no_grad():
        real_logits = D(torch.cat([x["input"], x["target"]], 1))
    g = torch.Generator().set_state(start)
    t = gan_targets(real_logits[:, :1], (0.9, 1.0), g)
    assert float(t.min()) >= 0.9 and float(t.max()) <= 1.0 and float(t.std()) > 0
    logp = F.log_softmax(real_logits, 1)
    ref = -(t * logp[:, 1:] + (1 - t) * logp[:, :1]).sum() / x["input"].shape[0]
    torch.testing.assert_close(out["d_real"], ref)
    # the label generator travels in state_dict: a rebuilt method draws the same next targets
    state = copy.deepcopy(method.state_dict())
    twin = build("cgan", seed=5, real_range=[0.9, 1.0], fake_range=[0.0, 0.1])
    twin.load_state_dict(state)
    twin.train()
    torch.manual_seed(3)
    a = method.training_step(x, "D")
    torch.manual_seed(3)
    b = twin.training_step(x, "D")
    torch.testing.assert_close(a["d_real"], b["d_real"])
    torch.testing.assert_close(a["d_fake"], b["d_fake"])


def _hand_wl1(pred, target, les, nawm):
    total = 0.0
    for i in range(pred.shape[0]):
        err = (pred[i, 0] - target[i, 0]).abs()
        for region in (les[i, 0] > 0, (nawm[i, 0] > 0) & ~(les[i, 0] > 0), ~((les[i, 0] > 0) | (nawm[i, 0] > 0))):
            if region.any():
                total += float(err[region].mean())
    return total / pred.shape[0]


@pytest.mark.parametrize("name, loss", [("supervised", "wl1"), ("supervised", "nwl1"), ("cgan", "wl1"),
                                        ("cgan", "nwl1"), ("cascade", "nwl1")])
def test_region_losses_read_the_lesion_and_nawm_masks(name, loss):
    model = ({"stages": [sketcher(steps=1), refiner(loss=loss)]} if name == "cascade" else {"loss": loss})
    method = build(name, **model)
    method.eval()  # no dropout: the generator output is reproducible
    gen = method.networks[{"supervised": "net", "cgan": "G", "cascade": "G1"}[name]]
    outs = []
    gen.register_forward_hook(lambda m, i, o: outs.append(o.detach()))
    group = {"supervised": "main", "cgan": "G", "cascade": "G1"}[name]
    x = batch()
    got = method.training_step(x, group)
    rec = got["loss" if name == "supervised" else "g_rec"]
    pred, y = outs[-1], x["target"]
    les, nawm = x["aux"][:, :1], x["aux"][:, 1:]
    regions = lesion_regions(les, nawm)
    if loss == "wl1":
        torch.testing.assert_close(rec, weighted_l1_loss(pred, y, regions, per_image_voxels=False))
        assert float(rec.detach()) == pytest.approx(_hand_wl1(pred, y, les, nawm), rel=1e-5)
    else:
        torch.testing.assert_close(rec, nwl1_loss(pred, y, regions))
    moved = dict(x, aux=torch.roll(x["aux"], 3, dims=-1))
    outs.clear()
    rec2 = method.training_step(moved, group)["loss" if name == "supervised" else "g_rec"]
    assert not torch.allclose(rec, rec2)  # other masks, another loss: the masks are used


@pytest.mark.parametrize("model, match", [
    ({"method": "cascade", "stages": []}, "Sketcher"),
    ({"method": "cascade", "stages": [sketcher(steps=1)] * 5}, "0-3"),
    ({"method": "cascade", "stages": [sketcher(steps=0), refiner()]}, "steps"),
    ({"method": "cascade", "stages": [sketcher(steps=1, los="l1"), refiner()]}, "loss"),
    ({"method": "cascade", "stages": [sketcher(steps=1, d_steps=0), refiner()]}, "d_steps"),
    ({"method": "cascade", "stages": [sketcher(steps=1, real_range=[0.9, 1.2]), refiner()]}, "real_range"),
    ({"method": "cgan", "loss": "l2"}, "nwl1"),
    ({"method": "cgan", "discriminator": "patch_clasifier"}, "patch_classifier"),
    ({"method": "cfsagan", "lr": 0.0}, "lr"),
])
def test_configs_refuse_bad_values(model, match):
    with pytest.raises(ValueError, match=match):
        config_from_dict({"model": model, "data": DATA})


@pytest.mark.parametrize("model", [MODELS["cgan"], MODELS["cascade"], MODELS["supervised"]])
def test_region_losses_need_the_lesion_and_nawm_masks_in_the_data(model):
    with pytest.raises(ValueError, match="data.aux"):
        config_from_dict({"model": model, "data": {**DATA, "aux": ["lesions"]}})


def test_cascade_takes_one_to_three_refiners_and_schedules_each_in_turn():
    stages = [sketcher(steps=2), refiner(steps=3), refiner(steps=1), refiner(loss="l1")]
    cfg = config_from_dict({"model": {"method": "cascade", "stages": stages}, "data": DATA})
    assert isinstance(cfg.model, CascadeConfig) and len(cfg.model.stages) == 4
    torch.manual_seed(0)
    method = build_method(cfg.model, IO)
    assert [method.stage_at(s) for s in range(8)] == [0, 0, 1, 1, 1, 2, 3, 3]
    assert method.networks["G3"].encoders[0].convs[0][0].in_channels == 3  # MRI + previous stage
    assert method.networks["D3"].in_channels == 3  # MRI + PET, never the sketch
    assert set(method.optimiser_groups()) == {f"{k}{i}" for k in "DG" for i in range(4)}
    assert method.optimiser_groups()["G1"].hparams == {"lr": 5e-5}
    method.eval()
    method.active_stage.fill_(3)
    assert method.predict(batch()["input"]).shape == (2, 1, 16, 16, 16)
