"""The FLAIR and real-scan experiment scripts: their designs, scores and tables on made-up results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neurotrans.experiments import flair as F
from neurotrans.experiments import realdata_translation as R


def test_the_ablation_is_the_thesis_design():
    drops = {k: v for k, v in F.ABLATION.items() if k.startswith("-")}
    assert len(drops) == len(F.SEQUENCES) == 5
    for key, inputs in drops.items():
        assert set(inputs) == set(F.SEQUENCES) - {key[1:]}
    subsets = {k for k in F.ABLATION if "+" in k}
    assert subsets == {"T1w+DIR", "T2w+DIR", "T1w+T2w", "T1w+T2w+DIR", "T1w+T2w+PDw"}
    assert F.ABLATION["all"] == F.SEQUENCES
    assert {(v["features"], v["hidden_layers"]) for v in F.TABLE21.values()} == {
        (32, 3), (64, 3), (96, 3), (64, 2), (64, 4), (64, 6)}


def _results(tmp_path, p3s_order):
    rng = np.random.default_rng(0)
    rows = []
    # drop-one MSE increase: DIR 5 > T1w 4 > T2w 3 > T1SE 2 > PDw 1 (x 1e-4)
    increase = {"DIR": 5, "T1w": 4, "T2w": 3, "T1SE": 2, "PDw": 1}
    for s in range(6):
        base = 1e-3 + 1e-4 * rng.random()
        for model in F.ABLATION:
            mse = base + (1e-4 * increase[model[1:]] if model.startswith("-") else 0.0)
            rows.append({"table": "ablation", "model": model, "fold": s % 2, "subject": f"sub-{s}",
                         "session": "t0", "mse": mse, "ssim": 0.9, "n_params": 10})
    pd.DataFrame(rows).to_csv(tmp_path / "results.tsv", sep="\t", index=False)
    p3s = [{"model": "ablation/all", "fold": f, "sequence": seq, "mean_saliency": float(len(p3s_order) - k)}
           for f in range(2) for k, seq in enumerate(p3s_order)]
    pd.DataFrame(p3s).to_csv(tmp_path / "p3s.tsv", sep="\t", index=False)


@pytest.mark.parametrize("order, rho", [
    (["DIR", "T1w", "T2w", "T1SE", "PDw"], 1.0),
    (["PDw", "T1SE", "T2w", "T1w", "DIR"], -1.0),
])
def test_p3s_against_drop_one_is_spearman(tmp_path, order, rho):
    _results(tmp_path, order)
    text = F.tables(tmp_path)
    assert f"Spearman rho = {rho:.2f}" in text
    assert "drop-one order DIR > T1w > T2w > T1SE > PDw" in text
    # the drop-one rows report the mean MSE increase over the 5-sequence model (x 1e3)
    assert "| -DIR | " in text and "+0.500 |" in text


def test_scale_unit_and_scores_by_hand(rng):
    brain = np.zeros((14, 14, 14), bool)
    brain[2:12, 2:12, 2:12] = True
    real = rng.random((14, 14, 14)) * 300
    peak = np.percentile(real[brain], R.PERCENTILE)
    np.testing.assert_allclose(R.scale_unit(real, brain), np.clip(real / peak, 0, 1))
    same = R.scores(real, real, brain)
    assert same["psnr"] == np.inf and same["mae"] == 0 and same["ssim"] == pytest.approx(1.0)
    # a global gain leaves the p99.5-scaled images equal: the scores ignore scanner scale
    assert R.scores(3.0 * real, real, brain)["mae"] == pytest.approx(0.0, abs=1e-12)
    worse = R.scores(real + rng.normal(0, 30, real.shape), real, brain)
    assert worse["psnr"] < np.inf and worse["ssim"] < 1.0 and worse["mae"] > 0 and worse["r"] < 1.0
    # a dimmed bright tail: the image is brightened by its own percentile, MAE pays, r hardly moves
    tail = np.where(real > peak * 0.9, peak * 0.9 + 0.1 * (real - peak * 0.9), real)
    dimmed = R.scores(tail, real, brain)
    assert dimmed["mae"] > 0.02 and dimmed["r"] > 0.99
    np.testing.assert_allclose(dimmed["r"], np.corrcoef(tail[brain], real[brain])[0, 1], atol=0.01)


def test_realdata_table_says_where_the_network_wins():
    results = pd.DataFrame([
        {"task": "flair", "model": "random_forest", "fold": 0, "subject": "a", "psnr": 20.0, "ssim": 0.80, "mae": 0.05},
        {"task": "flair", "model": "unet_realdata", "fold": 0, "subject": "a", "psnr": 21.0, "ssim": 0.79, "mae": 0.04},
    ])
    line = [ln for ln in R.table(results).splitlines() if ln.startswith("| a |")][0]
    assert line.endswith("| PSNR, MAE |") and "| nan |" in line  # a results.tsv without r (older runs)
    results["r"] = [0.70, 0.75]
    assert [ln for ln in R.table(results).splitlines() if ln.startswith("| a |")][0].endswith("| PSNR, MAE, r |")


def test_cropped_manifest_keeps_world_coordinates(tmp_path):
    from neurotrans.io.manifest import read_manifest
    from neurotrans.io.nifti import load_volume, save_volume

    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    t1 = np.zeros((20, 22, 18), np.float32)
    t1[5:12, 6:15, 4:9] = 1.0 + np.arange(7 * 9 * 5).reshape(7, 9, 5)
    save_volume(tmp_path / "raw" / "T1w.nii.gz", t1, affine)
    pd.DataFrame([{"subject": "sub-a", "session": "1", "T1w": "raw/T1w.nii.gz"}]).to_csv(
        tmp_path / "manifest.tsv", sep="\t", index=False)
    out = R.cropped_manifest(tmp_path / "manifest.tsv", tmp_path / "crop", margin=2)
    man = read_manifest(out)
    vol = load_volume(man.path(0, "T1w"))
    assert vol.shape == (11, 13, 9)
    # the voxel at index 0 of the crop lies where voxel (3, 4, 2) of the original did
    np.testing.assert_allclose(vol.affine[:3, 3], [3.0, 4.0, 2.0])
    np.testing.assert_array_equal(vol.data[2:9, 2:11, 2:7], t1[5:12, 6:15, 4:9])
