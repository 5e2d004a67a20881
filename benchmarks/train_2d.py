"""Speed of our pix2pix training step vs a minimal plain-PyTorch step, and 1.5 mm prediction cost.

Both steps use the same generator/discriminator architectures (the pix2pix_axial_fdg
config's), the same batch of random slices and Adam(2e-4, (0.5, 0.999)), measured in the
same process, interleaved. Ours goes through ``Pix2Pix.training_step`` and
``Trainer.train_iteration`` (schedule, zero_grad, scaler, logging dict); the plain one is
the reference implementation's ``optimize_parameters`` written out by hand.

Run: ``python benchmarks/train_2d.py [--device cuda] [--iters 20] [--batch 16]``
"""

from __future__ import annotations

import argparse
import copy
import resource
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F


def build(args):
    from neurotrans.config import load_config
    from neurotrans.methods import ModelIO, build_method

    cfg = load_config("pix2pix_axial_fdg")
    torch.manual_seed(0)
    return cfg, build_method(cfg.model, ModelIO(in_channels=1, inputs=tuple(cfg.data.inputs)))


def plain_step(G, D, opt_g, opt_d, x, y, lam=100.0):
    """pix2pix's optimize_parameters: forward G, update D on (x, y) / (x, G(x).detach()), update G."""
    fake = G(x)
    for p in D.parameters():
        p.requires_grad_(True)
    opt_d.zero_grad(set_to_none=True)
    pr, pf = D(torch.cat([x, y], 1)), D(torch.cat([x, fake.detach()], 1))
    loss_d = 0.5 * (F.binary_cross_entropy_with_logits(pr, torch.ones_like(pr))
                    + F.binary_cross_entropy_with_logits(pf, torch.zeros_like(pf)))
    loss_d.backward()
    opt_d.step()
    for p in D.parameters():
        p.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    pf = D(torch.cat([x, fake], 1))
    loss_g = F.binary_cross_entropy_with_logits(pf, torch.ones_like(pf)) + lam * F.l1_loss(fake, y)
    loss_g.backward()
    opt_g.step()
    return loss_g.item()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None) -> int:
    from torch.utils.data import TensorDataset

    from neurotrans.inference.predict import predict_slices
    from neurotrans.training.trainer import Trainer, resolve_device

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cfg, method = build(args)
    G0, D0 = copy.deepcopy(method.networks["G"]), copy.deepcopy(method.networks["D"])
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(method, [TensorDataset(torch.zeros(1))], [], trainer=cfg.trainer, optim=cfg.optim,
                          out=tmp, batch_size=args.batch, device=device)
    G, D = G0.to(device), D0.to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 1, 64, 80, generator=g).to(device)
    y = torch.rand(args.batch, 1, 64, 80, generator=g).to(device)
    batch = {"input": x, "target": y}
    G.train()
    D.train()
    for _ in range(3):  # warm-up (allocator, cuDNN autotuning off but kernels load)
        trainer.train_iteration(batch)
        plain_step(G, D, opt_g, opt_d, x, y)
    ours, plain = [], []
    for _ in range(args.iters):
        sync(device)
        t = time.perf_counter()
        trainer.train_iteration(batch)
        sync(device)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        plain_step(G, D, opt_g, opt_d, x, y)
        sync(device)
        plain.append(time.perf_counter() - t)
    s_ours, s_plain = args.batch / np.median(ours), args.batch / np.median(plain)
    print(f"device {device}, torch threads {torch.get_num_threads()}, batch {args.batch} x 1 x 64 x 80, "
          f"{args.iters} timed iterations (median)")
    print(f"pix2pix step, ours (Method + Trainer): {s_ours:8.1f} slices/s")
    print(f"pix2pix step, plain PyTorch:          {s_plain:8.1f} slices/s")
    print(f"ratio ours / plain: {s_ours / s_plain:.3f}")

    # one 1.5 mm MNI volume, axial slices padded to a multiple of the generator's 2**depth
    vol = np.random.default_rng(0).random((1, 121, 145, 121)).astype(np.float32)
    method.eval()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sync(device)
    t = time.perf_counter()
    out = predict_slices(method.predict, vol, ["axial"], multiple=method.size_multiple, batch_size=16, device=device)
    sync(device)
    dt = time.perf_counter() - t
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    mem = (f"peak CUDA memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if device.type == "cuda" else
           f"process peak RSS {rss1 / 1024:.0f} MiB (grew {max(rss1 - rss0, 0) / 1024:.0f} MiB during prediction)")
    print(f"predict one 121x145x121 volume (axial, batch 16): {dt:.2f} s, {mem}, output {out.shape}")
    t = time.perf_counter()
    predict_slices(method.predict, vol, ["sagittal", "coronal", "axial"], multiple=method.size_multiple, batch_size=16,
                   device=device)
    sync(device)
    print(f"predict one 121x145x121 volume (three planes averaged): {time.perf_counter() - t:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
