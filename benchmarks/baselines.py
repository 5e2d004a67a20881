"""Training and prediction time of the classical baselines and the FCN per volume.

Builds a synthetic cohort on the MNI grid (the ICBM152 brain mask; five input
"sequences" and a target as smooth nonlinear functions of the tissue maps plus
per-subject smooth fields, the scale of the thesis's z-scored inputs), then times

- random forest (60 trees, 3x3x3 patches, default voxel sampling): fit on the training
  subjects, predict one volume inside the brain mask; the saved state's size;
- voxel-wise MLP (2 x 100): fit, predict;
- modality propagation (3x3x3 patches, 5x5x5 search window): fit (storing the library),
  predict one volume;
- the thesis's FCN (3 hidden layers of 64, 5 inputs): one forward pass over the whole
  volume, no gradient; and one training step on the whole volume as the thesis trains
  (batch 1, MSE, SGD lr 5e-4: forward, backward, update), after one warm-up step.

Everything runs on ``--threads`` CPU threads (scikit-learn's ``n_jobs`` for the forest,
BLAS/OpenMP and torch for the rest).

Usage::

    OMP_NUM_THREADS=2 nice -n 10 python benchmarks/baselines.py [--voxel-size 1.5]
        [--train-subjects 16] [--threads 2] [--only random_forest voxel_mlp ...]
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch
from scipy import ndimage

from neurotrans.baselines import ModalityPropagation, RandomForestBaseline, VoxelMLPBaseline
from neurotrans.networks import build_network
from neurotrans.phantom.anatomy import load_template

MODELS = ("random_forest", "voxel_mlp", "modality_propagation", "fcn")


def synthetic_cohort(voxel_size: float, n: int, seed: int = 0):
    """``n`` subjects of 5 z-scored inputs, a target and the template brain mask."""
    tpl = load_template(voxel_size)
    mask = (tpl.gm + tpl.wm + tpl.csf) > 0.5
    rng = np.random.default_rng(seed)
    sigma = 6.0 / voxel_size  # fields smooth on a 6 mm scale
    subjects = []
    for _ in range(n):
        own = [ndimage.gaussian_filter(rng.standard_normal(mask.shape).astype(np.float32), sigma)
               for _ in range(2)]  # fmt: skip
        own = [f / f.std() for f in own]
        gm, wm, csf = tpl.gm + 0.1 * own[0], tpl.wm + 0.1 * own[1], tpl.csf
        x = np.stack([gm + 2 * wm, 2 * gm + csf, np.tanh(3 * wm), wm - csf, gm * wm])
        x += 0.05 * rng.standard_normal(x.shape).astype(np.float32)
        x = (x - x[:, mask].mean(1)[:, None, None, None]) / x[:, mask].std(1)[:, None, None, None]
        y = np.sin(2 * gm) + wm**2 + 2 * csf * (1 + 0.2 * own[0])
        subjects.append((x.astype(np.float32), y.astype(np.float32), mask))
    return subjects


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def state_mb(model) -> float:
    buf = io.BytesIO()
    torch.save(model.state(), buf)
    return buf.tell() / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--voxel-size", type=float, default=1.5, choices=(1.5, 3.0))
    ap.add_argument("--train-subjects", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", nargs="*", choices=MODELS, default=list(MODELS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    subjects, t_data = timed(lambda: synthetic_cohort(args.voxel_size, args.train_subjects + 1))
    train, (x_test, y_test, mask) = subjects[:-1], subjects[-1]
    inputs, targets, masks = (list(v) for v in zip(*train, strict=True))
    print(f"grid {mask.shape} at {args.voxel_size} mm, {int(mask.sum())} brain voxels, "
          f"{args.train_subjects} training subjects, {args.threads} threads "
          f"(cohort built in {t_data:.0f} s)")  # fmt: skip
    print(f"{'model':<22}{'fit (s)':>10}{'predict (s/volume)':>20}{'state (MB)':>12}{'MAE':>8}")
    baselines = {
        "random_forest": lambda: RandomForestBaseline(n_jobs=args.threads),
        "voxel_mlp": VoxelMLPBaseline,
        "modality_propagation": ModalityPropagation,
    }
    for name in [m for m in MODELS if m in args.only and m != "fcn"]:
        model, t_fit = timed(lambda: baselines[name]().fit(inputs, targets, masks, seed=0))  # noqa: B023
        pred, t_pred = timed(lambda: model.predict(x_test, mask))  # noqa: B023
        err = float(np.abs(pred[mask] - y_test[mask]).mean())
        print(f"{name:<22}{t_fit:>10.1f}{t_pred:>20.1f}{state_mb(model):>12.1f}{err:>8.3f}")
    if "fcn" in args.only:
        net = build_network("fcn", spatial_dims=3, in_channels=5).eval()
        x = torch.from_numpy(x_test)[None]
        with torch.no_grad():
            net(x[..., :16])  # warm-up: allocator and kernels
            _, t_fwd = timed(lambda: net(x))
        print(f"{'fcn (forward)':<22}{'-':>10}{t_fwd:>20.1f}{'-':>12}{'-':>8}")
        net.train()
        opt = torch.optim.SGD(net.parameters(), lr=5e-4)
        y = torch.from_numpy(y_test)[None, None]

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.mse_loss(net(x), y).backward()
            opt.step()

        step()  # warm-up
        _, t_step = timed(step)
        print(f"{'fcn (train step)':<22}{t_step:>10.1f}{'-':>20}{'-':>12}{'-':>8}   "
              "fit column: one whole-volume SGD step (batch 1, MSE)")


if __name__ == "__main__":
    main()
