"""`neurotrans explain saliency`: P3S maps of a trained run through the CLI path.

A model whose first layer ignores one input sequence must get a P3S map of exactly zero on
that sequence (and only there), for 3D models and for 2D slice models with 2.5D context;
the command writes its NIfTI maps, montages and ranking and refuses to overwrite them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from training.conftest import write_cohort  # the tiny paired cohort of tests/training

from neurotrans.cli import main
from neurotrans.explain.p3s import RANKING_FILE, volume_predictor
from neurotrans.io.nifti import load_volume
from neurotrans.io.run import RunFolder
from neurotrans.training.checkpoint import load_checkpoint, save_checkpoint

INPUTS = ["T1w", "GM", "WM"]
IGNORED = "GM"
CASES = {
    "3d": {"spatial_dims": 3, "context": 0, "batch_size": 2},
    "2d_context": {"spatial_dims": 2, "context": 1, "batch_size": 8},
}


def _train(tmp_path: Path, manifest: Path, case: str) -> Path:
    data = {"manifest": str(manifest), "inputs": INPUTS, "target": "FDG", "mask": "brainmask", "voxel_size": None,
            "normalisation": {"FDG": "minmax"}, **CASES[case]}
    cfg = {"name": f"p3s_{case}", "data": data,
           "split": {"kind": "explicit", "train": ["sub-00", "sub-01", "sub-02", "sub-03"], "test": ["sub-04", "sub-05"]},
           "model": {"method": "supervised", "generator": "fcn", "generator_args": {"features": 4, "hidden_layers": 2},
                     "loss": "mse"},
           "trainer": {"max_steps": 2, "val_every": 2, "checkpoint_every": 2, "progress": False}}
    path = tmp_path / f"{case}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = tmp_path / f"run_{case}"
    assert main(["train", str(path), "--out", str(run)]) == 0
    return run


def _ignore_channel(run: Path, name: str, context: int) -> None:
    """Zero the first layer's weights of every input channel of ``name`` (all its context copies)."""
    path = RunFolder(run).checkpoint("last")
    ckpt = load_checkpoint(path)
    key = next(k for k in ckpt["method_state"] if k.endswith("weight"))  # the first convolution
    c = INPUTS.index(name)
    for j in range(2 * context + 1):  # 2.5D channels are (context window, input) in that order
        ckpt["method_state"][key][:, j * len(INPUTS) + c] = 0.0
    save_checkpoint(path, {k: v for k, v in ckpt.items() if k != "format"})


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory) -> Path:
    return write_cohort(tmp_path_factory.mktemp("p3s_cohort"))


@pytest.fixture(scope="module", params=sorted(CASES))
def explained(request, tiny_cohort, tmp_path_factory) -> tuple[str, Path, Path]:
    case = request.param
    tmp = tmp_path_factory.mktemp(f"p3s_{case}")
    run = _train(tmp, tiny_cohort, case)
    _ignore_channel(run, IGNORED, CASES[case]["context"])
    out = tmp / "saliency"
    assert main(["explain", "saliency", str(run), "--out", str(out)]) == 0
    return case, run, out


def test_p3s_is_zero_exactly_on_the_ignored_sequence(explained, tiny_cohort):
    _, _, out = explained
    maps = {name: load_volume(out / f"p3s_{name}.nii.gz") for name in INPUTS}
    assert np.all(maps[IGNORED].data == 0.0)
    for name in INPUTS:
        if name != IGNORED:
            assert maps[name].data.max() > 0 and np.all(maps[name].data >= 0)
    # on the input grid with its affine (the cohort's native grid is the working grid here)
    reference = load_volume(tiny_cohort.parent / "sub-04" / "T1w.nii.gz")
    assert maps["T1w"].shape == reference.shape and np.allclose(maps["T1w"].affine, reference.affine)


def test_ranking_puts_the_ignored_sequence_last_with_zero(explained):
    _, _, out = explained
    table = pd.read_csv(out / RANKING_FILE, sep="\t")
    assert list(table["rank"]) == [1, 2, 3] and set(table["sequence"]) == set(INPUTS)
    last = table.iloc[-1]
    assert last["sequence"] == IGNORED and last["mean_saliency"] == 0.0
    assert (table["mean_saliency"].iloc[:2] > 0).all()
    # one score column per explained test image, averaged into mean_saliency
    subjects = [c for c in table.columns if c.startswith("sub-")]
    assert len(subjects) == 2
    np.testing.assert_allclose(table[subjects].mean(axis=1), table["mean_saliency"], rtol=1e-5)


def test_montages_are_written(explained):
    _, _, out = explained
    for name in INPUTS:
        png = out / f"p3s_{name}.png"
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_command_refuses_to_overwrite(explained, capsys):
    _, run, out = explained
    before = (out / RANKING_FILE).stat().st_mtime_ns
    assert main(["explain", "saliency", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already holds saliency results" in err and "--overwrite" in err
    assert (out / RANKING_FILE).stat().st_mtime_ns == before
    assert main(["explain", "saliency", str(run), "--out", str(out), "--overwrite"]) == 0


@pytest.mark.parametrize("context, multiple, plane", [(0, 1, "axial"), (1, 4, "axial"), (2, 8, "coronal")])
def test_the_differentiable_slicer_matches_slice_prediction(context, multiple, plane, rng):
    from neurotrans.inference.predict import predict_slices

    net = torch.nn.Conv2d(2 * (2 * context + 1), 1, 3, padding=1)
    x = rng.standard_normal((2, 9, 11, 7)).astype(np.float32)
    expected = predict_slices(net, x, [plane], context=context, multiple=multiple)
    model = volume_predictor(net, {"kind": "slices", "context": context}, multiple, [plane])
    got = model(torch.from_numpy(x)[None])[0, 0].detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_a_fitted_method_is_refused(tmp_path, capsys):
    from neurotrans.training.run import train_from_config

    manifest = write_cohort(tmp_path / "c", n=4)
    run = train_from_config({"data": {"manifest": str(manifest), "inputs": ["T1w"], "target": "FDG",
                                      "voxel_size": None, "spatial_dims": 3, "normalisation": {"FDG": "minmax"}},
                             "split": {"kind": "explicit", "train": ["sub-00", "sub-01"], "test": ["sub-02"]},
                             "model": {"method": "voxel_mlp", "n_samples": 200, "max_iter": 5, "hidden": [4]},
                             "trainer": {"progress": False}}, out=tmp_path / "run")
    assert main(["explain", "saliency", str(run)]) == 2
    assert "no input gradient" in capsys.readouterr().err
