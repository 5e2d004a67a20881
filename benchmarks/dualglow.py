"""How long does one DUAL-GLOW training step take on a 3 mm volume, and how big is the model?

Builds a :class:`~neurotrans.networks.DualGlow` for each asked configuration, initialises it
on one random batch of the padded 3 mm grid (61 x 73 x 61 -> 64 x 80 x 64), then times
forward + backward of the loss (median of ``--repeats``; wall and process CPU time, since on
a shared machine the wall time includes waiting for cores) and one point prediction
(temperature 0), with ``--threads`` CPU threads. Parameter counts of the paper's configuration
(4 levels x 16 steps, width 512, relation width 256) are computed without allocating it.

Usage::

    python benchmarks/dualglow.py [--threads 2] [--repeats 3] [--config L K H RH RL ...]
        [--checkpointing] [--device cpu]

Each ``--config`` is levels, steps, coupling width, relation width, relation layers.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from neurotrans.networks import DualGlow
from neurotrans.networks.nets.glow import padded_size

GRID_3MM = (61, 73, 61)
DEFAULT_CONFIGS = [(3, 4, 32, 32, 2), (3, 8, 32, 32, 2), (4, 4, 32, 32, 2)]


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def paper_parameter_count() -> int:
    """Parameters of DualGlow() with the paper's defaults, built on the meta device."""
    with torch.device("meta"):
        return count_parameters(DualGlow())


def time_config(config: tuple[int, ...], *, repeats: int, device: str, checkpointing: bool,
                side: bool) -> dict[str, float]:  # fmt: skip
    levels, steps, hidden, rel_hidden, rel_layers = config
    size = padded_size(GRID_3MM, levels)
    torch.manual_seed(0)
    kinds = ("continuous",) if side else ()
    model = DualGlow(3, levels=levels, steps=steps, hidden=hidden, relation_hidden=rel_hidden,
                     relation_layers=rel_layers, side_kinds=kinds,
                     checkpointing=checkpointing).to(device).train()  # fmt: skip
    x_mri = torch.rand(1, 1, *size, device=device)
    x_pet = torch.rand(1, 1, *size, device=device)
    c = torch.zeros(1, 1, device=device) if side else None
    model(x_mri, x_pet, c, quant_step=1 / 256)  # actnorm init
    times, cpu_times = [], []
    for _ in range(repeats):
        model.zero_grad(set_to_none=True)
        if device != "cpu":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        model(x_mri, x_pet, c, quant_step=1 / 256)["loss"].backward()
        if device != "cpu":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    model.eval()
    t0 = time.perf_counter()
    model.sample(x_mri, 0.0, c)
    t_sample = time.perf_counter() - t0
    return {"size": size, "params": count_parameters(model), "train_s": statistics.median(times),
            "train_cpu_s": statistics.median(cpu_times), "sample_s": t_sample}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--config", type=int, nargs=5, action="append",
                        metavar=("L", "K", "H", "RH", "RL"))  # fmt: skip
    parser.add_argument("--checkpointing", action="store_true")
    parser.add_argument("--side", action="store_true", help="with one side feature (age)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"paper configuration (4 x 16, width 512, relation 256 x 4): "
          f"{paper_parameter_count() / 1e6:.1f} M parameters")  # fmt: skip
    for config in args.config or DEFAULT_CONFIGS:
        r = time_config(tuple(config), repeats=args.repeats, device=args.device,
                        checkpointing=args.checkpointing, side=args.side)  # fmt: skip
        print(f"L={config[0]} K={config[1]} width={config[2]} relation={config[3]}x{config[4]} "
              f"on {r['size']}: {r['params'] / 1e6:.2f} M parameters, forward+backward "
              f"{r['train_s']:.2f} s wall / {r['train_cpu_s']:.2f} s CPU, "
              f"point prediction {r['sample_s']:.2f} s "
              f"({args.threads} threads, {args.device})")  # fmt: skip


if __name__ == "__main__":
    main()
