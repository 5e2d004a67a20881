"""ESIT's maps on the input grid and the regional "embedding strength" analysis.

An ESIT network (:class:`neurotrans.networks.nets.esit.ESIT`) multiplies R regional attention
maps (softmax over channels, driven by the MNI spatial encoding only) with R tissue
embeddings (a shallow net on the tissue maps) and mixes the products with a 1x1 conv.
:func:`esit_maps` runs a trained ESIT on a prepared subject (2D models slice by slice, stacked
back into the volume) and returns those maps on the input grid; :func:`region_strength_table`
gives, per subject, region and channel, the mean tissue embedding, attention and product in
a region (the paper's hippocampus / amygdala analysis against GM volume and diagnosis), and
:func:`strength_associations` their correlation with the region's GM volume and group means.

References: the ESIT paper ("Demystifying T1-MRI to FDG-PET translation", Sec. 5, Fig. 5, Fig. S3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn

from neurotrans.networks.nets.esit import ESIT

MAP_NAMES = ("attention", "embeddings", "product")
STRENGTHS = ("embeddings", "attention", "product", "contribution")


def find_esit(model: nn.Module) -> ESIT:
    """``model`` itself if it is an ESIT, else its one ESIT sub-module (e.g. inside a method)."""
    if isinstance(model, ESIT):
        return model
    found = [m for m in model.modules() if isinstance(m, ESIT)]
    if len(found) != 1:
        raise ValueError(f"{type(model).__name__} holds {len(found)} ESIT networks; pass the ESIT itself")
    return found[0]


@torch.no_grad()
def esit_maps(
    model: nn.Module,
    inputs: np.ndarray,
    *,
    plane: str = "axial",
    batch_size: int = 16,
    device: str | torch.device = "cpu",
) -> dict[str, np.ndarray]:
    """Regional attention, tissue embeddings, their product and the output on the input grid.

    Args:
        model: a trained ESIT (or a module holding exactly one).
        inputs: ``(C_t + 3, X, Y, Z)`` prepared channels, tissue maps first then the coordinate
            encoding (the ``data.inputs = [GM, WM, CSF, coords]`` order of training).
        plane: slicing plane of a 2D ESIT (its slices are stacked back into the volume).
        batch_size: slices per forward pass.
        device: where the network runs.

    Returns:
        ``{"attention", "embeddings", "product"}`` each float32 ``(R, X, Y, Z)`` (attention
        sums to 1 over R at every voxel), ``"contribution"`` ``(R, X, Y, Z)``: each channel's
        additive share of the output, ``head weight_r * product_r`` (output channel 0; the
        output is their sum plus the head's bias), and ``"output"`` ``(C_out, X, Y, Z)``
        (normalised units).
    """
    from neurotrans.data.slicing import assemble_slices, extract_slices

    net = find_esit(model)
    was_training = net.training
    net.eval()
    inputs = np.asarray(inputs, dtype=np.float32)
    expected = net.tissue_channels + net.coord_channels
    if inputs.ndim != 4 or inputs.shape[0] != expected:
        raise ValueError(f"ESIT expects ({expected}, X, Y, Z) inputs (tissue maps then coordinates), "
                         f"got shape {inputs.shape}")
    try:
        if net.spatial_dims == 3:
            out, maps = net(torch.from_numpy(inputs)[None].to(device), return_maps=True)
            result = {k: v[0].float().cpu().numpy() for k, v in maps.items()}
            result["output"] = out[0].float().cpu().numpy()
        else:
            slices = extract_slices(inputs, plane)
            parts: dict[str, list[np.ndarray]] = {k: [] for k in (*MAP_NAMES, "output")}
            for start in range(0, len(slices), batch_size):
                out, maps = net(torch.from_numpy(slices[start:start + batch_size]).to(device), return_maps=True)
                for k in MAP_NAMES:
                    parts[k].append(maps[k].float().cpu().numpy())
                parts["output"].append(out.float().cpu().numpy())
            result = {k: assemble_slices(np.concatenate(v), plane, inputs.shape) for k, v in parts.items()}
    finally:
        net.train(was_training)
    weight = net.head.weight.detach().float().cpu().numpy()[0].reshape(-1)  # (R,) for output 0
    result["contribution"] = (weight.reshape(-1, 1, 1, 1) * result["product"]).astype(np.float32)
    return result


def embedding_strength(maps: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Mean of each channel of ``maps`` ``(R, X, Y, Z)`` inside the bool ``region`` ``(X, Y, Z)``: ``(R,)``."""
    maps, region = np.asarray(maps), np.asarray(region, dtype=bool)
    if maps.ndim != 4 or maps.shape[1:] != region.shape:
        raise ValueError(f"maps {maps.shape} and region {region.shape} do not share a grid")
    if not region.any():
        raise ValueError("the region mask is empty")
    return maps[:, region].mean(axis=1)


def region_strength_table(
    subjects: Sequence[Mapping[str, np.ndarray]],
    regions: Mapping[str, np.ndarray],
    *,
    gm: Sequence[np.ndarray] | None = None,
    voxel_ml: float | None = None,
    covariates: Sequence[Mapping[str, object]] | None = None,
) -> pd.DataFrame:
    """Per subject, region and channel: mean embedding, attention and product in the region.

    Args:
        subjects: per subject the :func:`esit_maps` result.
        regions: region name -> bool mask on the maps' grid (e.g. AAL2 hippocampus, amygdala).
        gm: per subject the GM probability map on that grid; adds ``gm_ml`` (GM volume of the
            region, ml; needs ``voxel_ml``).
        voxel_ml: voxel volume in ml.
        covariates: per subject extra columns (``subject``, ``group``, ``age``...).

    Returns:
        columns: covariates, ``region, channel, embedding, attention, product, contribution,
        dominant``
        (``dominant``: the channel with the highest mean attention in the region for that
        subject, i.e. the embedding ESIT mostly uses there) and ``gm_ml`` when ``gm`` is given.
    """
    if gm is not None and (len(gm) != len(subjects) or voxel_ml is None):
        raise ValueError("gm needs one map per subject and voxel_ml")
    if covariates is not None and len(covariates) != len(subjects):
        raise ValueError(f"{len(covariates)} covariate rows for {len(subjects)} subjects")
    rows = []
    for j, maps in enumerate(subjects):
        for name, region in regions.items():
            region = np.asarray(region, dtype=bool)
            strength = {k: embedding_strength(maps[k], region) for k in STRENGTHS}
            top = int(np.argmax(strength["attention"]))
            extra = {} if gm is None else {"gm_ml": float(np.asarray(gm[j])[region].sum() * voxel_ml)}
            for r in range(len(strength["embeddings"])):
                rows.append({**(covariates[j] if covariates is not None else {"subject": j}), "region": name,
                             "channel": r, "embedding": float(strength["embeddings"][r]),
                             "attention": float(strength["attention"][r]), "product": float(strength["product"][r]),
                             "contribution": float(strength["contribution"][r]),
                             "dominant": r == top, **extra})
    return pd.DataFrame(rows)


def strength_associations(table: pd.DataFrame, *, value: str = "embedding", group: str = "group") -> pd.DataFrame:
    """Per region and channel: Pearson r of ``value`` with ``gm_ml`` and the group means.

    Args:
        table: from :func:`region_strength_table` with ``gm_ml`` (and a ``group`` column for means).
        value: ``embedding``, ``attention``, ``product`` or ``contribution``.
        group: covariate whose levels get a mean column each (``mean_CN`` ...), if present.

    Returns:
        columns ``region, channel, r_gm, p_gm, n, dominant_share`` (+ ``mean_<level>``); r is NaN
        when either variable is constant.
    """
    if "gm_ml" not in table.columns:
        raise ValueError("the table has no gm_ml column (pass gm= to region_strength_table)")
    rows = []
    for (region, channel), t in table.groupby(["region", "channel"], sort=False):
        x, y = t[value].to_numpy(float), t["gm_ml"].to_numpy(float)
        ok = len(t) > 2 and np.ptp(x) > 0 and np.ptp(y) > 0
        r, p = stats.pearsonr(x, y) if ok else (np.nan, np.nan)
        row = {"region": region, "channel": int(channel), "r_gm": float(r), "p_gm": float(p), "n": len(t),
               "dominant_share": float(t["dominant"].mean())}
        if group in t.columns:
            row.update({f"mean_{g}": float(v) for g, v in t.groupby(group, sort=False)[value].mean().items()})
        rows.append(row)
    return pd.DataFrame(rows)
