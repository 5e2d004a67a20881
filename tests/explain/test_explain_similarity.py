"""Per-layer similarity driver: atlas concepts, manifest concepts, a network with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from neurotrans.data.grid import mni_grid
from neurotrans.explain.cca import multiple_correlation, subsample_mask
from neurotrans.explain.similarity import (
    DEFAULT_REGIONS,
    CCASubject,
    atlas_concepts,
    concept_matrices,
    load_concepts,
    network_similarity,
)
from neurotrans.io.manifest import read_manifest
from neurotrans.io.nifti import save_volume


def test_atlas_concepts_are_binary_region_masks():
    grid = mni_grid(3.0)
    regions = atlas_concepts(grid)
    assert list(regions) == list(DEFAULT_REGIONS)
    for name, m in regions.items():
        assert m.shape == grid.shape and set(np.unique(m)) == {0.0, 1.0}, name
    assert not (regions["putamen"].astype(bool) & regions["caudate"].astype(bool)).any()
    # the left and right thalamus both: the mask is about symmetric about x = 0 (MNI)
    x_mm = grid.world_coordinates()[0]
    thal = regions["thalamus"].astype(bool)
    assert 0.7 < (x_mm[thal] < 0).sum() / (x_mm[thal] > 0).sum() < 1.4
    with pytest.raises(ValueError, match="no AAL2 region"):
        atlas_concepts(grid, {"nowhere": ("Nucleus_Imaginary",)})


def test_load_concepts_reads_columns_and_skips_absent_ones(tmp_path):
    grid = mni_grid(3.0)
    rng = np.random.default_rng(0)
    t1 = rng.random(grid.shape).astype(np.float32)
    save_volume(tmp_path / "t1.nii.gz", t1, grid.affine)
    pd.DataFrame({"subject": ["s1"], "session": ["1"], "T1w": ["t1.nii.gz"]}).to_csv(
        tmp_path / "manifest.tsv", sep="\t", index=False)
    man = read_manifest(tmp_path / "manifest.tsv")
    concepts = load_concepts(man, 0, grid, regions={"hippocampus": ("Hippocampus",)})
    assert list(concepts) == ["T1", "hippocampus"]
    np.testing.assert_allclose(concepts["T1"], t1, rtol=1e-6)
    assert list(load_concepts(man, 0, grid, regions={})) == ["T1"]


def test_concept_matrices_shapes():
    mask = np.zeros((4, 5, 3), bool)
    mask[1:3, 2:4, :] = True
    vol = np.arange(60, dtype=float).reshape(4, 5, 3)
    out = concept_matrices({"a": vol, "b": np.stack([vol, -vol])}, mask)
    np.testing.assert_array_equal(out["a"], vol[mask])
    assert out["b"].shape == (12, 2) and np.array_equal(out["b"][:, 1], -vol[mask])
    with pytest.raises(ValueError, match="does not match"):
        concept_matrices({"c": vol[:2]}, mask)


def _toy_net() -> nn.Module:
    """1x1 conv to (x, -x) then LeakyReLU: a linear combination of the channels gives back x."""
    conv = nn.Conv2d(1, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
    return nn.Sequential(conv, nn.LeakyReLU(0.2), nn.Conv2d(2, 3, 1), nn.LeakyReLU(0.2))


def test_network_similarity_known_answers_and_subsampling():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = _toy_net()
    subjects = []
    for j in range(2):
        x = rng.standard_normal((1, 9, 10, 6)).astype(np.float32)
        mask = rng.random((9, 10, 6)) < 0.7
        subjects.append(CCASubject(x, mask, {"T1": 3.0 * x[0] + 1.0, "square": x[0] ** 2,
                                             "noise": rng.standard_normal((9, 10, 6))}, key=f"s{j}"))
    table = network_similarity(net, subjects, multiple=1, max_voxels=200, seed=3)
    assert list(table.columns) == ["layer", "path", "concept", "similarity", "n_voxels", "n_channels", "rank"]
    assert table["layer"].unique().tolist() == ["actv1", "actv2"]
    assert table.set_index("layer")["path"].to_dict() == {"actv1": "1", "actv2": "3"}
    sim = table.set_index(["layer", "concept"])["similarity"]
    assert sim["actv1", "T1"] == pytest.approx(1.0, abs=1e-6)  # the input is in the span of actv1
    assert sim["actv1", "noise"] < 0.25
    assert table["n_voxels"].eq(400).all()  # 200 voxels drawn from each subject
    # the same computation by hand on the pooled voxels
    rows_x, rows_y = [], []
    for j, s in enumerate(subjects):
        m = subsample_mask(s.mask, 200, 3 + j)
        x = s.inputs[0][m]
        rows_x.append(np.column_stack([np.where(x > 0, x, 0.2 * x), np.where(-x > 0, -x, -0.2 * x)]))
        rows_y.append(s.concepts["square"][m])
    assert sim["actv1", "square"] == pytest.approx(
        multiple_correlation(np.vstack(rows_x), np.concatenate(rows_y)), abs=1e-6)
    with pytest.raises(ValueError, match="no concept"):
        network_similarity(net, [CCASubject(subjects[0].inputs, subjects[0].mask, {})], multiple=1)
