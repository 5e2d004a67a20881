"""`neurotrans explain cca|esit` on tiny trained runs: files where expected, values that check out, refusals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from neurotrans.cli import build_parser, main
from neurotrans.data.grid import mni_grid
from neurotrans.explain.folder import ExplainFolder
from neurotrans.explain.similarity import atlas_concepts
from neurotrans.io.manifest import read_manifest
from neurotrans.io.nifti import load_volume
from neurotrans.io.run import RunFolder

CCA_ARGS = ["--subjects", "2", "--max-voxels", "300"]
# resolution of each activation of the paper's U-Net (unet_esit_paper docstring): 1/scale of the input
PAPER_SCALES = [1, 2, 2, 4, 4, 8, 8, 16, 16, 16, 8, 8, 4, 4, 2, 2, 1, 1]


@pytest.mark.parametrize("argv", [["explain"], ["explain", "cca"], ["explain", "esit"]], ids=" ".join)
def test_explain_help(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*argv, "--help"])
    assert exc.value.code == 0 and "usage: neurotrans explain" in capsys.readouterr().out


def _row(manifest, key):
    return [i for i in range(len(manifest)) if manifest.key(i) == key][0]


def test_explain_cca_writes_tables_curves_and_components(run_copy, capsys):
    run = run_copy("unet_paper_fdg")
    assert main(["explain", "cca", str(run), *CCA_ARGS]) == 0
    assert "actv18" in capsys.readouterr().out
    folder = ExplainFolder.of_run(run)
    assert folder.root == RunFolder(run).explain
    for path in (folder.cca_similarity, folder.cca_summary, folder.cca_curves, folder.cca_meta,
                 folder.cca_components_png):
        assert path.is_file() and path.stat().st_size > 0, path
    table = pd.read_csv(folder.cca_similarity, sep="\t")
    layers = list(dict.fromkeys(table["layer"]))
    assert layers == [f"actv{k}" for k in range(1, 19)]
    assert table.drop_duplicates("layer")["scale"].tolist() == PAPER_SCALES
    assert {"T1", "PET", "GM", "WM", "CSF", "thalamus", "putamen", "hippocampus"} <= set(table["concept"])
    assert set(table["kind"]) == {"image", "tissue", "region"}
    sims = table["similarity"].dropna()
    assert ((sims >= 0) & (sims <= 1 + 1e-9)).all() and table["n_voxels"].eq(600).all()
    meta = json.loads(folder.cca_meta.read_text())
    # the fdg phantom has the true maps: they are the tissue concepts, and cca.json says so
    assert meta["concept_columns"]["GM"] == "GM_true" and "true maps" in meta["tissue_maps"]
    assert meta["n_subjects"] == 2 and meta["pooled_runs"] == [str(run)]
    info = RunFolder(run).read_info()
    assert {k.split("_")[0] for k in meta["subjects"]} <= set(info.train_subjects)
    # the paper's component figures for an 18-activation U-Net
    items = meta["components"]["items"]
    assert [(c["layer"], c["concept"]) for c in items][:3] == [("actv3", "GM"), ("actv3", "WM"), ("actv3", "CSF")]
    # a component image is the canonical variate: its correlation with the concept over the analysed
    # voxels is the reported canonical correlation, and it lies on the input grid
    manifest = read_manifest(info.manifest)
    i = _row(manifest, meta["components"]["subject"])
    t1 = load_volume(manifest.path(i, "T1w"))
    for item in items[:2]:
        comp = load_volume(folder.cca_component(meta["components"]["subject"], item["layer"], item["concept"]))
        assert comp.shape == t1.shape and np.allclose(comp.affine, t1.affine)
        gm = load_volume(manifest.path(i, meta["concept_columns"][item["concept"]])).data
        inside = comp.data != 0
        r = stats.pearsonr(comp.data[inside], gm[inside])[0]
        assert r == pytest.approx(item["similarity"], abs=1e-3)


def test_explain_cca_pools_runs_and_refuses_to_overwrite(run_copy, capsys):
    # two copies of one model: the mean is the single run's value, the SD zero, in both folders
    a, b = run_copy("unet_paper_fdg", "fold0"), run_copy("unet_paper_fdg", "fold1")
    assert main(["explain", "cca", str(a), str(b), *CCA_ARGS, "--components", "actv9:putamen"]) == 0
    single = pd.read_csv(ExplainFolder.of_run(a).cca_similarity, sep="\t")
    for run in (a, b):
        summary = pd.read_csv(ExplainFolder.of_run(run).cca_summary, sep="\t")
        merged = summary.merge(single, on=["layer", "concept"]).dropna(subset=["similarity"])
        assert len(merged) and (merged["n"] == 2).all()
        np.testing.assert_allclose(merged["mean"], merged["similarity"], atol=1e-12)
        np.testing.assert_allclose(merged["sd"], 0.0, atol=1e-12)
        meta = json.loads(ExplainFolder.of_run(run).cca_meta.read_text())
        assert [(c["layer"], c["concept"]) for c in meta["components"]["items"]] == [("actv9", "putamen")]
    capsys.readouterr()
    before = ExplainFolder.of_run(a).cca_summary.read_bytes()
    assert main(["explain", "cca", str(a), *CCA_ARGS]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[0]
    assert ExplainFolder.of_run(a).cca_summary.read_bytes() == before
    assert main(["explain", "cca", str(a), *CCA_ARGS, "--overwrite"]) == 0
    assert pd.read_csv(ExplainFolder.of_run(a).cca_summary, sep="\t")["n"].eq(1).all()
    assert main(["explain", "cca", str(b), *CCA_ARGS, "--overwrite", "--components", "actv99:GM"]) == 2
    assert "LAYER:CONCEPT" in capsys.readouterr().err


def test_explain_esit_writes_maps_and_strength_table(run_copy, capsys):
    run = run_copy("esit_fdg")
    assert main(["explain", "esit", str(run)]) == 0
    out = capsys.readouterr().out
    assert "hippocampus" in out and "attention over the brain" in out
    folder = ExplainFolder.of_run(run)
    info = RunFolder(run).read_info()
    manifest = read_manifest(info.manifest)
    key = manifest.key(_row_of_subject(manifest, info.test_subjects[0]))
    attention = load_volume_4d(folder.esit_map(key, "attention"))
    embeddings = load_volume_4d(folder.esit_map(key, "embeddings"))
    t1 = load_volume(manifest.path(_row(manifest, key), "T1w"))
    assert attention.shape == (*t1.shape, 3) and embeddings.shape == attention.shape
    brain = load_volume(manifest.path(_row(manifest, key), "brainmask")).data > 0.5
    np.testing.assert_allclose(attention[brain].sum(axis=-1), 1.0, atol=1e-5)  # softmax over the channels
    assert np.all(attention[~brain] == 0)
    assert folder.esit_montage(key).is_file()
    strength = pd.read_csv(folder.esit_strength, sep="\t", dtype={"subject": str})
    n_subjects = sum(len(v) for v in info.split.values())
    assert len(strength) == n_subjects * 2 * 3 and set(strength["region"]) == {"hippocampus", "amygdala"}
    assert set(strength["split"]) == {"train", "val", "test"} and set(strength["group"]) == {"CN", "MCI", "AD"}
    # GM volume by hand: the run's GM input summed over the AAL2 hippocampus, 0.027 ml per 3 mm voxel
    first = strength.iloc[0]
    i = _row_of_subject(manifest, first["subject"])
    hippo = atlas_concepts(mni_grid(3.0), {"h": ("Hippocampus",)})["h"] > 0.5
    gm = load_volume(manifest.path(i, "GM")).data
    assert first["gm_ml"] == pytest.approx(float(gm[hippo].sum()) * 0.027, rel=1e-4)
    assoc = pd.read_csv(folder.esit_associations, sep="\t")
    assert set(assoc["value"]) == {"embedding", "contribution"} and len(assoc) == 2 * 2 * 3
    assert assoc["p_group"].between(0, 1).all()
    meta = json.loads(folder.esit_meta.read_text())
    assert meta["gm_column"] == "GM" and sum(meta["attention_share_in_brain"]) == pytest.approx(1.0, abs=1e-5)
    summary = pd.read_csv(folder.esit_summary, sep="\t")
    for region, g in summary.groupby("region"):
        emb = assoc[(assoc["value"] == "embedding") & (assoc["region"] == region)]
        assert g["channel"].nunique() == 1 and g["dominant_share"].iloc[0] == emb["dominant_share"].max()


def _row_of_subject(manifest, subject):
    return [i for i in range(len(manifest)) if str(manifest.table.iloc[i]["subject"]) == str(subject)][0]


def load_volume_4d(path):
    import nibabel as nib

    return np.asarray(nib.load(str(path)).dataobj)


@pytest.mark.parametrize(("command", "run", "message"), [
    ("esit", "unet_paper_fdg", "not an ESIT"),
    ("cca", "esit_fdg", "explain esit"),
])
def test_explain_refuses_the_wrong_network_in_one_line(command, run, message, trained_runs, capsys):
    assert main(["explain", command, str(trained_runs[run])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and str(trained_runs[run]) in err[0]
    assert not RunFolder(trained_runs[run]).explain.exists()


def test_explain_refuses_a_missing_run(tmp_path, capsys):
    assert main(["explain", "cca", str(tmp_path / "nope")]) == 2
    assert "run folder not found" in capsys.readouterr().err
