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
    assert R.table(results, "hm_") == "" and "histogram-matched" not in R.tables(results)
    results = results.assign(hm_psnr=[24.0, 23.0], hm_ssim=[0.8, 0.9], hm_mae=[0.03, 0.02], hm_r=[0.71, 0.75])
    matched = [ln for ln in R.table(results, "hm_").splitlines() if ln.startswith("| a |")][0]
    assert matched.startswith("| a | unet_realdata | 24.00 | 0.8000 | 0.0300 | 0.7100 | 23.00 |")
    assert matched.endswith("| SSIM, MAE, r |") and R.tables(results).count("### ") == 2
    # every deep recipe gets its own line against the same forest
    both = pd.concat([results, results.iloc[[1]].assign(model="fcn_realdata", psnr=19.0, ssim=0.81)])
    lines = [ln for ln in R.table(both).splitlines() if ln.startswith("| a |")]
    assert [ln.split(" | ")[1] for ln in lines] == ["unet_realdata", "fcn_realdata"]
    assert lines[1].endswith("| SSIM, MAE, r |")


def test_every_deep_recipe_is_packaged_for_every_task():
    from neurotrans.config import load_config

    for deep in R.DEEP:
        for task, (inputs, target) in R.TASKS.items():
            cfg = load_config(f"{deep}_{task}")
            assert (tuple(cfg.data.inputs), cfg.data.target) == (inputs, target)
            assert cfg.split.kind == "loo" and cfg.split.holdout > 0 and cfg.trainer.early_stopping == "patience"


def test_histogram_matching_gives_the_training_tail_and_keeps_the_order(rng):
    brain = np.zeros((16, 16, 16), bool)
    brain[2:14, 2:14, 2:14] = True
    real = np.where(brain, rng.gamma(4.0, 50.0, brain.shape), 0.0)
    compressed = np.where(brain, np.sqrt(real), 0.0)  # a model that dims the bright tail
    references = [(np.where(brain, rng.gamma(4.0, 50.0, brain.shape), 0.0), brain) for _ in range(2)]
    matched = R.matched_to_training(compressed, brain, references)
    pool = np.concatenate([R.scale_unit(img, b)[b] for img, b in references])
    np.testing.assert_allclose(np.quantile(matched[brain], [0.1, 0.5, 0.9]), np.quantile(pool, [0.1, 0.5, 0.9]),
                               atol=0.02)
    assert (np.argsort(matched[brain], kind="stable") == np.argsort(compressed[brain], kind="stable")).mean() > 0.99
    assert (matched[~brain] == 0).all()
    before, after = R.scores(compressed, real, brain), R.scores(matched, real, brain)
    assert after["mae"] < before["mae"] / 2 and after["psnr"] > before["psnr"] + 3
    assert after["r"] == pytest.approx(before["r"], abs=0.05)


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


def _three_patients(root, rng):
    """A manifest of three tiny brain-extracted patients with T1w and T2w; returns the brain mask."""
    from neurotrans.io.nifti import save_volume

    brain = np.zeros((12, 12, 12), bool)
    brain[2:10, 2:10, 2:10] = True
    rows = []
    for s in ("p0", "p1", "p2"):
        for column, data in (("T1w", np.where(brain, 1.0 + rng.random(brain.shape), 0.0)),
                             ("T2w", np.where(brain, rng.gamma(3.0, 40.0, brain.shape), 0.0))):
            save_volume(root / s / f"{column}.nii.gz", data.astype(np.float32), np.eye(4))
        rows.append({"subject": s, "session": "1", "T1w": f"{s}/T1w.nii.gz", "T2w": f"{s}/T2w.nii.gz"})
    pd.DataFrame(rows).to_csv(root / "manifest.tsv", sep="\t", index=False)
    return brain


def test_ensemble_is_the_mean_of_the_deep_recipes_saved_predictions(tmp_path, rng):
    from neurotrans.io.manifest import read_manifest
    from neurotrans.io.nifti import load_volume, save_volume

    brain = _three_patients(tmp_path, rng)
    images = R.load_images(read_manifest(tmp_path / "manifest.tsv"), "t2w")
    real = images[2][0]
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    # two guesses with independent errors
    preds = [np.where(brain, real + rng.normal(0, 30, real.shape), 0.0).astype(np.float32) for _ in R.DEEP]
    for model, pred in zip(R.DEEP, preds, strict=True):
        save_volume(tmp_path / "out" / "runs" / "t2w" / model / "fold2" / "prediction.nii.gz", pred, affine)
    rec = R.ensemble_fold("t2w", R.DEEP, 2, "p2", 2, tmp_path / "out", images)
    saved = load_volume(tmp_path / "out" / "runs" / "t2w" / R.ENSEMBLE / "fold2" / "prediction.nii.gz")
    np.testing.assert_allclose(saved.data, np.mean(preds, axis=0), rtol=1e-6)
    np.testing.assert_allclose(saved.affine, affine)
    assert (rec["model"], rec["subject"]) == (R.ENSEMBLE, "p2")
    assert rec["psnr"] == pytest.approx(R.score_prediction(saved.data, images, 2)["psnr"])
    # independent errors partly cancel in the mean
    assert rec["mae"] < min(R.scores(p, real, brain)["mae"] for p in preds)
    assert rec["r"] > max(R.scores(p, real, brain)["r"] for p in preds)


def test_rescore_scores_saved_predictions_against_the_other_patients(tmp_path, rng):
    """Rows with a saved prediction get both score sets; the histogram reference is the other patients only."""
    from neurotrans.io.nifti import save_volume

    brain = _three_patients(tmp_path, rng)
    pred = np.where(brain, np.sqrt(rng.gamma(3.0, 40.0, brain.shape)), 0.0).astype(np.float32)
    save_volume(tmp_path / "out" / "runs" / "t2w" / "unet_realdata" / "fold1" / "prediction.nii.gz", pred, np.eye(4))
    results = pd.DataFrame([{"task": "t2w", "model": "unet_realdata", "fold": 1, "subject": "p1", "psnr": 0.0},
                            {"task": "t2w", "model": "random_forest", "fold": 1, "subject": "p1", "psnr": 0.0}])
    again = R.rescore(results, tmp_path / "manifest.tsv", tmp_path / "out")
    from neurotrans.io.manifest import read_manifest

    images = R.load_images(read_manifest(tmp_path / "manifest.tsv"), "t2w")
    expected = R.score_prediction(pred, images, 1)
    assert again.loc[0, "psnr"] == pytest.approx(expected["psnr"]) and again.loc[0, "hm_mae"] < again.loc[0, "mae"]
    assert again.loc[1, "psnr"] == 0.0 and np.isnan(again.loc[1, "hm_mae"])  # no saved prediction: row kept
    # the histogram reference is the other two patients, never the left-out one's own target
    real = images[1][0]
    own = R.scores(R.matched_to_training(pred, brain, [images[1]]), real, brain)
    others = R.scores(R.matched_to_training(pred, brain, [images[0], images[2]]), real, brain)
    assert others["psnr"] != pytest.approx(own["psnr"])
    assert again.loc[0, "hm_psnr"] == pytest.approx(others["psnr"])


def test_main_scores_the_ensemble_after_both_deep_recipes(tmp_path, rng, monkeypatch, capsys):
    """The leave-one-out loop: forest, each deep recipe, then their ensemble, resumable from results.tsv."""
    import neurotrans.experiments.realdata as realdata
    from neurotrans.io.manifest import read_manifest
    from neurotrans.io.nifti import save_volume

    brain = _three_patients(tmp_path, rng)
    monkeypatch.setattr(realdata, "realdata_manifest", lambda root, out: tmp_path / "manifest.tsv")
    images = R.load_images(read_manifest(tmp_path / "manifest.tsv"), "t2w")
    calls = []

    def fake_fold(task, model, fold, manifest, out, extra, scored_against):
        assert scored_against is not None and len(scored_against) == 3
        calls.append((model, fold, tuple(extra)))
        subject = f"p{fold}"
        pred = np.where(brain, images[fold][0] + rng.normal(0, 20, brain.shape), 0).astype(np.float32)
        save_volume(out / "runs" / task / model / f"fold{fold}" / "prediction.nii.gz", pred, np.eye(4))
        return {"task": task, "model": model, "fold": fold, "subject": subject,
                **R.score_prediction(pred, images, fold), "steps": 1, "seconds": 0.0}

    monkeypatch.setattr(R, "run_fold", fake_fold)
    argv = ["--out", str(tmp_path / "out"), "--tasks", "t2w", "--folds", "1", "--set", "trainer.max_steps=5"]
    assert R.main(argv) == 0
    assert [c[:2] for c in calls] == [("random_forest", 1), ("fcn_realdata", 1), ("unet_realdata", 1)]
    assert calls[1][2] == calls[2][2] == ("trainer.max_steps=5",) and "split.kind=loo" in calls[0][2]
    results = pd.read_csv(tmp_path / "out" / "results.tsv", sep="\t")
    assert list(results.model) == ["random_forest", "fcn_realdata", "unet_realdata", R.ENSEMBLE]
    assert (results.subject == "p1").all()
    assert "| p1 | ensemble |" in (tmp_path / "out" / "table.md").read_text()
    assert R.main(argv) == 0 and len(calls) == 3  # everything done is reused
    assert R.main([*argv, "--deep", "unet_realdata"]) == 0 and len(calls) == 3  # one recipe: no ensemble row


def _replicate_runs(tmp_path, rng, n_runs=3):
    """``n_runs`` fake --out folders on the three-patient manifest: the same forest, one deep recipe per
    run with its own noise, predictions saved for patient p1; returns (outs, images, the predictions)."""
    from neurotrans.io.manifest import read_manifest
    from neurotrans.io.nifti import save_volume

    brain = _three_patients(tmp_path, rng)
    images = R.load_images(read_manifest(tmp_path / "manifest.tsv"), "t2w")
    real = images[1][0]
    forest = np.where(brain, real + rng.normal(0, 25, real.shape), 0.0).astype(np.float32)
    outs, preds = [], []
    for i in range(n_runs):
        out = tmp_path / f"run{i}"
        (out / "cropped").mkdir(parents=True)
        man = pd.read_csv(tmp_path / "manifest.tsv", sep="\t")
        for column in ("T1w", "T2w"):
            man[column] = [str(tmp_path / f) for f in man[column]]
        man.to_csv(out / "cropped" / "manifest.tsv", sep="\t", index=False)
        # run 0 is close to the truth, the others noisier than the forest
        pred = np.where(brain, real + rng.normal(0, 5 if i == 0 else 60, real.shape), 0.0).astype(np.float32)
        save_volume(out / "runs" / "t2w" / "unet_realdata" / "fold1" / "prediction.nii.gz", pred, np.eye(4))
        rows = [{"task": "t2w", "model": m, "fold": 1, "subject": "p1", **R.score_prediction(p, images, 1)}
                for m, p in (("random_forest", forest), ("unet_realdata", pred))]
        pd.DataFrame(rows).to_csv(out / "results.tsv", sep="\t", index=False)
        outs.append(out)
        preds.append(pred)
    return outs, images, preds, forest


def test_replicates_count_the_runs_that_beat_the_forest_and_score_their_mean(tmp_path, rng):
    outs, images, preds, forest = _replicate_runs(tmp_path, rng)
    summary = R.replicates(outs)
    assert len(summary) == 1
    row = summary.iloc[0]
    own = [R.score_prediction(p, images, 1) for p in preds]
    rf = R.score_prediction(forest, images, 1)
    assert (row.subject, row.model, row.runs) == ("p1", "unet_realdata", 3)
    assert row.runs_better == sum(s["psnr"] > rf["psnr"] and s["ssim"] > rf["ssim"] and s["mae"] < rf["mae"]
                                  for s in own) == 1
    assert row.rf_psnr == pytest.approx(rf["psnr"], abs=1e-6)
    assert row.psnr_mean == pytest.approx(np.mean([s["psnr"] for s in own]), abs=1e-6)
    assert row.mae_sd == pytest.approx(np.std([s["mae"] for s in own], ddof=1), abs=1e-6)
    ens = R.score_prediction(np.mean(preds, axis=0, dtype=np.float64), images, 1)
    assert (row.ens_psnr, row.ens_ssim, row.ens_mae) == pytest.approx((ens["psnr"], ens["ssim"], ens["mae"]))
    line = [ln for ln in R.replicate_table(summary).splitlines() if ln.startswith("| p1 |")][0]
    assert "| 1 of 3 |" in line and f"{ens['psnr']:.2f} / {ens['ssim']:.3f} / {ens['mae']:.3f}" in line
    assert row.better_runs == "0"
    assert "unet_realdata: 1 of 3 runs beat the forest on all three scores for each of the 1 left-out patients (runs 0," \
        in R.replicate_table(summary)
    # a second patient where only run 2 wins: no run wins everywhere
    other = summary.assign(subject="p2", better_runs="2")
    text = R.replicate_table(pd.concat([summary, other], ignore_index=True))
    assert "unet_realdata: 0 of 3 runs beat the forest on all three scores for each of the 2 left-out patients." in text


def test_replicates_refuse_runs_of_different_experiments(tmp_path, rng):
    from neurotrans.io.nifti import save_volume

    outs, *_ = _replicate_runs(tmp_path, rng, n_runs=2)
    with pytest.raises(ValueError, match="at least two runs"):
        R.replicates(outs[:1])
    with pytest.raises(FileNotFoundError, match="elsewhere: no results.tsv"):
        R.replicates([*outs, tmp_path / "elsewhere"])
    (tmp_path / "bare").mkdir()
    (outs[0] / "results.tsv").rename(tmp_path / "bare" / "results.tsv")
    with pytest.raises(FileNotFoundError, match="bare: no manifest.tsv"):
        R.replicates([tmp_path / "bare", *outs[1:]])
    (tmp_path / "bare" / "results.tsv").rename(outs[0] / "results.tsv")
    # a prediction on another grid (one run cropped, the other not) is named
    save_volume(outs[1] / "runs" / "t2w" / "unet_realdata" / "fold1" / "prediction.nii.gz",
                np.zeros((14, 12, 12), np.float32), np.eye(4), overwrite=True)
    with pytest.raises(ValueError, match=r"run1.*prediction.nii.gz: shape \(14, 12, 12\).*--crop"):
        R.replicates(outs)
    # a forest that differs: not the same data
    results = pd.read_csv(outs[1] / "results.tsv", sep="\t")
    results.loc[results.model == "random_forest", "psnr"] += 1.0
    results.to_csv(outs[1] / "results.tsv", sep="\t", index=False)
    with pytest.raises(ValueError, match="forest's PSNR for p1 differs"):
        R.replicates(outs)


def test_main_writes_the_replicate_summary(tmp_path, rng, capsys):
    outs, *_ = _replicate_runs(tmp_path, rng, n_runs=2)
    assert R.main(["--out", str(tmp_path / "summary"), "--replicates", *map(str, outs)]) == 0
    saved = pd.read_csv(tmp_path / "summary" / "replicates.tsv", sep="\t")
    assert list(saved.runs) == [2] and "| p1 | unet_realdata |" in (tmp_path / "summary" / "replicates.md").read_text()
    assert "2 runs against the forest" in capsys.readouterr().out
