"""Training through the DataLoader: 3D patches and volumes end to end, resume with workers,
and settings refused before any image is read."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from killed_run import train_killed_at

from neurotrans.errors import InputError
from neurotrans.inference.predict import predict_command
from neurotrans.io.manifest import read_manifest
from neurotrans.io.nifti import load_volume
from neurotrans.io.run import RunFolder
from neurotrans.training.checkpoint import load_checkpoint
from neurotrans.training.run import train_from_config


def _config(manifest, steps=6, **data):
    return {"name": "t3d",
            "model": {"method": "supervised", "generator": "unet_esit", "generator_args": {"base": 4, "depth": 2}},
            "data": {"manifest": str(manifest), "voxel_size": None, "normalisation": {"FDG": "zscore"},
                     "batch_size": 2, **data},
            "split": {"kind": "fixed", "test_fraction": 0.34, "val_fraction": 0.17},
            "optim": {"name": "adamw", "lr": 3e-3, "betas": [0.9, 0.999]},
            "trainer": {"max_steps": steps, "val_every": 3, "checkpoint_every": 2, "progress": False}}


def _weights(run, name="last"):
    return load_checkpoint(RunFolder(run).checkpoint(name))["method_state"]


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("data", [
    {"spatial_dims": 3, "patch_size": [8, 8, 8], "samples_per_volume": 2, "augment": ["flip", "scale"]},
    {"spatial_dims": 3, "augment": ["rot90"]},
])
def test_3d_training_predicts_onto_the_input_grid(tiny_cohort, tmp_path, data, device):
    run = train_from_config(_config(tiny_cohort, **data), out=tmp_path / "run", device=device)
    info = RunFolder(run).read_info()
    assert info.spatial_dims == 3 and info.sampling["kind"] in ("patches", "volume")
    written = predict_command(RunFolder(run).best_checkpoint(), manifest=tiny_cohort, out=tmp_path / "pred",
                              device=device)
    man = read_manifest(tiny_cohort)
    for path in written:
        subject = path.name.split("_")[0]
        t1 = load_volume(man.path(man.subjects.index(subject), "T1w"))
        pred = load_volume(path)
        assert pred.shape == t1.shape and np.allclose(pred.affine, t1.affine) and np.isfinite(pred.data).all()


def test_resume_with_dataloader_workers_is_bit_identical(tiny_cohort, tmp_path, monkeypatch, device):
    cfg = _config(tiny_cohort, steps=7, num_workers=2, spatial_dims=3, patch_size=[8, 8, 8], samples_per_volume=2,
                  augment=["flip"])
    full = train_from_config(cfg, out=tmp_path / "full", device=device)  # pinned memory on CUDA
    in_process = train_from_config({**cfg, "data": {**cfg["data"], "num_workers": 0}}, out=tmp_path / "zero",
                                   device=device)
    assert _same(_weights(full), _weights(in_process))  # workers change nothing
    train_killed_at(cfg, tmp_path / "killed", 5, monkeypatch, device)  # dies after the checkpoint of step 4, mid-epoch
    resumed = train_from_config(cfg, out=tmp_path / "killed", resume=True, device=device)
    assert _same(_weights(full), _weights(resumed))


def test_a_torn_last_log_line_does_not_stop_a_resume(tiny_cohort, tmp_path):
    cfg = _config(tiny_cohort, steps=4)
    run = train_from_config(cfg, out=tmp_path / "run")
    log = RunFolder(run).log_jsonl
    log.write_text(log.read_text() + '{"step": 99, "kind": "tr')  # killed mid-write
    cfg["trainer"]["max_steps"] = 6
    train_from_config(cfg, out=run, resume=True)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert max(r["step"] for r in records) == 6


@pytest.mark.parametrize("override, match", [
    ("trainer.monitor=loss", "monitor"),
    ("model.generator_args.spatial_dims=3", "spatial_dims"),  # a 3D network with 2D data
    ("data.spatial_dims=3", "8"),  # ... and a pix2pix-deep U-Net with 3D data: refused by its size multiple
    ("model.generator_args.widht=3", "widht"),  # a typo in a network argument
    ("model.generator_args.base=-2", "base"),
    ("optim.group_lr.G=0.1", "group"),
])
def test_bad_settings_fail_before_data_are_read(tiny_cohort, tmp_path, override, match, monkeypatch):
    cfg = _config(tiny_cohort)
    if override.startswith("data.spatial_dims"):
        cfg["model"]["generator_args"] = {"base": 4, "depth": 4}  # size multiple 16 > the 8^3 patches
        cfg["data"]["patch_size"] = [8, 8, 8]
    import neurotrans.data.pipeline as pipeline

    def no_data(*args, **kwargs):
        raise AssertionError("data were read before the settings were checked")

    if not override.startswith(("data.spatial_dims", "optim.group_lr", "trainer.monitor")):
        monkeypatch.setattr(pipeline, "prepare", no_data)
    with pytest.raises((InputError, ValueError), match=match):
        train_from_config(cfg, [override], out=tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_monitor_names_a_metric_the_method_reports(tiny_cohort, tmp_path):
    run = train_from_config(_config(tiny_cohort, steps=3), ["trainer.monitor=mse"], out=tmp_path / "run")
    assert RunFolder(run).read_outcome().monitor == "mse"


def test_leave_one_out_validates_and_stops_on_held_out_slabs(tiny_cohort, tmp_path):
    """Leave-one-out leaves no validation subject; ``split.holdout`` validates on a slab of each
    training subject, so early stopping and the best checkpoint work (the small real-cohort recipe)."""
    cfg = _config(tiny_cohort, steps=40, spatial_dims=3, patch_size=[8, 8, 8], samples_per_volume=2)
    cfg["split"] = {"kind": "loo", "fold": 1, "holdout": 0.25}
    cfg["trainer"] |= {"val_every": 2, "early_stopping": "patience", "patience": 2}
    run = RunFolder(train_from_config(cfg, out=tmp_path / "run"))
    outcome = run.read_outcome()
    vals = [r for r in map(json.loads, run.log_jsonl.read_text().splitlines()) if r.get("kind") == "val"]
    assert vals and all(np.isfinite(v["val/mae"]) for v in vals)  # every validation scored the slabs
    assert outcome.best_step > 0 and outcome.best_val is not None and run.best_checkpoint().name == "best.pt"
    assert outcome.stopped.startswith("early stopping") or outcome.steps == 40
    assert run.read_info().split["val"] == []  # subjects: the slabs are parts of the training subjects
    with pytest.raises(InputError, match="unpaired"):
        train_from_config({**cfg, "split": {"kind": "loo", "holdout": 0.25}} | {"data": {
            **cfg["data"], "spatial_dims": 2, "patch_size": None, "samples_per_volume": 0, "pairing": "unpaired"}},
            out=tmp_path / "unpaired")
