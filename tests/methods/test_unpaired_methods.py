"""UNIT and CycleGAN as methods: configs, optimiser groups, the objectives they step, both directions."""

from __future__ import annotations

import pytest
import torch

from neurotrans.config import dump_config, load_config
from neurotrans.errors import InputError
from neurotrans.losses import (
    CycleGANLossWeights,
    UNITLossWeights,
    cyclegan_discriminator_losses,
    cyclegan_generator_losses,
    unit_discriminator_losses,
    unit_generator_losses,
)
from neurotrans.methods import (
    METHODS,
    CycleGAN,
    ModelIO,
    UNITMethod,
    build_method,
    method_config_class,
)
from neurotrans.methods.cyclegan import CycleGANConfig, PooledFakes
from neurotrans.methods.unit import IntensityMap, UNITConfig

UNPAIRED = {"data": {"inputs": ["T1w"], "target": "T2w", "pairing": "unpaired",
                     "normalisation": {"T1w": "minmax", "T2w": "minmax"}}}
TINY_UNIT = {"generator_args": {"base": 4, "n_res_encoder": 1, "n_res_generator": 1},
             "discriminator_args": {"base": 4, "n_layers": 2, "n_scales": 2}}
TINY_CYCLEGAN = {"generator_args": {"base": 4, "n_blocks": 1}, "discriminator_args": {"base": 4, "n_layers": 1}}
UNIT_VARIANTS = [
    {},
    {"charbonnier": True},
    {"spectral_norm": True},
    {"attention": "generator"},
    {"attention": "generator", "charbonnier": True},
    {"charbonnier": True, "spectral_norm": True},
    {"attention": "encoder", "charbonnier": True, "spectral_norm": True},
]


def _unit(**switches) -> UNITMethod:
    return build_method(UNITConfig(**TINY_UNIT, **switches), ModelIO(in_channels=1))  # type: ignore[return-value]


def _cyclegan(**kw) -> CycleGAN:
    return build_method(CycleGANConfig(**{**TINY_CYCLEGAN, **kw}), ModelIO(in_channels=1))  # type: ignore[return-value]


def _batch(b: int = 2, hw: tuple[int, int] = (16, 20), seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"a": torch.rand(b, 1, *hw, generator=g), "b": torch.rand(b, 1, *hw, generator=g)}


@pytest.mark.parametrize("name, cls, switches", [
    ("unit", UNITConfig, ["model.charbonnier=true", "model.spectral_norm=true", "model.attention=encoder",
                          "model.generator_args.base=8"]),
    ("cyclegan", CycleGANConfig, ["model.identity=0", "model.pool_size=3", "model.generator_args.n_blocks=2"]),
])
def test_registry_and_config_round_trip(name, cls, switches, tmp_path):
    assert method_config_class(name) is cls and METHODS[name].Config is cls and METHODS[name].summary
    cfg = load_config({**UNPAIRED, "model": {"method": name}}, switches)
    assert isinstance(cfg.model, cls) and cfg.model.method == name
    path = tmp_path / "config.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg
    if name == "unit":
        assert cfg.model.charbonnier and cfg.model.spectral_norm and cfg.model.attention == "encoder"
        assert cfg.model.loss_weights().pixel == "charbonnier"


@pytest.mark.parametrize("model, data, match", [
    ({"method": "unit", "attention": "middle"}, {}, "attention"),
    ({"method": "unit", "generator_args": {"spectral_norm": True}}, {}, "model.spectral_norm"),
    ({"method": "unit", "data_range": [1.0, 0.0]}, {}, "data_range"),
    ({"method": "unit", "lambda_rec": -1.0}, {}, "rec"),
    ({"method": "cyclegan", "pool_size": -1}, {}, "pool_size"),
    ({"method": "unit"}, {"normalisation": {"T1w": "zscore"}}, "minmax"),
    ({"method": "cyclegan"}, {"target": "PIB", "normalisation": {"T1w": "minmax"}}, "PIB"),
    ({"method": "cyclegan"}, {"inputs": ["T1w", "FLAIR"]}, "one data.inputs"),
    ({"method": "unit"}, {"context": 1}, "context"),
    ({"method": "cyclegan"}, {"plane": "all"}, "plane"),
    ({"method": "unit"}, {"spatial_dims": 3}, "spatial_dims"),
    ({"method": "unit"}, {"augment": ["flip"]}, "augment"),
])
def test_bad_settings_are_refused_at_config_time(model, data, match):
    with pytest.raises(InputError, match=match):
        load_config({"data": {**UNPAIRED["data"], **data}, "model": model})


def test_final_activation_none_accepts_zscored_images():
    cfg = load_config({"data": {**UNPAIRED["data"], "normalisation": {"T1w": "zscore", "T2w": "zscore"}},
                       "model": {"method": "unit", "generator_args": {"final_activation": "none"},
                                 "data_range": None}})
    assert cfg.model.data_range is None


@pytest.mark.parametrize("data_range", [(0.0, 1.0), (-2.0, 3.0)])
def test_intensity_map_sends_the_data_range_onto_tanh_range_and_back(data_range):
    f = IntensityMap(data_range)
    x = torch.tensor([data_range[0], sum(data_range) / 2, data_range[1]])
    torch.testing.assert_close(f.to_net(x), torch.tensor([-1.0, 0.0, 1.0]))
    torch.testing.assert_close(f.from_net(f.to_net(x)), x)
    assert IntensityMap(None).to_net(x) is x


def _changed(method, before) -> set[str]:
    return {k.split(".")[1] for k, p in method.named_parameters() if not torch.equal(p.detach(), before[k])}


@pytest.mark.parametrize("make", [*(lambda s=s: _unit(**s) for s in UNIT_VARIANTS), _cyclegan],
                         ids=[*("unit-" + ("+".join(f"{k}={v}" for k, v in s.items()) or "baseline")
                                for s in UNIT_VARIANTS), "cyclegan"])
def test_each_group_gets_gradients_and_only_its_networks_change(make):
    torch.manual_seed(0)
    method = make()
    groups = method.optimiser_groups()
    assert sorted(method.schedule(0)) == sorted(groups) == ["D", "G"]
    owner = {net: g for g, group in groups.items() for net in group.networks}
    assert sorted(owner) == sorted(method.networks)  # every network belongs to exactly one group
    optimisers = {g: torch.optim.Adam([p for n in grp.networks for p in method.networks[n].parameters()], lr=1e-2)
                  for g, grp in groups.items()}
    batch = _batch()
    method.train()
    for group in method.schedule(0):
        before = {k: p.detach().clone() for k, p in method.named_parameters()}
        optimisers[group].zero_grad(set_to_none=True)
        method.zero_grad(set_to_none=True)
        out = method.training_step(batch, group)
        assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
        out["loss"].backward()
        for name, p in method.named_parameters():
            net = name.split(".")[1]
            if owner[net] == group:
                assert p.grad is not None and torch.isfinite(p.grad).all(), (group, name)
            else:
                assert p.grad is None, (group, name)  # the other group's networks are frozen or detached
        optimisers[group].step()
        assert _changed(method, before) == set(groups[group].networks), group


@pytest.mark.parametrize("switches", [{}, {"charbonnier": True, "spectral_norm": True, "attention": "encoder"}])
def test_unit_steps_are_the_unit_objectives_on_images_in_tanh_range(switches):
    method = _unit(**switches).train()
    n, batch = method.networks, _batch()
    x_a, x_b = 2 * batch["a"] - 1, 2 * batch["b"] - 1  # min-max [0, 1] -> [-1, 1]
    weights = UNITLossWeights(pixel="charbonnier" if switches.get("charbonnier") else "l1")
    for group, reference in (("D", lambda: unit_discriminator_losses(n["unit"], n["d_a"], n["d_b"], x_a, x_b,
                                                                     weights)),
                             ("G", lambda: unit_generator_losses(n["unit"], n["d_a"], n["d_b"], x_a, x_b,
                                                                 weights)[0])):
        state = {k: v.clone() for k, v in method.state_dict().items()}  # spectral-norm vectors move per forward
        torch.manual_seed(1)
        ours = method.training_step(batch, group)
        method.load_state_dict(state)
        torch.manual_seed(1)
        ref = reference()
        assert ours.keys() == ref.keys()
        for key in ref:
            torch.testing.assert_close(ours[key], ref[key], msg=f"{group} {key}")


def test_cyclegan_d_step_scores_the_g_steps_fakes():
    method = _cyclegan(pool_size=0).train()
    n, batch = method.networks, _batch()
    x_a, x_b = 2 * batch["a"] - 1, 2 * batch["b"] - 1
    torch.manual_seed(0)
    g_out = method.training_step(batch, "G")
    d_out = method.training_step(batch, "D")
    g_ref, images = cyclegan_generator_losses(n["g_ab"], n["g_ba"], n["d_a"], n["d_b"], x_a, x_b,
                                              CycleGANLossWeights())
    for key in g_ref:
        torch.testing.assert_close(g_out[key], g_ref[key], msg=key)
    ref = cyclegan_discriminator_losses(n["d_a"], n["d_b"], x_a, x_b, images["fake_a"], images["fake_b"])
    for key in ref:
        torch.testing.assert_close(d_out[key], ref[key], msg=key)


def test_image_pool_state_travels_in_the_state_dict():
    torch.manual_seed(0)
    fakes = [torch.rand(2, 1, 4, 4) for _ in range(6)]
    pool = PooledFakes(3, seed=5)
    for x in fakes[:3]:
        pool.query(x)
    state = {k: v.clone() for k, v in pool.state_dict().items()}
    later = [pool.query(x) for x in fakes[3:]]
    restored = PooledFakes(3, seed=99)  # another seed: everything must come from the state
    restored.load_state_dict(state)
    assert len(restored.pool) == 3
    for x, expected in zip(fakes[3:], later, strict=True):
        torch.testing.assert_close(restored.query(x), expected)


@pytest.mark.parametrize("make", [_unit, _cyclegan], ids=["unit", "cyclegan"])
def test_both_directions_in_eval_mode(make):
    method = make().eval()
    batch = _batch()
    ab, ba = method.predict(batch["a"]), method.predict_reverse(batch["b"])
    assert ab.shape == batch["a"].shape and ba.shape == batch["b"].shape
    # tanh outputs come back in the min-max range, deterministically (no latent noise, no dropout)
    assert ab.min() >= 0 and ab.max() <= 1 and torch.equal(ab, method.predict(batch["a"]))
    val = method.validation_step({"input": batch["a"], "target": batch["b"], "mask": torch.ones_like(batch["b"])})
    assert val.n == batch["b"].numel() and val.metrics()["mae"] >= 0
