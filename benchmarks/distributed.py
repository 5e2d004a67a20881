"""Training throughput of 1 process vs N gloo processes on CPU, same global batch.

Each run trains the pix2pix_axial_fdg networks (U-Net 32-256 + PatchGAN, BN, Adam) with
``Trainer.train_iteration`` on a fixed random global batch of 64x80 slices; with N
processes each takes its shard of the batch, and the gradients are all-reduced after each
optimiser group (the data-parallel path of ``neurotrans.training.distributed``,
synchronised batch norm included). The CPU cores are shared out: the single process gets
``--cores`` torch threads, each of the N processes ``cores // N``, so both runs use the
same hardware. Processes are started with ``torch.multiprocessing`` and a TCP rendezvous
on localhost, as ``torchrun --standalone`` would.

Run: ``python benchmarks/distributed.py [--processes 2] [--batch 16] [--iters 10] [--cores N]``
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from typing import Any

import torch
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, args: argparse.Namespace, results: Any) -> None:
    import torch.distributed as dist
    from torch.utils.data import TensorDataset

    from neurotrans.config import load_config
    from neurotrans.methods import ModelIO, build_method
    from neurotrans.training.distributed import Dist
    from neurotrans.training.trainer import Trainer

    torch.set_num_threads(max(args.cores // world, 1))
    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    cfg = load_config(args.config)
    torch.manual_seed(0)
    method = build_method(cfg.model, ModelIO(in_channels=1, inputs=tuple(cfg.data.inputs)))
    here = Dist(rank=rank, world=world)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(method, [TensorDataset(torch.zeros(args.batch))], [], trainer=cfg.trainer, optim=cfg.optim,
                          out=tmp, batch_size=args.batch, device="cpu", dist=here)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(args.batch, 1, 64, 80, generator=g), torch.rand(args.batch, 1, 64, 80, generator=g)
    start, stop = here.bounds(args.batch)
    batch = {"input": x[start:stop], "target": y[start:stop]}
    for _ in range(2):  # warm-up
        trainer.train_iteration(batch)
    times = []
    for _ in range(args.iters):
        here.barrier()
        t = time.perf_counter()
        trainer.train_iteration(batch)
        here.barrier()  # the step ends when the slowest process is done
        times.append(time.perf_counter() - t)
    trainer.check_finite()
    if rank == 0:
        times.sort()
        results.put((times[len(times) // 2], torch.get_num_threads()))
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


def measure(world: int, args: argparse.Namespace) -> tuple[float, int]:
    """Median seconds per training step with ``world`` processes, and the threads of each."""
    results = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_worker, args=(world, _free_port(), args, results), nprocs=world, join=True)
    return results.get()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--batch", type=int, default=16, help="global batch (data.batch_size)")
    p.add_argument("--iters", type=int, default=10, help="timed steps (median reported)")
    p.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)), help="CPU cores shared out")
    p.add_argument("--config", default="pix2pix_axial_fdg", help="a packaged 2D config")
    args = p.parse_args(argv)
    one, threads_one = measure(1, args)
    many, threads_many = measure(args.processes, args)
    print(f"CPU, {args.cores} cores, {args.config}, global batch {args.batch} x 1 x 64 x 80, "
          f"{args.iters} timed steps (median)")
    print(f"1 process  x {threads_one} threads:  {args.batch / one:7.1f} samples/s  ({one * 1e3:.0f} ms/step)")
    print(f"{args.processes} processes x {threads_many} threads: {args.batch / many:7.1f} samples/s  "
          f"({many * 1e3:.0f} ms/step, gloo)")
    print(f"ratio {args.processes} / 1 processes: {one / many:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
