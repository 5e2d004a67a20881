"""The thesis's myelin GANs on 64^3 patches: training throughput and 1.5 mm sliding-window prediction.

Measures, with random weights and random data (speed and memory do not depend on them):

- patches/s of one training iteration (``Trainer.train_iteration``: every group of the
  schedule, i.e. 2 D steps on fresh fakes + 1 G step) on 64^3 patches for CF-SAGAN
  (``cfsagan_pib``) and for the Refiner of ``refiner_cfsagan_pib`` and of
  ``sketcher_refiner_pib`` (stage 2: the frozen Sketcher runs too);
- seconds and peak resident memory of sliding-window prediction (64^3 windows, 50 %
  overlap, ``--batch`` windows per pass: PyTorch's CPU Conv3d takes a ~7x slower path for
  one window with few channels) of one 1.5 mm volume (121 x 145 x 121) by the whole
  Refiner CF-SAGAN cascade, in a fresh process (``ru_maxrss`` is that prediction's).

``--thesis`` uses the thesis's widths (CF-SAGAN generator 16-...-256, discriminator
32-64-128, U-Nets 32 base filters) instead of the packaged CPU-sized ones.

Usage::

    python benchmarks/myelin_3d.py [--steps 3] [--batch 2] [--threads 1] [--thesis]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = {"CF-SAGAN": ("cfsagan_pib", None), "Refiner CF-SAGAN (stage 2)": ("refiner_cfsagan_pib", 1),
           "Refiner U-Net (stage 2)": ("sketcher_refiner_pib", 1)}
VOLUME = (121, 145, 121)
PATCH = 64


def thesis_widths(model: dict) -> dict:
    """The model section with the thesis's network widths."""
    def widen(stage: dict) -> dict:
        stage = dict(stage)
        if stage.get("generator") == "cfsagan_generator":
            stage["generator_args"] = {**stage["generator_args"], "features": [16, 32, 64, 128, 256]}
        else:
            stage["generator_args"] = {**stage["generator_args"], "base": 32}
        stage["discriminator_args"] = {**stage["discriminator_args"], "patch_size": 32, "features": [32, 64, 128]}
        return stage

    if model["method"] == "cascade":
        return {**model, "stages": [widen(s) for s in model["stages"]]}
    return widen(model)


def build(name: str, thesis: bool):
    import torch

    from neurotrans.config import config_from_dict, load_config
    from neurotrans.methods import ModelIO, build_method

    values = load_config(name).to_dict()
    if thesis:
        values["model"] = thesis_widths(values["model"])
    cfg = config_from_dict(values)
    torch.manual_seed(0)
    io = ModelIO(in_channels=cfg.data.n_input_channels, spatial_dims=3, inputs=tuple(cfg.data.inputs),
                 aux=tuple(cfg.data.aux))
    return build_method(cfg.model, io), cfg


def throughput(name: str, stage: int | None, steps: int, batch: int, thesis: bool) -> tuple[float, float]:
    """Patches per second and per CPU second of ``Trainer.train_iteration`` on 64^3 patches in memory.

    The CPU-second rate does not depend on what else runs on a shared machine.
    """
    import torch
    from torch.utils.data import TensorDataset

    from neurotrans.training.trainer import Trainer

    method, cfg = build(name, thesis)
    shape = (batch, 1, PATCH, PATCH, PATCH)
    les = (torch.rand(shape) > 0.95).float()
    data = {"input": torch.randn(batch, cfg.data.n_input_channels, PATCH, PATCH, PATCH),
            "target": torch.rand(shape) + 1, "mask": torch.ones(shape),
            "aux": torch.cat([les, (torch.rand(shape) > 0.6).float() * (1 - les)], 1)}
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(method, [TensorDataset(torch.zeros(1))], [], trainer=cfg.trainer, optim=cfg.optim,
                          out=Path(tmp), batch_size=batch, device="cpu")
        if stage is not None:
            trainer.state.step = sum(s.steps for s in cfg.model.stages[:stage])  # the Refiner's turn
        trainer.train_iteration(data)  # warm-up
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            trainer.train_iteration(data)
        return steps * batch / (time.perf_counter() - start), steps * batch / (time.process_time() - cpu)


def predict_child(batch: int, thesis: bool) -> dict:
    """Sliding-window prediction of one 1.5 mm volume by the Refiner CF-SAGAN cascade (this process)."""
    import numpy as np

    from neurotrans.inference.predict import predict_sliding_window

    method, cfg = build("refiner_cfsagan_pib", thesis)
    method.eval()
    method.active_stage.fill_(1)  # the whole cascade
    rng = np.random.default_rng(0)
    roi = [PATCH] * 3
    predict_sliding_window(method.predict, rng.random((cfg.data.n_input_channels, *roi), dtype=np.float32), roi,
                           overlap=0.5, batch_size=batch)  # kernels, allocator
    volume = rng.random((cfg.data.n_input_channels, *VOLUME), dtype=np.float32)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start, cpu = time.perf_counter(), time.process_time()
    out = predict_sliding_window(method.predict, volume, roi, overlap=0.5, batch_size=batch)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert out.shape == VOLUME
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_mib": peak / 1024,
            "added_mib": (peak - before) / 1024}


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch", type=int, default=2, help="patches per training step and windows per pass")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--thesis", action="store_true", help="the thesis's network widths")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(predict_child(args.batch, args.thesis)))
        return 0
    widths = "thesis widths" if args.thesis else "packaged CPU-sized widths"
    print(f"64^3 patches, batch {args.batch}, {args.threads} thread(s), {widths}")
    for label, (name, stage) in CONFIGS.items():
        rate, cpu_rate = throughput(name, stage, args.steps, args.batch, args.thesis)
        print(f"  train {label:<28} {rate:7.3f} patches/s, {cpu_rate:7.3f} patches per CPU s "
              f"({args.batch / cpu_rate:.2f} CPU s per iteration)")
    cmd = [sys.executable, __file__, "--child", "--batch", str(args.batch), "--threads", str(args.threads)]
    out = subprocess.run(cmd + (["--thesis"] if args.thesis else []), capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  predict 1.5 mm volume {'x'.join(map(str, VOLUME))} (Refiner CF-SAGAN, 64^3 windows, 50 % overlap, "
          f"{args.batch} per pass): {r['seconds']:.1f} s ({r['cpu_seconds']:.1f} CPU s), peak RSS {r['peak_mib']:.0f} MiB "
          f"(+{r['added_mib']:.0f} MiB over the loaded model)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
