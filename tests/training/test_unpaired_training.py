"""Unpaired training through the real pipeline: disjoint domains, bit-identical resume, both directions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from killed_run import train_killed_at

from neurotrans.data import pipeline
from neurotrans.errors import InputError
from neurotrans.inference.predict import direction_of, predict_command
from neurotrans.io.manifest import read_manifest
from neurotrans.io.nifti import load_volume
from neurotrans.io.run import PredictionFolder, RunFolder
from neurotrans.methods.unit import UNITMethod
from neurotrans.training.checkpoint import load_checkpoint
from neurotrans.training.run import train_from_config

TINY = {
    "unit": {"method": "unit", "generator_args": {"base": 4, "n_res_encoder": 1, "n_res_generator": 1},
             "discriminator_args": {"base": 4, "n_layers": 2, "n_scales": 2}},
    "cyclegan": {"method": "cyclegan", "generator_args": {"base": 4, "n_blocks": 1},
                 "discriminator_args": {"base": 4, "n_layers": 1}, "pool_size": 2},
}


def _config(manifest: Path, model: dict, target: str, steps: int, **data) -> dict:
    return {"model": model,
            "data": {"manifest": str(manifest), "inputs": ["T1w"], "target": target, "pairing": "unpaired",
                     "normalisation": {"T1w": "minmax", target: "minmax"}, "batch_size": 4, **data},
            "split": {"kind": "fixed", "test_fraction": 0.34, "val_fraction": 0.17, "stratify": None},
            "trainer": {"max_steps": steps, "val_every": 2, "checkpoint_every": 3, "progress": False,
                        "log_every": 1}}


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / "last.pt")["method_state"]


@pytest.fixture(scope="module")
def unit_run(ms_cohort, tmp_path_factory):
    """A UNIT T1w <-> T2w run on the ms cohort (sessions t0/t1), with every training batch recorded."""
    out = tmp_path_factory.mktemp("unit") / "run"
    seen: dict[str, list] = {"a": [], "b": [], "datasets": []}
    build, step = pipeline.build_unpaired_datasets, UNITMethod.training_step

    def spy_build(*args, **kwargs):
        sets = build(*args, **kwargs)
        seen["datasets"].extend(sets)
        return sets

    def spy_step(self, batch, group):
        seen["a"].extend(batch["key_a"])
        seen["b"].extend(batch["key_b"])
        return step(self, batch, group)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "build_unpaired_datasets", spy_build)
        mp.setattr(UNITMethod, "training_step", spy_step)
        cfg = _config(ms_cohort / "manifest.tsv", TINY["unit"], "T2w", steps=3, voxel_size=3.0)
        run = train_from_config({**cfg, "split": {"kind": "fixed", "test_fraction": 0.2, "val_fraction": 0.1}},
                                out=out)
    return run, seen


def test_unpaired_training_never_draws_both_domains_from_one_subject(unit_run, ms_cohort):
    run, seen = unit_run
    info = RunFolder(run).read_info()
    split = info.split
    a, b = set(split["domain_a"]), set(split["domain_b"])
    assert a and b and not a & b and a | b == set(split["train"])
    assert not (a | b) & (set(split["val"]) | set(split["test"]))
    man = read_manifest(ms_cohort / "manifest.tsv")
    subject_of = {man.key(i): str(man.table.iloc[i]["subject"]) for i in range(len(man))}
    assert len({s for s in subject_of.values()}) < len(subject_of)  # the cohort has subjects with two sessions
    # every slice the training loop received, and every item the datasets can give
    assert seen["a"] and {subject_of[k] for k in seen["a"]} <= a and {subject_of[k] for k in seen["b"]} <= b
    (dataset,) = seen["datasets"]
    items = [dataset[i] for i in range(len(dataset))]
    assert {subject_of[it["key_a"]] for it in items} == a  # all of domain A is used, and only it
    assert {subject_of[it["key_b"]] for it in items} <= b
    assert {"a", "b", "mask_a", "mask_b"} <= set(items[0])
    # validation is paired (the trainer's monitor works unchanged) and the inversion statistics are per domain
    assert any(json.loads(x).get("kind") == "val" for x in (run / "log.jsonl").read_text().splitlines())
    n_a = sum(subject_of[k] in a for k in subject_of)
    n_b = sum(subject_of[k] in b for k in subject_of)
    assert len(info.source_stats) == n_a and len(info.target_stats) == n_b


def test_predict_both_directions_writes_each_modality_on_the_input_grid(unit_run, ms_cohort, tmp_path):
    run, _ = unit_run
    info = RunFolder(run).read_info()
    manifest = ms_cohort / "manifest.tsv"
    man = read_manifest(manifest)
    subject = info.split["test"][0]
    rows = [i for i in range(len(man)) if man.table.iloc[i]["subject"] == subject]
    checkpoint = RunFolder(run).checkpoint("last")
    out = tmp_path / "pred"
    for direction, source, produced, stats in (
            (None, "T1w", "T2w", info.target_stats), ("T2w->T1w", "T2w", "T1w", info.source_stats)):
        written = predict_command(checkpoint, manifest=manifest, out=out, subjects=[subject], direction=direction)
        folder = PredictionFolder(out)
        expected = [folder.path(subject, str(man.table.iloc[i]["session"]), produced) for i in rows]
        assert sorted(written) == sorted(expected)
        for i, path in zip(rows, expected, strict=True):
            pred, src = load_volume(path), load_volume(man.path(i, source))
            assert pred.shape == src.shape and np.allclose(pred.affine, src.affine)
            # tanh output in [0, 1] min-max units, inverted with the mean training statistics of `produced`
            lo, hi = np.mean([s["lo"] for s in stats]), np.mean([s["hi"] for s in stats])
            assert np.isfinite(pred.data).all() and pred.data.min() >= min(lo, 0) - 1e-3
            assert pred.data.max() <= hi + 1e-3
            sidecar = json.loads(folder.sidecar(path).read_text())["neurotrans"]
            assert sidecar["target"] == produced and sidecar["inputs"] == [source]
    # a single input file, backwards
    one = man.path(rows[0], "T2w")
    (path,) = predict_command(checkpoint, inputs=[one], out=tmp_path / "one.nii.gz", direction="T2w->T1w")
    assert load_volume(path).shape == load_volume(one).shape
    with pytest.raises(InputError, match="T1w->T2w or T2w->T1w"):
        predict_command(checkpoint, manifest=manifest, out=tmp_path / "bad", direction="T1w->FLAIR")


def test_reverse_direction_as_an_ensemble_with_its_sd_map(unit_run, ms_cohort, tmp_path):
    run, _ = unit_run
    folder = RunFolder(run)
    info = folder.read_info()
    manifest = ms_cohort / "manifest.tsv"
    subject = info.split["test"][0]
    last, best = folder.checkpoint("last"), folder.best_checkpoint()
    # the same model twice: the ensemble's mean is that model's prediction and its SD map is zero
    single = predict_command(last, manifest=manifest, out=tmp_path / "one", subjects=[subject],
                             direction="T2w->T1w")
    both = predict_command([last, last], manifest=manifest, out=tmp_path / "two", subjects=[subject],
                           direction="T2w->T1w", uncertainty=True)
    predictions = [p for p in both if "SD" not in p.name]
    sds = [p for p in both if "SD" in p.name]
    assert len(predictions) == len(single) and len(sds) == len(single)
    for a, b in zip(sorted(single), sorted(predictions), strict=True):
        assert a.name == b.name and "T1w" in a.name  # the input modality, written backwards
        np.testing.assert_allclose(load_volume(a).data, load_volume(b).data, atol=1e-5)
    for sd in sds:
        assert "T1w" in sd.name and np.abs(load_volume(sd).data).max() < 1e-5
    # one UNIT draws no samples (either way): an SD map needs an ensemble
    with pytest.raises(InputError, match="draws no samples"):
        predict_command(best, manifest=manifest, out=tmp_path / "u", subjects=[subject], direction="T2w->T1w",
                        uncertainty=True)
    with pytest.raises(InputError, match="takes no such side information"):
        predict_command(best, manifest=manifest, out=tmp_path / "s", subjects=[subject], direction="T2w->T1w",
                        age_sweep=(60.0, 80.0, 2))


def test_direction_parsing_and_one_way_models(unit_run, tiny_cohort, tmp_path):
    info = RunFolder(unit_run[0]).read_info()
    assert direction_of(info) is False and direction_of(info, "trained") is False
    assert direction_of(info, "T1w->T2w") is False and direction_of(info, "T2w -> T1w") is True
    paired = {"model": {"method": "supervised", "generator": "unet_pix2pix", "generator_args": {"base": 4, "depth": 2}},
              "data": {"manifest": str(tiny_cohort), "voxel_size": None, "batch_size": 4,
                       "normalisation": {"FDG": "zscore"}},
              "split": {"kind": "fixed", "test_fraction": 0.34, "val_fraction": 0.0},
              "trainer": {"max_steps": 1, "progress": False}}
    run = train_from_config(paired, out=tmp_path / "supervised")
    with pytest.raises(InputError, match="one way only"):
        predict_command(RunFolder(run).checkpoint("last"), manifest=tiny_cohort, out=tmp_path / "p",
                        direction="FDG->T1w")


@pytest.mark.parametrize("model", [
    {**TINY["unit"], "attention": "encoder", "spectral_norm": True, "charbonnier": True},
    TINY["cyclegan"],
], ids=["unit-attention-sn-charbonnier", "cyclegan-pool"])
def test_resume_is_bit_identical(model, tiny_cohort, tmp_path, monkeypatch, device):
    cfg = _config(tiny_cohort, model, "FDG", steps=7, voxel_size=None)
    full = train_from_config(cfg, out=tmp_path / "full", device=device)
    train_killed_at(cfg, tmp_path / "killed", 4, monkeypatch, device)  # dies after the checkpoint of step 3
    resumed = train_from_config(cfg, out=tmp_path / "killed", resume=True, device=device)
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    if model["method"] == "cyclegan":  # the pools are full and part of the checkpoint
        assert a["pools.a._extra_state"].shape[0] == 2 and "pools.b.rng_state" in a


def test_cohort_zscore_of_each_domain_comes_from_its_own_subjects(tiny_cohort):
    from neurotrans.config import DataConfig

    data = DataConfig(manifest=str(tiny_cohort), inputs=("T1w",), target="FDG", pairing="unpaired", voxel_size=None,
                      normalisation={"T1w": "zscore:cohort", "FDG": "zscore:cohort"})
    man = read_manifest(tiny_cohort)
    a, b, stats = pipeline.prepare_unpaired(man, man.subjects, data, seed=3)
    assert {s.subject for s in a}.isdisjoint({s.subject for s in b}) and len(a) + len(b) == len(man.subjects)
    for domain, column in ((a, "T1w"), (b, "FDG")):
        rows = [man.subjects.index(s.subject) for s in domain]
        values = np.concatenate([load_volume(man.path(i, column)).data[load_volume(man.path(i, "brainmask")).data > 0.5]
                                 for i in rows])
        assert stats[column]["mean"] == pytest.approx(values.mean(), rel=1e-6)
        assert stats[column]["std"] == pytest.approx(values.std(), rel=1e-5)
        assert all(s.stats[column] == stats[column] for s in domain)
        brain = domain[0].mask
        np.testing.assert_allclose(domain[0].inputs[0][brain].mean() * values.std() + values.mean(),
                                   load_volume(man.path(rows[0], column)).data[brain].mean(), rtol=1e-4)

