"""The one trainer: loop, optimisers, mixed precision, checkpoints, resume, logging.

It knows nothing about images: a :class:`neurotrans.methods.Method` turns batches into
losses for named optimiser groups, and the trainer steps those groups in the method's
schedule. Data order is a pure function of (seed, epoch), so a run resumed from a
checkpoint (weights, optimiser and scaler states, RNG states, epoch and batch
position) continues exactly where the killed run was, and ends with the same weights.
The one exception is a time budget (``max_minutes``): where a run stops then depends
on the clock, not on the data. Under ``torchrun`` the same loop runs in every process, each
on its share of every batch (:mod:`neurotrans.training.distributed`, the ``dist`` hooks).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler, default_collate

from neurotrans.config import OptimConfig, TrainerConfig
from neurotrans.errors import InputError
from neurotrans.io.atomic import write_text_atomic
from neurotrans.methods.base import Method
from neurotrans.training import accel
from neurotrans.training.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
)
from neurotrans.training.distributed import Dist
from neurotrans.training.early_stopping import should_stop
from neurotrans.training.schedule import lr_factor

OPTIMISERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD, "adamax": torch.optim.Adamax,
}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device {device!r} is not a torch device; use cpu, cuda or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device; use --device cpu")
    return dev


def set_deterministic(deterministic: bool) -> None:
    """Ask torch for deterministic kernels (cuDNN, cuBLAS, scatter) where it has them, or stop asking."""
    if deterministic:
        # cuBLAS needs this before its first use to be deterministic
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch; ask torch for deterministic kernels where it has them.

    Called once, at the entry point (``train_from_config``), before the networks are
    built: the trainer never re-seeds, so weights initialised before it starts keep
    their values and the RNG stream continues from there.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        set_deterministic(True)


def epoch_batches(sizes: Sequence[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Batches of one epoch over concatenated datasets, never mixing two datasets.

    Datasets of different sample shapes (the three planes) thus never share a batch.
    Incomplete last batches are dropped (batch-norm needs > 1 sample) unless a dataset
    is smaller than one batch. The order depends only on (seed, epoch).

    Args:
        sizes: lengths of the datasets, in ``ConcatDataset`` order.
        batch_size: samples per batch.
    """
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    batches: list[torch.Tensor] = []
    offset = 0
    for n in sizes:
        perm = torch.randperm(n, generator=gen) + offset
        for start in range(0, n, batch_size):
            chunk = perm[start:start + batch_size]
            if len(chunk) == batch_size or (start == 0 and n > 0):
                batches.append(chunk)
        offset += n
    order = torch.randperm(len(batches), generator=gen).tolist()
    return [batches[i].tolist() for i in order]


class RunBatches(Sampler[list[tuple[int, int]]]):
    """Every batch of a run from (``epoch``, batch ``start``) on, epoch after epoch, as (epoch, index) pairs.

    Under ``torchrun`` (``dist`` enabled) each process gets its contiguous share of every
    global batch, so the processes together see the batches of a single-process run.

    One sampler, hence one DataLoader, for the whole run: worker processes start once and
    keep prefetching across epoch boundaries (a loader per epoch started them again each
    epoch, which on a GPU halved the trainer's throughput). Each index travels with its
    epoch, so :class:`EpochItems` sets the dataset's epoch inside whichever process reads
    it; the order is still that of :func:`epoch_batches`.
    """

    def __init__(self, sizes: Sequence[int], batch_size: int, seed: int, epoch: int, start: int = 0,
                 dist: Dist | None = None) -> None:
        self.sizes, self.batch_size, self.seed = list(sizes), int(batch_size), int(seed)
        self.epoch, self.start = int(epoch), int(start)
        self.dist = dist

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, start = self.epoch, self.start
        while True:
            for batch in epoch_batches(self.sizes, self.batch_size, self.seed, epoch)[start:]:
                if self.dist is not None and self.dist.enabled:  # this process's share of the global batch
                    batch = self.dist.shard(batch)
                yield [(epoch, i) for i in batch]
            epoch, start = epoch + 1, 0


class EpochItems(Dataset):
    """``datasets`` concatenated, indexed by (epoch, index): the epoch is set where the item is read."""

    def __init__(self, datasets: Sequence[Dataset]) -> None:
        self.datasets = list(datasets)
        self.data = ConcatDataset(self.datasets)
        self.epoch: int | None = None

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, i = key
        if epoch != self.epoch:  # augmentation and sampling draw from (seed, epoch, index)
            for ds in self.datasets:
                if hasattr(ds, "set_epoch"):
                    ds.set_epoch(epoch)
            self.epoch = epoch
        return self.data[i]


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move the tensors of a batch to ``device`` (a no-op for those already there)."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def amp_dtype(device: torch.device) -> torch.dtype:
    """The autocast dtype on ``device``: bfloat16 where the GPU has it, else float16.

    bfloat16 keeps float32's exponent range, so losses and gradients neither overflow
    nor need a :class:`torch.amp.GradScaler`; float16 (pre-Ampere GPUs) overflows at
    65504 and keeps the scaler. CPUs train in float32 (``Trainer.amp`` is off there).
    """
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


@dataclass
class TrainState:
    """Where a run is: counters, validation history, elapsed time (all checkpointed)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    val_history: list[float] = field(default_factory=list)
    best_score: float = math.inf
    best_step: int = -1
    elapsed_s: float = 0.0
    stopped: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "val_history": list(self.val_history), "best_score": self.best_score,
                "best_step": self.best_step, "elapsed_s": self.elapsed_s, "stopped": self.stopped}


class Trainer:
    """Train a method on slice, patch or volume datasets.

    Args:
        method: the recipe (networks + losses), already initialised (seed before building it).
        train_sets: training datasets; items are dicts with ``input``, ``target`` and
            optionally ``mask`` tensors. Several datasets (e.g. one per plane) are
            concatenated, batches stay within one.
        val_sets: validation datasets (may be empty: then no best checkpoint).
        trainer: loop settings.
        optim: optimiser settings (per-group overrides from the method and config).
        out: run folder; checkpoints go to ``out/checkpoints``, logs to ``out/log.jsonl``.
        batch_size: samples per batch.
        info: what ``predict`` needs (``RunInfo.to_dict()``), stored in every
            checkpoint; plain values only.
        device: ``auto``, ``cpu`` or ``cuda``.
        num_workers: DataLoader worker processes.
        pin_memory: pinned batches (``None``: on CUDA).
        dist: this process's place in a data-parallel run (``None``: one process); then
            ``batch_size`` is the global batch, of which this process trains its shard.
    """

    def __init__(self, method: Method, train_sets: Sequence[Dataset], val_sets: Sequence[Dataset], *,
                 trainer: TrainerConfig, optim: OptimConfig, out: str | Path, batch_size: int,
                 info: dict[str, Any] | None = None, device: str | torch.device = "auto", num_workers: int = 0,
                 pin_memory: bool | None = None, dist: Dist | None = None) -> None:
        if not train_sets or sum(len(d) for d in train_sets) == 0:
            raise ValueError("no training samples (check the split and the masks)")
        self.cfg = trainer
        # the config's promise holds for every Trainer, not only for runs started by train_from_config
        set_deterministic(trainer.deterministic)
        optim.check_horizon(trainer.max_steps)  # a Trainer built without a Config is checked too
        self.optim_cfg = optim
        self.out = Path(out)
        self.batch_size = int(batch_size)
        self.info = dict(info or {})
        self.device = resolve_device(device)
        self.dist = dist or Dist(device=self.device)
        self.method = self.dist.prepare_method(method.to(self.device))
        self.monitor = self._monitor()
        self.train_sets = list(train_sets)
        self.train_data = EpochItems(self.train_sets)  # what the run's loader reads, by (epoch, index)
        self.sizes = [len(d) for d in train_sets]
        self.dist.check_batches(min(self.batch_size, *(n for n in self.sizes if n > 0)))
        self.loss_weight = 1.0  # this process's share of the current global batch (see Dist.loss_weight)
        self._batch_lengths: tuple[int, list[int]] = (-1, [])  # (epoch, its global batches' lengths)
        self.val_sets = list(val_sets)
        self.num_workers = int(num_workers)
        self.pin_memory = self.device.type == "cuda" if pin_memory is None else bool(pin_memory)
        accel.prepare(self.method, trainer, self.device)  # speed switches of the networks
        self.optimisers = self._build_optimisers()
        self.ema: list[torch.Tensor] | None = None  # the weights' moving average (trainer.ema > 0)
        self.ema_updates = 0
        self.amp = bool(trainer.amp and self.device.type == "cuda" and method.mixed_precision)
        self.amp_dtype = amp_dtype(self.device)
        # loss scaling only where float16 could underflow the gradients
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.amp_dtype == torch.float16)
        self._pending: list[tuple[int, str, torch.Tensor]] = []  # losses not yet checked for finiteness
        self.state = TrainState()
        self.ckpt_dir = self.out / "checkpoints"
        self.log_path = self.out / "log.jsonl"

    # ---------------------------------------------------------------- set-up
    def _monitor(self) -> str:
        known = tuple(self.method.validation_metrics)
        name = self.cfg.monitor or known[0]
        if name not in known:
            raise ValueError(f"trainer.monitor = {name!r}, but {type(self.method).__name__} reports "
                             f"{', '.join(known)}: monitor one of those")
        return name

    def _build_optimisers(self) -> dict[str, torch.optim.Optimizer]:
        cfg = self.optim_cfg
        if cfg.name not in OPTIMISERS:
            raise ValueError(f"unknown optimiser {cfg.name!r}; choose from {', '.join(OPTIMISERS)}")
        optimisers = {}
        for name, group in self.method.optimiser_groups().items():
            params = [p for net in group.networks for p in self.method.networks[net].parameters()]
            hp: dict[str, Any] = {"lr": cfg.group_lr.get(name, cfg.lr), "weight_decay": cfg.weight_decay}
            if cfg.name == "sgd":
                hp["momentum"] = cfg.momentum
            else:
                hp["betas"] = tuple(cfg.betas)
            kind = OPTIMISERS[cfg.name]
            optimisers[name] = kind(params, **{**hp, **group.hparams,
                                               **accel.fused_kwargs(kind, self.cfg, self.device)})
        unknown = set(cfg.group_lr) - set(optimisers)
        if unknown:
            raise ValueError(f"optim.group_lr names groups {sorted(unknown)}; the method has {sorted(optimisers)}")
        unknown = set(self.method.schedule(0)) - set(optimisers)
        if unknown:
            raise ValueError(f"schedule names groups without optimiser: {sorted(unknown)}")
        # the configured rates, which optim.schedule scales (a resumed optimiser's state holds decayed ones)
        self.base_lrs = {name: [float(pg["lr"]) for pg in opt.param_groups] for name, opt in optimisers.items()}
        return optimisers

    def _set_learning_rates(self) -> float:
        """Every group's rate for this step (``optim.schedule``); returns the factor on the configured rates."""
        factor = lr_factor(self.optim_cfg, self.state.step, self.cfg.max_steps)
        for name, opt in self.optimisers.items():
            for pg, base in zip(opt.param_groups, self.base_lrs[name], strict=True):
                pg["lr"] = base * factor
        return factor

    def _update_average(self) -> None:
        """Fold the trained weights into their moving average (``trainer.ema``); the first call copies them.

        Parameters only: buffers (batch-norm statistics, running latent means whose shape comes
        with the data, flags, an image pool's state) stay the trained method's, as with torch's
        ``AveragedModel(use_buffers=False)``, which cannot take buffers that change shape.
        """
        params = [p.detach() for p in self.method.parameters()]
        if self.ema is None:
            self.ema = [p.clone() for p in params]
        else:
            torch._foreach_lerp_(self.ema, params, 1.0 - self.cfg.ema)
        self.ema_updates += 1

    def _averaged_parameters(self) -> dict[str, torch.Tensor]:
        """The moving average by parameter name, as in the method's ``state_dict`` (tied weights under each name)."""
        assert self.ema is not None
        by_param = {id(p): e for p, e in zip(self.method.parameters(), self.ema, strict=True)}
        return {name: by_param[id(p)] for name, p in self.method.named_parameters(remove_duplicate=False)}

    @contextmanager
    def averaged(self) -> Iterator[Method]:
        """The method with the averaged weights in place of the trained ones (as is without an average)."""
        if self.ema is None:
            yield self.method
            return
        params = [p.detach() for p in self.method.parameters()]
        trained = [p.clone() for p in params]
        torch._foreach_copy_(params, self.ema)
        try:
            yield self.method
        finally:
            torch._foreach_copy_(params, trained)

    # ---------------------------------------------------------------- checkpoints
    def checkpoint_payload(self) -> dict[str, Any]:
        """Everything needed to resume training and to predict.

        ``method_state`` is the model (:meth:`averaged`); with a moving average, the raw
        weights being trained (``train_method_state``) and the number of averaged steps
        come along so that a resumed run goes on exactly.
        """
        trained = {k: v.detach().cpu() for k, v in self.method.state_dict().items()}
        if self.ema is None:
            model, ema = trained, {}
        else:  # the trained state with the averaged parameters in place of the trained ones
            model = trained | {k: v.cpu() for k, v in self._averaged_parameters().items()}
            ema = {"train_method_state": trained, "ema_updates": self.ema_updates}
        return {
            "info": self.info,
            "method_state": model,
            **ema,
            "optimisers": {k: o.state_dict() for k, o in self.optimisers.items()},
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "trainer": self.state.to_dict(),
            "rng": rng_state(),
            **self.dist.rank_states(self.method),
        }

    def save(self, name: str) -> Path:
        """Write ``checkpoints/NAME.pt`` (rank 0; every process must call it: it gathers their states)."""
        self.check_finite()  # never a checkpoint of diverged weights
        payload = self.checkpoint_payload()
        path = self.ckpt_dir / f"{name}.pt"
        return save_checkpoint(path, payload) if self.dist.is_main else path

    def resume(self, path: str | Path | None = None) -> None:
        """Continue from a checkpoint (default ``out/checkpoints/last.pt``)."""
        path = Path(path or self.ckpt_dir / "last.pt")
        # onto the CPU: load_state_dict copies weights and optimiser moments to where the parameters
        # live, and RNG states must stay CPU byte tensors (a CUDA map broke every resume on GPUs)
        ckpt = load_checkpoint(path, map_location="cpu")
        fix = ("resume only from the last.pt this run folder's own training wrote; to train this config anew, "
               "pass --overwrite instead of --resume")
        theirs, mine = (ckpt.get("info") or {}).get("method"), self.info.get("method")
        if mine and theirs != mine:
            raise InputError(path, f"is a checkpoint of method {theirs!r}, this run trains {mine!r}", fix)
        try:  # another network size or version: refused as one line, not a traceback from load_state_dict
            # the raw weights if the run averaged them: training continues from those
            self.method.load_state_dict(ckpt.get("train_method_state", ckpt["method_state"]))
            if self.cfg.ema and "train_method_state" in ckpt:  # else the average starts at the next step
                names = [n for n, _ in self.method.named_parameters()]
                self.ema = [ckpt["method_state"][n].to(self.device) for n in names]
                self.ema_updates = int(ckpt["ema_updates"])
            for name, opt in self.optimisers.items():
                opt.load_state_dict(ckpt["optimisers"][name])
            if self.scaler.is_enabled() and ckpt["scaler"]:
                self.scaler.load_state_dict(ckpt["scaler"])
            self.state = TrainState(**ckpt["trainer"])
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            raise InputError(path, f"does not fit this run's model ({type(err).__name__}: "
                             f"{str(err).strip().splitlines()[0][:200] if str(err).strip() else 'no detail'})",
                             fix) from None
        if not self.state.stopped.startswith("early stopping"):
            self.state.stopped = ""  # a finished or timed-out run continues if the new limits allow more
        self.dist.load_rank_state(self.method, ckpt)
        self.dist.restore_rng(ckpt, self.cfg.seed)
        if self.dist.is_main:
            self._truncate_log(self.state.step)

    # ---------------------------------------------------------------- logging
    def _log(self, record: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as fh:
            fh.write(json.dumps(record, allow_nan=True) + "\n")

    def _truncate_log(self, step: int) -> None:
        """Drop log lines written after the checkpoint a resumed run restarts from."""
        if not self.log_path.is_file():
            return
        kept = []
        for line in self.log_path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by the kill: the steps it described are redone
            if isinstance(record, dict) and record.get("step", 0) <= step:
                kept.append(line)
        write_text_atomic(self.log_path, "".join(ln + "\n" for ln in kept))

    def write_csv(self) -> Path | None:
        """``log.csv``: the JSONL log as a table (one row per record)."""
        if not self.dist.is_main or not self.log_path.is_file():
            return None
        import pandas as pd

        rows = [json.loads(ln) for ln in self.log_path.read_text().splitlines() if ln.strip()]
        path = self.out / "log.csv"
        pd.DataFrame(rows).to_csv(path, index=False)
        return path

    # ---------------------------------------------------------------- loop
    def train_iteration(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """One batch: every group of the method's schedule takes one optimiser step.

        Returns the step's logged values as detached tensors, still on the device:
        reading them (``float``) waits for the GPU, so the loop does it only on logging
        steps. For the same reason the losses' finiteness is checked in bulk by
        :meth:`check_finite`, before anything is logged, validated or saved.
        """
        if not self.method.training:  # after validation; a walk over every module each step cost ~3 % on a GPU
            self.method.train()
        batch = to_device(batch, self.device)
        logs: dict[str, torch.Tensor] = {}
        if self.optim_cfg.schedule != "constant":
            logs["lr_factor"] = torch.tensor(self._set_learning_rates())
        for group in self.method.schedule(self.state.step):
            opt = self.optimisers[group]
            opt.zero_grad(set_to_none=True)
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
                out = self.method.training_step(batch, group)
            loss = out["loss"]
            self._pending.append((self.state.step, group, loss.detach()))
            if len(self._pending) >= 512:  # a caller that never logs (a benchmark) still gets checked
                self.check_finite()
            self.scaler.scale(loss if self.loss_weight == 1.0 else loss * self.loss_weight).backward()
            self.dist.average_gradients([p for g in opt.param_groups for p in g["params"]])
            self.scaler.step(opt)
            for key, value in out.items():
                logs[f"{group}/{key}"] = value.detach() if torch.is_tensor(value) else torch.tensor(float(value))
        self.scaler.update()
        if self.cfg.ema:
            self._update_average()
        return logs

    def check_finite(self) -> None:
        """Raise if a loss since the last check was NaN or infinite (one device sync for all of them)."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        finite = torch.isfinite(torch.stack([loss.float().reshape(()) for _, _, loss in pending]))
        finite = self.dist.all_finite(finite).cpu()  # every process raises, none waits for the others
        if bool(finite.all()):
            return
        step, group, loss = pending[int((~finite).nonzero()[0])]
        value = float(loss) if not math.isfinite(float(loss)) else "non-finite in another process"
        # deterministic training diverges again from the same checkpoint: --resume is no fix
        raise InputError(f"step {step}", f"the {group} loss became {value} (training diverged)",
                         f"lower optim.lr (now {self.optim_cfg.lr:g}) or check the inputs' normalisation, then "
                         "start again with --overwrite (resuming would diverge the same way)")

    def _loader(self, dataset: Dataset, batch_sampler: Sampler[Any] | Sequence[list[int]], seed: int = 0
                ) -> DataLoader:
        # a loader's own generator: one drawing its workers' base seed from torch's global RNG
        # would shift the stream that dropout and latent noise use, and a resumed run would diverge
        return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=self.num_workers,  # type: ignore[arg-type]
                          pin_memory=self.pin_memory, collate_fn=default_collate,
                          generator=torch.Generator().manual_seed(seed),
                          prefetch_factor=4 if self.num_workers else None)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Pooled validation metrics over all validation samples (the method's typed sums).

        In a data-parallel run each process validates every ``world``-th batch and the sums
        are pooled over the processes, so every process gets the same metrics.
        """
        with self.averaged() as model:
            return self._validate(model)

    def _validate(self, model: Method) -> dict[str, float]:
        model.eval()
        total = None
        for ds in self.val_sets:
            order = [list(range(i, min(len(ds), i + self.batch_size))) for i in range(0, len(ds), self.batch_size)]
            order = order[self.dist.rank::self.dist.world]
            for batch in self._loader(ds, order):  # type: ignore[arg-type]
                with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
                    part = model.validation_step(to_device(batch, self.device))
                total = part if total is None else total + part
        total = self.dist.pooled(total)
        return {} if total is None else total.metrics()

    def _loss_weight(self, epoch: int, k: int) -> float:
        """This process's weight for batch ``k`` of ``epoch`` (1 in a single process; see ``Dist.loss_weight``)."""
        if not self.dist.enabled:
            return 1.0
        if self._batch_lengths[0] != epoch:
            self._batch_lengths = (epoch, [len(b) for b in epoch_batches(self.sizes, self.batch_size,
                                                                           self.cfg.seed, epoch)])
        return self.dist.loss_weight(self._batch_lengths[1][k])

    def _out_of_budget(self, started: float) -> bool:
        if self.cfg.max_minutes is None:
            return False
        # one clock per process: all stop at the same step once one of them is out of time
        return self.dist.any(self.state.elapsed_s + (time.monotonic() - started) >= 60.0 * self.cfg.max_minutes)

    def _finished(self) -> bool:
        s = self.state
        return ((self.cfg.max_steps > 0 and s.step >= self.cfg.max_steps)
                or (self.cfg.max_epochs > 0 and s.epoch >= self.cfg.max_epochs))

    def _after_validation(self) -> None:
        self.check_finite()
        metrics = self.validate()
        score = float(metrics[self.monitor])
        self.state.val_history.append(score)
        improved = score < self.state.best_score
        if improved:
            self.state.best_score, self.state.best_step = score, self.state.step
        self._log({"step": self.state.step, "epoch": self.state.epoch, "kind": "val",
                   **{f"val/{k}": v for k, v in metrics.items()}, "best": improved})
        if improved:
            self.save("best")
        if should_stop(self.cfg.early_stopping, self.state.val_history, patience=self.cfg.patience,
                       strips=self.cfg.strips, strip_length=self.cfg.strip_length):
            self.state.stopped = f"early stopping ({self.cfg.early_stopping}) at step {self.state.step}"

    def fit(self) -> TrainState:
        """Train until max_steps / max_epochs / the time budget / early stopping."""
        from tqdm.auto import tqdm

        if self.cfg.max_steps <= 0 and self.cfg.max_epochs <= 0 and self.cfg.max_minutes is None:
            raise ValueError("set trainer.max_steps, trainer.max_epochs or a time budget: this run would not end")
        started = time.monotonic()
        total = self.cfg.max_steps if self.cfg.max_steps > 0 else None
        bar = tqdm(total=total, initial=self.state.step, disable=not (self.cfg.progress and self.dist.is_main),
                   desc="train", dynamic_ncols=True)
        s = self.state
        per_epoch = len(epoch_batches(self.sizes, self.batch_size, self.cfg.seed, 0))  # the same every epoch
        if s.batch_in_epoch >= per_epoch:  # a checkpoint of an epoch's last batch: continue with the next epoch
            s.epoch, s.batch_in_epoch = s.epoch + 1, 0
        sampler = RunBatches(self.sizes, self.batch_size, self.cfg.seed, s.epoch, s.batch_in_epoch, self.dist)
        try:
            if not self._finished() and not s.stopped:
                for batch in self._loader(self.train_data, sampler,
                                          seed=self.cfg.seed * 1_000_003 + s.epoch):
                    self.loss_weight = self._loss_weight(s.epoch, s.batch_in_epoch)
                    if self._out_of_budget(started):
                        s.stopped = f"time budget of {self.cfg.max_minutes} min reached at step {s.step}"
                        break
                    logs = self.train_iteration(batch)
                    s.step += 1
                    s.batch_in_epoch += 1
                    bar.update(1)
                    if s.step % self.cfg.log_every == 0 or s.step == 1:  # the only host sync of a step
                        self.check_finite()
                        values = {k: float(v) for k, v in self.dist.mean_logs(logs, self.loss_weight).items()}
                        bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in values.items()
                                         if k.endswith("loss")})
                        self._log({"step": s.step, "epoch": s.epoch, "kind": "train", **values})
                    if self.val_sets and s.step % self.cfg.val_every == 0:
                        self._after_validation()
                    if s.step % self.cfg.checkpoint_every == 0:
                        s.elapsed_s += time.monotonic() - started
                        started = time.monotonic()
                        self.save("last")
                    if s.batch_in_epoch == per_epoch:  # the epoch's last batch: the next one starts epoch + 1
                        s.epoch += 1
                        s.batch_in_epoch = 0
                    if self._finished() or s.stopped:
                        break
        finally:
            bar.close()
        s.elapsed_s += time.monotonic() - started
        if self.val_sets and (not s.val_history or s.step % self.cfg.val_every != 0):
            self._after_validation()
        if not s.stopped:
            s.stopped = "finished"
        self.save("last")
        self._log({"step": s.step, "epoch": s.epoch, "kind": "end", "stopped": s.stopped,
                   "elapsed_s": s.elapsed_s, "best_step": s.best_step, "best_score": s.best_score})
        self.write_csv()
        return s
