"""Train a tiny model on a small cohort, predict NIfTI on each input's own grid in target units."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurotrans.errors import InputError
from neurotrans.inference.predict import predict_command
from neurotrans.io.manifest import read_manifest
from neurotrans.io.nifti import load_volume
from neurotrans.io.run import PredictionFolder, RunFolder
from neurotrans.training.run import train_from_config


def test_train_then_predict_on_the_input_grid(tiny_cohort, tmp_path, device):
    # working grid: the 3 mm MNI grid (the cohort is on a small native grid): predictions must
    # come back onto the input's own grid and affine, in the target's units (z-score inverted)
    cfg = {"name": "e2e",
           "model": {"method": "supervised", "generator": "unet_esit", "generator_args": {"base": 4, "depth": 2}},
           "data": {"manifest": str(tiny_cohort), "voxel_size": 3.0, "normalisation": {"FDG": "zscore"},
                    "batch_size": 8, "plane": "all"},
           "split": {"kind": "fixed", "test_fraction": 0.34, "val_fraction": 0.17},
           "optim": {"name": "adamw", "lr": 3e-3, "betas": [0.9, 0.999]},
           "trainer": {"max_steps": 30, "val_every": 15, "checkpoint_every": 15, "progress": False}}
    run = train_from_config(cfg, out=tmp_path / "run", device=device)
    written = predict_command(run / "checkpoints" / "best.pt", manifest=tiny_cohort, out=tmp_path / "pred",
                              device=device)
    man = read_manifest(tiny_cohort)
    test = RunFolder(run).read_info().split["test"]
    folder = PredictionFolder(tmp_path / "pred")
    assert sorted(written) == sorted(folder.path(s, "ses-1", "FDG") for s in test)
    assert folder.read_description()["neurotrans"]["label"] == "e2e"
    for subject, path in zip(sorted(test), sorted(written), strict=True):
        sidecar = json.loads(folder.sidecar(path).read_text())["neurotrans"]
        assert sidecar["method"] == "supervised" and len(sidecar["checkpoint_sha256"]) == 64
        i = man.subjects.index(subject)
        t1, fdg, pred = load_volume(man.path(i, "T1w")), load_volume(man.path(i, "FDG")), load_volume(path)
        assert pred.shape == t1.shape
        np.testing.assert_allclose(pred.affine, t1.affine)
        brain = load_volume(man.path(i, "brainmask")).data > 0.5
        # original units, not z-scores: the brain means agree far better than with the normalised scale
        assert abs(pred.data[brain].mean() - fdg.data[brain].mean()) < 0.5 * fdg.data[brain].mean()
    # --input: one file per input sequence, written where asked
    i = man.subjects.index(test[0])
    out = predict_command(run / "checkpoints" / "last.pt", inputs=[man.path(i, "T1w")], out=tmp_path / "one.nii.gz")
    assert load_volume(out[0]).shape == load_volume(man.path(i, "T1w")).shape
    with pytest.raises(InputError, match="already exists"):
        predict_command(run / "checkpoints" / "last.pt", inputs=[man.path(i, "T1w")], out=tmp_path / "one.nii.gz")
    with pytest.raises(InputError, match="takes 1"):
        predict_command(run / "checkpoints" / "last.pt", inputs=[man.path(i, "T1w"), man.path(i, "GM")],
                        out=tmp_path / "two.nii.gz")
    with pytest.raises(InputError, match="already holds"):
        train_from_config(cfg, out=tmp_path / "run")


def test_pib_predictions_are_written_in_dvr(ms_cohort, tmp_path, device):
    """PIB is kept in DVR (no second division by the pons): the model learns DVR targets and
    its output is written unscaled, so the written volumes are DVR."""
    from neurotrans.config import config_from_dict
    from neurotrans.data.pipeline import prepare
    from neurotrans.inference.predict import load_trained, predict_slices

    manifest = ms_cohort / "manifest.tsv"
    cfg = {"name": "pib_dvr",
           "model": {"method": "supervised", "generator": "unet_esit", "generator_args": {"base": 4, "depth": 2}},
           "data": {"manifest": str(manifest), "inputs": ["MTR", "DTI_RD"], "target": "PIB", "voxel_size": 3.0,
                    "batch_size": 8},
           "split": {"kind": "fixed", "test_fraction": 0.25, "val_fraction": 0.0, "stratify": "group"},
           "trainer": {"max_steps": 3, "val_every": 3, "checkpoint_every": 3, "progress": False}}
    run = train_from_config(cfg, out=tmp_path / "run", device=device)
    info = RunFolder(run).read_info()
    assert info.units == "DVR" and {s["kind"] for s in info.target_stats} == {"none"}
    man = read_manifest(manifest)
    subject = info.split["test"][0]
    i = int(np.flatnonzero(man.table["subject"].astype(str) == subject)[0])
    # the training target is the manifest's DVR image itself
    (prepared,) = [s for s in prepare(man, [subject], config_from_dict(info.config).data, {})
                   if s.session == str(man.table.iloc[i]["session"])]
    real = load_volume(man.path(i, "PIB")).data
    np.testing.assert_allclose(prepared.target[0], real, atol=1e-4)
    # the written prediction is the network's output, unscaled, inside the brain
    (path,) = [p for p in predict_command(RunFolder(run).best_checkpoint(), manifest=manifest,
                                          out=tmp_path / "pred", subjects=[subject], device=device)
                if f"ses-{man.table.iloc[i]['session']}" in p.name]
    method, _ = load_trained(RunFolder(run).best_checkpoint())
    # on the device predict_command used: a GPU's TF32 convolutions differ from the CPU's by ~1e-3
    expected = predict_slices(method.to(device).predict, prepared.inputs, ["axial"], multiple=info.size_multiple,
                              device=device)
    written = load_volume(path).data
    np.testing.assert_allclose(written[prepared.mask], expected[prepared.mask], rtol=1e-5, atol=1e-5)
