"""DUAL-GLOW: densities against autograd and torch.distributions, gradients (with reversal),
a seeded training run, deterministic sampling, uncertainty maps and argument checks."""

from __future__ import annotations

import math

import pytest
import torch

from neurotrans.networks import DualGlow
from neurotrans.networks.blocks.latent_heads import RelationNet, SideHead, side_loss

TINY = dict(levels=2, steps=2, hidden=6, relation_hidden=6, relation_layers=3, side_hidden=6)
SIDES = {(): None, ("continuous",): 1, ("continuous", "binary"): 2}


def make_side(kinds, batch, seed=0):
    if not kinds:
        return None
    g = torch.Generator().manual_seed(seed)
    cols = [torch.randn(batch, generator=g) if k == "continuous"
            else torch.randint(0, 2, (batch,), generator=g).float() for k in kinds]  # fmt: skip
    return torch.stack(cols, 1)


def ready_model(perturb, spatial_dims, size, *, kinds=(), dtype=torch.float32, batch=4, **kwargs):
    """A tiny DualGlow with initialised actnorms and every parameter off its initial value."""
    torch.manual_seed(0)
    model = DualGlow(spatial_dims, side_kinds=kinds, **{**TINY, **kwargs}).to(dtype).train()
    g = torch.Generator().manual_seed(1)
    x_mri = torch.rand(batch, 1, *size, generator=g, dtype=dtype)
    x_pet = torch.rand(batch, 1, *size, generator=g, dtype=dtype)
    side = make_side(kinds, batch)
    model(x_mri, x_pet, None if side is None else side.to(dtype), quant_step=1 / 256)
    perturb(model)
    return model.eval()


CASES = [
    (3, (4, 4, 4), ()),
    (3, (4, 4, 4), ("continuous",)),
    (2, (8, 4), ()),
    (2, (4, 8), ("continuous", "binary")),
]
IDS = [f"{sd}d-{len(k)}side" for sd, _, k in CASES]


def _jacobian_logdet(flow, x):
    def f(flat):
        latents, _ = flow(flat.view(x.shape))
        return torch.cat([z.flatten() for z in latents])

    sign, logabsdet = torch.linalg.slogdet(torch.autograd.functional.jacobian(f, x.flatten()))
    assert sign != 0
    return logabsdet


# without side information the top relation always sees the MRI: top_uses_mri only varies with it
LOG_PROB_CASES = [(*case, top) for case in CASES for top in ((False, True) if case[2] else (False,))]
LOG_PROB_IDS = [f"{sd}d-{len(k)}side-top_mri={top}" for sd, _, k, top in LOG_PROB_CASES]


@pytest.mark.parametrize("cohort_prior", [False, True], ids=["zero_prior", "cohort_prior"])
@pytest.mark.parametrize(("spatial_dims", "size", "kinds", "top_uses_mri"), LOG_PROB_CASES, ids=LOG_PROB_IDS)
def test_log_prob_equals_gaussians_plus_autograd_jacobians(
    perturb, spatial_dims, size, kinds, top_uses_mri, cohort_prior
):
    model = ready_model(perturb, spatial_dims, size, kinds=kinds, dtype=torch.double,
                        top_uses_mri_with_side=top_uses_mri, cohort_prior=cohort_prior)  # fmt: skip
    g = torch.Generator().manual_seed(5)
    x_mri = torch.rand(1, 1, *size, generator=g, dtype=torch.double)
    x_pet = torch.rand(1, 1, *size, generator=g, dtype=torch.double)
    side = make_side(kinds, 1, seed=3)
    side = None if side is None else side.double()
    out = model.log_prob(x_mri, x_pet, side)

    z_mri, _ = model.mri_flow(x_mri)
    z_pet, _ = model.pet_flow(x_pet)
    prior = model.pet_prior(z_mri, [z.shape for z in z_pet], side)
    logp_pet = sum(torch.distributions.Normal(m, torch.exp(s)).log_prob(z).sum()
                   for z, (m, s) in zip(z_pet, prior, strict=True))  # fmt: skip
    logp_mri = sum(torch.distributions.Normal(0.0, 1.0).log_prob(z).sum() for z in z_mri)
    expected_pet = logp_pet + _jacobian_logdet(model.pet_flow, x_pet)
    expected_mri = logp_mri + _jacobian_logdet(model.mri_flow, x_mri)
    assert out["pet"].item() == pytest.approx(expected_pet.item(), abs=1e-8)
    assert out["mri"].item() == pytest.approx(expected_mri.item(), abs=1e-8)

    # the loss is eq. 12 in bits per voxel of the image quantised at the step
    d, step = x_pet[0].numel(), 1 / 128
    loss = model(x_mri, x_pet, side, quant_step=step, noise=False)
    bpv = lambda logp: (-logp - d * math.log(step)) / (d * math.log(2))  # noqa: E731
    assert loss["bpv_pet"].item() == pytest.approx(bpv(expected_pet).item(), abs=1e-8)
    assert loss["bpv_mri"].item() == pytest.approx(bpv(expected_mri).item(), abs=1e-8)
    side_term = 0.0 if side is None else 0.01 * (loss["side_pet"] + loss["side_mri"]).item()
    assert loss["loss"].item() == pytest.approx(
        loss["bpv_pet"].item() + 1e-3 * loss["bpv_mri"].item() + side_term, abs=1e-10
    )


@pytest.mark.parametrize("cohort_prior", [False, True], ids=["zero_prior", "cohort_prior"])
@pytest.mark.parametrize(("spatial_dims", "size", "kinds"), CASES, ids=IDS)
def test_both_flows_invert_and_decoding_the_point_prediction_gives_the_conditional_means(
    perturb, spatial_dims, size, kinds, cohort_prior
):
    model = ready_model(perturb, spatial_dims, size, kinds=kinds, cohort_prior=cohort_prior)
    g = torch.Generator().manual_seed(2)
    x_mri = torch.rand(2, 1, *size, generator=g)
    side = make_side(kinds, 2, seed=4)
    for flow in (model.mri_flow, model.pet_flow):
        z, _ = flow(x_mri)
        torch.testing.assert_close(flow.inverse(z), x_mri, rtol=0, atol=1e-5)
    # float64 for the round trip through both flows and the relation nets
    model = model.double()
    x_mri, side = x_mri.double(), None if side is None else side.double()
    for temperature in (0.0, 0.7):
        x_pet = model.sample(x_mri, temperature, side, torch.Generator().manual_seed(9))
        z_pet, _ = model.pet_flow(x_pet)
        z_mri, _ = model.mri_flow(x_mri)
        prior = model.pet_prior(z_mri, [z.shape for z in z_pet], side)
        g = torch.Generator().manual_seed(9)
        for z, (mean, logs) in zip(z_pet, prior, strict=True):
            eps = torch.randn(mean.shape, generator=g, dtype=mean.dtype) if temperature else 0.0
            torch.testing.assert_close(z, mean + temperature * torch.exp(logs) * eps,
                                       rtol=0, atol=1e-10)  # fmt: skip


@pytest.mark.parametrize("top_uses_mri", [False, True])
def test_every_parameter_gets_a_gradient(perturb, top_uses_mri):
    kinds = ("continuous", "binary")
    model = ready_model(perturb, 3, (4, 4, 4), kinds=kinds, top_uses_mri_with_side=top_uses_mri)
    model.train()
    g = torch.Generator().manual_seed(3)
    x_mri, x_pet = torch.rand(3, 1, 4, 4, 4, generator=g), torch.rand(3, 1, 4, 4, 4, generator=g)
    out = model(x_mri, x_pet, make_side(kinds, 3), quant_step=0.01)
    out["loss"].backward()
    assert set(out) == {"loss", "bpv_pet", "bpv_mri", "side_pet", "side_mri"}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in out.values())
    names = [n for n, _ in model.named_parameters()]
    assert any(n.startswith("relations.") for n in names)
    assert any(n.startswith("mri_heads.") for n in names) and any("pet_head" in n for n in names)
    assert any("side_hidden" in n for n in names) == top_uses_mri
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


def test_gradient_reversal_flips_the_mri_heads_effect_on_the_mri_flow(perturb):
    kinds = ("continuous",)
    model = ready_model(perturb, 3, (8, 8, 8), kinds=kinds).train()
    x_mri = torch.rand(3, 1, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    side = make_side(kinds, 3)
    flow_params = list(model.mri_flow.parameters())

    def flow_grads(level: int, bypass_reversal: bool) -> list[torch.Tensor]:
        z, _ = model.mri_flow(x_mri)
        head = model.mri_heads[level]
        pred = head.net(z[level]) if bypass_reversal else head(z[level])
        return torch.autograd.grad(side_loss(pred, side, kinds), flow_params, allow_unused=True)

    for level in range(model.n_levels):
        plain, through_head = flow_grads(level, True), flow_grads(level, False)
        sign = -1.0 if level < model.n_levels - 1 else 1.0  # the top MRI head keeps c
        assert isinstance(model.mri_heads[level].reversal, torch.nn.Identity) == (sign > 0)
        n_nonzero = 0
        for a, b in zip(plain, through_head, strict=True):
            if a is None:
                assert b is None
                continue
            torch.testing.assert_close(b, sign * a)
            n_nonzero += int(a.abs().sum() > 0)
        assert n_nonzero > 0
    assert isinstance(model.pet_head.reversal, torch.nn.Identity)


def test_checkpointing_gives_the_same_loss_and_gradients(perturb):
    kinds = ("continuous",)
    g = torch.Generator().manual_seed(4)
    x_mri, x_pet = torch.rand(2, 1, 8, 8, 8, generator=g), torch.rand(2, 1, 8, 8, 8, generator=g)
    results = []
    for flag in (False, True):
        model = ready_model(perturb, 3, (8, 8, 8), kinds=kinds).train()
        model.checkpointing = flag
        assert model.mri_flow.checkpointing == model.pet_flow.checkpointing == flag
        loss = model(x_mri, x_pet, make_side(kinds, 2), quant_step=0.01, noise=False)["loss"]
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(a, b)


def _toy_pairs(n: int, size: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth random 'MRI' and a nonlinear 'PET' of it: PET = 0.3 + 0.5 MRI^2, in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, *[s // 2 for s in size], generator=g)
    mri = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
    pet = 0.3 + 0.5 * mri.square()
    return mri, pet


def _train(seed: int, steps: int) -> list[float]:
    torch.manual_seed(seed)
    model = DualGlow(2, levels=2, steps=2, hidden=8, relation_hidden=8, relation_layers=2)
    mri, pet = _toy_pairs(8, (8, 8), seed=0)
    opt = torch.optim.Adamax(model.parameters(), lr=1e-3)
    history = []
    for _ in range(steps):
        out = model(mri, pet, quant_step=1 / 256)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        history.append(out["bpv_pet"].item())
    return history


def test_a_seeded_short_adamax_run_lowers_the_nll_and_reproduces():
    history = _train(seed=0, steps=40)
    assert all(math.isfinite(h) for h in history)
    first, last = sum(history[:5]) / 5, sum(history[-5:]) / 5
    assert last < first - 0.3, (first, last)
    assert _train(seed=0, steps=5) == history[:5]


@pytest.mark.parametrize(("spatial_dims", "size", "kinds"), CASES[1:], ids=IDS[1:])
def test_sampling_is_deterministic_at_temperature_zero_and_seeded_otherwise(
    perturb, spatial_dims, size, kinds
):
    model = ready_model(perturb, spatial_dims, size, kinds=kinds)
    x_mri = torch.rand(2, 1, *size, generator=torch.Generator().manual_seed(0))
    side = make_side(kinds, 2)
    a = model.sample(x_mri, 0.0, side)
    torch.testing.assert_close(model.sample(x_mri, 0.0, side, torch.Generator()), a, rtol=0, atol=0)
    assert a.shape == x_mri.shape and torch.isfinite(a).all()
    s1 = model.sample(x_mri, 0.8, side, torch.Generator().manual_seed(1))
    s1b = model.sample(x_mri, 0.8, side, torch.Generator().manual_seed(1))
    s2 = model.sample(x_mri, 0.8, side, torch.Generator().manual_seed(2))
    assert torch.equal(s1, s1b) and not torch.equal(s1, s2) and not torch.equal(s1, a)
    if kinds:  # the side information moves the point prediction
        other = side.clone()
        other[:, 0] += 2.0
        assert not torch.allclose(model.sample(x_mri, 0.0, other), a)


def test_mean_and_sd_maps_match_stacked_samples(perturb):
    model = ready_model(perturb, 3, (4, 4, 4))
    x_mri = torch.rand(2, 1, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    mean, sd = model.sample_stats(x_mri, 5, 0.6, generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    stack = torch.stack([model.sample(x_mri, 0.6, None, g) for _ in range(5)])
    torch.testing.assert_close(mean, stack.mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sd, stack.std(0), rtol=1e-4, atol=1e-6)
    assert (sd > 0).all()
    mean0, sd0 = model.sample_stats(x_mri, 3, 0.0)
    assert torch.equal(sd0, torch.zeros_like(sd0))
    torch.testing.assert_close(mean0, model.sample(x_mri, 0.0), rtol=0, atol=1e-6)


BAD_KWARGS = [
    dict(spatial_dims=4), dict(levels=0), dict(steps=0), dict(hidden=0), dict(scale="softplus"),
    dict(relation_layers=0), dict(relation_hidden=0), dict(relation_kernel=4),
    dict(side_kinds=("age",)), dict(side_kinds=("continuous",), side_hidden=0),
    dict(side_weight=-0.01), dict(mri_weight=float("nan")), dict(mri_channels=0),
]  # fmt: skip


@pytest.mark.parametrize("kwargs", BAD_KWARGS)
def test_bad_hyper_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        DualGlow(**{**TINY, **kwargs})


def test_bad_inputs_raise_clear_errors():
    model = DualGlow(3, side_kinds=("continuous",), **TINY)
    x = torch.rand(2, 1, 8, 8, 8)
    with pytest.raises(RuntimeError, match="initialised"):
        model.sample(x, 0.0, torch.zeros(2, 1))
    with pytest.raises(ValueError, match=r"\(8, 8, 12\)"):
        model(torch.rand(2, 1, 8, 8, 10), torch.rand(2, 1, 8, 8, 10), torch.zeros(2, 1),
              quant_step=0.01)  # fmt: skip
    with pytest.raises(ValueError, match="side"):
        model(x, x, None, quant_step=0.01)
    with pytest.raises(ValueError, match="side"):
        model(x, x, torch.zeros(2, 2), quant_step=0.01)
    with pytest.raises(ValueError, match="same batch"):
        model(x, torch.rand(2, 1, 8, 8, 16), torch.zeros(2, 1), quant_step=0.01)
    with pytest.raises(ValueError, match="step"):
        model(x, x, torch.zeros(2, 1), quant_step=0.0)
    model(x, x, torch.zeros(2, 1), quant_step=0.01)
    with pytest.raises(ValueError, match="temperature"):
        model.sample(x, -1.0, torch.zeros(2, 1))
    with pytest.raises(ValueError, match="n_samples"):
        model.sample_stats(x, 1, 0.5, torch.zeros(2, 1))
    plain = DualGlow(3, **TINY)
    with pytest.raises(ValueError, match="side=None"):
        plain(x, x, torch.zeros(2, 1), quant_step=0.01)


def test_relation_net_and_side_head_shapes_and_starting_point():
    rel = RelationNet(3, 5, cond_channels=3, side_features=2, hidden=4, layers=3)
    cond, side = torch.randn(2, 3, 4, 2, 4), torch.randn(2, 2)
    mean, logs = rel((2, 5, 4, 2, 4), cond, side)
    # zero-initialised outputs: the prior starts at N(0, I) as Glow's
    assert mean.shape == logs.shape == (2, 5, 4, 2, 4)
    assert torch.equal(mean, torch.zeros_like(mean)) and torch.equal(logs, torch.zeros_like(logs))
    top = RelationNet(2, 3, side_features=1)
    assert top((4, 3, 2, 2), None, torch.randn(4, 1))[0].shape == (4, 3, 2, 2)
    with pytest.raises(ValueError, match="cond"):
        rel((2, 5, 4, 2, 4), None, side)
    head = SideHead(3, 4, 2, hidden=4, reverse_gradient=True)
    assert head(torch.randn(3, 4, 1, 2, 1)).shape == (3, 2)
    pred, target = torch.tensor([[0.5, 2.0]]), torch.tensor([[1.5, 1.0]])
    expected = (1.0 + torch.nn.functional.softplus(torch.tensor(-2.0))) / 2  # BCE(2, 1)
    torch.testing.assert_close(side_loss(pred, target, ("continuous", "binary")), expected)


def test_latent_mean_averages_then_follows_at_its_momentum_and_reloads_its_shape():
    from neurotrans.networks.blocks import LatentMean

    v = [torch.full((2, 3, 2, 2), float(k)) + torch.arange(3.0).view(1, 3, 1, 1) for k in (1, 2, 6)]
    plain, fast = LatentMean(), LatentMean(momentum=0.5)
    for x in v:
        plain.update(x)
        fast.update(x)
    base = torch.arange(3.0).view(3, 1, 1).expand(3, 2, 2)
    torch.testing.assert_close(plain.mean, base + 3.0)  # weights 1, 1/2, 1/3: the plain average of 1, 2, 6
    torch.testing.assert_close(fast.mean, base + 3.75)  # 1 -> 1.5 -> 1.5 + 0.5 * (6 - 1.5)
    assert int(plain.count) == 3
    fresh = LatentMean()
    fresh.load_state_dict(plain.state_dict())  # the shape comes from the checkpoint
    assert torch.equal(fresh.mean, plain.mean) and fresh.ready
    with pytest.raises(ValueError, match="padded size"):
        fresh.update(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="momentum"):
        LatentMean(momentum=0.0)


def test_latent_mean_with_side_features_is_the_cohorts_linear_regression():
    from neurotrans.networks.blocks import LatentMean

    g = torch.Generator().manual_seed(0)
    n, shape = 12, (3, 2, 2)
    side = torch.stack([torch.randn(n, generator=g), torch.randint(0, 2, (n,), generator=g).float()], 1)
    coef = torch.randn(2, *shape, generator=g)
    noise = 0.1 * torch.randn(n, *shape, generator=g)
    z = 1.5 + torch.einsum("bf,f...->b...", side, coef) + noise
    m = LatentMean(features=2)
    for k in range(0, n, 3):  # 4 batches of 3: weights 1, 1/2, 1/3, 1/4 = the pooled moments
        m.update(z[k : k + 3], side[k : k + 3])
    # reference: least squares of the latent on [1, c] over the 12 samples, voxel by voxel
    design = torch.cat([torch.ones(n, 1), side], 1).double()
    fit = torch.linalg.lstsq(design, z.flatten(1).double()).solution
    torch.testing.assert_close(m.slope().double().flatten(1), fit[1:], rtol=0, atol=5e-3)  # ridge 1e-3
    new_side = torch.tensor([[0.3, 1.0], [-2.0, 0.0]])
    expected = (torch.cat([torch.ones(2, 1), new_side], 1).double() @ fit).view(2, *shape)
    torch.testing.assert_close(m.at(new_side).double(), expected, rtol=0, atol=1e-2)
    torch.testing.assert_close(m.mean, z.mean(0))
    # one subject says nothing about the slope: the prior is its latent at any age
    first = LatentMean(features=2)
    first.update(z[:1], side[:1])
    torch.testing.assert_close(first.at(new_side), z[:1].expand(2, *shape))
    fresh = LatentMean(features=2)
    fresh.load_state_dict(m.state_dict())  # the shapes come from the checkpoint
    torch.testing.assert_close(fresh.at(new_side), m.at(new_side), rtol=0, atol=0)
    with pytest.raises(ValueError, match="side"):
        m.update(z[:2])
    with pytest.raises(ValueError, match="side"):
        m.at(torch.zeros(2, 1))
    with pytest.raises(ValueError, match="features"):
        LatentMean(features=-1)


def test_the_age_sweep_of_a_cohort_prior_follows_the_cohorts_age_effect():
    """Side information moves the top PET prior along the cohort's regression on it."""
    torch.manual_seed(0)
    kinds = ("continuous",)
    model = DualGlow(3, cohort_prior=True, side_kinds=kinds, **TINY).train()
    g = torch.Generator().manual_seed(1)
    for _ in range(6):
        age = torch.randn(2, 1, generator=g)
        x_mri = torch.rand(2, 1, 4, 4, 4, generator=g)
        x_pet = 0.5 + 0.2 * age.view(2, 1, 1, 1, 1) + 0.05 * torch.rand(2, 1, 4, 4, 4, generator=g)
        model(x_mri, x_pet, age, quant_step=1 / 256, noise=False)
    model.eval()
    x = torch.rand(1, 1, 4, 4, 4, generator=g).expand(5, -1, -1, -1, -1)
    ages = torch.linspace(-1.5, 1.5, 5).view(5, 1)
    with torch.no_grad():
        means = model.sample(x, 0.0, ages).mean((1, 2, 3, 4))
    # fresh relation nets: the decode follows the cohort's regression; PET rises with "age" here
    assert (means.diff() > 0).all(), means
    top = model.pet_means[-1]
    assert top.features == 1 and all(m.features == 0 for m in model.pet_means[:-1])


def test_cohort_prior_starts_the_point_prediction_at_the_cohorts_mean_latents():
    torch.manual_seed(0)
    model = DualGlow(3, cohort_prior=True, **TINY).train()
    assert not model.initialized
    g = torch.Generator().manual_seed(1)
    batches = [(torch.rand(2, 1, 4, 4, 4, generator=g), torch.rand(2, 1, 4, 4, 4, generator=g)) for _ in range(2)]
    latents = []
    for x_mri, x_pet in batches:
        model(x_mri, x_pet, quant_step=1 / 256, noise=False)
        with torch.no_grad():
            latents.append(model.pet_flow(x_pet)[0])
    assert model.initialized
    for level, m in enumerate(model.pet_means):  # the average of the two batch means
        expected = (latents[0][level].mean(0) + latents[1][level].mean(0)) / 2
        torch.testing.assert_close(m.mean, expected, rtol=0, atol=1e-6)
    model.eval()
    before = [m.mean.clone() for m in model.pet_means]
    model(*batches[0], quant_step=1 / 256)  # evaluation leaves the cohort means alone
    assert all(torch.equal(a, m.mean) for a, m in zip(before, model.pet_means, strict=True))
    # the relation nets start at zero, so temperature 0 decodes the cohort's mean latents
    x_mri = batches[0][0]
    expected = model.pet_flow.inverse([m.mean.expand(2, *m.mean.shape) for m in model.pet_means])
    torch.testing.assert_close(model.sample(x_mri, 0.0), expected, rtol=0, atol=1e-6)
    clone = DualGlow(3, cohort_prior=True, **TINY)
    clone.load_state_dict(model.state_dict())
    torch.testing.assert_close(clone.eval().sample(x_mri, 0.0), model.sample(x_mri, 0.0), rtol=0, atol=0)
    with pytest.raises(ValueError, match="padded size"):
        model.sample(torch.rand(1, 1, 8, 4, 4), 0.0)
