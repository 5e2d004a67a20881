"""Train a tiny model on a small cohort, predict NIfTI on each input's own grid in target units."""

from __future__ import annotations

import numpy as np
import pytest

from neurotrans.errors import InputError
from neurotrans.inference.predict import predict_command
from neurotrans.io.manifest import read_manifest
from neurotrans.io.nifti import load_volume
from neurotrans.training.run import train_from_config


def test_train_then_predict_on_the_input_grid(tiny_cohort, tmp_path):
    # working grid: the 3 mm MNI grid (the cohort is on a small native grid): predictions must
    # come back onto the input's own grid and affine, in the target's units (z-score inverted)
    cfg = {"name": "e2e",
           "model": {"method": "supervised", "generator": "unet_esit", "generator_args": {"base": 4, "depth": 2}},
           "data": {"manifest": str(tiny_cohort), "voxel_size": 3.0, "normalisation": {"FDG": "zscore"},
                    "batch_size": 8, "plane": "all"},
           "split": {"kind": "fixed", "test_fraction": 0.34, "val_fraction": 0.17},
           "optim": {"name": "adamw", "lr": 3e-3, "betas": [0.9, 0.999]},
           "trainer": {"max_steps": 30, "val_every": 15, "checkpoint_every": 15, "progress": False}}
    run = train_from_config(cfg, out=tmp_path / "run")
    written = predict_command(run / "checkpoints" / "best.pt", manifest=tiny_cohort, out=tmp_path / "pred")
    man = read_manifest(tiny_cohort)
    import json

    test = json.loads((run / "run.json").read_text())["test_subjects"]
    assert sorted(p.name for p in written) == sorted(f"{s}_ses-1_FDG.nii.gz" for s in test)
    for path in written:
        subject = path.name.split("_")[0]
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
