"""Can data loading ever be the bottleneck? Loader throughput from the cache vs. a small network.

Builds a small synthetic cohort on the 1.5 mm MNI grid (smooth random T1w -> FDG pairs,
written as NIfTI with a manifest), fills the memory-mapped cache through
``prepare_cohort``, then measures

- slices/s delivered by a torch DataLoader over ``PairedSliceDataset`` (axial and "all"),
- patches/s delivered over ``PairedPatchDataset`` (random 64^3 patches),

next to the forward+backward throughput of a tiny U-Net-like network (2D for slices,
3D for patches) on the very same batches. A ratio loader/network above 1 means the
loader keeps up with that network.

Usage::

    python benchmarks/data_loading.py [--subjects 8] [--batches 20] [--workers 0 2] [--device cpu] [--cold]

``--cold`` repeats each measurement right after evicting the cache files from the page
cache (``posix_fadvise(DONTNEED)``), the situation of a cohort larger than RAM.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import ndimage
from torch import nn
from torch.utils.data import DataLoader

from neurotrans.data.cache import prepare_cohort
from neurotrans.data.datasets import PairedPatchDataset, PairedSliceDataset
from neurotrans.data.grid import mni_grid
from neurotrans.io.manifest import Manifest, write_manifest
from neurotrans.io.nifti import save_volume


def synthetic_cohort(root: Path, n: int, seed: int = 0) -> Manifest:
    """``n`` smooth random T1w/FDG pairs inside an ellipsoid head on the 1.5 mm MNI grid."""
    grid = mni_grid(1.5)
    rng = np.random.default_rng(seed)
    idx = np.indices(grid.shape, dtype=np.float32)
    centre = (np.array(grid.shape, dtype=np.float32) - 1) / 2
    head = sum(((idx[a] - centre[a]) / (0.42 * grid.shape[a])) ** 2 for a in range(3)) <= 1
    rows = []
    for s in range(n):
        base = ndimage.gaussian_filter(rng.normal(size=grid.shape).astype(np.float32), 4.0)
        base = (base - base.min()) / (base.max() - base.min())
        row = {"subject": f"sub-{s:03d}", "session": "1", "group": ("CN", "AD")[s % 2]}
        for name, data in (("T1w", 800 * base), ("FDG", 5000 * (1 - base) + 1000)):
            rel = f"sub-{s:03d}/{name}.nii"
            save_volume(root / rel, np.where(head, data, 0).astype(np.float32), grid.affine)
            row[name] = rel
        rel = f"sub-{s:03d}/brainmask.nii"
        save_volume(root / rel, head.astype(np.uint8), grid.affine, dtype=np.uint8)
        row["brainmask"] = rel
        rows.append(row)
    table = pd.DataFrame(rows)
    write_manifest(table, root / "manifest.tsv")
    return Manifest(table, root, root / "manifest.tsv")


class TinyUNet(nn.Module):
    """A two-level U-Net-like conv net (2D or 3D), only for timing.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        width: channels of the first level.
    """

    def __init__(self, spatial_dims: int = 2, in_channels: int = 1, width: int = 16) -> None:
        super().__init__()
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        up = nn.ConvTranspose2d if spatial_dims == 2 else nn.ConvTranspose3d
        self.enc = nn.Sequential(conv(in_channels, width, 3, padding=1), nn.LeakyReLU(0.2))
        self.down = nn.Sequential(conv(width, 2 * width, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                                  conv(2 * width, 2 * width, 3, padding=1), nn.LeakyReLU(0.2))
        self.up = up(2 * width, width, 2, stride=2)
        self.dec = nn.Sequential(conv(2 * width, width, 3, padding=1), nn.LeakyReLU(0.2), conv(width, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.enc(x)
        u = self.up(self.down(e))
        u = u[(...,) + tuple(slice(0, s) for s in e.shape[2:])]  # odd sizes: crop the upsampled map
        if u.shape != e.shape:
            pad = [p for s_e, s_u in zip(reversed(e.shape[2:]), reversed(u.shape[2:]), strict=True)
                   for p in (0, s_e - s_u)]
            u = nn.functional.pad(u, pad)
        return self.dec(torch.cat([e, u], dim=1))


def time_loader(loader: DataLoader, n_batches: int) -> tuple[float, list[dict]]:
    """Items/s delivered by ``loader`` over ``n_batches`` (the first batch, worker start-up, excluded)."""
    it = iter(loader)
    batches = [next(it)]
    start = time.perf_counter()
    items = 0
    for _ in range(n_batches):
        try:
            b = next(it)
        except StopIteration:
            break
        batches.append(b)
        items += len(b["input"])
    return items / (time.perf_counter() - start), batches


def evict_page_cache(folder: Path) -> None:
    """Ask the kernel to drop the cached pages of the cache files (a cohort larger than RAM)."""
    for f in folder.rglob("*.npy"):
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def time_network(net: nn.Module, batches: list[dict], device: torch.device) -> float:
    """Items/s of forward + L1 loss + backward + optimiser step on ``batches``."""
    opt = torch.optim.AdamW(net.parameters(), 1e-4)
    moved = [(b["input"].to(device), b["target"].to(device)) for b in batches]
    x, y = moved[0]  # warm-up (cuDNN autotune, allocator)
    nn.functional.l1_loss(net(x), y).backward()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    items = 0
    for x, y in moved[1:]:
        opt.zero_grad(set_to_none=True)
        nn.functional.l1_loss(net(x), y).backward()
        opt.step()
        items += len(x)
    sync()
    return items / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--batches", type=int, default=20, help="timed batches per measurement")
    parser.add_argument("--slice-batch", type=int, default=16)
    parser.add_argument("--patch-batch", type=int, default=2)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cold", action="store_true",
                        help="also time each loader with the cache files evicted from the page cache")
    parser.add_argument("--workdir", type=Path, default=None, help="cohort + cache folder (default: a temp dir)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        t0 = time.perf_counter()
        manifest = synthetic_cohort(work / "cohort", args.subjects)
        t1 = time.perf_counter()
        subjects = prepare_cohort(manifest, ["T1w"], "FDG", grid=None, normalisation={"T1w": "minmax", "FDG": "suvr"},
                                  cache_dir=work / "cache")
        t2 = time.perf_counter()
        size = sum(f.stat().st_size for f in (work / "cache").rglob("*.npy")) / 2**20
        print(f"cohort: {args.subjects} subjects on the 1.5 mm grid {subjects[0].shape}; "
              f"written in {t1 - t0:.1f} s, cache filled in {t2 - t1:.1f} s ({size:.0f} MiB memory-mapped)")
        print(f"device: {device}, torch threads: {torch.get_num_threads()}, OMP_NUM_THREADS="
              f"{os.environ.get('OMP_NUM_THREADS', '-')}")
        print(f"{'what':34s} {'workers':>7s} {'cache':>5s} {'loader/s':>10s} {'net f+b/s':>10s} {'loader/net':>10s}")
        setups = [
            ("axial slices, 2.5D k=1", lambda: PairedSliceDataset(subjects, "axial", context=1), args.slice_batch, 2),
            ("three-plane slices (pad 145x145)", lambda: PairedSliceDataset(subjects, "all"), args.slice_batch, 2),
            (f"random {args.patch}^3 patches",
             lambda: PairedPatchDataset(subjects, (args.patch,) * 3, samples_per_volume=64), args.patch_batch, 3),
        ]
        for name, make, batch, dims in setups:
            ds = make()
            net_rate = None
            for workers in args.workers:
                for cold in (False, True) if args.cold else (False,):
                    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                        pin_memory=device.type == "cuda", persistent_workers=False,
                                        generator=torch.Generator().manual_seed(int(cold)))
                    if cold:
                        evict_page_cache(work / "cache")
                    rate, batches = time_loader(loader, args.batches)
                    if net_rate is None:
                        net = TinyUNet(dims, in_channels=batches[0]["input"].shape[1]).to(device)
                        net_rate = time_network(net, batches, device)
                    print(f"{name:34s} {workers:7d} {'cold' if cold else 'warm':>5s} {rate:10.1f} "
                          f"{net_rate:10.1f} {rate / net_rate:10.2f}")

if __name__ == "__main__":
    main()
