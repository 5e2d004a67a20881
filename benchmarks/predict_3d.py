"""Sliding-window prediction of one 1.5 mm volume: wall time and peak memory, and how memory grows.

Runs ``neurotrans.inference.predict.predict_sliding_window`` (MONAI's Gaussian-blended
windows, as ``neurotrans predict`` does for 3D models) with the packaged ``unet3d_fdg``
network (random weights: timing and memory do not depend on them) on

- one volume of the 1.5 mm MNI grid (121 x 145 x 121), and
- a volume twice as large (121 x 145 x 242),

each in a fresh process, so that the peak resident memory (``ru_maxrss``) belongs to that
prediction alone. It prints the time, the peak RSS, the RSS the prediction added on top
of the loaded model, and the ratio of the 2x volume's peak to the 1x volume's (target:
within 10 %, i.e. memory bounded by the windows, not the volume).

Usage::

    python benchmarks/predict_3d.py [--threads 2] [--roi 32 32 32] [--overlap 0.5] [--batch 4]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

SHAPES = {"1.5 mm volume": (121, 145, 121), "2x volume": (121, 145, 242)}


def measure(shape: tuple[int, int, int], roi: list[int], overlap: float, batch: int, threads: int) -> dict:
    """Predict one random volume of ``shape``; returns seconds and memory figures (in this process)."""
    import numpy as np
    import torch

    from neurotrans.config import load_config
    from neurotrans.inference.predict import predict_sliding_window
    from neurotrans.methods import ModelIO, build_method

    torch.set_num_threads(threads)
    cfg = load_config("unet3d_fdg")
    method = build_method(cfg.model, ModelIO(in_channels=1, spatial_dims=3)).eval()
    rng = np.random.default_rng(0)
    warm = rng.random((1, *roi), dtype=np.float32)
    predict_sliding_window(method.predict, warm, roi, overlap=overlap, batch_size=batch)  # kernels, allocator
    volume = rng.random((1, *shape), dtype=np.float32)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    out = predict_sliding_window(method.predict, volume, roi, overlap=overlap, batch_size=batch)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert out.shape == shape
    return {"seconds": seconds, "peak_mib": peak / 1024, "added_mib": (peak - before) / 1024,
            "volume_mib": volume.nbytes / 2**20}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--roi", type=int, nargs=3, default=[32, 32, 32])
    p.add_argument("--overlap", type=float, default=0.5)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(measure(tuple(args.child), args.roi, args.overlap, args.batch, args.threads)))
        return 0
    rows = {}
    for name, shape in SHAPES.items():
        cmd = [sys.executable, __file__, "--child", *map(str, shape), "--roi", *map(str, args.roi),
               "--overlap", str(args.overlap), "--batch", str(args.batch), "--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows[name] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"sliding-window prediction, unet3d_fdg network, windows {args.roi} overlap {args.overlap}, "
          f"{args.batch} windows per pass, {args.threads} threads")
    print(f"{'volume':<16}{'shape':<18}{'seconds':>9}{'peak RSS MiB':>14}{'added MiB':>11}{'input MiB':>11}")
    for name, shape in SHAPES.items():
        r = rows[name]
        print(f"{name:<16}{'x'.join(map(str, shape)):<18}{r['seconds']:>9.2f}{r['peak_mib']:>14.0f}"
              f"{r['added_mib']:>11.0f}{r['volume_mib']:>11.1f}")
    one, two = rows["1.5 mm volume"], rows["2x volume"]
    print(f"peak RSS 2x / 1x = {two['peak_mib'] / one['peak_mib']:.3f} (target <= 1.10); "
          f"1.5 mm volume in {one['seconds']:.1f} s (target < 10 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
