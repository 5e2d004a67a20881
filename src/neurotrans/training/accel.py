"""Speed switches of the trainer: fused optimisers, bf16 on CPU, channels_last, torch.compile.

:func:`prepare` applies the ``trainer`` config's network switches once, before the first
step; the trainer builds its optimisers fused when asked (:func:`fused_kwargs`). None of them renames, reshapes or
re-types a parameter, so a checkpoint is the same whatever the switches (``state_dict`` keys
never gain ``_orig_mod.``; a run may be resumed with other settings), and a run resumed with
the same settings ends with the same weights. ``"auto"`` turns on only what was measured to
pay, on the device it was measured on:

* ``fused_optimiser`` (``auto``: on CPU): Adam/AdamW/SGD update all tensors in one fused
  kernel instead of a Python loop of per-tensor ops; same update up to float rounding.
* ``cpu_bf16`` (off unless asked): each network's forward runs under ``torch.autocast("cpu",
  bfloat16)`` (convolutions and matrix products in bf16 with fp32 accumulation; weights,
  optimiser states, losses and the networks' outputs stay fp32). Not bit-comparable with
  fp32 and measured only on 2D pix2pix, hence opt-in; there its validation and test errors
  stayed within seed-to-seed noise (below).
* ``channels_last`` (``auto``: off): 4-D weights of 2D networks in NHWC (oneDNN then runs
  the convolutions in NHWC); 3D networks are left alone.
* ``compile`` (``auto``: off): ``nn.Module.compile()`` on every network (compiles the
  forward in place, so ``state_dict`` keys are unchanged); compilation is paid on the
  first steps (and again when a network's ``requires_grad`` pattern changes).

Measured on 2 cores of an AMD EPYC (Zen 4: AVX512-BF16, no AMX), torch 2.13.0+cpu, the
canonical pix2pix step (unet_128 + 70x70 PatchGAN, 128x128, batch 16, Adam 2e-4), each
variant of ours interleaved with the plain reference step in one process, ratio = median
of per-round ratios of speed (``python benchmarks/train_2d.py --iters 10 --variants
default,fp32,channels_last,bf16,bf16_channels_last`` and ``--iters 6 --variants
default,compile,bf16,bf16_compile --no-predict``):

* the fp32 reference takes ~2.0 s a step (~8 slices/s); its convolutions, ~330 GFLOP a
  step, run close to the CPU's peak (oneDNN reaches ~215 GFLOP/s on the largest; an fp32
  matrix product ~165 GFLOP/s), so no exact-precision switch can buy much: fused Adam
  1.02-1.04x (the optimiser's share: 145 ms -> 22 ms a step), ours with every switch off
  1.01-1.02x, channels_last (with fused Adam) 0.96-1.00x, torch.compile 0.90x.
* bf16 autocast 1.69-1.80x; channels_last does not add to it (1.69 vs 1.70, 1.74 vs 1.79
  in two runs), nor does torch.compile (1.74 vs 1.80).
* accuracy (same seed, same split; 24-subject simulated fdg cohort at 3 mm, these networks,
  200 steps, seeds 0 and 1): validation MAE fp32 0.2408 / 0.2479, bf16 0.2408 / 0.2474
  (normalised units); the seed changes it by 0.007, bf16 by at most 0.0005.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from neurotrans.config import TrainerConfig
from neurotrans.methods.base import Method


def resolve(cfg: TrainerConfig, device: torch.device, mixed_precision: bool = True) -> dict[str, bool]:
    """Which switches are on for this device (``auto`` resolved as measured, see the module docstring).

    ``mixed_precision=False`` (``Method.mixed_precision`` of methods whose arithmetic needs
    float32 throughout, e.g. flows) keeps ``cpu_bf16`` off.
    """
    cpu = device.type == "cpu"
    bf16 = bool(cfg.cpu_bf16) and cpu and mixed_precision
    return {
        "fused_optimiser": cpu if cfg.fused_optimiser == "auto" else bool(cfg.fused_optimiser),
        "cpu_bf16": bf16,
        "channels_last": False if cfg.channels_last == "auto" else bool(cfg.channels_last),
        "compile": False if cfg.compile == "auto" else bool(cfg.compile),
    }


def prepare(method: Method, cfg: TrainerConfig, device: torch.device) -> None:
    """Apply the network switches to ``method`` in place (before the first step).

    The optimiser switch is not applied here: the trainer builds its optimisers fused from
    the start (:func:`fused_kwargs`).

    Args:
        method: the method, already on ``device``.
        cfg: the trainer config carrying the switches.
        device: the training device.
    """
    on = resolve(cfg, device, method.mixed_precision)
    for net in method.networks.values():
        if on["channels_last"]:
            channels_last(net)
        if on["cpu_bf16"]:
            autocast_forward(net, "cpu", torch.bfloat16)
        if on["compile"]:
            net.compile()


def fused_kwargs(optimiser: type[torch.optim.Optimizer], cfg: TrainerConfig, device: torch.device) -> dict[str, bool]:
    """``{"fused": True}`` when the switch is on and ``optimiser`` has a fused kernel, else ``{}``."""
    if resolve(cfg, device)["fused_optimiser"] and "fused" in inspect.signature(optimiser).parameters:
        return {"fused": True}
    return {}


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

    # run eagerly even when the module is compiled: torch.compile cannot trace an autocast
    # entered in one hook and left in another, and guards its graphs on the autocast state
    @torch.compiler.disable
    def enter(self, module: nn.Module, args: Any) -> None:
        ctx = torch.autocast(self.device_type, dtype=self.dtype)
        ctx.__enter__()
        self.active.append(ctx)

    @torch.compiler.disable
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
