"""Every packaged config trains two steps and predicts onto the input grid on a simulated cohort."""

from __future__ import annotations

import numpy as np
import pytest

from neurotrans.config import load_config, packaged_configs
from neurotrans.inference.predict import predict_command
from neurotrans.io.manifest import read_manifest
from neurotrans.io.nifti import load_volume
from neurotrans.io.run import RunFolder
from neurotrans.training.run import train_from_config

# fitted methods "train" by fitting: keep the fits small here (their packaged sizes take minutes)
SMALL_FITS = {
    "random_forest": ["model.n_trees=4", "model.n_samples=2000"],
    "voxel_mlp": ["model.n_samples=2000", "model.max_iter=10"],
    "modality_propagation": ["model.search_radius=1", "model.max_library=2"],
}
# the 2-layer CNN's 64 maps of 7^3 cost ~1.5M multiply-adds per voxel: predicting one 3 mm
# volume takes minutes on a test machine, so it is checked narrower here
SMALL_NETS = {"cnn2layer": ["model.features=4"]}


@pytest.mark.parametrize("name", packaged_configs())
def test_packaged_config_trains_and_predicts(name, fdg_cohort, ms_cohort, tmp_path):
    cfg = load_config(name)
    cohort = fdg_cohort if cfg.data.target == "FDG" else ms_cohort
    manifest = cohort / "manifest.tsv"
    run = train_from_config(name, [f"data.manifest={manifest}", "trainer.max_steps=2", "trainer.val_every=2",
                                   "trainer.checkpoint_every=2", "trainer.progress=false",
                                   "trainer.val_subjects_max=1", *SMALL_FITS.get(cfg.model.method, []),
                                   *SMALL_NETS.get(cfg.model.method, [])],
                           out=tmp_path / "run")
    folder = RunFolder(run)
    info, outcome = folder.read_info(), folder.read_outcome()
    if cfg.model.method in SMALL_FITS:
        assert (outcome.steps, outcome.stopped) == (0, "fitted")
    else:
        assert outcome.steps == 2
    assert info.method == cfg.model.method
    subject = info.split["test"][0]
    (path,) = [p for p in predict_command(folder.best_checkpoint(), manifest=manifest, out=tmp_path / "pred",
                                          subjects=[subject])
               if "ses-t1" not in p.name]
    man = read_manifest(manifest)
    row = [i for i in range(len(man)) if man.table.iloc[i]["subject"] == subject][0]
    reference = load_volume(man.path(row, cfg.data.image_inputs[0]))
    pred = load_volume(path)
    assert pred.shape == reference.shape and np.allclose(pred.affine, reference.affine)
    assert np.isfinite(pred.data).all()
