"""`predict --uncertainty`, ensembles of fold models, `--age` and `--age-sweep`, on trained tiny models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from neurotrans.cli import build_parser, main
from neurotrans.errors import InputError
from neurotrans.inference.predict import load_trained, predict_command, prepare_for_prediction
from neurotrans.inference.uncertainty import sd_map, sweep_values, value_label
from neurotrans.io.manifest import read_manifest
from neurotrans.io.nifti import load_volume
from neurotrans.io.run import PredictionFolder, RunFolder
from neurotrans.training.run import train_from_config

GLOW = {"method": "dualglow", "levels": 2, "steps": 2, "hidden": 8, "relation_hidden": 8, "relation_layers": 2,
        "relation_kernel": 3, "side_hidden": 4, "samples": 3, "temperature": 0.7}


def _config(manifest, model, data=None, split=None, steps=6, name="tiny"):
    return {"name": name, "model": model,
            "data": {"manifest": str(manifest), "voxel_size": None, "normalisation": {"FDG": "none"},
                     "batch_size": 2, **(data or {})},
            "split": {"kind": "fixed", "test_fraction": 0.25, "val_fraction": 0.125, "stratify": None,
                      **(split or {})},
            "optim": {"name": "adamax", "lr": 1e-3, "betas": [0.9, 0.999]},
            "trainer": {"max_steps": steps, "val_every": steps, "checkpoint_every": steps, "progress": False}}


@pytest.fixture(scope="module")
def glow_run(glow_cohort, tmp_path_factory):
    """DUAL-GLOW with age as side information, 6 steps."""
    cfg = _config(glow_cohort, {**GLOW, "side_kinds": ["continuous"]},
                  {"spatial_dims": 3, "patch_size": None, "covariates": ["age"]}, name="glow_age")
    return train_from_config(cfg, out=tmp_path_factory.mktemp("glow") / "run")


@pytest.fixture(scope="module")
def fold_runs(glow_cohort, tmp_path_factory):
    """Two folds of a tiny slice U-Net (3-fold CV: they hold out different subjects)."""
    root = tmp_path_factory.mktemp("folds")
    model = {"method": "supervised", "generator": "unet_esit", "generator_args": {"base": 4, "depth": 2}}
    return [train_from_config(_config(glow_cohort, model, split={"kind": "kfold", "folds": 3, "fold": k},
                                      steps=3, name="unet_tiny"), out=root / f"fold{k}")
            for k in range(2)]


def _row(manifest, subject):
    man = read_manifest(manifest)
    return man, [i for i in range(len(man)) if man.table.iloc[i]["subject"] == subject][0]


def test_temperature_zero_is_deterministic_and_padded_like_training(glow_run, glow_cohort, tmp_path, device):
    folder = RunFolder(glow_run)
    subject = folder.read_info().split["test"][0]
    a = predict_command(folder.best_checkpoint(), manifest=glow_cohort, out=tmp_path / "a", subjects=[subject],
                        device=device)
    b = predict_command(folder.best_checkpoint(), manifest=glow_cohort, out=tmp_path / "b", subjects=[subject],
                        device=device)
    va, vb = load_volume(a[0]), load_volume(b[0])
    np.testing.assert_array_equal(va.data, vb.data)
    # the written volume is the method's temperature-0 prediction of the volume zero-padded at the
    # far end (as in training), cropped back and masked
    method, info = load_trained(folder.best_checkpoint())
    man, i = _row(glow_cohort, subject)
    prepared = prepare_for_prediction(man, i, info)
    shape = prepared.inputs.shape[1:]
    x = np.pad(prepared.inputs, [(0, 0)] + [(0, r - s) for s, r in zip(shape, info.sampling["roi_size"], strict=True)])
    with torch.no_grad():  # on the device predict_command used (a GPU's TF32 convolutions differ from a CPU's)
        pred = method.to(device).predict(torch.from_numpy(x)[None].to(device),
                                         torch.tensor([[float(man.table.iloc[i]["age"])]], device=device))
    expected = np.where(prepared.mask, pred[0, 0].cpu().numpy()[: shape[0], : shape[1], : shape[2]], 0.0)
    np.testing.assert_allclose(va.data, expected, rtol=1e-5, atol=1e-6)


def test_dualglow_sd_maps_from_samples_on_the_input_grid(glow_run, glow_cohort, tmp_path):
    folder = RunFolder(glow_run)
    subject = folder.read_info().split["test"][0]
    written = predict_command(folder.best_checkpoint(), manifest=glow_cohort, out=tmp_path / "p", subjects=[subject],
                              uncertainty=True)
    preds = PredictionFolder(tmp_path / "p")
    sd_path = preds.sd_path(subject, "ses-1", "FDG")
    assert sorted(written) == sorted([preds.path(subject, "ses-1", "FDG"), sd_path])
    man, i = _row(glow_cohort, subject)
    t1, sd = load_volume(man.path(i, "T1w")), load_volume(sd_path)
    assert sd.shape == t1.shape and np.allclose(sd.affine, t1.affine)
    brain = load_volume(man.path(i, "brainmask")).data > 0.5
    assert np.isfinite(sd.data).all() and (sd.data >= 0).all()
    assert (sd.data[brain] > 0).mean() > 0.9 and (sd.data[~brain] == 0).all()
    sidecar = json.loads(preds.sidecar(sd_path).read_text())["neurotrans"]["uncertainty"]
    assert sidecar == {**sidecar, "kind": "samples", "samples": 3, "temperature": 0.7, "seed": 0}
    # seeded: the same maps again; another seed, other maps; a colder temperature, smaller SDs
    again = predict_command(folder.best_checkpoint(), manifest=glow_cohort, out=tmp_path / "q", subjects=[subject],
                            uncertainty=True)
    np.testing.assert_array_equal(load_volume(again[1]).data, sd.data)
    other = predict_command(folder.best_checkpoint(), manifest=glow_cohort, out=tmp_path / "r", subjects=[subject],
                            uncertainty=True, seed=1, temperature=0.35, samples=4)
    cold = load_volume(other[1]).data
    assert not np.array_equal(cold, sd.data) and cold[brain].mean() < sd.data[brain].mean()


@pytest.mark.parametrize("hook", ["predict_sample", "predict"])
def test_a_prediction_that_overflowed_is_refused_with_the_fix(glow_run, glow_cohort, monkeypatch, hook):
    from neurotrans.inference.predict import predict_subject
    from neurotrans.inference.uncertainty import sample_volumes

    method, info = load_trained(RunFolder(glow_run).best_checkpoint())
    man, i = _row(glow_cohort, info.test_subjects[0])
    subject = prepare_for_prediction(man, i, info)
    real = getattr(method, hook)
    calls = []

    def overflowing(x, covariates, **kw):  # the second call overflows, as a flow's inverse can
        out = real(x, covariates, **kw)
        calls.append(1)
        return out if len(calls) < 2 else out.index_fill(-1, torch.tensor([out.shape[-1] // 2]), float("inf"))

    monkeypatch.setattr(method, hook, overflowing)
    match = rf"dualglow prediction for {subject.key}.*NaN/Inf voxels.*lower --temperature"
    with pytest.raises(InputError, match=match):
        if hook == "predict_sample":
            sample_volumes(method, info, subject, samples=3, temperature=0.9, seed=0)
        else:
            predict_subject(method, info, subject)
            predict_subject(method, info, subject)
    assert len(calls) == 2  # refused at the draw that overflowed


def test_the_age_override_changes_an_age_conditioned_prediction(glow_run, glow_cohort, tmp_path):
    folder = RunFolder(glow_run)
    subject = folder.read_info().split["test"][0]
    man, i = _row(glow_cohort, subject)
    own_age = float(man.table.iloc[i]["age"])
    plain = predict_command(folder.best_checkpoint(), manifest=glow_cohort, out=tmp_path / "plain", subjects=[subject])
    young = predict_command(folder.best_checkpoint(), manifest=glow_cohort, out=tmp_path / "young",
                            subjects=[subject], age=40.0)
    same = predict_command(folder.best_checkpoint(), manifest=glow_cohort, out=tmp_path / "same",
                           subjects=[subject], age=own_age)
    p, y, s = (load_volume(x[0]).data for x in (plain, young, same))
    np.testing.assert_array_equal(p, s)
    brain = load_volume(man.path(i, "brainmask")).data > 0.5
    assert np.abs(p - y)[brain].max() > 1e-4
    sidecar = json.loads(PredictionFolder(tmp_path / "young").sidecar(young[0]).read_text())["neurotrans"]
    assert sidecar["covariates"] == {"age": 40.0}


def test_the_age_sweep_writes_one_volume_per_age(glow_run, glow_cohort, tmp_path):
    folder = RunFolder(glow_run)
    subject = folder.read_info().split["test"][0]
    man, i = _row(glow_cohort, subject)
    own_age = float(man.table.iloc[i]["age"])
    written = predict_command(folder.best_checkpoint(), manifest=glow_cohort, out=tmp_path / "s", subjects=[subject],
                              age_sweep=(own_age, own_age + 20, 3))
    preds = PredictionFolder(tmp_path / "s")
    ages = sweep_values(own_age, own_age + 20, 3)
    paths = [preds.path(subject, "ses-1", "FDG", desc=f"neurotransAge{value_label(a)}") for a in ages]
    assert sorted(written) == sorted([preds.path(subject, "ses-1", "FDG"), *paths])
    volumes = [load_volume(p).data for p in paths]
    np.testing.assert_array_equal(volumes[0], load_volume(preds.path(subject, "ses-1", "FDG")).data)
    assert not np.array_equal(volumes[0], volumes[2])
    assert [json.loads(preds.sidecar(p).read_text())["neurotrans"]["covariates"]["age"] for p in paths] == ages
    assert preds.scan("FDG") == [preds.path(subject, "ses-1", "FDG")]  # evaluation sees the prediction only
    # --input: beside the output file
    out = tmp_path / "one.nii.gz"
    files = predict_command(folder.best_checkpoint(), inputs=[man.path(i, "T1w")], out=out, age=70.0,
                            uncertainty=True, age_sweep=(60, 90, 2))
    assert [f.name for f in files] == ["one.nii.gz", "one_sd.nii.gz", "one_age-60.nii.gz", "one_age-90.nii.gz"]
    assert all(load_volume(f).shape == load_volume(man.path(i, "T1w")).shape for f in files)


@pytest.mark.parametrize("kwargs, match", [({"age": 70.0}, "no such side information"),
                                           ({"age_sweep": (60, 90, 3)}, "no such side information"),
                                           ({"uncertainty": True}, "draws no samples")])
def test_options_a_single_image_model_cannot_honour_are_refused(fold_runs, glow_cohort, tmp_path, kwargs, match):
    with pytest.raises(InputError, match=match):
        predict_command(RunFolder(fold_runs[0]).best_checkpoint(), manifest=glow_cohort, out=tmp_path / "x",
                        **kwargs)
    assert not (tmp_path / "x").exists()


def test_fold_ensemble_mean_and_sd(fold_runs, glow_cohort, tmp_path):
    first, second = (RunFolder(r).best_checkpoint() for r in fold_runs)
    infos = [RunFolder(r).read_info() for r in fold_runs]
    assert set(infos[0].split["test"]) != set(infos[1].split["test"])
    with pytest.raises(InputError, match="share no test subject"):
        predict_command([first, second], manifest=glow_cohort, out=tmp_path / "none", uncertainty=True)
    subject = infos[0].split["test"][0]
    kw = {"manifest": glow_cohort, "subjects": [subject]}
    singles = [load_volume(predict_command(c, out=tmp_path / f"single{k}", **kw)[0]).data
               for k, c in enumerate((first, second))]
    # one model twice: SD exactly 0, the prediction that model's
    same = predict_command([first, first], out=tmp_path / "same", uncertainty=True, **kw)
    np.testing.assert_array_equal(load_volume(same[0]).data, singles[0])
    assert not load_volume(same[1]).data.any()
    # two folds: mean and SD (ddof 1: |a - b| / sqrt 2) of the two models' predictions
    both = predict_command([first, second], out=tmp_path / "both", uncertainty=True, **kw)
    pred, sd = load_volume(both[0]), load_volume(both[1])
    np.testing.assert_allclose(pred.data, (singles[0] + singles[1]) / 2, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sd.data, np.abs(singles[0] - singles[1]) / np.sqrt(2), rtol=1e-5, atol=1e-6)
    man, i = _row(glow_cohort, subject)
    brain = load_volume(man.path(i, "brainmask")).data > 0.5
    assert sd.shape == load_volume(man.path(i, "T1w")).shape and (sd.data[brain] > 0).mean() > 0.9
    preds = PredictionFolder(tmp_path / "both")
    assert both[1] == preds.sd_path(subject, "ses-1", "FDG")
    side = json.loads(preds.sidecar(both[1]).read_text())["neurotrans"]
    assert side["uncertainty"]["kind"] == "ensemble" and len(side["uncertainty"]["checkpoints_sha256"]) == 2
    assert preds.read_description()["neurotrans"]["label"] == "unet_tiny (2-model ensemble)"


def test_sd_map_is_the_sample_sd():
    rng = np.random.default_rng(0)
    volumes = [rng.random((3, 4, 5)).astype(np.float32) for _ in range(4)]
    np.testing.assert_allclose(sd_map(volumes), np.std(np.stack(volumes), axis=0, ddof=1), rtol=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        sd_map(volumes[:1])


@pytest.mark.parametrize("start, stop, n, expected", [(60, 90, 7, [60, 65, 70, 75, 80, 85, 90]),
                                                      (62.5, 70, 2, [62.5, 70])])
def test_sweep_values_and_labels(start, stop, n, expected):
    assert sweep_values(start, stop, n) == expected
    assert [value_label(v) for v in expected][:2] in (["60", "65"], ["62p5", "70"])
    with pytest.raises(InputError, match="integer count"):
        sweep_values(start, stop, 1)


def test_cli_passes_the_options(glow_run, glow_cohort, tmp_path):
    args = build_parser().parse_args(["predict", "--checkpoint", "a.pt", "b.pt", "--manifest", "m.tsv", "--out", "o",
                                      "--uncertainty", "--samples", "4", "--temperature", "0.5", "--seed", "3",
                                      "--age", "71", "--age-sweep", "60", "90", "7"])
    assert [str(c) for c in args.checkpoint] == ["a.pt", "b.pt"] and args.uncertainty and args.samples == 4
    assert args.temperature == 0.5 and args.seed == 3 and args.age == 71.0 and args.age_sweep == [60.0, 90.0, 7.0]
    folder = RunFolder(glow_run)
    subject = folder.read_info().split["test"][0]
    man, i = _row(glow_cohort, subject)
    out = tmp_path / "cli.nii.gz"
    assert main(["predict", "--checkpoint", str(folder.best_checkpoint()), "--input", str(man.path(i, "T1w")),
                 "--out", str(out), "--age", "71", "--uncertainty", "--samples", "2"]) == 0
    assert (tmp_path / "cli_sd.nii.gz").is_file()
