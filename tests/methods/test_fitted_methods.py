"""The classical baselines as methods: train -> predict -> evaluate through the real commands.

Each fitted method must beat the other-subjects reference on a tiny cohort whose target is
one nonlinear function of the inputs while subjects differ; its checkpoint loads with
``torch.load(weights_only=True)`` and a tampered one is refused without running code.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from payload import MARKER, Payload

from neurotrans.cli import main
from neurotrans.config import load_config
from neurotrans.io.run import REFERENCE_LABEL, RunFolder
from neurotrans.methods import METHODS, FittedMethod, ModelIO, build_method
from neurotrans.training.checkpoint import load_checkpoint, save_checkpoint

# small fits: the test checks the plumbing and that each method learns the mapping
INPUTS = ("T1w", "T2w", "PDw", "T1SE", "DIR")
SMALL = {
    "random_forest": {"n_trees": 10, "n_samples": 3000},
    "voxel_mlp": {"n_samples": 3000, "hidden": [32, 32], "max_iter": 60},
    "modality_propagation": {"search_radius": 1, "n_neighbours": 3},
}


@pytest.fixture(scope="module")
def cohort(ms_cohort) -> Path:
    """The shared 12-subject simulated ms cohort (3 mm): real anatomy, as modality propagation needs."""
    return ms_cohort / "manifest.tsv"


@pytest.fixture(scope="module")
def split(cohort) -> dict[str, list[str]]:
    """6 training subjects, 1 validation subject, 2 test subjects."""
    from neurotrans.io.manifest import read_manifest

    subjects = read_manifest(cohort).subjects
    return {"train": subjects[:6], "val": subjects[6:7], "test": subjects[7:9]}


def _config(tmp_path: Path, method: str, manifest: Path, split: dict[str, list[str]]) -> Path:
    cfg = {"name": f"{method}_tiny",
           "data": {"manifest": str(manifest), "inputs": list(INPUTS), "target": "FLAIR",
                    "mask": "brainmask", "voxel_size": 3.0, "spatial_dims": 3,
                    "normalisation": {c: "zscore:cohort" for c in (*INPUTS, "FLAIR")}},
           "split": {"kind": "explicit", **split},
           "model": {"method": method, **SMALL[method]},
           "trainer": {"progress": False}}
    path = tmp_path / f"{method}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def trained(cohort, split, tmp_path_factory) -> dict[str, Path]:
    """Each fitted method trained, predicted and evaluated with the `neurotrans` commands."""
    runs = {}
    for method in SMALL:
        tmp = tmp_path_factory.mktemp(method)
        run = tmp / "run"
        assert main(["train", str(_config(tmp, method, cohort, split)), "--out", str(run)]) == 0
        folder = RunFolder(run)
        assert main(["predict", "--checkpoint", str(folder.best_checkpoint()), "--manifest", str(cohort),
                     "--out", str(folder.predictions.root)]) == 0
        assert main(["evaluate", "--pred", str(folder.predictions.root), "--manifest", str(cohort),
                     "--target", "FLAIR", "--mask", "brainmask"]) == 0
        runs[method] = run
    return runs


@pytest.mark.parametrize("method", sorted(SMALL))
def test_fitted_method_beats_the_other_subjects_reference(trained, split, method):
    folder = RunFolder(trained[method])
    outcome, info = folder.read_outcome(), folder.read_info()
    assert info.method == method and outcome.stopped == "fitted" and outcome.steps == 0
    assert outcome.best_val is not None and np.isfinite(outcome.best_val)  # validated on split["val"]
    assert (folder.root / "config.yaml").is_file() and folder.checkpoint("last").is_file()
    per = pd.read_csv(folder.evaluation / "per_subject.tsv", sep="\t")
    per = per[(per.scope == "volume") & (per.units == "normalised")]
    model = per[per.method != REFERENCE_LABEL].set_index(["subject", "session"]).sort_index()
    ref = per[per.method == REFERENCE_LABEL].set_index(["subject", "session"]).sort_index()
    assert sorted(set(model.index.get_level_values(0))) == sorted(split["test"])
    assert list(model.index) == list(ref.index)
    # on every test image, a fraction of the error and a higher SSIM than any other subject's image
    assert (model["mse"] < 0.5 * ref["mse"]).all()
    assert (model["ssim"] > ref["ssim"]).all()


@pytest.mark.parametrize("method", sorted(SMALL))
def test_fitted_checkpoint_is_weights_only_and_predicts_the_same(trained, method, cohort, tmp_path):
    from neurotrans.inference.predict import load_trained, predict_subject, prepare_for_prediction
    from neurotrans.io.manifest import read_manifest

    ckpt = RunFolder(trained[method]).checkpoint("last")
    raw = torch.load(ckpt, weights_only=True)
    assert raw["method_state"]["fitted"]["kind"] == method
    loaded, info = load_trained(ckpt)
    assert isinstance(loaded, FittedMethod)
    # a fresh copy rebuilt from a re-saved payload predicts the same volume
    copy = tmp_path / "copy.pt"
    save_checkpoint(copy, {k: v for k, v in load_checkpoint(ckpt).items() if k != "format"})
    again, _ = load_trained(copy)
    man = read_manifest(cohort)
    row = int(np.flatnonzero(man.table["subject"].astype(str) == info.test_subjects[0])[0])
    subject = prepare_for_prediction(man, row, info)
    np.testing.assert_array_equal(predict_subject(loaded, info, subject), predict_subject(again, info, subject))


def test_a_pickled_object_in_a_fitted_checkpoint_is_refused_without_running(trained, cohort, tmp_path, capsys):
    MARKER.clear()
    ckpt = load_checkpoint(RunFolder(trained["voxel_mlp"]).checkpoint("last"))
    ckpt["method_state"]["fitted"]["x_mean"] = Payload()
    bad = tmp_path / "tampered.pt"
    torch.save(ckpt, bad)
    code = main(["predict", "--checkpoint", str(bad), "--manifest", str(cohort), "--out", str(tmp_path / "p")])
    assert code == 2 and "tampered.pt" in capsys.readouterr().err
    assert MARKER == [] and not (tmp_path / "p").exists()
    with open(bad, "rb") as fh:  # the same bytes would run the payload under a plain unpickler
        torch.load(io.BytesIO(fh.read()), weights_only=False)
    assert MARKER == ["pickle"]
    MARKER.clear()


def test_an_untrusted_type_in_the_forest_bytes_is_refused_without_running(trained, cohort, tmp_path, capsys):
    import skops.io as sio

    MARKER.clear()
    ckpt = load_checkpoint(RunFolder(trained["random_forest"]).checkpoint("last"))
    blob = ckpt["method_state"]["fitted"]["model"]
    forest = sio.loads(blob, trusted=sio.get_untrusted_types(data=blob))
    ckpt["method_state"]["fitted"]["model"] = sio.dumps({"forest": forest, "extra": Payload()},
                                                        compression=zipfile.ZIP_DEFLATED)
    bad = tmp_path / "forest.pt"
    save_checkpoint(bad, {k: v for k, v in ckpt.items() if k != "format"})
    code = main(["predict", "--checkpoint", str(bad), "--manifest", str(cohort), "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert code == 2 and "forest.pt" in err and "untrusted" in err
    assert MARKER == []


@pytest.mark.parametrize("method", sorted(SMALL))
@pytest.mark.parametrize("bad, message", [
    ({"data.spatial_dims": 2}, "whole 3D volumes"),
    ({"data.patch_size": [8, 8, 8]}, "whole 3D volumes"),
    ({"data.augment": ["flip"]}, "data.augment"),
])
def test_fitted_methods_refuse_data_they_cannot_fit_on(method, bad, message, tmp_path):
    overrides = [f"{k}={v}" for k, v in bad.items()]
    if "data.spatial_dims" in bad:
        overrides.append("data.plane=axial")
    with pytest.raises(ValueError, match=message):
        load_config(_config(tmp_path, method, Path("m.tsv"), {"train": ["a"]}), overrides)


@pytest.mark.parametrize("method, key, value", [
    ("random_forest", "n_trees", 0), ("voxel_mlp", "hidden", []), ("modality_propagation", "n_neighbours", 0),
])
def test_bad_hyper_parameters_fail_at_config_time(method, key, value, tmp_path):
    with pytest.raises(ValueError, match=f"model \\({method}\\)"):
        load_config(_config(tmp_path, method, Path("m.tsv"), {"train": ["a"]}), [f"model.{key}={value}"])


def test_modality_propagation_on_different_grids_is_refused_with_a_fix(tmp_path):
    from neurotrans.errors import InputError
    from neurotrans.training.fit import Fitter

    cfg = load_config({"data": {"inputs": ["T1w"], "target": "FLAIR", "spatial_dims": 3},
                       "model": {"method": "modality_propagation"}})
    method = build_method(cfg.model, ModelIO(in_channels=1, spatial_dims=3))

    class Subject:
        def __init__(self, shape):
            self.key, self.inputs = "s", np.ones((1, *shape), np.float32)
            self.target, self.mask = np.ones((1, *shape), np.float32), None

    fitter = Fitter(method, [Subject((6, 6, 6)), Subject((6, 6, 7))], [], trainer=cfg.trainer, out=tmp_path,
                    info={})
    with pytest.raises(InputError, match="data.voxel_size"):
        fitter.fit()


def test_fitted_methods_take_no_gradient_steps():
    cfg = load_config({"data": {"inputs": ["T1w"], "target": "FLAIR", "spatial_dims": 3},
                       "model": {"method": "random_forest"}})
    method = build_method(cfg.model, ModelIO(in_channels=1, spatial_dims=3))
    assert method.optimiser_groups() == {} and method.schedule(0) == []
    with pytest.raises(TypeError, match="fitted"):
        method.training_step({}, "main")
    with pytest.raises(RuntimeError, match="not fitted"):
        method.state_dict()


@pytest.mark.parametrize("features, kernel, expected", [(64, 7, 1_514_881), (10, 7, 51_481)])
def test_cnn2layer_method_builds_li_et_al_network(features, kernel, expected):
    cfg = load_config({"data": {"inputs": ["T1w", "T2w", "PDw", "T1SE", "DIR"], "target": "FLAIR",
                                "spatial_dims": 3},
                       "model": {"method": "cnn2layer", "features": features, "kernel_size": kernel}})
    method = build_method(cfg.model, ModelIO(in_channels=5, spatial_dims=3))
    assert type(method) is METHODS["cnn2layer"]
    assert sum(p.numel() for p in method.parameters()) == expected
    out = method.predict(torch.zeros(1, 5, 9, 9, 9))
    assert out.shape == (1, 1, 9, 9, 9)


def test_resuming_a_finished_fit_keeps_it(trained, cohort, split, tmp_path):
    from neurotrans.training.run import train_from_config

    folder = RunFolder(trained["voxel_mlp"])
    before = folder.checkpoint("last").read_bytes()
    outcome = folder.read_outcome()
    train_from_config(folder.config_yaml, resume=True)
    assert folder.checkpoint("last").read_bytes() == before
    assert folder.read_outcome() == outcome
