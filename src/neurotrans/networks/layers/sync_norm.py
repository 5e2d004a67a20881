"""Batch statistics of the global batch when the batch is split across processes.

Under data-parallel training (``torchrun``) every process sees a shard of each batch. A
plain batch norm would normalise each shard with that shard's own mean and variance, so
the trained network (and its running statistics) would depend on the number of
processes; a Glow actnorm initialised from one shard would start each process's flow
differently. The layer and function here reduce the per-channel sums across processes
first, so every process normalises with the statistics of the whole batch: the same
numbers one process computes on the concatenated batch, up to summation order.

torch's own ``nn.SyncBatchNorm`` refuses CPU tensors ("SyncBatchNorm expected input
tensor to be on GPU ..."), so training with gloo on CPUs needs this layer. It serves GPUs
(NCCL) too: one arithmetic on both, and the one the CPU tests check.

Outside a process group of two or more processes everything here is the plain
single-process computation.

References: Ioffe & Szegedy 2015 (batch norm); Kingma & Dhariwal 2018 (Glow actnorm's
data-dependent initialisation); the all-reduce of sums and sums of squares is the
arithmetic of torch's ``SyncBatchNorm`` (Zhang et al. 2018, context encoding).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


def world_size() -> int:
    """Processes in the default process group (1 without one)."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _channel_view(x: Tensor) -> tuple[list[int], tuple[int, ...]]:
    """The dimensions reduced per channel and the shape broadcasting a (C,) vector over ``x``."""
    return [0, *range(2, x.dim())], (1, -1, *[1] * (x.dim() - 2))


class _GlobalSum(torch.autograd.Function):
    """All-reduce (sum) with its adjoint: the gradient of a sum over processes is the sum of their gradients."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        import torch.distributed as dist

        out = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        import torch.distributed as dist

        out = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out


def _global_sum(x: Tensor) -> Tensor:
    """``x`` summed over every process, differentiable (the backward sums the gradients too)."""
    return _GlobalSum.apply(x)


class SyncBatchNorm(_BatchNorm):
    """Batch norm over the global batch of every process (1D, 2D and 3D inputs).

    In training mode with a process group of two or more, the per-channel count, sum
    and (second pass) sum of squared deviations are summed across processes, so the
    normalisation, its gradient and the running statistics (variance unbiased over the
    global count, as ``nn.BatchNorm``) are those of the whole batch. In eval mode, or in
    one process, it is ``nn.BatchNorm``. Parameter and buffer names are batch norm's, so
    state dicts load into either.

    Shapes: (B, C[, ...]) -> same; every process must call it the same number of times
    (it is a collective), which data-parallel training guarantees.

    Args: as ``nn.BatchNorm2d``.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"SyncBatchNorm expects (B, C[, ...]) input, got {input.dim()} dimensions")

    def forward(self, input: Tensor) -> Tensor:
        if not self.training or world_size() < 2:
            return super().forward(input)
        self._check_input_dim(input)
        dims, shape = _channel_view(input)
        x = input.float()
        count = x.new_full((1,), x.numel() // max(x.shape[1], 1))
        total = _global_sum(torch.cat([x.sum(dims), count]))
        n = total[-1].detach()
        mean = total[:-1] / n
        centred = x - mean.view(shape)
        # two passes (sum, then squared deviations): no cancellation of E[x^2] - E[x]^2
        var = _global_sum(centred.square().sum(dims)) / n
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), n)
        return y.to(input.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, var: Tensor, n: Tensor) -> None:
        if self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        if self.momentum is None:  # cumulative moving average, as nn.BatchNorm
            factor = 1.0 / float(self.num_batches_tracked)
        else:
            factor = self.momentum
        unbiased = var * (n / (n - 1).clamp_min(1.0))
        self.running_mean.mul_(1.0 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
        self.running_var.mul_(1.0 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every batch norm in ``module`` by a :class:`SyncBatchNorm` sharing its tensors.

    The new layers hold the very ``Parameter`` and buffer objects of the old ones, so an
    optimiser built before the conversion keeps updating them and ``state_dict`` keys are
    unchanged. Returns ``module`` (or the new layer, when ``module`` itself is a batch norm).
    """
    if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
        new = SyncBatchNorm(module.num_features, eps=module.eps, momentum=module.momentum, affine=module.affine,
                            track_running_stats=module.track_running_stats)
        # the old layer's own tensors, not copies (assigning a Parameter / a registered buffer name)
        new._parameters = module._parameters
        new._buffers = module._buffers
        new.train(module.training)
        return new
    for name, child in list(module._modules.items()):
        if child is not None:
            new_child = convert_sync_batchnorm(child)
            if new_child is not child:
                module._modules[name] = new_child
    return module


@torch.no_grad()
def global_mean(x: Tensor, dims: list[int]) -> Tensor:
    """Mean over ``dims`` (kept as size 1) of the global batch: ``x.mean(dims, keepdim=True)``
    of every process's ``x`` concatenated (one all-reduce; in one process, ``x.mean`` itself)."""
    if world_size() < 2:
        return x.mean(dim=dims, keepdim=True)
    import torch.distributed as dist

    keep = [1 if d in dims else s for d, s in enumerate(x.shape)]
    count = x.new_full((1,), x.numel() // max(1, int(torch.tensor(keep).prod())))
    total = torch.cat([x.sum(dims).reshape(-1), count])
    dist.all_reduce(total)
    return (total[:-1] / total[-1]).reshape(keep)


@torch.no_grad()
def global_mean_std(x: Tensor, dims: list[int]) -> tuple[Tensor, Tensor]:
    """Per-channel mean and unbiased standard deviation over ``dims`` of the global batch.

    What ``x.mean(dims, keepdim=True)`` and ``x.std(dims, keepdim=True)`` give on the
    batch of every process concatenated (Glow actnorm's initialisation); in one process,
    exactly those.
    """
    if world_size() < 2:
        return x.mean(dim=dims, keepdim=True), x.std(dim=dims, keepdim=True)
    import torch.distributed as dist

    mean = global_mean(x, dims)
    n = x.new_full((1,), x.numel() // mean.numel())
    sq = torch.cat([(x - mean).square().sum(dims).reshape(-1), n])
    dist.all_reduce(sq)
    return mean, (sq[:-1] / (sq[-1] - 1)).sqrt().reshape(mean.shape)


__all__ = ["SyncBatchNorm", "convert_sync_batchnorm", "global_mean", "global_mean_std", "world_size"]
