"""``neurotrans explain cca RUN [RUN ...]``: per-layer CCA similarity of trained networks, Fig. 3.

For each run: sample ``n_subjects`` (20) of its training subjects, prepare them as in
training, and compute the CCA similarity of every LeakyReLU activation with the concepts
T1, PET (the run's target), GM, WM, CSF and AAL2 regions
(:func:`neurotrans.explain.similarity.network_similarity`), over the voxels that are brain
tissue or CSF. The tissue concepts are the phantom's true maps ``GM_true/WM_true/CSF_true``
when the manifest has them (what the PET was generated from), else the manifest's
``GM/WM/CSF`` (segmented maps); ``cca.json`` says which. Several runs (e.g. the folds of a
cross-validation) give the mean +- SD per layer, the paper's shaded curves; every run
explained together gets the same summary and curves next to its own table.

The leading canonical components of chosen layers are written as images of one subject
(the first sampled one): the CCA is refitted on all that subject's brain voxels, so the
image is that subject's best linear read-out of the concept from the layer (the paper's
Fig. S1/S2 show components of its pooled fit; on ~50,000 voxels per subject the two agree
closely, and the pooled fit would need every subject's activations again). Default
components: the paper's (actv3 against GM/WM/CSF, actv15 against caudate and putamen) for
an 18-activation U-Net (``unet_esit_paper``), else the layer where GM, PET and putamen
peak.

References: the ESIT paper ("Demystifying T1-MRI to FDG-PET translation", Sec. 3-4, Fig. 3,
Fig. S1, Fig. S2).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from neurotrans.errors import InputError
from neurotrans.explain.activations import activation_matrices, record_activations
from neurotrans.explain.cca import cca, component_image, summarise_similarity
from neurotrans.explain.folder import ExplainFolder
from neurotrans.explain.runs import (
    OpenRun,
    check_output,
    check_plain_inputs,
    clear_output,
    open_run,
    sample_subjects,
)
from neurotrans.explain.similarity import DEFAULT_REGIONS, CCASubject, atlas_concepts, load_concepts
from neurotrans.io.atomic import write_atomic, write_text_atomic

COMMAND = "neurotrans explain cca"
TISSUES = ("GM", "WM", "CSF")
IMAGE_CONCEPTS = ("T1", "PET")
# the paper's component figures: actv3 against the tissue maps (Fig. S1), actv15 against the striatum (Fig. S2)
PAPER_COMPONENTS = (("actv3", "GM"), ("actv3", "WM"), ("actv3", "CSF"), ("actv15", "caudate"), ("actv15", "putamen"))
PAPER_LAYERS = 18
PEAK_CONCEPTS = ("GM", "PET", "putamen")
SLAB = 8  # slices per forward pass batch when a whole subject's activations are read


@dataclass(frozen=True)
class CCAExplanation:
    """What ``explain cca`` computed and wrote.

    Args:
        runs: the run folders, in the order given.
        tables: per run, the similarity table (``layer, path, concept, kind, scale, similarity, ...``).
        summary: mean / SD / n per layer and concept over the runs.
        written: every file written.
    """

    runs: list[Path]
    tables: list[pd.DataFrame]
    summary: pd.DataFrame
    written: list[Path]


def concept_columns(run: OpenRun) -> tuple[dict[str, str], bool]:
    """Concept -> manifest column, and whether the tissue concepts are the true maps."""
    columns = set(run.manifest.table.columns)
    out = {}
    if "T1w" in columns:
        out["T1"] = "T1w"
    if run.info.target in columns:
        out["PET"] = run.info.target
    true = all(f"{t}_true" in columns for t in TISSUES)
    for t in TISSUES:
        column = f"{t}_true" if true else t
        if column in columns:
            out[t] = column
    return out, true


def concept_kind(concept: str) -> str:
    """``image`` (T1, PET), ``tissue`` (GM, WM, CSF) or ``region`` (atlas)."""
    return "image" if concept in IMAGE_CONCEPTS else "tissue" if concept in TISSUES else "region"


def cca_network(run: OpenRun) -> nn.Module:
    """The network ``explain cca`` analyses; refuses, in one line, runs it cannot explain."""
    from neurotrans.explain.activations import activation_modules
    from neurotrans.networks.nets.esit import ESIT

    check_plain_inputs(run, COMMAND)
    net = run.translator()
    if any(isinstance(m, ESIT) for m in net.modules()):
        raise InputError(run.folder.root, "is an ESIT run, whose tissue and coordinate paths have no single layer "
                         "order to trace", f"explain it with `neurotrans explain esit {run.folder.root}`")
    if not activation_modules(net):
        raise InputError(run.folder.root, f"its network ({run.generator_name}) has no LeakyReLU activation, the "
                         "layers the CCA analysis reads", "explain a U-Net or pix2pix run (LeakyReLU activations)")
    return net


def layer_scales(net: nn.Module, in_channels: int, spatial_dims: int, multiple: int) -> dict[str, int]:
    """Per activation, how many input voxels one of its voxels spans along an axis (1, 2, ... 16)."""
    size = 2 * max(int(multiple), 1)
    x = torch.zeros((1, in_channels, *([size] * spatial_dims)))
    device = next(net.parameters()).device
    records = record_activations(net.eval(), x.to(device), transform=lambda a: torch.tensor(a.shape[2:]))
    return {r.name: max(1, size // int(r.value[0])) for r in records}


class _Subjects(Sequence):
    """Sampled subjects prepared on demand, so that only one subject's volumes are in memory at a time."""

    def __init__(self, run: OpenRun, rows: list[int], columns: Mapping[str, str],
                 regions: Mapping[str, Sequence[str]], atlas: str) -> None:
        self.run, self.rows, self.columns, self.regions, self.atlas = run, rows, columns, regions, atlas
        self._atlas_cache: dict[Any, dict[str, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, j: int) -> CCASubject:  # type: ignore[override]
        if not 0 <= j < len(self.rows):
            raise IndexError(j)
        subject, concepts = subject_concepts(self.run, self.rows[j], self.columns, self.regions, self.atlas,
                                             self._atlas_cache)
        return CCASubject(subject.inputs, analysis_mask(subject, concepts), concepts, subject.key)


def subject_concepts(run: OpenRun, i: int, columns: Mapping[str, str], regions: Mapping[str, Sequence[str]],
                     atlas: str, cache: dict[Any, dict[str, np.ndarray]] | None = None) -> tuple[Any, dict[str, np.ndarray]]:
    """Row ``i`` prepared as in training, and its concept maps on the working grid."""
    subject = run.prepare(i)
    concepts = load_concepts(run.manifest, i, subject.grid, columns=columns, regions={})
    for name in IMAGE_CONCEPTS:  # the paper min-max normalises T1 and PET per image before pooling subjects
        if name in concepts:
            lo, hi = float(concepts[name].min()), float(concepts[name].max())
            concepts[name] = ((concepts[name] - lo) / (hi - lo) if hi > lo else concepts[name]).astype(np.float32)
    cache = {} if cache is None else cache
    key = (tuple(subject.grid.shape), np.asarray(subject.grid.affine).round(6).tobytes())
    if regions and key not in cache:
        cache[key] = atlas_concepts(subject.grid, regions, atlas)  # the same for every subject on one grid
    concepts.update(cache.get(key, {}))
    return subject, concepts


def analysis_mask(subject: Any, concepts: Mapping[str, np.ndarray]) -> np.ndarray:
    """Voxels that are brain tissue or CSF: the brain mask, and GM + WM + CSF > 0.5 when known."""
    mask = np.ones(subject.shape, bool) if subject.mask is None else np.asarray(subject.mask, bool).copy()
    if all(t in concepts for t in TISSUES):
        mask &= sum(np.asarray(concepts[t], np.float64) for t in TISSUES) > 0.5
    if not mask.any():
        raise InputError(subject.key, "has no voxel of brain tissue or CSF in its mask", "check its brain mask "
                         "and tissue maps")
    return mask


def run_similarity(run: OpenRun, net: nn.Module, *, n_subjects: int, max_voxels: int | None, seed: int,
                   regions: Mapping[str, Sequence[str]], atlas: str, device: str) -> tuple[pd.DataFrame, dict]:
    """One run's similarity table and what it was computed from."""
    from neurotrans.explain.similarity import network_similarity

    train = run.info.train_subjects
    if not train:
        raise InputError(run.folder.root, "its run.json lists no training subject", "retrain the run")
    chosen = sample_subjects(train, n_subjects, seed)
    rows = []
    for s in chosen:  # one session per subject, as the paper samples subjects
        hit = run.rows([s])
        if hit:
            rows.append(hit[0])
    if not rows:
        raise InputError(run.info.manifest, "holds none of the run's training subjects", "explain the run with "
                         "the manifest it was trained on")
    columns, true_maps = concept_columns(run)
    subjects = _Subjects(run, rows, columns, regions, atlas)
    table = network_similarity(net, subjects, spatial_dims=run.info.spatial_dims, plane=run.plane,
                               multiple=run.info.size_multiple, max_voxels=max_voxels, seed=seed, device=device)
    scales = layer_scales(net, run.info.in_channels, run.info.spatial_dims, run.info.size_multiple)
    table.insert(2, "scale", table["layer"].map(scales).astype(int))
    table.insert(4, "kind", table["concept"].map(concept_kind))
    meta = {"run": str(run.folder.root), "network": run.generator_name, "n_subjects": len(rows),
            "subjects": [run.manifest.key(i) for i in rows], "rows": rows, "seed": seed, "max_voxels": max_voxels,
            "concept_columns": columns, "atlas": atlas, "regions": {k: list(v) for k, v in regions.items()},
            "tissue_maps": ("true maps the PET was generated from (" + ", ".join(columns[t] for t in TISSUES if t in columns)
                            + ")") if true_maps else ("the manifest's maps (" + ", ".join(
                                columns[t] for t in TISSUES if t in columns) + "; segmented from the T1 in the "
                                "simulated fdg cohort)"),
            "mask": "brain mask and GM + WM + CSF > 0.5 (voxels of brain tissue or CSF)",
            "images": "T1 and PET min-max normalised per subject (whole volume), as in the paper",
            "activations": "every LeakyReLU output, in forward order (actv1 ...), resampled to the input grid"}
    return table, meta


def summary_table(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Mean / SD / n per layer and concept over runs, with each layer's path, scale and channels."""
    summary = summarise_similarity(list(tables))
    first = tables[0].drop_duplicates("layer").set_index("layer")
    summary.insert(1, "path", summary["layer"].map(first["path"]))
    summary.insert(2, "scale", summary["layer"].map(first["scale"]).astype(int))
    summary.insert(3, "n_channels", summary["layer"].map(first["n_channels"]).astype(int))
    summary.insert(5, "kind", summary["concept"].map(concept_kind))
    return summary


def default_components(table: pd.DataFrame) -> list[tuple[str, str]]:
    """The paper's component figures for an 18-activation U-Net, else the peak layer of GM, PET and putamen."""
    layers = list(dict.fromkeys(table["layer"]))
    concepts = set(table["concept"])
    if len(layers) == PAPER_LAYERS:
        return [(layer, c) for layer, c in PAPER_COMPONENTS if c in concepts]
    out = []
    for c in PEAK_CONCEPTS:
        rows = table[table["concept"] == c].dropna(subset=["similarity"])
        if len(rows):
            out.append((str(rows.loc[rows["similarity"].idxmax(), "layer"]), c))
    return out


def parse_components(specs: Sequence[str], table: pd.DataFrame) -> list[tuple[str, str]]:
    """``["actv3:GM", ...]`` checked against the layers and concepts of ``table``."""
    layers, concepts = list(dict.fromkeys(table["layer"])), list(dict.fromkeys(table["concept"]))
    out = []
    for spec in specs:
        layer, sep, concept = str(spec).partition(":")
        if not sep or layer not in layers or concept not in concepts:
            raise InputError(f"--components {spec}", "is not LAYER:CONCEPT of this network",
                             f"layers {layers[0]}..{layers[-1]}, concepts {', '.join(concepts)}")
        out.append((layer, concept))
    return out


def layer_matrices(net: nn.Module, inputs: np.ndarray, mask: np.ndarray, layers: Sequence[str], *,
                   spatial_dims: int, plane: str, multiple: int, device: str) -> dict[str, np.ndarray]:
    """``{layer: (N, c)}`` over every voxel of ``mask`` for the chosen layers only.

    A 2D model is read in slabs of slices (its slices are independent), so memory holds the
    chosen layers of the whole mask plus one slab of every layer.
    """
    from neurotrans.data.slicing import plane_axis

    mask = np.asarray(mask, bool)
    rank = np.full(mask.shape, -1, dtype=np.int64)
    rank[mask] = np.arange(int(mask.sum()))
    axis = plane_axis(plane) if spatial_dims == 2 else 0
    step = SLAB if spatial_dims == 2 else mask.shape[0]
    out: dict[str, np.ndarray] = {}
    for start in range(0, mask.shape[axis], step):
        part = np.zeros_like(mask)
        index = [slice(None)] * 3
        index[axis] = slice(start, start + step)
        part[tuple(index)] = mask[tuple(index)]
        if not part.any():
            continue
        mats, _ = activation_matrices(net, inputs, part, spatial_dims=spatial_dims, plane=plane, multiple=multiple,
                                      device=device)
        for layer in layers:
            if layer not in out:
                out[layer] = np.empty((int(mask.sum()), mats[layer].shape[1]), dtype=np.float32)
            out[layer][rank[part]] = mats[layer]
    return out


def components(run: OpenRun, net: nn.Module, row: int, specs: Sequence[tuple[str, str]], *,
               columns: Mapping[str, str], regions: Mapping[str, Sequence[str]], atlas: str,
               device: str) -> tuple[Any, list[dict[str, Any]]]:
    """Leading canonical component of each ``(layer, concept)`` for manifest row ``row``.

    Returns:
        the prepared subject and, per spec, ``{"layer", "concept", "similarity", "component",
        "concept_map"}`` (volumes on the working grid, component 0 outside the mask).
    """
    subject, concepts = subject_concepts(run, row, columns, regions, atlas)
    mask = analysis_mask(subject, concepts)
    mats = layer_matrices(net, subject.inputs, mask, sorted({layer for layer, _ in specs}),
                          spatial_dims=run.info.spatial_dims, plane=run.plane, multiple=run.info.size_multiple,
                          device=device)
    out = []
    for layer, concept in specs:
        y = np.asarray(concepts[concept], np.float64)[mask]
        if np.ptp(y) == 0:
            continue  # a region outside this subject's mask: nothing to show
        result = cca(mats[layer], y, n_components=1)
        out.append({"layer": layer, "concept": concept, "similarity": result.similarity,
                    "component": component_image(result, mats[layer], mask),
                    "concept_map": np.where(mask, concepts[concept], 0.0).astype(np.float32)})
    return subject, out


def explain_cca(run_dirs: Sequence[str | Path], *, n_subjects: int = 20, max_voxels: int | None = 2000,
                seed: int = 0, component_specs: Sequence[str] | None = None,
                regions: Mapping[str, Sequence[str]] | None = None, atlas: str = "AAL2",
                overwrite: bool = False, device: str = "cpu") -> CCAExplanation:
    """Explain one run, or the folds of one model pooled, by per-layer CCA similarity.

    Args:
        run_dirs: trained run folders (the same network; e.g. ``RUN_fold0 RUN_fold1 ...``).
        n_subjects: training subjects sampled per run (the paper: 20).
        max_voxels: voxels per subject (deterministic subsample; ``None``: all).
        seed: subject sampling and voxel subsampling seed.
        component_specs: ``LAYER:CONCEPT`` components to draw (default: see the module docstring).
        regions: concept -> AAL2 region-name prefixes (default :data:`DEFAULT_REGIONS`).
        atlas: region atlas (``AAL2`` or ``AICHA``).
        overwrite: replace an existing ``RUN/explain/cca``.
        device: where the networks run.

    Returns:
        a :class:`CCAExplanation`; files under each ``RUN/explain/cca/`` (see :mod:`neurotrans.explain.folder`).

    Raises:
        InputError: a run cannot be explained (one line each), runs with different networks,
            or an existing explanation without ``overwrite``.
    """
    from neurotrans.data.preprocess import to_original_grid
    from neurotrans.explain.plots import component_montage, figure_png, similarity_curves
    from neurotrans.io.nifti import save_volume

    if not run_dirs:
        raise InputError("explain cca", "no run folder given", "pass at least one RUN_DIR")
    regions = dict(DEFAULT_REGIONS if regions is None else regions)
    runs = [open_run(r, device) for r in run_dirs]
    nets = [cca_network(run) for run in runs]
    if len({(run.generator_name, run.info.in_channels, len(list(n.modules()))) for run, n in zip(runs, nets, strict=True)}) > 1:
        raise InputError(", ".join(str(r.folder.root) for r in runs), "the runs have different networks, so their "
                         "layers cannot be averaged", "explain runs of one config together (e.g. its folds)")
    folders = [ExplainFolder.of_run(run.folder.root) for run in runs]
    for folder in folders:  # refuse before any work
        check_output(folder.cca, overwrite, COMMAND)
    tables, metas = [], []
    for run, net in zip(runs, nets, strict=True):
        table, meta = run_similarity(run, net, n_subjects=n_subjects, max_voxels=max_voxels, seed=seed,
                                     regions=regions, atlas=atlas, device=device)
        tables.append(table)
        metas.append(meta)
    summary = summary_table(tables)
    title = f"{runs[0].name} ({runs[0].generator_name})"
    curves = figure_png(similarity_curves(summary, title=title))
    written: list[Path] = []
    for run, net, folder, table, meta in zip(runs, nets, folders, tables, metas, strict=True):
        specs = (parse_components(component_specs, table) if component_specs is not None
                 else default_components(table))
        columns = meta["concept_columns"]
        subject, comps = components(run, net, meta["rows"][0], specs, columns=columns, regions=regions, atlas=atlas,
                                    device=device) if specs else (None, [])
        clear_output(folder.cca, overwrite, COMMAND)
        folder.cca.mkdir(parents=True, exist_ok=True)
        written.append(write_text_atomic(folder.cca_similarity, table.to_csv(sep="\t", index=False)))
        written.append(write_text_atomic(folder.cca_summary, summary.to_csv(sep="\t", index=False)))
        written.append(write_atomic(folder.cca_curves, lambda p: p.write_bytes(curves)))
        for c in comps:
            image = to_original_grid(c["component"], subject)
            path = folder.cca_component(subject.key, c["layer"], c["concept"])
            written.append(save_volume(path, image, subject.reference.affine, subject.reference.header))
        if comps:
            png = figure_png(component_montage(comps, subject.grid.affine, title=f"{run.name}: subject {subject.key}"))
            written.append(write_atomic(folder.cca_components_png, lambda p, b=png: p.write_bytes(b)))
        meta = {**meta, "pooled_runs": [str(r.folder.root) for r in runs],
                "components": {"subject": subject.key if subject is not None else None,
                               "fit": "CCA refitted on all of the subject's analysed voxels",
                               "items": [{k: c[k] for k in ("layer", "concept", "similarity")} for c in comps]}}
        written.append(write_text_atomic(folder.cca_meta, json.dumps(meta, indent=2) + "\n"))
    return CCAExplanation([run.folder.root for run in runs], tables, summary, written)


def format_similarity(summary: pd.DataFrame) -> str:
    """A text table: per layer the mean (+- SD) similarity with T1, PET, GM, WM, CSF and the regions' mean."""
    concepts = [c for c in (*IMAGE_CONCEPTS, *TISSUES) if c in set(summary["concept"])]
    several = int(summary["n"].max()) > 1
    head = ["layer", "scale", *concepts, "regions (mean)", "best region"]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for layer, g in summary.groupby("layer", sort=False):
        cells = [str(layer), f"1/{int(g['scale'].iloc[0])}"]
        for c in concepts:
            r = g[g["concept"] == c].iloc[0]
            cells.append(f"{r['mean']:.3f}" + (f" +- {r['sd']:.3f}" if several else ""))
        reg = g[g["kind"] == "region"].dropna(subset=["mean"])
        if len(reg):
            best = reg.loc[reg["mean"].idxmax()]
            cells += [f"{reg['mean'].mean():.3f}", f"{best['concept']} {best['mean']:.3f}"]
        else:
            cells += ["", ""]
        lines.append(" | ".join(cells))
    return "\n".join(lines)


__all__ = ["CCAExplanation", "concept_columns", "default_components", "explain_cca", "format_similarity",
           "layer_matrices", "layer_scales", "summary_table"]
