"""Speed of our pix2pix training step vs the plain reference step, and 1.5 mm prediction cost.

Two cases (``--case``):

* ``canonical`` (default): the pix2pix paper's setting, built with our networks: generator
  ``unet_128`` (ngf 64, 7 stride-2 down-samplings, batch norm, dropout 0.5 in the two
  innermost 512-wide decoder blocks as in the reference code, tanh output), discriminator
  70x70 PatchGAN (ndf 64, n_layers 3, batch norm), 1-channel input and output (the
  discriminator sees 2 channels), 128x128 slices, batch 16. Our parameter counts are printed
  next to the reference implementation's, computed here from its layer list.
* ``fdg``: the ``pix2pix_axial_fdg`` config's narrower networks on 64x80 slices.

Both steps use the same initial weights, the same batch of random slices, Adam(2e-4, (0.5,
0.999)) and lambda 100. Ours goes through ``Pix2Pix.training_step`` and
``Trainer.train_iteration`` (schedule, zero_grad, scaler, logging dict) with the trainer
switches of each ``--variants`` entry (``default``: the config's defaults; ``fp32``: every
speed switch off; ``bf16``: ``trainer.cpu_bf16``; the others set the switch they name; a
first step's compilation is reported, not timed); the plain one is the reference implementation's
``optimize_parameters`` written out by hand (fp32, NCHW, per-tensor Adam). All run in one
process, interleaved: each round times every step once, and a ratio is the median of the
per-round ratios, so load from other processes that changes between rounds cancels out.

Run: ``python benchmarks/train_2d.py [--case canonical|fdg] [--device cuda] [--iters 10]
[--variants default,bf16] [--no-predict]``
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import resource
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

VARIANTS = {
    "default": {},
    "fp32": {"fused_optimiser": False, "channels_last": False, "compile": False, "cpu_bf16": False},
    "fused": {"fused_optimiser": True},
    "channels_last": {"channels_last": True},
    "compile": {"compile": True},
    "bf16": {"cpu_bf16": True},
    "bf16_nchw": {"cpu_bf16": True, "channels_last": False},
    "bf16_compile": {"cpu_bf16": True, "compile": True},
}


def reference_unet_params(input_nc: int, output_nc: int, num_downs: int, ngf: int = 64) -> int:
    """Parameters of the reference ``UnetGenerator`` with batch norm (convs bias-free, except the last).

    Outermost block: down conv input_nc -> ngf, up conv 2 ngf -> output_nc (with bias); then
    blocks ngf -> 2 ngf -> 4 ngf -> 8 ngf, ``num_downs - 5`` blocks 8 ngf -> 8 ngf, and the
    innermost 8 ngf -> 8 ngf (no down norm). A block outer -> inner has a 4x4 down conv
    outer -> inner + BN(inner) and a 4x4 up conv 2 inner -> outer + BN(outer).
    """
    def conv(cin: int, cout: int, bias: bool = False) -> int:
        return cin * cout * 16 + (cout if bias else 0)

    total = conv(input_nc, ngf) + conv(2 * ngf, output_nc, bias=True)
    widths = [ngf, 2 * ngf, 4 * ngf, 8 * ngf] + [8 * ngf] * (num_downs - 5)
    for outer, inner in zip(widths[:-1], widths[1:], strict=True):
        total += conv(outer, inner) + 2 * inner + conv(2 * inner, outer) + 2 * outer
    total += conv(8 * ngf, 8 * ngf) + conv(8 * ngf, 8 * ngf) + 2 * 8 * ngf  # innermost
    return total


def reference_patchgan_params(input_nc: int, ndf: int = 64, n_layers: int = 3) -> int:
    """Parameters of the reference ``NLayerDiscriminator`` with batch norm (4x4 convs)."""
    total = input_nc * ndf * 16 + ndf  # first conv, with bias, no norm
    mult = 1
    for n in range(1, n_layers + 1):  # n_layers - 1 stride-2 blocks, then one stride-1 block
        prev, mult = mult, min(2**n, 8)
        total += ndf * prev * ndf * mult * 16 + 2 * ndf * mult
    return total + ndf * mult * 16 + 1  # last conv to 1 channel, with bias


def build(case: str):
    """(config, method, slice shape) of a case, weights seeded."""
    from neurotrans.config import load_config
    from neurotrans.methods import ModelIO, build_method

    cfg = load_config("pix2pix_axial_fdg")
    shape = (64, 80)
    if case == "canonical":
        model = dataclasses.replace(cfg.model, generator="unet_pix2pix", generator_args={"depth": 7, "base": 64},
                                    discriminator="patchgan", discriminator_args={"base": 64, "n_layers": 3})
        cfg = dataclasses.replace(cfg, model=model)
        shape = (128, 128)
    torch.manual_seed(0)
    return cfg, build_method(cfg.model, ModelIO(in_channels=1, inputs=tuple(cfg.data.inputs))), shape


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


def n_params(net) -> int:
    return sum(p.numel() for p in net.parameters())


def main(argv=None) -> int:
    from torch.utils.data import TensorDataset

    from neurotrans.inference.predict import predict_slices
    from neurotrans.training.accel import resolve
    from neurotrans.training.trainer import Trainer, resolve_device

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", choices=("canonical", "fdg"), default="canonical")
    p.add_argument("--device", default="auto")
    p.add_argument("--iters", type=int, default=10, help="timed rounds")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--variants", default=None,
                   help=f"comma-separated, from {', '.join(VARIANTS)} (default: default,bf16 on CPU, default on CUDA)")
    p.add_argument("--no-predict", action="store_true", help="skip the prediction timings")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    variants = (args.variants or ("default,bf16" if device.type == "cpu" else "default")).split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        p.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    cfg, method, shape = build(args.case)
    G0, D0 = copy.deepcopy(method.networks["G"]), copy.deepcopy(method.networks["D"])
    print(f"case {args.case}: generator {n_params(G0):,} parameters, discriminator {n_params(D0):,}")
    if args.case == "canonical":
        ref_g, ref_d = reference_unet_params(1, 1, 7, 64), reference_patchgan_params(2, 64, 3)
        print(f"  reference unet_128 (1 -> 1 channel): {ref_g:,}; reference 70x70 PatchGAN (2 channels): {ref_d:,}"
              f" -> {'same' if (ref_g, ref_d) == (n_params(G0), n_params(D0)) else 'DIFFERENT'}")

    steps, compile_s = {}, {}
    # copies before any trainer prepares one (hooks, fused optimisers); the first variant trains `method`
    methods = {name: method if i == 0 else copy.deepcopy(method) for i, name in enumerate(variants)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, m in methods.items():
            tcfg = dataclasses.replace(cfg.trainer, **VARIANTS[name])
            trainer = Trainer(m, [TensorDataset(torch.zeros(1))], [], trainer=tcfg, optim=cfg.optim, out=tmp,
                              batch_size=args.batch, device=device)
            on = [k for k, v in resolve(tcfg, device).items() if v]
            steps[f"ours {name} [{', '.join(on) or 'no switches'}]"] = trainer.train_iteration
    G, D = G0.to(device), D0.to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 1, *shape, generator=g).to(device)
    y = torch.rand(args.batch, 1, *shape, generator=g).to(device)
    batch = {"input": x, "target": y}
    G.train()
    D.train()
    steps["plain reference"] = lambda b: plain_step(G, D, opt_g, opt_d, b["input"], b["target"])
    for name, step in steps.items():
        sync(device)
        t = time.perf_counter()
        step(batch)  # the first step pays compilation, oneDNN primitive creation, allocations
        sync(device)
        compile_s[name] = time.perf_counter() - t
        for _ in range(2):
            step(batch)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.iters):
        for name, step in steps.items():
            sync(device)
            t = time.perf_counter()
            step(batch)
            sync(device)
            times[name].append(time.perf_counter() - t)
    plain = np.array(times["plain reference"])
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch} x 1 x "
          f"{shape[0]} x {shape[1]}, {args.iters} interleaved rounds (medians)")
    for name, ts in times.items():
        ratio = np.median(plain / np.array(ts))
        print(f"  {name:60s} {args.batch / np.median(ts):7.2f} slices/s   first step {compile_s[name]:6.1f} s   "
              f"ratio to plain {ratio:.3f}")

    if args.no_predict:
        return 0
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
    print(f"predict one 121x145x121 volume (axial, batch 16; {variants[0]} switches): {dt:.2f} s, {mem}, "
          f"output {out.shape}")
    t = time.perf_counter()
    predict_slices(method.predict, vol, ["sagittal", "coronal", "axial"], multiple=method.size_multiple, batch_size=16,
                   device=device)
    sync(device)
    print(f"predict one 121x145x121 volume (three planes averaged): {time.perf_counter() - t:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
