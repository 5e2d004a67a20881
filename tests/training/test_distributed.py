"""Data-parallel training: 2 gloo processes on CPU train what 1 process trains on the same global batch.

The processes are real ones, started by ``torchrun --standalone --nproc_per_node 2`` (one CPU
thread each). Equality with one process is up to the order of floating-point sums (the
gradient all-reduce, the batch-norm statistics of two shards): weights agree within
``ATOL`` after a few steps. A distributed run resumed from a checkpoint is bit-identical to
an uninterrupted distributed run.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

import neurotrans
from neurotrans.errors import InputError
from neurotrans.io.run import RunFolder
from neurotrans.training.checkpoint import load_checkpoint
from neurotrans.training.distributed import Dist
from neurotrans.training.run import train_from_config
from neurotrans.training.trainer import RunBatches

WORKER = Path(__file__).with_name("dist_worker.py")
# measured worst |w_2proc - w_1proc| is 1e-8..1e-7 (float32 sums in another order); Adam's
# normalised steps can grow such differences, so the bound leaves two orders of margin
ATOL = 1e-5

UNET = {"generator": "unet_pix2pix", "generator_args": {"base": 4, "depth": 2}}
MODELS = {
    "supervised": {"method": "supervised", **UNET},
    "pix2pix": {"method": "pix2pix", **UNET, "discriminator_args": {"base": 4, "n_layers": 2}},
    # no dropout, no latent noise: one process and two draw different noise by design
    "unit": {"method": "unit", "generator_args": {"base": 4, "n_res_encoder": 1, "n_res_generator": 1,
                                                  "dropout": 0.0, "noise_std": 0.0},
             "discriminator_args": {"base": 4, "n_layers": 2, "n_scales": 2}},
    # Sketcher then Refiner, the Sketcher frozen for the second stage (no dropout, no noise z)
    "cascade": {"method": "cascade", "stages": [
        {"generator": "unet_sketcher", "generator_args": {"base": 2, "depth": 2, "dropout": 0.0}, "steps": 2,
         "discriminator_args": {"patch_size": 8, "features": [4]}},
        {"generator": "unet_sketcher", "generator_args": {"base": 2, "depth": 2, "dropout": 0.0}, "loss": "l1",
         "discriminator_args": {"patch_size": 8, "features": [4]}}]},
    # dequantisation noise 1e-12 is below float32's resolution of the data: the same in both runs
    "dualglow": {"method": "dualglow", "levels": 2, "steps": 1, "hidden": 4, "relation_hidden": 4,
                 "relation_layers": 2, "relation_kernel": 3, "quant_step": 1e-12},
}


def _config(manifest: Path, method: str, *, steps: int = 6, batch_size: int = 4, model: dict | None = None) -> dict:
    data: dict = {"manifest": str(manifest), "voxel_size": None, "normalisation": {"FDG": "zscore"},
                  "batch_size": batch_size}
    optim: dict = {}
    if method in ("unit", "cyclegan"):
        data.update(inputs=["T1w"], target="FDG", pairing="unpaired",
                    normalisation={"T1w": "minmax", "FDG": "minmax"})
    if method == "dualglow":
        data.update(spatial_dims=3, patch_size=None, normalisation={"FDG": "none"})
        optim = {"name": "adamax", "lr": 1e-3}
    return {"model": model or MODELS[method], "data": data, "optim": optim,
            "split": {"kind": "fixed", "test_fraction": 0.34, "val_fraction": 0.17, "stratify": None},
            "trainer": {"max_steps": steps, "val_every": 2, "checkpoint_every": 3, "progress": False,
                        "log_every": 1}}


def _torchrun(jobs: list[dict], folder: Path, n: int = 2) -> list[list[str]]:
    """Run ``jobs`` in ``n`` processes under torchrun; returns each process's outcomes."""
    job_file = folder / "jobs.json"
    job_file.write_text(json.dumps(jobs))
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(neurotrans.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
                           str(WORKER), str(job_file)], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-12000:]
    return [json.loads(job_file.with_suffix(f".rank{r}.json").read_text()) for r in range(n)]


def _weights(run: Path, name: str = "last") -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / f"{name}.pt")["method_state"]


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point() and a[k].numel()),
               default=0.0)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- without processes
def test_shards_cover_the_batch_in_order_and_weights_restore_the_global_mean():
    for n, world in [(4, 2), (5, 2), (7, 3), (3, 3)]:
        dists = [Dist(rank=r, world=world) for r in range(world)]
        batch = list(range(100, 100 + n))
        assert [i for d in dists for i in d.shard(batch)] == batch
        sizes = [len(d.shard(batch)) for d in dists]
        assert max(sizes) - min(sizes) <= 1
        weights = [d.loss_weight(n) for d in dists]
        assert sum(weights) == pytest.approx(world)
        # sum_r w_r * mean_r / world = global mean, for any per-sample values
        values = torch.arange(n, dtype=torch.float64) ** 2
        pooled = sum(w * values[d.shard(list(range(n)))].mean() for d, w in zip(dists, weights, strict=True)) / world
        assert float(pooled) == pytest.approx(float(values.mean()))
    assert Dist(rank=0, world=2).loss_weight(5) == pytest.approx(1.2)  # 3 of 5 samples
    # the shares of the run's batches, across epoch boundaries, join into the one-process batches
    def first(sampler, n=10):
        return list(itertools.islice(iter(sampler), n))

    whole = first(RunBatches([10, 3], 4, seed=0, epoch=0))
    shares = [first(RunBatches([10, 3], 4, seed=0, epoch=0, dist=Dist(rank=r, world=2))) for r in range(2)]
    assert [a + b for a, b in zip(*shares, strict=True)] == whole and all(len(b) for b in shares[1])
    with pytest.raises(InputError, match="fewer than the 3 processes"):
        Dist(rank=0, world=3).check_batches(2)


def test_one_process_is_inert():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    one = Dist()
    assert not one.enabled and one.is_main and one.prepare_method(net) is net
    assert type(net[1]) is torch.nn.BatchNorm2d and one.rank_states(net) == {}
    assert one.shard([3, 1, 2]) == [3, 1, 2] and one.loss_weight(3) == 1.0
    logs = {"x": torch.tensor(2.0)}
    assert one.mean_logs(logs, 1.0) is logs and one.pooled(5) == 5 and one.any(True)


def test_fitted_methods_are_refused_under_torchrun(tiny_cohort, tmp_path, monkeypatch):
    import neurotrans.training.distributed as distributed

    monkeypatch.setattr(distributed, "init_distributed", lambda device: Dist(rank=0, world=2))
    cfg = _config(tiny_cohort, "random_forest", model={"method": "random_forest"})
    cfg["data"].update(spatial_dims=3, patch_size=None)
    with pytest.raises(InputError, match="without torchrun"):
        train_from_config(cfg, out=tmp_path / "rf")
    assert not (tmp_path / "rf" / "checkpoints").exists()


# ---------------------------------------------------------------- the synchronised norms
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _norm_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    from neurotrans.networks.blocks.flow import ActNorm
    from neurotrans.networks.layers.sync_norm import convert_sync_batchnorm

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    x, w = _norm_inputs()
    bounds = [(0, 3), (3, 5)][rank]  # uneven shards: 3 and 2 samples
    results = {}
    for dims in (2, 3):
        torch.manual_seed(0)
        bn = convert_sync_batchnorm(torch.nn.Sequential(_bn(dims)))[0]
        xs = x[dims][bounds[0]:bounds[1]].clone().requires_grad_(True)
        for _ in range(2):  # two steps: running statistics move twice
            y = bn(xs)
        (y * w[dims][bounds[0]:bounds[1]]).sum().backward()
        results[dims] = {"y": y.detach(), "grad": xs.grad, "weight_grad": bn.weight.grad, "bias_grad": bn.bias.grad,
                         "running_mean": bn.running_mean, "running_var": bn.running_var}
    act = ActNorm(3, 2).train()
    act(x[3][bounds[0]:bounds[1]])
    results["actnorm"] = {"bias": act.bias.detach(), "logs": act.logs.detach()}
    torch.save(results, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


def _norm_inputs() -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(0)
    x = {2: torch.randn(5, 3, 6, 7, generator=g) * 2 + 1, 3: torch.randn(5, 2, 4, 5, 3, generator=g) - 3}
    w = {d: torch.randn(v.shape, generator=g) for d, v in x.items()}
    return x, w


def _bn(dims: int) -> torch.nn.Module:
    layer = (torch.nn.BatchNorm2d(3) if dims == 2 else torch.nn.BatchNorm3d(2))
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
        layer.bias.uniform_(-0.5, 0.5)
    return layer


def test_sync_batchnorm_and_actnorm_equal_one_process_on_the_concatenated_batch(tmp_path):
    from neurotrans.networks.blocks.flow import ActNorm
    from neurotrans.networks.layers.sync_norm import SyncBatchNorm

    mp.spawn(_norm_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    x, w = _norm_inputs()
    for dims in (2, 3):
        torch.manual_seed(0)
        bn = _bn(dims)
        xs = x[dims].clone().requires_grad_(True)
        for _ in range(2):
            y = bn(xs)
        (y * w[dims]).sum().backward()
        got = [r[dims] for r in ranks]
        torch.testing.assert_close(torch.cat([g["y"] for g in got]), y.detach(), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(torch.cat([g["grad"] for g in got]), xs.grad, atol=1e-5, rtol=1e-5)
        for key, ref in (("weight_grad", bn.weight.grad), ("bias_grad", bn.bias.grad)):
            torch.testing.assert_close(got[0][key] + got[1][key], ref, atol=1e-5, rtol=1e-5)
        for key in ("running_mean", "running_var"):  # unbiased over the global count, as nn.BatchNorm
            torch.testing.assert_close(got[0][key], getattr(bn, key), atol=1e-6, rtol=1e-6)
            assert torch.equal(got[0][key], got[1][key])
    act = ActNorm(3, 2).train()
    act(x[3])
    for r in ranks:
        torch.testing.assert_close(r["actnorm"]["bias"], act.bias.detach(), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(r["actnorm"]["logs"], act.logs.detach(), atol=1e-5, rtol=1e-5)
    # a converted layer keeps the original's tensors and state-dict keys
    plain = torch.nn.Sequential(torch.nn.BatchNorm2d(3))
    keys, weight = list(plain.state_dict()), plain[0].weight
    from neurotrans.networks.layers.sync_norm import convert_sync_batchnorm

    converted = convert_sync_batchnorm(plain)
    assert isinstance(converted[0], SyncBatchNorm) and converted[0].weight is weight
    assert list(converted.state_dict()) == keys


# ---------------------------------------------------------------- whole runs in 2 processes
@pytest.fixture(scope="module")
def distributed_runs(tiny_cohort, tmp_path_factory):
    """The equivalence runs (one per method) and a killed-then-resumed run, in one torchrun job."""
    root = tmp_path_factory.mktemp("dist")
    cases = _equivalence_cases(tiny_cohort)
    jobs = [{"config": cfg, "out": str(root / name)} for name, cfg in cases.items()]
    for name, cfg in _resume_cases(tiny_cohort).items():
        jobs += [{"config": cfg, "out": str(root / f"{name}_full")},
                 {"config": cfg, "out": str(root / f"{name}_killed"), "kill_at": 4},
                 {"config": cfg, "out": str(root / f"{name}_killed"), "resume": True}]
    budget = _config(tiny_cohort, "supervised", steps=0)
    budget["trainer"].update(max_minutes=0.005, val_every=1000, checkpoint_every=1000)
    jobs += [{"config": budget, "out": str(root / "budget")},  # every process stops at the same step
             {"config": _config(tiny_cohort, "supervised"), "out": str(root / "nan"), "nan_at": [1, 2]}]
    outcomes = _torchrun(jobs, root)
    return root, cases, outcomes


def _resume_cases(manifest: Path) -> dict[str, dict]:
    return {
        # dropout and latent noise on: each process draws its own, from its own RNG state
        "unit": _config(manifest, "unit", steps=7, model={**MODELS["unit"], "generator_args": {
            "base": 4, "n_res_encoder": 1, "n_res_generator": 1}}),
        # each process's image pool holds its own fakes: per-process method state in the checkpoint;
        # and a moving average of the weights, resumed with them
        "cyclegan": _with_ema(_config(manifest, "cyclegan", steps=7, model={
            "method": "cyclegan", "generator_args": {"base": 4, "n_blocks": 1},
            "discriminator_args": {"base": 4, "n_layers": 1}, "pool_size": 2})),
    }


def _with_ema(cfg: dict, decay: float = 0.8) -> dict:
    return {**cfg, "trainer": {**cfg["trainer"], "ema": decay}}


def _sgd(cfg: dict, lr: float) -> dict:
    """Plain SGD for an equivalence run: its step is linear in the gradient, so two processes' rounding
    stays at rounding size. Adam's first steps are about lr * sign(gradient) for every element, so
    elements whose gradient is near zero turn rounding into differences of order lr: UNIT under Adam
    differed by 5.0e-5 on an AMD EPYC machine, 9.5e-7 under SGD. Each lr here was measured to keep
    the runs in step while doubling it moves the weights by 0.016 to 1.6, far above ATOL, so a
    gradient averaged wrongly (summed, or weighted wrongly) still fails."""
    return {**cfg, "optim": {"name": "sgd", "lr": lr}}


def _dualglow_age(cfg: dict) -> dict:
    # SGD: Adamax's normalised steps turn the float rounding of near-zero gradients (a flow's
    # zero-initialised couplings) into weight differences of order lr (1.7e-3 measured, 2e-7 with SGD)
    model = {**cfg["model"], "side_kinds": ["continuous"]}
    return {**cfg, "model": model, "data": {**cfg["data"], "covariates": ["age"]}, "optim": {"name": "sgd", "lr": 1e-3}}


def _equivalence_cases(manifest: Path) -> dict[str, dict]:
    return {
        # global batch 3 over 2 processes: shards of 2 and 1, loss weights 4/3 and 2/3
        "supervised": _sgd(_config(manifest, "supervised", batch_size=3), 1e-2),
        "pix2pix": _sgd(_with_ema(_config(manifest, "pix2pix")), 1e-2),  # the processes average the weights alike
        "unit": _sgd(_config(manifest, "unit", steps=4), 1e-4),
        "cascade": _sgd(_config(manifest, "cascade", steps=4), 1e-3),
        # with age: the cohort prior's running moments (mean and regression on age) pool both shards
        "dualglow": _dualglow_age(_config(manifest, "dualglow", steps=3, batch_size=2)),
    }


@pytest.mark.parametrize("method", ["supervised", "pix2pix", "unit", "cascade", "dualglow"])
def test_two_processes_train_the_weights_of_one(distributed_runs, tmp_path, method):
    root, cases, outcomes = distributed_runs
    assert [o[list(cases).index(method)] for o in outcomes] == ["ok", "ok"]
    two = root / method
    one = train_from_config(cases[method], out=tmp_path / "one", device="cpu")  # gloo processes run on the CPU
    diff = _max_diff(_weights(one), _weights(two))
    assert diff < ATOL, f"{method}: max |w2 - w1| = {diff:.2e}"
    # the processes hold one model, bit for bit, and rank 0 wrote it
    rank0, rank1 = (torch.load(root / f"{method}.rank{r}.pt", weights_only=True) for r in range(2))
    assert _same(rank0, rank1) and _same(rank0, _weights(two))
    if "ema" in cases[method]["trainer"]:  # the model is the average of every step's weights
        assert load_checkpoint(two / "checkpoints" / "last.pt")["ema_updates"] == cases[method]["trainer"]["max_steps"]
    # rank 0 logged the global batch's losses and the pooled validation metrics
    log1 = [json.loads(x) for x in (one / "log.jsonl").read_text().splitlines()]
    log2 = [json.loads(x) for x in (two / "log.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in log1] == [r["kind"] for r in log2]
    for a, b in zip(log1, log2, strict=True):
        for key in a.keys() & b.keys() - {"elapsed_s"}:
            if isinstance(a[key], float):
                assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), (key, a["step"])
    assert (two / "cache").is_dir()  # a cache in the run folder: memory maps, no cohort copy per process
    info, outcome = RunFolder(two).read_info(), RunFolder(two).read_outcome()
    assert outcome.steps == cases[method]["trainer"]["max_steps"] and "cache_dir" in info.config["data"]
    assert info.config["data"]["cache_dir"] is None  # the saved config is the user's: resumable in one process


@pytest.mark.parametrize("method", ["unit", "cyclegan"])
def test_resumed_distributed_run_matches_uninterrupted_one(distributed_runs, method):
    root, cases, outcomes = distributed_runs
    k = len(cases) + 3 * list(_resume_cases(Path())).index(method)
    assert [o[k:k + 3] for o in outcomes] == [["ok", "RuntimeError: injected failure", "ok"]] * 2
    full, resumed = root / f"{method}_full", root / f"{method}_killed"
    ckpt = load_checkpoint(full / "checkpoints" / "last.pt")
    assert len(ckpt["rng_ranks"]) == 2 and not torch.equal(ckpt["rng_ranks"][0]["torch"], ckpt["rng_ranks"][1]["torch"])
    if method == "cyclegan":  # rank 1's pool of fakes differs from rank 0's and is kept apart
        assert any(key.endswith("_extra_state") for key in ckpt["rank_state"][1]) and not ckpt["rank_state"][0]
    assert _same(_weights(full), _weights(resumed))
    assert _same(_weights(full, "best"), _weights(resumed, "best"))
    if method == "cyclegan":  # the average, and the trained weights under it, resumed exactly
        last = load_checkpoint(resumed / "checkpoints" / "last.pt")
        assert last["ema_updates"] == 7 and _same(ckpt["train_method_state"], last["train_method_state"])
    for r in range(2):  # every process ends where the uninterrupted one's did, its own state included
        assert _same(torch.load(root / f"{method}_full.rank{r}.pt", weights_only=True),
                     torch.load(root / f"{method}_killed.rank{r}.pt", weights_only=True))
    steps = [json.loads(x)["step"] for x in (resumed / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)


def test_the_time_budget_stops_every_process_at_one_step(distributed_runs):
    root, cases, outcomes = distributed_runs
    assert [o[-2] for o in outcomes] == ["ok", "ok"]  # a process stopping alone would leave the other waiting
    outcome = RunFolder(root / "budget").read_outcome()
    assert "time budget" in outcome.stopped and outcome.steps >= 1
    rank0, rank1 = (torch.load(root / f"budget.rank{r}.pt", weights_only=True) for r in range(2))
    assert _same(rank0, rank1)


def test_a_loss_diverging_in_one_process_stops_every_process(distributed_runs):
    root, cases, outcomes = distributed_runs
    # a process raising alone would leave the other waiting in the next all-reduce (the job would time out)
    assert outcomes[1][-1].startswith("InputError: step 2: the main loss became nan (training diverged)")
    assert outcomes[0][-1].startswith("InputError: step 2: the main loss became non-finite in another process")
    assert not (root / "nan" / "checkpoints" / "last.pt").exists()  # diverged before its first checkpoint


def test_torchrun_runs_the_train_command(tiny_cohort, tmp_path):
    """``torchrun -m neurotrans train CONFIG``: the command line a user types."""
    import yaml

    cfg = _config(tiny_cohort, "supervised", steps=3)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(neurotrans.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "neurotrans", "train", str(tmp_path / "cfg.yaml"), "--device", "cpu",
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-12000:]
    one = train_from_config(cfg, out=tmp_path / "one", device="cpu")
    assert _max_diff(_weights(one), _weights(tmp_path / "run")) < ATOL
