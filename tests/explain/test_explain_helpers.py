"""Pieces of `neurotrans explain`: slab-wise activations, layer scales, sampling, refusals, figures."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from neurotrans.errors import InputError
from neurotrans.explain.activations import activation_matrices
from neurotrans.explain.cca_run import (
    format_similarity,
    layer_matrices,
    layer_scales,
    summary_table,
)
from neurotrans.explain.esit_run import format_attention, group_tests
from neurotrans.explain.plots import component_montage, esit_montage, figure_png, similarity_curves
from neurotrans.explain.runs import check_plain_inputs, sample_subjects
from neurotrans.networks import build_network


@pytest.mark.parametrize(("spatial_dims", "plane"), [(2, "axial"), (2, "coronal"), (3, "axial")])
def test_layer_matrices_equal_activation_matrices_on_the_whole_mask(spatial_dims, plane):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = build_network("unet_esit_paper", spatial_dims=spatial_dims, in_channels=1, out_channels=1, base=2,
                        depth=2).eval()
    volume = rng.standard_normal((1, 9, 11, 19)).astype(np.float32)  # 19 slices: slabs of 8, 8 and 3
    mask = rng.random((9, 11, 19)) < 0.4
    full, _ = activation_matrices(net, volume, mask, spatial_dims=spatial_dims, plane=plane, multiple=4)
    some = layer_matrices(net, volume, mask, ["actv2", "actv5"], spatial_dims=spatial_dims, plane=plane,
                          multiple=4, device="cpu")
    assert list(some) == ["actv2", "actv5"]
    for layer in some:
        np.testing.assert_allclose(some[layer], full[layer], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("name", "depth", "expected"), [
    ("unet_esit_paper", 4, [1, 2, 2, 4, 4, 8, 8, 16, 16, 16, 8, 8, 4, 4, 2, 2, 1, 1]),
    ("unet_esit_paper", 2, [1, 2, 2, 4, 4, 4, 2, 2, 1, 1]),
    ("unet_esit", 2, [1, 1, 2, 2, 2, 4, 4, 4, 2, 2, 2, 1, 1, 1]),
])
def test_layer_scales_follow_the_topology(name, depth, expected):
    net = build_network(name, spatial_dims=2, in_channels=1, out_channels=1, base=2, depth=depth)
    scales = layer_scales(net, 1, 2, 2**depth)
    assert list(scales) == [f"actv{k}" for k in range(1, len(expected) + 1)]
    assert list(scales.values()) == expected


def test_sample_subjects_is_deterministic_and_keeps_the_order():
    subjects = [f"s{i:02d}" for i in range(30)]
    a, b = sample_subjects(subjects, 20, seed=3), sample_subjects(subjects, 20, seed=3)
    assert a == b and len(a) == 20 and a == sorted(a)
    assert sample_subjects(subjects, 20, seed=4) != a
    assert sample_subjects(subjects[:5], 20) == subjects[:5]
    with pytest.raises(ValueError, match="positive"):
        sample_subjects(subjects, 0)


@pytest.mark.parametrize(("sampling", "data", "message"), [
    ({"kind": "slices", "context": 1}, {}, "2.5D context"),
    ({"kind": "slices", "context": 0}, {"covariates": ["age"]}, "covariates"),
])
def test_runs_with_extra_inputs_are_refused(sampling, data, message, tmp_path):
    run = SimpleNamespace(folder=SimpleNamespace(root=tmp_path),
                          info=SimpleNamespace(sampling=sampling, config={"data": data}))
    with pytest.raises(InputError, match=message):
        check_plain_inputs(run, "neurotrans explain cca")
    check_plain_inputs(SimpleNamespace(folder=run.folder, info=SimpleNamespace(
        sampling={"kind": "slices", "context": 0}, config={"data": {}})), "x")


def _tables(n_runs: int) -> list[pd.DataFrame]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n_runs):
        rows = []
        for k, scale in enumerate([1, 2, 4, 2, 1], start=1):
            for concept, kind in (("T1", "image"), ("PET", "image"), ("GM", "tissue"), ("putamen", "region"),
                                  ("thalamus", "region")):
                rows.append({"layer": f"actv{k}", "path": f"p{k}", "scale": scale, "concept": concept, "kind": kind,
                             "similarity": rng.random(), "n_voxels": 100, "n_channels": 4, "rank": 4})
        out.append(pd.DataFrame(rows))
    return out


def test_summary_table_and_curves():
    tables = _tables(3)
    summary = summary_table(tables)
    one = summary[(summary["layer"] == "actv2") & (summary["concept"] == "GM")].iloc[0]
    values = [t.query("layer == 'actv2' and concept == 'GM'")["similarity"].iloc[0] for t in tables]
    assert one["mean"] == pytest.approx(np.mean(values)) and one["sd"] == pytest.approx(np.std(values, ddof=1))
    assert one["scale"] == 2 and one["kind"] == "tissue" and one["n"] == 3
    assert "actv3 | 1/4" in format_similarity(summary)
    fig = similarity_curves(summary, title="t")
    left, right = fig.axes[:2]
    assert [line.get_label() for line in left.lines] == ["T1", "PET", "GM"]
    assert [line.get_label() for line in right.lines] == ["putamen", "thalamus"]
    assert len(left.collections) == 3  # one SD band per concept (several runs)
    assert figure_png(fig) == figure_png(similarity_curves(summary, title="t"))  # same data, same bytes
    single = similarity_curves(summary_table(tables[:1]))
    assert len(single.axes[0].collections) == 0


def test_montages_have_a_panel_per_channel():
    rng = np.random.default_rng(0)
    affine = np.diag([-3.0, 3.0, 3.0, 1.0])  # LAS storage: reoriented for display
    affine[:3, 3] = [90, -126, -72]
    att = rng.random((10, 12, 14, 10)).astype(np.float32)
    fig = esit_montage(att / att.sum(0), rng.standard_normal(att.shape), affine, title="s")
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 20 and len(fig.axes) == 4 * 8
    vol = rng.random((12, 14, 10)).astype(np.float32)
    items = [{"layer": "actv3", "concept": "GM", "similarity": 0.5, "component": vol - 0.5, "concept_map": vol}]
    assert len(component_montage(items, affine).axes) == 4


def test_group_tests_are_one_way_anova():
    from scipy import stats

    rng = np.random.default_rng(5)
    groups = ["CN"] * 5 + ["MCI"] * 4 + ["AD"] * 3 + ["SMC"]  # a one-subject level is left out
    rows = [{"region": "hippocampus", "channel": c, "group": g, "embedding": rng.standard_normal() + (g == "AD")}
            for c in range(2) for g in groups]
    table = pd.DataFrame(rows)
    out = group_tests(table, "embedding")
    for c in range(2):
        t = table[(table["channel"] == c) & (table["group"] != "SMC")]
        expected = stats.f_oneway(*[t.loc[t["group"] == g, "embedding"] for g in ("CN", "MCI", "AD")]).pvalue
        assert out.query("channel == @c")["p_group"].iloc[0] == pytest.approx(expected)
    assert np.isnan(group_tests(table.assign(embedding=1.0), "embedding")["p_group"]).all()
    assert format_attention(np.array([0.1, 0.9, 0.0])).endswith("#1 90.0 %, #0 10.0 %")
