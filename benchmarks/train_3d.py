"""3D patch training throughput: the loader, the model's own step, and the trainer with both.

Simulates a small fdg cohort on the 3 mm grid (or takes ``--manifest``), prepares it as
``neurotrans train unet3d_fdg`` does (random 32^3 patches around brain voxels, flip
augmentation, the packaged 3D U-Net) and measures patches/s of

- the loader: the trainer's DataLoader (batch sampler + default collate) with 0 and 2
  worker processes, nothing else;
- the model: forward + backward + optimiser step on one batch already in memory
  (``Trainer.train_iteration``), nothing else;
- the trainer: ``Trainer.fit`` for the same number of steps, loading included.

trainer / model near 1 means loading and bookkeeping cost nothing next to the network.

Usage::

    python benchmarks/train_3d.py [--manifest M] [--steps 20] [--threads 1] [--config unet3d_fdg] [--device auto]
                                  [--workers N]

Any packaged config works (a 2D one, e.g. ``pix2pix_axial_fdg``, reports slices/s).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    from torch.utils.data import ConcatDataset, DataLoader, default_collate

    from neurotrans.config import load_config
    from neurotrans.data.pipeline import build_datasets, prepare, sampling_of, split_subjects
    from neurotrans.io.manifest import read_manifest
    from neurotrans.methods import ModelIO, build_method
    from neurotrans.phantom import simulate_cohort
    from neurotrans.training.trainer import Trainer, epoch_batches, seed_everything, to_device

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", type=Path, default=None)
    p.add_argument("--config", default="unet3d_fdg")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--workers", type=int, default=None,
                   help="DataLoader workers of trainer.fit (default: the config's data.num_workers)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = args.manifest
        if manifest is None:
            manifest = simulate_cohort("fdg", Path(tmp) / "cohort", n_subjects=8, voxel_size=3.0, seed=0,
                                       progress=False).manifest
        cfg = load_config(args.config, [f"data.manifest={manifest}", "trainer.progress=false",
                                        f"trainer.max_steps={args.steps}", "trainer.val_every=100000",
                                        "trainer.checkpoint_every=100000"])
        seed_everything(0)
        method = build_method(cfg.model, ModelIO(in_channels=cfg.data.n_input_channels,
                                                 spatial_dims=cfg.data.spatial_dims))
        man = read_manifest(manifest)
        train = prepare(man, split_subjects(man, cfg.split)["train"], cfg.data, {})
        sampling = sampling_of(cfg.data, [s.shape for s in train], method.size_multiple)
        sets = build_datasets(train, cfg.data, sampling, method.size_multiple, seed=0, train=True)
        data, sizes, bs = ConcatDataset(sets), [len(s) for s in sets], cfg.data.batch_size
        print(f"{args.config}: {len(train)} training subjects, {sum(sizes)} samples per epoch, batch {bs}, "
              f"sampling {sampling}, {args.threads} thread(s)")

        rows = []
        for workers in (0, 2):
            loader = DataLoader(data, batch_sampler=epoch_batches(sizes, bs, 0, 0), num_workers=workers,
                                collate_fn=default_collate)
            start, n = time.perf_counter(), 0
            for i, batch in enumerate(loader):
                n += len(batch["input"])
                if i + 1 >= args.steps:
                    break
            rows.append((f"loader, {workers} workers", n / (time.perf_counter() - start)))

        workers = cfg.data.num_workers if args.workers is None else args.workers
        trainer = Trainer(method, sets, [], trainer=cfg.trainer, optim=cfg.optim, out=Path(tmp) / "run",
                          batch_size=bs, device=args.device, num_workers=workers)
        device = trainer.device
        batch = to_device(default_collate([data[i] for i in range(bs)]), device)  # on the device already
        for _ in range(3):  # warm-up: kernels load, the allocator settles
            trainer.train_iteration(batch)
        sync(device)
        start = time.perf_counter()
        for _ in range(args.steps):
            trainer.train_iteration(batch)
        trainer.check_finite()  # the losses' one host sync, as fit() does on logging steps
        sync(device)
        model = args.steps * bs / (time.perf_counter() - start)
        rows.append((f"model step (batch in memory, {device.type})", model))
        start = time.perf_counter()
        state = trainer.fit()
        sync(device)
        rows.append((f"trainer.fit ({workers} workers, loading included)", state.step * bs / (time.perf_counter() - start)))
    width = max(len(r[0]) for r in rows)
    unit = "patches" if cfg.data.spatial_dims == 3 else "slices"
    for name, rate in rows:
        print(f"  {name:<{width}}  {rate:8.2f} {unit}/s")
    print(f"  loader (0 workers) / model = {rows[0][1] / model:.1f}; trainer / model = {rows[-1][1] / model:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
