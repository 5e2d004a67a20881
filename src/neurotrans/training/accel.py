"""Speed switches of the trainer: fused optimisers, bf16 on CPU, channels_last, torch.compile.

:func:`prepare` applies the ``trainer`` config's switches once, before the first step, to a
method's networks and to the optimisers built for them. None of them renames, reshapes or
re-types a parameter, so a checkpoint is the same whatever the switches (``state_dict`` keys
never gain ``_orig_mod.``; a run may be resumed with other settings), and a run resumed with
the same settings ends with the same weights. ``"auto"`` turns on only what was measured to
pay, on the device it was measured on:

* ``fused_optimiser`` (``auto``: on CPU): Adam/AdamW/SGD update all tensors in one fused
  kernel instead of a Python loop of per-tensor ops; same update up to float rounding.
* ``cpu_bf16`` (off unless asked): each network's forward runs under ``torch.autocast("cpu",
  bfloat16)`` (convolutions and matrix products in bf16 with fp32 accumulation; weights,
  optimiser states, losses and the networks' outputs stay fp32). Not bit-comparable with
  fp32, hence opt-in; validation error stayed within seed-to-seed noise (below).
* ``channels_last`` (``auto``: with ``cpu_bf16``): 4-D weights of 2D networks in NHWC, the
  layout oneDNN's bf16 convolutions prefer; 3D networks are left alone.
* ``compile`` (``auto``: off): ``nn.Module.compile()`` on every network (compiles the
  forward in place, so ``state_dict`` keys are unchanged); compile time is paid on the
  first steps.

Measured on 2 cores of an AMD EPYC (AVX512-BF16, no AMX), torch 2.13 CPU, the canonical
pix2pix step (unet_128 + 70x70 PatchGAN, 128x128, batch 16, Adam 2e-4), interleaved with the
plain reference step in one process (``python benchmarks/train_2d.py``):

* fp32, NCHW, non-fused Adam (the reference) ~2.0 s/step: the convolutions run near the
  CPU's peak (~200 GFLOP/s on ~330 GFLOP a step), so exact-precision switches buy little:
  fused Adam 1.03-1.07x, channels_last 0.96x (G) / 1.03x (D), torch.compile 0.87x
  (after 42 s of compilation).
* bf16 autocast ~1.6x, with channels_last and fused Adam ~1.7x (see the benchmark's output).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from neurotrans.config import TrainerConfig
from neurotrans.methods.base import Method


def resolve(cfg: TrainerConfig, device: torch.device) -> dict[str, bool]:
    """Which switches are on for this device (``auto`` resolved as measured, see the module docstring)."""
    cpu = device.type == "cpu"
    bf16 = bool(cfg.cpu_bf16) and cpu
    return {
        "fused_optimiser": cpu if cfg.fused_optimiser == "auto" else bool(cfg.fused_optimiser),
        "cpu_bf16": bf16,
        "channels_last": bf16 if cfg.channels_last == "auto" else bool(cfg.channels_last),
        "compile": False if cfg.compile == "auto" else bool(cfg.compile),
    }


def prepare(method: Method, optimisers: dict[str, torch.optim.Optimizer], cfg: TrainerConfig,
            device: torch.device) -> dict[str, torch.optim.Optimizer]:
    """Apply the switches to ``method`` (in place) and return the optimisers to train with.

    Call it before the first step and before loading a checkpoint: fused optimisers are
    rebuilt over the same parameters (empty state, same hyper-parameters).

    Args:
        method: the method, already on ``device``.
        optimisers: group name -> optimiser over the method's parameters.
        cfg: the trainer config carrying the switches.
        device: the training device.
    """
    on = resolve(cfg, device)
    for net in method.networks.values():
        if on["channels_last"]:
            channels_last(net)
        if on["cpu_bf16"]:
            autocast_forward(net, "cpu", torch.bfloat16)
        if on["compile"]:
            net.compile()
    if on["fused_optimiser"]:
        optimisers = {name: fused(opt) for name, opt in optimisers.items()}
    return optimisers


def channels_last(net: nn.Module) -> nn.Module:
    """Store the 4-D parameters and buffers of ``net`` in NHWC (in place; 5-D ones are kept).

    Parameters keep their identity, so optimisers built over them stay valid.
    """
    for t in [*net.parameters(), *net.buffers()]:
        if t.dim() == 4:
            t.data = t.data.contiguous(memory_format=torch.channels_last)
    return net


class _Autocast:
    """Forward hooks running a module under ``torch.autocast`` and handing back fp32 outputs.

    A class rather than closures so that hooked modules stay picklable and deep-copyable.
    """

    def __init__(self, device_type: str, dtype: torch.dtype) -> None:
        self.device_type = device_type
        self.dtype = dtype
        self.active: list[torch.autocast] = []  # a stack: a hooked network may call another

    def enter(self, module: nn.Module, args: Any) -> None:
        ctx = torch.autocast(self.device_type, dtype=self.dtype)
        ctx.__enter__()
        self.active.append(ctx)

    def exit(self, module: nn.Module, args: Any, output: Any) -> Any:
        if self.active:
            self.active.pop().__exit__(None, None, None)
        return _to_float(output)


def _to_float(out: Any) -> Any:
    if torch.is_tensor(out):
        return out.float() if out.dtype in (torch.bfloat16, torch.float16) else out
    if isinstance(out, tuple):
        return tuple(_to_float(o) for o in out)
    if isinstance(out, list):
        return [_to_float(o) for o in out]
    if isinstance(out, dict):
        return {k: _to_float(v) for k, v in out.items()}
    return out


def autocast_forward(net: nn.Module, device_type: str, dtype: torch.dtype) -> nn.Module:
    """Run ``net``'s forward under autocast to ``dtype``; its outputs come back in fp32.

    The losses computed from them, the optimiser and the weights stay fp32. Hooks, not a
    wrapper module, so the ``state_dict`` keys do not change.
    """
    hooks = _Autocast(device_type, dtype)
    net.register_forward_pre_hook(hooks.enter)
    net.register_forward_hook(hooks.exit, always_call=True)
    return net


def fused(opt: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The same optimiser rebuilt with ``fused=True`` where its class has a fused kernel.

    Only for an optimiser that has not stepped yet (its state would be lost).
    """
    accepts = inspect.signature(type(opt)).parameters
    if "fused" not in accepts or opt.defaults.get("fused"):
        return opt
    if opt.state:
        raise ValueError("fused(): the optimiser has already stepped; rebuild it before training")
    skip = ("fused", "foreach")
    groups = [{k: v for k, v in g.items() if k not in skip} for g in opt.param_groups]
    defaults = {k: v for k, v in opt.defaults.items() if k in accepts and k not in skip}
    return type(opt)(groups, **defaults, fused=True)
