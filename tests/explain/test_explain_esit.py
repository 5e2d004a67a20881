"""ESIT maps on the input grid (slice-wise and 3D) and the regional embedding-strength tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from torch import nn

from neurotrans.explain.esit import (
    embedding_strength,
    esit_maps,
    find_esit,
    region_strength_table,
    strength_associations,
)
from neurotrans.networks import ESIT


def _net(spatial_dims: int) -> ESIT:
    torch.manual_seed(0)
    return ESIT(spatial_dims, n_regions=4, features=(6,), tissue_features=(5,))


@pytest.mark.parametrize("plane", ["axial", "coronal"])
def test_slicewise_maps_equal_running_each_slice(plane):
    net = _net(2)
    inputs = np.random.default_rng(0).standard_normal((6, 7, 8, 5)).astype(np.float32)
    maps = esit_maps(net, inputs, plane=plane, batch_size=3)
    assert set(maps) == {"attention", "embeddings", "product", "contribution", "output"}
    # the output is the sum of the channels' contributions plus the head's bias
    np.testing.assert_allclose(maps["contribution"].sum(axis=0) + net.head.bias.item(), maps["output"][0],
                               rtol=1e-4, atol=1e-5)
    assert maps["attention"].shape == (4, 7, 8, 5) and maps["output"].shape == (1, 7, 8, 5)
    np.testing.assert_allclose(maps["attention"].sum(axis=0), 1.0, rtol=1e-5)
    axis = {"axial": 3, "coronal": 2}[plane]
    k = 2
    sl = torch.from_numpy(np.take(inputs, k, axis=axis)[None])
    with torch.no_grad():
        out, ref = net(sl, return_maps=True)
    for name in ("attention", "embeddings", "product"):
        np.testing.assert_allclose(np.take(maps[name], k, axis=axis), ref[name][0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.take(maps["output"], k, axis=axis), out[0].numpy(), rtol=1e-5, atol=1e-6)


def test_3d_maps_and_finding_the_esit_inside_a_wrapper():
    net = _net(3)
    wrapper = nn.ModuleDict({"net": net})
    assert find_esit(wrapper) is net
    inputs = np.random.default_rng(1).standard_normal((6, 6, 5, 4)).astype(np.float32)
    net.train()
    maps = esit_maps(wrapper, inputs)
    assert net.training  # mode restored
    with torch.no_grad():
        _, ref = net.eval()(torch.from_numpy(inputs)[None], return_maps=True)
    np.testing.assert_allclose(maps["embeddings"], ref["embeddings"][0].numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="expects"):
        esit_maps(net, inputs[:5])
    with pytest.raises(ValueError, match="0 ESIT"):
        find_esit(nn.Linear(2, 2))


def test_embedding_strength_is_the_regional_mean():
    maps = np.arange(2 * 3 * 4 * 2, dtype=float).reshape(2, 3, 4, 2)
    region = np.zeros((3, 4, 2), bool)
    region[0, :2, 1] = True
    np.testing.assert_allclose(embedding_strength(maps, region), [maps[0][region].mean(), maps[1][region].mean()])
    with pytest.raises(ValueError, match="empty"):
        embedding_strength(maps, np.zeros_like(region))


def test_strength_tables_against_hand_computation():
    rng = np.random.default_rng(2)
    shape = (6, 5, 4)
    region = np.zeros(shape, bool)
    region[:3] = True
    subjects, gms, cov = [], [], []
    for j in range(6):
        gm = rng.random(shape) * (0.5 + 0.1 * j)
        emb = np.stack([gm * 2.0 + 0.01 * rng.standard_normal(shape), rng.standard_normal(shape)])
        att = np.stack([np.full(shape, 0.7), np.full(shape, 0.3)])
        subjects.append({"attention": att, "embeddings": emb, "product": att * emb,
                         "contribution": np.stack([2.0, -1.0]).reshape(2, 1, 1, 1) * att * emb})
        gms.append(gm)
        cov.append({"subject": f"s{j}", "group": "AD" if j < 3 else "CN"})
    table = region_strength_table(subjects, {"hippocampus": region}, gm=gms, voxel_ml=0.027, covariates=cov)
    assert len(table) == 6 * 2 and table["dominant"].sum() == 6
    assert table.query("channel == 0")["dominant"].all()
    np.testing.assert_allclose(table.query("channel == 0")["gm_ml"], [g[region].sum() * 0.027 for g in gms])
    assoc = strength_associations(table)
    ch0 = assoc.query("channel == 0").iloc[0]
    t0 = table.query("channel == 0")
    r, p = stats.pearsonr(t0["embedding"], t0["gm_ml"])
    assert ch0["r_gm"] == pytest.approx(r) and ch0["p_gm"] == pytest.approx(p) and r > 0.99
    assert ch0["mean_AD"] == pytest.approx(t0.query("group == 'AD'")["embedding"].mean())
    assert ch0["dominant_share"] == 1.0
    np.testing.assert_allclose(t0["contribution"], 2.0 * t0["product"])
    with pytest.raises(ValueError, match="gm_ml"):
        strength_associations(pd.DataFrame({"region": [], "channel": [], "embedding": []}))
