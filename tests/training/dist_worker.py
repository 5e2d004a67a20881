"""What every process ``torchrun`` starts does in the distributed tests: a list of training jobs.

``torchrun --standalone --nproc_per_node N dist_worker.py JOBS.json``. ``JOBS.json`` is a list of
``{"config": ..., "out": ..., "resume": bool, "kill_at": step, "nan_at": [rank, step]}`` (the
last two optional: every process raises as step ``kill_at`` starts; the loss of process
``rank`` turns NaN at ``step``); one gloo process group
serves them all (started once: a group torn down and started again on torchrun's store is
not what a user's run does). Each process writes ``JOBS.rank<r>.json`` (per job ``"ok"`` or
the error's text) and, after every finished run, its own weights to ``OUT.rank<r>.pt``, so a
test can check that the processes hold the same model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

NAN = float("nan")


def main(job_file: Path) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    from neurotrans.training.run import train_from_config
    from neurotrans.training.trainer import Trainer

    fit, step = Trainer.fit, Trainer.train_iteration

    def fit_and_dump(self: Trainer):  # type: ignore[no-untyped-def]
        state = fit(self)
        with self.averaged() as model:  # the model this process holds (the weights' average if the run keeps one)
            torch.save({k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
                       self.out.parent / f"{self.out.name}.rank{rank}.pt")
        return state

    Trainer.fit = fit_and_dump  # type: ignore[method-assign]
    results = []
    for job in json.loads(job_file.read_text()):
        kill_at, nan_at = job.get("kill_at"), job.get("nan_at")

        def patched(self: Trainer, batch, kill_at=kill_at, nan_at=nan_at):  # type: ignore[no-untyped-def]
            if self.state.step == kill_at:  # every process dies as this step starts
                raise RuntimeError("injected failure")
            if nan_at is not None and [rank, self.state.step] == nan_at:  # one process's loss turns NaN
                training_step = self.method.training_step
                self.method.training_step = lambda b, g: {**(out := training_step(b, g)), "loss": out["loss"] * NAN}
                try:
                    return step(self, batch)
                finally:
                    del self.method.training_step
            return step(self, batch)

        Trainer.train_iteration = patched  # type: ignore[method-assign]
        try:
            train_from_config(job["config"], out=job["out"], resume=job.get("resume", False), device="cpu")
            results.append("ok")
        except Exception as err:  # noqa: BLE001 - the test reads what each process raised
            results.append(f"{type(err).__name__}: {err}")
    job_file.with_suffix(f".rank{rank}.json").write_text(json.dumps(results))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
