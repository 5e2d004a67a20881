"""``neurotrans explain esit RUN``: ESIT's regional attention and tissue embeddings, and what they encode.

For every subject of the run's split (train, val and test, each row labelled), the trained
ESIT is run on the subject's prepared inputs (:func:`neurotrans.explain.esit.esit_maps`); per
region (AAL2 hippocampus and amygdala by default) and channel, the mean tissue embedding,
attention, product and contribution to the output go into ``strength.tsv``, with the region's
GM volume (ml) from the GM map ESIT took as input (segmented from the T1 in the simulated fdg
cohort, as the paper measured GM volume from the T1 with CAT12) and the subject's covariates
(group = diagnosis, age...). ``associations.tsv`` gives per region and channel the Pearson r
of the embedding (and of the contribution) with that GM volume and the mean per group;
``summary.tsv`` keeps, per region, the channel the attention picks there most often. The
attention and embedding maps of chosen subjects (default: the first test subject) are
written as 4D NIfTI ``(X, Y, Z, R)`` on the input grid, 0 outside the brain mask, with a
montage of one axial slice (the paper's Fig. 5a).

References: the ESIT paper ("Demystifying T1-MRI to FDG-PET translation", Sec. 5.1-5.2,
Fig. 5, Fig. S3).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neurotrans.errors import InputError
from neurotrans.explain.esit import (
    esit_maps,
    find_esit,
    region_strength_table,
    strength_associations,
)
from neurotrans.explain.folder import ExplainFolder
from neurotrans.explain.runs import (
    OpenRun,
    check_output,
    check_plain_inputs,
    clear_output,
    open_run,
)
from neurotrans.io.atomic import write_atomic, write_text_atomic
from neurotrans.networks.nets.esit import ESIT

COMMAND = "neurotrans explain esit"
STRENGTH_REGIONS: dict[str, tuple[str, ...]] = {"hippocampus": ("Hippocampus",), "amygdala": ("Amygdala",)}
MAPS_WRITTEN = ("attention", "embeddings")
VALUES = ("embedding", "contribution")


@dataclass(frozen=True)
class ESITExplanation:
    """What ``explain esit`` computed and wrote.

    Args:
        run: the run folder.
        strength: per subject, region and channel (see :func:`neurotrans.explain.esit.region_strength_table`).
        associations: per value, region and channel: r with GM volume, group means.
        summary: per region, the rows of its dominant channel.
        attention_share: ``(R,)`` mean attention of each channel over every subject's brain voxels
            (a channel near 1 means the attention collapsed onto it: no regional specialisation).
        written: every file written.
    """

    run: Path
    strength: pd.DataFrame
    associations: pd.DataFrame
    summary: pd.DataFrame
    attention_share: np.ndarray
    written: list[Path]


def esit_network(run: OpenRun) -> ESIT:
    """The run's ESIT network; refuses, in one line, a run of another network."""
    try:
        return find_esit(run.method)
    except ValueError:
        raise InputError(run.folder.root, f"is a {run.info.method} run of network {run.generator_name}, not an ESIT",
                         "`neurotrans explain esit` explains models trained with method esit (e.g. config esit_fdg); "
                         f"explain this one with `neurotrans explain cca {run.folder.root}`") from None


def gm_column(run: OpenRun) -> str | None:
    """The GM map among the run's inputs (``GM`` or ``GM_true``), for regional GM volumes."""
    for column in run.info.inputs:
        if str(column).startswith("GM"):
            return str(column)
    return None


def montage_rows(run: OpenRun, rows: Sequence[int], subjects: Sequence[str] | None) -> list[int]:
    """Rows whose maps are written: ``subjects`` (ids or ``subject_session`` keys), default the first test row."""
    if subjects:
        out = []
        for s in subjects:
            hit = [i for i in rows if str(run.manifest.table.iloc[i]["subject"]) == s or run.manifest.key(i) == s]
            if not hit:
                raise InputError(f"--subjects {s}", "is not a subject of the run's split",
                                 f"choose from: {', '.join(run.manifest.key(i) for i in rows[:12])}")
            out += [i for i in hit if i not in out]
        return out
    test = run.rows(run.info.test_subjects)
    return [test[0] if test else rows[0]]


def _covariates(run: OpenRun, subject: Any) -> dict[str, Any]:
    plain = {k: v for k, v in subject.covariates.items() if isinstance(v, (str, int, float, bool)) or v is None}
    return {"subject": subject.subject, "session": subject.session, "split": run.split_of(subject.subject), **plain}


def _region_masks(grid: Any, regions: Mapping[str, Sequence[str]], atlas: str) -> dict[str, np.ndarray]:
    from neurotrans.explain.similarity import atlas_concepts

    return {k: v > 0.5 for k, v in atlas_concepts(grid, regions, atlas).items()}


def _gm_on_grid(run: OpenRun, i: int, column: str, grid: Any) -> np.ndarray:
    from neurotrans.data.resample import resample_to_grid
    from neurotrans.io.nifti import load_volume

    vol = load_volume(run.manifest.path(i, column))  # type: ignore[arg-type]
    return resample_to_grid(vol.data, vol.affine, grid, order=1)


def group_tests(strength: pd.DataFrame, value: str, group: str = "group") -> pd.DataFrame:
    """Per region and channel: one-way ANOVA p of ``value`` across the levels of ``group`` (diagnosis).

    Levels with fewer than 2 subjects are left out; NaN when fewer than 2 levels remain or the
    values are constant.
    """
    from scipy import stats

    rows = []
    for (region, channel), t in strength.groupby(["region", "channel"], sort=False):
        samples = [g[value].to_numpy(float) for _, g in t.groupby(group, sort=False)] if group in t else []
        samples = [x for x in samples if len(x) >= 2]
        ok = len(samples) >= 2 and np.ptp(np.concatenate(samples)) > 0
        rows.append({"region": region, "channel": int(channel),
                     "p_group": float(stats.f_oneway(*samples).pvalue) if ok else float("nan")})
    return pd.DataFrame(rows)


def _summary(associations: pd.DataFrame) -> pd.DataFrame:
    """Per region, the rows of the channel that the attention most often picks there."""
    if associations.empty:
        return associations
    parts = []
    for _, g in associations.groupby("region", sort=False):
        emb = g[g["value"] == "embedding"]
        channel = int(emb.sort_values(["dominant_share", "channel"], ascending=[False, True])["channel"].iloc[0])
        parts.append(g[g["channel"] == channel])
    return pd.concat(parts, ignore_index=True)


def explain_esit(run_dir: str | Path, *, subjects: Sequence[str] | None = None,
                 regions: Mapping[str, Sequence[str]] | None = None, atlas: str = "AAL2", z_mm: float = 0.0,
                 overwrite: bool = False, device: str = "cpu") -> ESITExplanation:
    """Write an ESIT run's maps, regional embedding strengths and their associations.

    Args:
        run_dir: a run trained with method ``esit``.
        subjects: subjects whose maps are written (default: the first test subject).
        regions: region -> AAL2 name prefixes (default hippocampus and amygdala).
        atlas: region atlas.
        z_mm: world z (mm) of the montages' axial slice.
        overwrite: replace an existing ``RUN/explain/esit``.
        device: where the network runs.

    Raises:
        InputError: the run is not an ESIT run, or an explanation exists without ``overwrite``.
    """
    from neurotrans.data.preprocess import to_original_grid
    from neurotrans.explain.plots import esit_montage, figure_png
    from neurotrans.io.nifti import save_volume

    run = open_run(run_dir, device)
    net = esit_network(run)
    check_plain_inputs(run, COMMAND)
    folder = ExplainFolder.of_run(run.folder.root)
    check_output(folder.esit, overwrite, COMMAND)
    regions = dict(STRENGTH_REGIONS if regions is None else regions)
    split = [s for part in ("train", "val", "test") for s in run.info.split.get(part, [])]
    rows = run.rows(split)
    if not rows:
        raise InputError(run.info.manifest, "holds none of the run's subjects", "explain the run with the manifest "
                         "it was trained on")
    shown = montage_rows(run, rows, subjects)
    gm = gm_column(run)
    masks: dict[Any, dict[str, np.ndarray]] = {}
    parts, maps_out = [], {}
    attention_sum, brain_voxels = np.zeros(net.n_regions), 0
    for i in rows:
        s = run.prepare(i)
        key = (tuple(s.grid.shape), np.asarray(s.grid.affine).round(6).tobytes())
        if key not in masks:
            masks[key] = _region_masks(s.grid, regions, atlas)
        maps = esit_maps(net, s.inputs, plane=run.plane, device=device)
        voxel_ml = float(np.prod(s.grid.voxel_size)) / 1000.0
        parts.append(region_strength_table([maps], masks[key], gm=None if gm is None else [_gm_on_grid(run, i, gm, s.grid)],
                                           voxel_ml=voxel_ml, covariates=[_covariates(run, s)]))
        brain = np.ones(s.shape, bool) if s.mask is None else np.asarray(s.mask, bool)
        attention_sum += maps["attention"][:, brain].sum(axis=1)
        brain_voxels += int(brain.sum())
        if i in shown:
            maps_out[i] = (s, {k: np.where(brain, maps[k], 0.0).astype(np.float32) for k in MAPS_WRITTEN})
    strength = pd.concat(parts, ignore_index=True)
    associations = pd.DataFrame()
    if gm is not None:
        associations = pd.concat([strength_associations(strength, value=v).assign(value=v)
                                  .merge(group_tests(strength, v), on=["region", "channel"], how="left")
                                  for v in VALUES], ignore_index=True)
        associations.insert(0, "value", associations.pop("value"))
    summary = _summary(associations)
    share = attention_sum / max(brain_voxels, 1)

    clear_output(folder.esit, overwrite, COMMAND)
    folder.esit_maps.mkdir(parents=True, exist_ok=True)
    written = [write_text_atomic(folder.esit_strength, strength.to_csv(sep="\t", index=False)),
               write_text_atomic(folder.esit_associations, associations.to_csv(sep="\t", index=False)),
               write_text_atomic(folder.esit_summary, summary.to_csv(sep="\t", index=False))]
    for i in shown:
        s, maps = maps_out[i]
        for kind in MAPS_WRITTEN:
            vol = np.stack([to_original_grid(m, s) for m in maps[kind]], axis=-1)
            written.append(save_volume(folder.esit_map(s.key, kind), vol, s.reference.affine))
        png = figure_png(esit_montage(maps["attention"], maps["embeddings"], s.grid.affine, z_mm=z_mm,
                                      title=f"{run.name}: subject {s.key}"))
        written.append(write_atomic(folder.esit_montage(s.key), lambda p, b=png: p.write_bytes(b)))
    meta = {"run": str(run.folder.root), "network": run.generator_name, "n_regions": int(net.n_regions)
            if hasattr(net, "n_regions") else None, "subjects": len(rows),
            "maps_written_for": [run.manifest.key(i) for i in shown], "regions": {k: list(v) for k, v in regions.items()},
            "atlas": atlas, "gm_column": gm, "attention_share_in_brain": [round(float(v), 6) for v in share],
            "gm_volume": "sum of the GM map over the region x voxel volume (ml), on the working grid",
            "values": {"embedding": "mean tissue embedding in the region", "attention": "mean attention",
                       "product": "mean attention x embedding", "contribution": "mean head weight x product "
                       "(the channel's additive share of the predicted, normalised PET)"}}
    written.append(write_text_atomic(folder.esit_meta, json.dumps(meta, indent=2) + "\n"))
    return ESITExplanation(run.folder.root, strength, associations, summary, share, written)


def format_strength(summary: pd.DataFrame) -> str:
    """A text table of :attr:`ESITExplanation.summary` (one line per region and value)."""
    if summary.empty:
        return "(no GM map among the inputs: no association with GM volume)"
    means = [c for c in summary.columns if c.startswith("mean_")]
    head = ["region", "value", "channel", "dominant share", "r with GM volume", "p", "ANOVA p (group)", *means]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for _, r in summary.iterrows():
        cells = [str(r["region"]), str(r["value"]), str(int(r["channel"])), f"{r['dominant_share']:.2f}",
                 f"{r['r_gm']:.3f}", f"{r['p_gm']:.2g}", f"{r.get('p_group', float('nan')):.2g}",
                 *(f"{r[m]:.4g}" for m in means)]
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def format_attention(share: np.ndarray) -> str:
    """One line: each channel's share of the attention over the brain, largest first."""
    order = np.argsort(-np.asarray(share), kind="stable")
    parts = [f"#{int(r)} {100 * float(share[r]):.1f} %" for r in order if share[r] >= 0.005]
    return "attention over the brain (all subjects): " + ", ".join(parts)


__all__ = ["ESITExplanation", "esit_network", "explain_esit", "format_attention", "format_strength", "group_tests"]
