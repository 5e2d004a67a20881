"""Class 4 (hangs and tracebacks): every sub-command answers every bad input with exactly one
line on stderr (naming the file or value, and the fix) and exit code 2, never a traceback.

The cases run in-process through ``neurotrans.cli.main``; a few run as real subprocesses
(where warnings, progress bars or a late import would show up as extra lines).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safety_world import (
    AFFINE,
    SHAPE,
    World,
    header_only,
    manifest_with,
    nifti,
    run_cli,
    tiny_config,
    zero_affine,
)

Case = Callable[[World, Path], list[str]]
HEADER_ONLY = b"subject\tsession\tT1w\tFDG\n"


def _cfg(w: World, tmp: Path, **data: object) -> str:
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(tiny_config(w.manifest, **data)))
    return str(path)


def _rows(w: World, n: int = 2) -> list[dict]:
    return [{"subject": f"sub-{i:02d}", "session": "1", "T1w": str(w.t1(i)),
             "FDG": str(w.t1(i).with_name("FDG.nii.gz"))} for i in range(n)]


def _bad_row(w: World, tmp: Path, column: str, path: Path, n: int = 6) -> str:
    """The world's manifest with ``column`` of row 0 replaced by ``path``."""
    rows = _rows(w, n)
    rows[0][column] = str(path)
    return str(manifest_with(tmp, "bad.tsv", rows))


def _shifted_fdg(tmp: Path) -> Path:
    return nifti(tmp / "shifted_FDG.nii.gz", np.ones(SHAPE, np.float32) * np.arange(SHAPE[2]),
                 AFFINE + np.array([[0, 0, 0, 12.0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]))


def _pickled(tmp: Path) -> Path:
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp / "model.pt")
    return tmp / "model.pt"


def _other_format(tmp: Path) -> Path:
    torch.save({"weights": torch.zeros(2)}, tmp / "other.pt")
    return tmp / "other.pt"


def _edited(w: World, tmp: Path, edit: Callable[[dict], None], name: str = "edited.pt") -> Path:
    """The world's checkpoint with ``edit`` applied to its payload (another model, another version)."""
    from neurotrans.training.checkpoint import save_checkpoint

    ckpt = torch.load(w.checkpoint, weights_only=True)
    edit(ckpt)
    return save_checkpoint(tmp / name, {k: v for k, v in ckpt.items() if k != "format"})


def _wider(ckpt: dict) -> None:
    state = ckpt["method_state"]
    key = next(k for k, v in state.items() if v.ndim > 1)
    state[key] = torch.zeros(*[n + 1 for n in state[key].shape])


def _resume_from(w: World, tmp: Path, edit: Callable[[dict], None]) -> list[str]:
    run = tmp / "run"
    shutil.copytree(w.run, run)
    _edited(w, run / "checkpoints", edit, "last.pt")
    return ["train", str(w.config), "--out", str(run), "--resume", "--device", "cpu"]


def _file(tmp: Path, name: str = "a_file", data: bytes = b"x") -> Path:
    (tmp / name).write_bytes(data)
    return tmp / name


def _dir(tmp: Path, name: str) -> Path:
    (tmp / name).mkdir(parents=True, exist_ok=True)
    return tmp / name


def _predict(w: World, *extra: str) -> list[str]:
    return ["predict", "--checkpoint", str(w.checkpoint), "--device", "cpu", *extra]


def _in(w: World, path: Path | str, out: Path) -> list[str]:
    return _predict(w, "--input", str(path), "--out", str(out))


def _evaluate(w: World, *extra: str) -> list[str]:
    return ["evaluate", "--pred", str(w.run / "predictions"), "--manifest", str(w.manifest), "--target", "FDG", *extra]


# (id, argv builder, a substring the one line must hold: the file or value at fault)
CASES: list[tuple[str, Case, str]] = [
    # the command line itself
    ("no-command", lambda w, t: [], "COMMAND"),
    ("unknown-command", lambda w, t: ["nope"], "nope"),
    ("unknown-option", lambda w, t: ["list", "--bogus"], "--bogus"),
    # simulate
    ("simulate-no-cohort", lambda w, t: ["simulate", "--out", str(t)], "cohort"),
    ("simulate-bad-cohort", lambda w, t: ["simulate", "fgd", "--out", str(t)], "fgd"),
    ("simulate-subjects-text", lambda w, t: ["simulate", "fdg", "--subjects", "x", "--out", str(t)], "'x'"),
    ("simulate-subjects-0", lambda w, t: ["simulate", "fdg", "--subjects", "0", "--out", str(t / "c")], "--subjects"),
    ("simulate-subjects-neg", lambda w, t: ["simulate", "fdg", "--subjects", "-5", "--out", str(t / "c")],
     "--subjects"),
    ("simulate-ms-one", lambda w, t: ["simulate", "ms", "--subjects", "1", "--out", str(t / "c")], "--subjects"),
    ("simulate-voxel-0", lambda w, t: ["simulate", "fdg", "--voxel-size", "0", "--out", str(t / "c")], "--voxel-size"),
    ("simulate-voxel-neg", lambda w, t: ["simulate", "fdg", "--voxel-size", "-3", "--out", str(t / "c")],
     "--voxel-size"),
    ("simulate-voxel-nan", lambda w, t: ["simulate", "fdg", "--voxel-size", "nan", "--out", str(t / "c")],
     "--voxel-size"),
    ("simulate-voxel-inf", lambda w, t: ["simulate", "fdg", "--voxel-size", "inf", "--out", str(t / "c")],
     "--voxel-size"),
    ("simulate-voxel-tiny", lambda w, t: ["simulate", "fdg", "--voxel-size", "0.01", "--out", str(t / "c")],
     "--voxel-size"),
    ("simulate-seed-neg", lambda w, t: ["simulate", "fdg", "--seed", "-1", "--out", str(t / "c")], "--seed"),
    ("simulate-out-file", lambda w, t: ["simulate", "fdg", "--subjects", "1", "--out", str(_file(t))], "a_file"),
    ("simulate-out-under-file", lambda w, t: ["simulate", "fdg", "--subjects", "1", "--out", str(_file(t) / "c")],
     "a_file"),
    ("simulate-out-holds-cohort", lambda w, t: ["simulate", "fdg", "--subjects", "1", "--out",
                                                str(_file(_dir(t, "c"), "manifest.tsv").parent)], "manifest.tsv"),
    # data check
    ("check-missing", lambda w, t: ["data", "check", str(t / "nope.tsv")], "nope.tsv"),
    ("check-folder-without-manifest", lambda w, t: ["data", "check", str(t)], "manifest.tsv"),
    ("check-empty-file", lambda w, t: ["data", "check", str(_file(t, "m.tsv", b""))], "m.tsv"),
    ("check-header-only", lambda w, t: ["data", "check", str(_file(t, "m.tsv", b"subject\tsession\tT1w\n"))],
     "m.tsv"),
    ("check-binary", lambda w, t: ["data", "check", str(_file(t, "m.tsv", bytes(range(256)) * 4))], "m.tsv"),
    ("check-no-session", lambda w, t: ["data", "check", str(_file(t, "m.tsv", b"subject\tT1w\n01\tx.nii\n"))],
     "session"),
    ("check-traversal-id", lambda w, t: ["data", "check", str(_file(t, "m.tsv", b"subject\tsession\n../x\t1\n"))],
     "../x"),
    ("check-slash-id", lambda w, t: ["data", "check", str(_file(t, "m.tsv", b"subject\tsession\nsub-a/b\t1\n"))],
     "sub-a/b"),
    ("check-dot-session", lambda w, t: ["data", "check", str(_file(t, "m.tsv", b"subject\tsession\n01\t..\n"))],
     "'..'"),
    ("check-duplicate", lambda w, t: ["data", "check", str(_file(t, "m.tsv", b"subject\tsession\n01\t1\n01\t1\n"))],
     "duplicate"),
    # data manifest
    ("manifest-bad-kind", lambda w, t: ["data", "manifest", "bidz", str(t), "--out", str(t / "m.tsv")], "bidz"),
    ("manifest-root-missing", lambda w, t: ["data", "manifest", "bids", str(t / "nope"), "--out", str(t / "m.tsv")],
     "nope"),
    ("manifest-root-file", lambda w, t: ["data", "manifest", "bids", str(_file(t)), "--out", str(t / "m.tsv")],
     "a_file"),
    ("manifest-out-exists", lambda w, t: ["data", "manifest", "folder", str(w.root / "cohort"), "--out",
                                          str(_file(t, "m.tsv"))], "m.tsv"),
    ("manifest-out-under-file", lambda w, t: ["data", "manifest", "folder", str(w.root / "cohort"), "--out",
                                              str(_file(t) / "m.tsv")], "a_file"),
    ("manifest-pattern-for-bids", lambda w, t: ["data", "manifest", "bids", str(t), "--out", str(t / "m.tsv"),
                                                "--pattern", "{subject}/{modality}.nii.gz"], "{subject}"),
    ("manifest-pattern-no-subject", lambda w, t: ["data", "manifest", "folder", str(t), "--out", str(t / "m.tsv"),
                                                  "--pattern", "{modality}.nii.gz"], "{modality}"),
    ("manifest-pattern-unknown-key", lambda w, t: ["data", "manifest", "folder", str(t), "--out", str(t / "m.tsv"),
                                                   "--pattern", "{subject}/{run}/{modality}.nii.gz"], "{run}"),
    ("manifest-nothing-matches", lambda w, t: ["data", "manifest", "folder", str(_dir(t, "empty")), "--out",
                                               str(t / "m.tsv")], "empty"),
    ("manifest-caps-without-subjects", lambda w, t: ["data", "manifest", "caps", str(_dir(t, "caps")), "--out",
                                                     str(t / "m.tsv")], "caps"),
    # train
    ("train-config-missing", lambda w, t: ["train", str(t / "nope.yaml")], "nope.yaml"),
    ("train-config-garbage", lambda w, t: ["train", str(_file(t, "c.yaml", b"a: [1, 2\n"))], "c.yaml"),
    ("train-config-list", lambda w, t: ["train", str(_file(t, "c.yaml", b"- 1\n- 2\n"))], "c.yaml"),
    ("train-unknown-method", lambda w, t: ["train", str(w.config), "--out", str(t / "r"), "--set",
                                           "model.method=pix2pixx"], "pix2pixx"),
    ("train-unknown-network", lambda w, t: ["train", str(w.config), "--out", str(t / "r"), "--set",
                                            "model.generator=unett"], "unett"),
    ("train-set-no-equals", lambda w, t: ["train", str(w.config), "--out", str(t / "r"), "--set", "data"], "data"),
    ("train-set-unknown-key", lambda w, t: ["train", str(w.config), "--out", str(t / "r"), "--set", "data.bogus=1"],
     "bogus"),
    ("train-batch-neg", lambda w, t: ["train", str(w.config), "--out", str(t / "r"), "--set", "data.batch_size=-4"],
     "batch_size"),
    ("train-batch-0", lambda w, t: ["train", str(w.config), "--out", str(t / "r"), "--set", "data.batch_size=0"],
     "batch_size"),
    ("train-lr-neg", lambda w, t: ["train", str(w.config), "--out", str(t / "r"), "--set", "optim.lr=-1"], "lr"),
    ("train-val-every-0", lambda w, t: ["train", str(w.config), "--out", str(t / "r"), "--set",
                                        "trainer.val_every=0"], "val_every"),
    ("train-checkpoint-every-neg", lambda w, t: ["train", str(w.config), "--out", str(t / "r"), "--set",
                                                 "trainer.checkpoint_every=-1"], "checkpoint_every"),
    ("train-max-minutes-neg", lambda w, t: ["train", str(w.config), "--out", str(t / "r"), "--max-minutes", "-1"],
     "max_minutes"),
    ("train-device-bogus", lambda w, t: ["train", str(w.config), "--out", str(t / "r"), "--device", "tpu9"], "tpu9"),
    ("train-resume-nothing", lambda w, t: ["train", str(w.config), "--out", str(t / "r"), "--resume"], "r"),
    ("train-out-holds-run", lambda w, t: ["train", str(w.config), "--out", str(w.run)], "/run: already holds"),
    ("train-out-file", lambda w, t: ["train", str(w.config), "--out", str(_file(t))], "a_file"),
    ("train-manifest-missing", lambda w, t: ["train", str(w.config), "--out", str(t / "r"), "--set",
                                             f"data.manifest={t / 'nope.tsv'}"], "nope.tsv"),
    ("train-manifest-empty", lambda w, t: ["train", str(w.config), "--out", str(t / "r"), "--set",
                                           f"data.manifest={_file(t, 'm.tsv', HEADER_ONLY)}"], "m.tsv"),
    ("train-target-is-input", lambda w, t: ["train", str(w.config), "--out", str(t / "r"), "--set",
                                            "data.inputs=[T1w, FDG]"], "FDG"),
    ("train-too-few-subjects", lambda w, t: ["train", str(w.config), "--out", str(t / "r"), "--set",
                                             f"data.manifest={manifest_with(t, 'two.tsv', _rows(w, 2))}"], "two.tsv"),
    ("train-shifted-pet-mni-grid", lambda w, t: ["train", _cfg(w, t, voxel_size=3.0), "--out", str(t / "r"),
                                                 "--set", f"data.manifest={_bad_row(w, t, 'FDG', _shifted_fdg(t))}"],
     "shifted_FDG"),
    ("train-shifted-pet-native", lambda w, t: ["train", str(w.config), "--out", str(t / "r"), "--set",
                                               f"data.manifest={_bad_row(w, t, 'FDG', _shifted_fdg(t))}"],
     "shifted_FDG"),
    ("train-complex-t1", lambda w, t: ["train", str(w.config), "--out", str(t / "r"), "--set", "data.manifest="
                                       + _bad_row(w, t, "T1w", nifti(t / "cx.nii", np.ones(SHAPE, np.complex64)))],
     "cx.nii"),
    ("train-huge-header", lambda w, t: ["train", str(w.config), "--out", str(t / "r"), "--set", "data.manifest="
                                        + _bad_row(w, t, "T1w", header_only(t / "h.nii", (1000, 1000, 1000)))],
     "h.nii"),
    # predict
    ("predict-no-source", lambda w, t: _predict(w, "--out", str(t / "p")), "--manifest"),
    ("predict-two-sources", lambda w, t: _predict(w, "--input", str(w.t1()), "--manifest", str(w.manifest), "--out",
                                                  str(t / "p")), "--manifest"),
    ("predict-checkpoint-missing", lambda w, t: ["predict", "--checkpoint", str(t / "x.pt"), "--input", str(w.t1()),
                                                 "--out", str(t / "p.nii.gz")], "x.pt"),
    ("predict-checkpoint-junk", lambda w, t: ["predict", "--checkpoint", str(_file(t, "j.pt", b"junk")), "--input",
                                              str(w.t1()), "--out", str(t / "p.nii.gz")], "j.pt"),
    ("predict-checkpoint-truncated", lambda w, t: ["predict", "--checkpoint", str(
        _file(t, "half.pt", w.checkpoint.read_bytes()[:5000])), "--input", str(w.t1()), "--out", str(t / "p.nii.gz")],
        "half.pt"),
    ("predict-checkpoint-pickled-model", lambda w, t: ["predict", "--checkpoint", str(_pickled(t)), "--input",
                                                       str(w.t1()), "--out", str(t / "p.nii.gz")], "model.pt"),
    ("predict-checkpoint-other-format", lambda w, t: ["predict", "--checkpoint", str(_other_format(t)), "--input",
                                                      str(w.t1()), "--out", str(t / "p.nii.gz")], "other.pt"),
    ("predict-checkpoint-is-manifest", lambda w, t: ["predict", "--checkpoint", str(w.manifest), "--input",
                                                     str(w.t1()), "--out", str(t / "p.nii.gz")], "manifest.tsv"),
    ("predict-checkpoint-other-shapes", lambda w, t: _in(w, w.t1(), t / "p.nii.gz")[:2] + [
        str(_edited(w, t, _wider))] + _in(w, w.t1(), t / "p.nii.gz")[3:], "do not fit"),
    ("predict-checkpoint-older-version", lambda w, t: _in(w, w.t1(), t / "p.nii.gz")[:2] + [
        str(_edited(w, t, lambda c: c["info"].pop("sampling")))] + _in(w, w.t1(), t / "p.nii.gz")[3:], "sampling"),
    ("predict-checkpoint-no-info", lambda w, t: _in(w, w.t1(), t / "p.nii.gz")[:2] + [
        str(_edited(w, t, lambda c: c.pop("info")))] + _in(w, w.t1(), t / "p.nii.gz")[3:], "run info"),
    ("predict-checkpoint-info-not-mapping", lambda w, t: _in(w, w.t1(), t / "p.nii.gz")[:2] + [
        str(_edited(w, t, lambda c: c.update(info=[1, 2])))] + _in(w, w.t1(), t / "p.nii.gz")[3:], "run info"),
    ("predict-checkpoint-no-weights", lambda w, t: _in(w, w.t1(), t / "p.nii.gz")[:2] + [
        str(_edited(w, t, lambda c: c.pop("method_state")))] + _in(w, w.t1(), t / "p.nii.gz")[3:], "edited.pt"),
    ("train-diverges", lambda w, t: ["train", str(w.config), "--out", str(t / "r"), "--set", "optim.lr=1e30",
                                     "--device", "cpu"], "diverged"),
    ("train-resume-other-method", lambda w, t: _resume_from(w, t, lambda c: c["info"].update(method="pix2pix")),
     "method 'pix2pix'"),
    ("train-resume-other-shapes", lambda w, t: _resume_from(w, t, _wider), "does not fit"),
    ("train-resume-no-optimiser", lambda w, t: _resume_from(w, t, lambda c: c.update(optimisers={})),
     "does not fit"),
    ("predict-out-dir-for-input", lambda w, t: _in(w, w.t1(), _dir(t, "folder")), "folder: is a folder"),
    ("predict-out-file-for-manifest", lambda w, t: _predict(w, "--manifest", str(w.manifest), "--out",
                                                            str(_file(t))), "a_file"),
    ("predict-out-missing-parent", lambda w, t: _in(w, w.t1(), t / "no" / "such" / "p.nii.gz"), "no/such"),
    ("predict-out-suffix", lambda w, t: _in(w, w.t1(), t / "p.txt"), "p.txt"),
    ("predict-out-exists", lambda w, t: _in(w, w.t1(), _file(t, "p.nii.gz")), "p.nii.gz"),
    ("predict-out-under-file", lambda w, t: _predict(w, "--manifest", str(w.manifest), "--out",
                                                     str(_file(t) / "p")), "a_file"),
    ("predict-out-clashes", lambda w, t: _predict(w, "--manifest", str(w.manifest), "--out",
                                                  str(w.run / "predictions")), "already exists"),
    ("predict-input-count", lambda w, t: _predict(w, "--input", str(w.t1()), str(w.t1(1)), "--out",
                                                  str(t / "p.nii.gz")), "takes 1"),
    ("predict-input-missing", lambda w, t: _in(w, t / "none.nii.gz", t / "p.nii.gz"), "none.nii.gz"),
    ("predict-input-huge", lambda w, t: _in(w, header_only(t / "h.nii", (1000, 1000, 1000)), t / "p.nii.gz"),
     "h.nii"),
    ("predict-input-huge-nifti2", lambda w, t: _in(w, header_only(t / "h2.nii", (100000, 100000, 100000)),
                                                   t / "p.nii.gz"), "h2.nii"),
    ("predict-input-header-only", lambda w, t: _in(w, header_only(t / "h3.nii", SHAPE), t / "p.nii.gz"), "h3.nii"),
    ("predict-input-complex", lambda w, t: _in(w, nifti(t / "cx.nii", np.ones(SHAPE, np.complex64)), t / "p.nii.gz"),
     "cx.nii"),
    ("predict-input-zero-affine", lambda w, t: _in(w, zero_affine(t / "za.nii"), t / "p.nii.gz"), "za.nii"),
    ("predict-input-singular-affine", lambda w, t: _in(w, zero_affine(t / "sa.nii", np.diag([3.0, 3.0, 0.0, 1.0])),
                                                          t / "p.nii.gz"),
     "sa.nii"),
    ("predict-input-4d", lambda w, t: _in(w, nifti(t / "4d.nii", np.ones((*SHAPE, 3), np.float32)), t / "p.nii.gz"),
     "4d.nii"),
    ("predict-input-2d", lambda w, t: _in(w, nifti(t / "2d.nii", np.ones(SHAPE[:2], np.float32)), t / "p.nii.gz"),
     "2d.nii"),
    ("predict-input-nan", lambda w, t: _in(w, nifti(t / "nan.nii", np.full(SHAPE, np.nan, np.float32)),
                                           t / "p.nii.gz"), "nan.nii"),
    ("predict-input-not-nifti", lambda w, t: _in(w, _file(t, "x.nii.gz", b"not gzip"), t / "p.nii.gz"), "x.nii.gz"),
    ("predict-input-folder", lambda w, t: _in(w, _dir(t, "d.nii.gz"), t / "p.nii.gz"), "d.nii.gz"),
    ("predict-manifest-empty", lambda w, t: _predict(w, "--manifest", str(_file(t, "m.tsv", b"subject\tsession\n")),
                                                     "--out", str(t / "p")), "m.tsv"),
    ("predict-manifest-traversal", lambda w, t: _predict(w, "--manifest", str(manifest_with(
        t, "m.tsv", [{"subject": "../sub-00", "session": "1", "T1w": str(w.t1())}])), "--out", str(t / "p")),
        "../sub-00"),
    ("predict-bids-missing", lambda w, t: _predict(w, "--bids", str(t / "nope"), "--out", str(t / "p")), "nope"),
    ("predict-bids-no-images", lambda w, t: _predict(w, "--bids", str(_dir(t, "ds")), "--out", str(t / "p")), "ds"),
    ("predict-planes-untrained", lambda w, t: _predict(w, "--input", str(w.t1()), "--out", str(t / "p.nii.gz"),
                                                       "--planes", "all"), "--planes"),
    ("predict-device-bogus", lambda w, t: ["predict", "--checkpoint", str(w.checkpoint), "--device", "tpu9",
                                           "--input", str(w.t1()), "--out", str(t / "p.nii.gz")], "tpu9"),
    # evaluate
    ("evaluate-pred-missing", lambda w, t: ["evaluate", "--pred", str(t / "nope"), "--manifest", str(w.manifest),
                                            "--target", "FDG", "--out", str(t / "e")], "nope"),
    ("evaluate-manifest-missing", lambda w, t: ["evaluate", "--pred", str(w.run / "predictions"), "--manifest",
                                                str(t / "m.tsv"), "--target", "FDG", "--out", str(t / "e")], "m.tsv"),
    ("evaluate-target-unknown", lambda w, t: ["evaluate", "--pred", str(w.run / "predictions"), "--manifest",
                                              str(w.manifest), "--target", "FDGG", "--out", str(t / "e")], "FDGG"),
    ("evaluate-mask-unknown", lambda w, t: _evaluate(w, "--mask", "brainmsk", "--out", str(t / "e")), "brainmsk"),
    ("evaluate-target-absent", lambda w, t: ["evaluate", "--pred", str(w.run / "predictions"), "--manifest",
                                             str(w.manifest), "--target", "PIB", "--out", str(t / "e")], "PIB"),
    ("evaluate-nothing-paired", lambda w, t: ["evaluate", "--pred", str(_dir(t, "empty")), "--manifest",
                                              str(w.manifest), "--target", "FDG", "--out", str(t / "e")], "empty"),
    ("evaluate-out-exists", lambda w, t: _evaluate(w), "evaluation"),
    ("evaluate-out-file", lambda w, t: _evaluate(w, "--out", str(_file(t))), "a_file"),
    ("evaluate-train-subjects-missing", lambda w, t: _evaluate(w, "--out", str(t / "e"), "--train-subjects",
                                                               str(t / "ids.txt")), "ids.txt"),
    # report
    ("report-run-missing", lambda w, t: ["report", str(t / "nope")], "nope"),
    ("report-no-evaluation", lambda w, t: ["report", str(_dir(t, "run"))], "evaluation"),
    ("report-exists", lambda w, t: ["report", str(w.run)], "report.html"),
    ("report-run-is-file", lambda w, t: ["report", str(_file(t))], "a_file"),
    ("report-unknown-subject", lambda w, t: ["report", str(w.run), "--overwrite", "--subjects", "sub-99"], "sub-99"),
    # demo
    ("demo-few-subjects", lambda w, t: ["demo", "--out", str(t / "d"), "--subjects", "3"], "--subjects"),
    ("demo-out-file", lambda w, t: ["demo", "--out", str(_file(t))], "a_file"),
    ("demo-out-holds-run", lambda w, t: ["demo", "--out", str(w.run)], "/run: already holds"),
    ("demo-minutes-neg", lambda w, t: ["demo", "--out", str(t / "d"), "--minutes", "-1"], "--minutes"),
]
if not torch.cuda.is_available():
    CASES.append(("train-cuda-without-gpu", lambda w, t: ["train", str(w.config), "--out", str(t / "r"), "--device",
                                                          "cuda"], "cuda"))
    CASES.append(("predict-cuda-without-gpu", lambda w, t: ["predict", "--checkpoint", str(w.checkpoint), "--device",
                                                            "cuda", "--input", str(w.t1()), "--out",
                                                            str(t / "p.nii.gz")], "cuda"))


@pytest.mark.parametrize(("argv", "needle"), [pytest.param(build, needle, id=name) for name, build, needle in CASES])
def test_bad_input_is_one_line_and_exit_2(world, tmp_path, argv, needle):
    before = _snapshot(world.run)
    code, err, _ = run_cli(argv(world, tmp_path))
    assert code == 2, err
    assert len(err) == 1, err
    line = err[0]
    assert line.startswith("neurotrans") and "error:" in line and "Fix:" in line, line
    assert "Traceback" not in line and needle in line, line
    assert _snapshot(world.run) == before  # the trained run is never touched by a refused command


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
            if p.is_file()}


SUBPROCESS_CASES = [
    ("argparse", ["simulate", "fdg", "--subjects", "x", "--out", "unused"], "'x'"),
    ("missing-manifest", ["data", "check", "no/such/manifest.tsv"], "manifest.tsv"),
    ("pickled-checkpoint", None, "model.pt"),
]


@pytest.mark.parametrize(("argv", "needle"), [pytest.param(a, n, id=i) for i, a, n in SUBPROCESS_CASES])
def test_bad_input_in_a_real_process(world, tmp_path, argv, needle):
    if argv is None:
        argv = ["predict", "--checkpoint", str(_pickled(tmp_path)), "--input", str(world.t1()), "--out",
                str(tmp_path / "p.nii.gz")]
    proc = subprocess.run([sys.executable, "-m", "neurotrans.cli", *argv], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert needle in lines[0] and "Fix:" in lines[0] and "weights_only" not in lines[0]


def test_case_count():
    """The count the README states: every case above is one line, exit 2."""
    names = [c[0] for c in CASES]
    assert len(names) == len(set(names))
    commands = {n.split("-")[0] for n in names}
    assert {"simulate", "check", "manifest", "train", "predict", "evaluate", "report", "demo"} <= commands
    assert len(CASES) + len(SUBPROCESS_CASES) >= 100
    json.dumps(names)  # the ids are plain strings (shown in the README count)
