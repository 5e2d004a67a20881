"""Data-parallel training over the processes ``torchrun`` starts: NCCL on GPUs, gloo on CPUs.

Every process holds the whole method. Each global batch (``data.batch_size`` samples in
the order :func:`~neurotrans.training.trainer.epoch_batches` fixes) is cut into one
contiguous shard per process; after each optimiser group's backward the gradients of that
group's parameters are averaged across processes (an all-reduce of flat buckets), so every
process takes the same optimiser step and the weights stay identical everywhere. That is
one process's arithmetic on the same global batch, up to the order of floating-point sums.

Why not torch's ``DistributedDataParallel`` wrapper: its reducer expects one forward and
one backward of the wrapped module per step, with every parameter used (or declared
unused). The methods here call a network several times per step (pix2pix's D on real and
fake pairs, UNIT's encoders for the reconstructions and the cycle), step several
optimisers on one batch, switch ``requires_grad`` off for a discriminator inside the
generator's step, and leave whole networks unused for thousands of steps (a cascade's
frozen stages). An all-reduce of each group's gradients after its backward is exactly
what DDP computes (the mean of the processes' gradients) and holds for every method.

What else has to agree across processes:

- batch norm becomes :class:`~neurotrans.networks.layers.sync_norm.SyncBatchNorm`, and
  Glow actnorm initialises from the statistics of the whole batch;
- parameters and buffers are broadcast from rank 0 once the method is built or resumed;
- random draws inside a step (dropout, latent noise, dequantisation noise) come from a
  stream per process, offset by rank, so the shards get independent noise; a checkpoint
  keeps every process's RNG state and the per-process state of the method (an image
  pool's content), so a resumed run continues exactly;
- decisions are collective: a non-finite loss on any process stops all of them, the time
  budget stops all of them at the same step, validation sums are pooled over processes
  before early stopping looks at them; nobody waits forever in a collective;
- rank 0 alone holds the run-folder lock and writes checkpoints, logs, ``run.json`` and
  ``config.yaml``; every process reads ``last.pt`` on resume.

With one process (no ``torchrun``, or ``--nproc_per_node 1``) :class:`Dist` is inert:
every method returns its input or does nothing, so a single-process run is unchanged.

References: Li et al. 2020, "PyTorch Distributed: experiences on accelerating data
parallel training" (VLDB; gradient averaging by all-reduce, bucketing).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch

from neurotrans.errors import InputError

T = TypeVar("T")
BUCKET_BYTES = 25 * 2**20  # DDP's default bucket size


def torchrun_world() -> int:
    """The number of processes ``torchrun`` started (``WORLD_SIZE``; 1 outside torchrun)."""
    try:
        return max(int(os.environ.get("WORLD_SIZE", "1")), 1)
    except ValueError:
        return 1


@dataclass(frozen=True)
class Dist:
    """Where this process stands in a data-parallel run.

    Args:
        rank: global index of the process (0 = the one that writes files).
        world: number of processes.
        local_rank: index on its node (its GPU).
        device: the device this process trains on.
        owns_group: this object initialised the process group (and :meth:`close` ends it).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        """More than one process: the collectives run."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0, which writes the run folder."""
        return self.rank == 0

    # ---------------------------------------------------------------- data
    def bounds(self, n: int) -> tuple[int, int]:
        """This process's contiguous slice ``[start, stop)`` of a batch of ``n`` samples.

        The first ``n mod world`` processes take one sample more; concatenating the
        shards in rank order gives the batch back.
        """
        base, extra = divmod(n, self.world)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (self.rank < extra)

    def shard(self, batch: Sequence[int]) -> list[int]:
        """This process's part of a global batch of sample indices."""
        start, stop = self.bounds(len(batch))
        return list(batch[start:stop])

    def loss_weight(self, n: int) -> float:
        """Factor on this process's mean loss so the averaged gradient is that of the global mean.

        ``n_rank * world / n``: 1 for equal shards; for a batch that splits unevenly (a
        dataset smaller than one batch) the processes with one sample more weigh more.
        """
        start, stop = self.bounds(n)
        return (stop - start) * self.world / n

    def check_batches(self, smallest: int) -> None:
        """Refuse batches with fewer samples than processes (a process would get none)."""
        if self.enabled and smallest < self.world:
            raise InputError("data.batch_size", f"the smallest training batch has {smallest} samples, fewer than the "
                             f"{self.world} processes (data.batch_size is the global batch, split across them)",
                             f"use data.batch_size >= {self.world} and enough samples per dataset, or start fewer "
                             "processes (torchrun --nproc_per_node)")

    # ---------------------------------------------------------------- the method
    def prepare_method(self, method: torch.nn.Module) -> torch.nn.Module:
        """Synchronised batch norm and rank 0's weights in every process (the method unchanged in one process)."""
        if not self.enabled:
            return method
        from neurotrans.networks.layers.sync_norm import convert_sync_batchnorm

        method = convert_sync_batchnorm(method)
        self.broadcast_module(method)
        return method

    def rank_states(self, method: torch.nn.Module) -> dict[str, Any]:
        """The per-process part of a checkpoint: every process's RNG state and the method state it alone holds.

        ``rng_ranks[r]`` is process r's :func:`~neurotrans.training.checkpoint.rng_state`;
        ``rank_state[r]`` holds the entries of process r's non-parameter state (buffers,
        extra state such as an image pool) that differ from rank 0's. Empty in one process.
        Every process must call it (a gather); rank 0 gets the lists, the others ``{}``.
        """
        if not self.enabled:
            return {}
        from neurotrans.training.checkpoint import rng_state

        params = {name for name, _ in method.named_parameters()}
        local = {k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in method.state_dict().items()
                 if k not in params}
        gathered = self.gather_to_main((rng_state(), local))
        if gathered is None:
            return {}
        own = gathered[0][1]
        return {"rng_ranks": [rng for rng, _ in gathered],
                "rank_state": [{k: v for k, v in state.items() if not _same(v, own.get(k))}
                               for _, state in gathered]}

    def load_rank_state(self, method: torch.nn.Module, ckpt: dict[str, Any]) -> None:
        """Load this process's own method state from a checkpoint of a run with as many processes."""
        states = ckpt.get("rank_state") or []
        if self.enabled and len(states) == self.world and states[self.rank]:
            method.load_state_dict(states[self.rank], strict=False)

    def restore_rng(self, ckpt: dict[str, Any], seed: int) -> None:
        """Restore the RNG state this process resumes with.

        One process: the checkpoint's ``rng``. A run with as many processes as the
        checkpoint's: this process's own state. Another number of processes: rank 0's state,
        then a stream of its own (:meth:`offset_rng` of ``seed`` and the step), so the run
        goes on, though not exactly as the original would have.
        """
        from neurotrans.training.checkpoint import set_rng_state

        rngs = ckpt.get("rng_ranks") or []
        if self.enabled and len(rngs) == self.world:
            set_rng_state(rngs[self.rank])
            return
        set_rng_state(ckpt["rng"])
        self.offset_rng(seed * 1_000_003 + int(ckpt.get("trainer", {}).get("step", 0)))

    # ---------------------------------------------------------------- tensors
    def average_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Replace each gradient by its mean over the processes (one all-reduce per bucket).

        Parameters without a gradient are left alone; every process has the same ones,
        because every process runs the same step.
        """
        if not self.enabled:
            return
        import torch.distributed as dist

        grads = [p.grad for p in params if p.grad is not None]

        def reduce(flat: torch.Tensor) -> None:
            dist.all_reduce(flat)
            flat.div_(self.world)

        _coalesced(grads, reduce, bucket_bytes=BUCKET_BYTES)

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers into every process's ``module``."""
        if not self.enabled:
            return
        import torch.distributed as dist

        tensors = [*module.parameters(), *module.buffers()]
        _coalesced(tensors, lambda flat: dist.broadcast(flat, src=0))

    def any(self, flag: bool) -> bool:
        """``True`` on every process if ``flag`` is true on one of them."""
        if not self.enabled:
            return bool(flag)
        import torch.distributed as dist

        value = torch.tensor([int(bool(flag))], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def all_finite(self, finite: torch.Tensor) -> torch.Tensor:
        """Element-wise AND of a boolean vector over the processes (one all-reduce)."""
        if not self.enabled:
            return finite
        import torch.distributed as dist

        value = finite.to(device=self.device, dtype=torch.int32)
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return value.bool()

    def mean_logs(self, logs: dict[str, torch.Tensor], weight: float) -> dict[str, torch.Tensor]:
        """The logged values of the global batch: ``sum(weight_r * value_r) / world``.

        With the weights of :meth:`loss_weight` this is the mean over the global batch of
        every per-sample mean the method logs.
        """
        if not self.enabled or not logs:
            return logs
        import torch.distributed as dist

        keys = list(logs)
        values = torch.stack([logs[k].detach().float().reshape(()).to(self.device) for k in keys]) * weight
        dist.all_reduce(values)
        values /= self.world
        return dict(zip(keys, values.unbind(), strict=True))

    # ---------------------------------------------------------------- objects
    def gather(self, obj: T) -> list[T]:
        """Every process's ``obj``, in rank order, on every process."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def gather_to_main(self, obj: T) -> list[T] | None:
        """Every process's ``obj``, in rank order, on rank 0 (``None`` elsewhere)."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.world if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def pooled(self, part: T | None) -> T | None:
        """The sum, in rank order, of the processes' additive results (``None`` = nothing)."""
        total = None
        for p in self.gather(part):
            if p is not None:
                total = p if total is None else total + p  # type: ignore[operator]
        return total

    def on_main(self, fn: Callable[[], T]) -> T | None:
        """Run ``fn`` on rank 0 only; its ``InputError`` is raised on every process.

        For the run-folder checks only rank 0 makes: without this the other processes
        would wait in the next collective while rank 0 exits.
        """
        if not self.enabled:
            return fn()
        result: T | None = None
        failure: tuple[str, str, str] | None = None
        if self.is_main:
            try:
                result = fn()
            except InputError as err:
                failure = (err.where, err.problem, err.fix)
            except BaseException as err:
                failure = ("rank 0", f"failed with {type(err).__name__}: {err}", "see rank 0's message")
                self.gather(failure)
                raise
        failures = self.gather(failure)
        if failures[0] is not None:
            raise InputError(*failures[0])
        return result

    def barrier(self) -> None:
        """Wait until every process gets here."""
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    # ---------------------------------------------------------------- RNG
    def offset_rng(self, seed: int) -> None:
        """Give this process its own random stream (python, numpy, torch), derived from ``seed`` and the rank.

        Called once the networks are initialised (they are built from the shared seed and
        broadcast), so that dropout, latent noise and dequantisation noise differ between
        shards. Nothing happens in a single process.
        """
        if not self.enabled:
            return
        state = np.random.SeedSequence([int(seed), self.rank]).generate_state(2, np.uint32)
        derived = int(state[0]) << 32 | int(state[1])
        random.seed(derived)
        np.random.seed(int(state[0]))
        torch.manual_seed(derived % 2**63)

    def close(self) -> None:
        """End the process group if this object started it."""
        if self.owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def _same(a: Any, b: Any) -> bool:
    if torch.is_tensor(a) and torch.is_tensor(b):
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b))
    return type(a) is type(b) and not torch.is_tensor(a) and a == b


def _buckets(tensors: Sequence[torch.Tensor], limit: int | None) -> Iterator[list[torch.Tensor]]:
    """Consecutive groups of ``tensors`` of at most ``limit`` elements (a larger tensor alone)."""
    bucket: list[torch.Tensor] = []
    count = 0
    for t in tensors:
        if bucket and limit is not None and count + t.numel() > limit:
            yield bucket
            bucket, count = [], 0
        bucket.append(t)
        count += t.numel()
    if bucket:
        yield bucket


@torch.no_grad()
def _coalesced(tensors: Sequence[torch.Tensor], op: Callable[[torch.Tensor], None], *,
               bucket_bytes: int | None = None) -> None:
    """Apply a collective ``op`` to ``tensors`` through flat buffers, one per dtype and device (and bucket).

    Booleans travel as ``uint8`` (not every backend reduces or sends ``bool``).
    """
    groups: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.dtype, t.device), []).append(t)
    for (dtype, _), members in groups.items():
        limit = max(bucket_bytes // torch.empty((), dtype=dtype).element_size(), 1) if bucket_bytes else None
        for bucket in _buckets(members, limit):
            flat = torch.cat([b.reshape(-1) for b in bucket])
            wire = flat.to(torch.uint8) if dtype == torch.bool else flat
            op(wire)
            flat = wire.to(dtype)
            for b, part in zip(bucket, flat.split([b.numel() for b in bucket]), strict=True):
                b.copy_(part.view_as(b))


def resolve_rank_device(device: str | torch.device, local_rank: int) -> torch.device:
    """The device of the process with ``local_rank``: ``auto`` / ``cuda`` -> ``cuda:LOCAL_RANK`` where CUDA is."""
    from neurotrans.training.trainer import resolve_device

    name = str(device)
    if name in ("auto", "cuda"):
        if name == "cuda" or torch.cuda.is_available():
            resolve_device("cuda")  # refuses where torch sees no GPU
            if local_rank >= torch.cuda.device_count():
                raise InputError(f"LOCAL_RANK={local_rank}", f"this node has {torch.cuda.device_count()} GPU(s), "
                                 "too few for one process per GPU", "start at most as many processes per node as it "
                                 "has GPUs (torchrun --nproc_per_node)")
            return torch.device("cuda", local_rank)
        return torch.device("cpu")
    dev = resolve_device(device)
    if dev.type == "cuda":
        raise InputError(f"--device {name}", "names one GPU for every process of a distributed run",
                         "pass --device cuda or auto: each process takes the GPU of its LOCAL_RANK")
    return dev


def init_distributed(device: str | torch.device = "auto") -> Dist:
    """The :class:`Dist` of this process: from ``torchrun``'s environment, or inert in a single process.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the default process group is initialised
    (NCCL when the device is a GPU, gloo otherwise) unless it already is.

    Args:
        device: ``auto``, ``cpu`` or ``cuda`` (each process then takes ``cuda:LOCAL_RANK``).
    """
    from neurotrans.training.trainer import resolve_device

    world = torchrun_world()
    if world == 1:
        return Dist(device=resolve_device(device))
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_rank_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    owns = False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        owns = True
    if dist.get_world_size() != world or dist.get_rank() != rank:
        raise RuntimeError(f"the process group ({dist.get_rank()} of {dist.get_world_size()}) disagrees with "
                           f"torchrun's environment (RANK={rank}, WORLD_SIZE={world})")
    return Dist(rank=rank, world=world, local_rank=local_rank, device=dev, owns_group=owns)


__all__ = ["Dist", "init_distributed", "resolve_rank_device", "torchrun_world"]
