"""neurotrans.report: figures (PNG) and one self-contained HTML page for a run folder.

``build_report(run_dir)`` reads ``RUN/evaluation`` (required), ``RUN/run.json``,
``RUN/predictions``, ``RUN/log.jsonl`` and ``RUN/summary.json`` (optional) and writes
``RUN/report/report.html`` and ``RUN/report/figures/*.png``; every path comes from
:class:`~neurotrans.io.run.RunFolder`.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from neurotrans.errors import InputError
from neurotrans.io.atomic import write_atomic, write_text_atomic
from neurotrans.io.nifti import load_volume
from neurotrans.io.outputs import check_output_folder
from neurotrans.io.run import REFERENCE_LABEL, RunFolder
from neurotrans.report.figures import (
    bland_altman,
    curve_columns,
    metric_boxplots,
    regional_bars,
    training_curves,
)
from neurotrans.report.html import FigureItem, render_page
from neurotrans.report.montage import montage
from neurotrans.report.rundata import RunData, load_run

__all__ = ["build_report", "choose_subjects", "load_run", "render_figures"]

MAX_INPUTS_SHOWN = 3  # a 10-sequence MS input would make montages unreadable
SCOPE_ORDER = {"volume": 0, "mid_axial": 1}
UNITS_ORDER = {"normalised": 0, "original": 1}
WRITTEN_RECORD = ".written.json"  # report/: the figures the last build wrote (the only ones it may remove)


def _png(fig: Figure, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    # no timestamp in the metadata: the same run gives the same bytes
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _model_rows(run: RunData):
    """The model's rows used to rank subjects: test subjects, volume scope, normalised units if present."""
    rows = run.per_subject[run.per_subject["method"].astype(str) == run.model_method]
    for col, preferred in (("scope", "volume"), ("units", "normalised")):
        if (rows[col] == preferred).any():
            rows = rows[rows[col] == preferred]
    test = run.info.test_subjects if run.info is not None else []
    if test and rows["subject"].astype(str).isin(test).any():
        rows = rows[rows["subject"].astype(str).isin(test)]
    return rows.dropna(subset=["mae"])


def choose_subjects(run: RunData, subjects: list[str] | None = None) -> list[tuple[str, int, float | None]]:
    """Manifest rows shown in montages: ``(label, row index, MAE)``.

    Args:
        run: the run folder's contents (needs its manifest).
        subjects: subject ids or ``subject_session`` keys; default the best, median and
            worst test subject by MAE (volume, normalised units).
    """
    manifest = run.manifest
    if manifest is None:
        return []
    table = manifest.table
    keys = [manifest.key(i) for i in range(len(manifest))]
    ranked = _model_rows(run)
    mae = {f"{r.subject}_{r.session}": float(r.mae) for r in ranked.itertuples(index=False)}
    if subjects:
        chosen = []
        for s in subjects:
            idx = [i for i in range(len(manifest)) if str(table.iloc[i]["subject"]) == s or keys[i] == s]
            if not idx:
                raise InputError(manifest.source or manifest.root, f"subject {s!r} is not in the manifest",
                                 f"choose from: {', '.join(manifest.subjects[:20])}")
            chosen += [(f"subject {keys[i]}", i, mae.get(keys[i])) for i in idx]
        return chosen
    ranked = ranked.assign(_key=ranked["subject"].astype(str) + "_" + ranked["session"].astype(str))
    ranked = ranked[ranked["_key"].isin(keys)].sort_values("mae", kind="stable")
    if ranked.empty:
        return []
    picks = {"best": 0, "median": (len(ranked) - 1) // 2, "worst": len(ranked) - 1}
    out, seen = [], set()
    for label, pos in picks.items():
        key = ranked["_key"].iloc[pos]
        if key not in seen:
            seen.add(key)
            out.append((f"{label} (test MAE)", keys.index(key), float(ranked["mae"].iloc[pos])))
    return out


def _montage_figures(run: RunData, subjects: list[str] | None, notes: list[str],
                     centre: tuple[int, int, int] | None = None) -> list[tuple[str, Figure, str]]:
    chosen = choose_subjects(run, subjects)
    target = run.target
    if run.manifest is None or target is None:
        return []
    if not chosen:
        notes.append("Montages left out: no evaluated subject matches a manifest row.")
        return []
    if target not in run.manifest.table.columns:
        notes.append(f"Montages left out: the manifest has no {target} column.")
        return []
    inputs = [m for m in (run.info.inputs if run.info is not None else ()) if m in run.manifest.table.columns]
    predictions = RunFolder(run.run_dir).predictions
    out = []
    for n, (label, i, mae) in enumerate(chosen):
        key = run.manifest.key(i)
        row = run.manifest.table.iloc[i]
        try:
            pred_path = predictions.path(str(row["subject"]), str(row["session"]), target)
        except InputError as err:  # ids that are not BIDS labels have no prediction path
            notes.append(f"Montage of {key} left out: {err}")
            continue
        real_path = run.manifest.path(i, target)
        if not pred_path.is_file() or real_path is None or not real_path.is_file():
            missing = pred_path if not pred_path.is_file() else real_path or f"{target} of {key}"
            notes.append(f"Montage of {key} left out: {missing} is missing.")
            continue
        real = load_volume(real_path)
        synthetic = load_volume(pred_path, allow_nonfinite=True)
        vols = {}
        for m in inputs[:MAX_INPUTS_SHOWN]:
            p = run.manifest.path(i, m)
            if p is not None and p.is_file():
                vols[m] = load_volume(p).data
        mask = None
        if "brainmask" in run.manifest.table.columns and run.manifest.path(i, "brainmask") is not None:
            mpath = run.manifest.path(i, "brainmask")
            mask = load_volume(mpath).data if mpath.is_file() else None
        shapes = {v.shape for v in [*vols.values(), synthetic.data]} | {real.shape}
        if mask is not None and mask.shape != real.shape:
            mask = None
        if len(shapes) > 1:
            notes.append(f"Montage of {key} left out: its images are on different grids ({sorted(shapes)}).")
            continue
        title = f"{label}: {key}" + (f", MAE {mae:.3g}" if mae is not None else "")
        fig = montage(vols, real.data, np.nan_to_num(synthetic.data), real.affine, target=target, mask=mask,
                      title=title, centre=centre)
        caption = (f"{label}: subject {key}. Columns: inputs, real and synthetic {target} (one grey scale, "
                   "0.5-99.5th percentile of the real image) and |synthetic - real| (own colour scale"
                   f"{', inside the brain mask' if mask is not None else ''}); rows: axial (anterior up), coronal and "
                   f"sagittal (superior up) slices through {'the chosen voxel' if centre else 'the centre of mass'}, "
                   "subject's right on the right.")
        out.append((f"montage_{n + 1}_{_safe(key)}.png", fig, caption))
    return out


def _regional_units(run: RunData) -> str:
    # regional means are in original units (SUVR/DVR for PET) as conventions.json records
    units = (run.conventions or {}).get("units")
    original = units.get("original") if isinstance(units, dict) else None
    return str(original.get("quantity", "")) if isinstance(original, dict) else ""


def _json(path: Path) -> dict:
    """A JSON object written by `neurotrans explain`, ``{}`` when absent or unreadable (captions only use it)."""
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _explain_figures(run: RunData) -> list[tuple[str, str, bytes, str]]:
    """The PNGs `neurotrans explain` wrote in RUN/explain: ``(section, name, bytes, caption)``."""
    from neurotrans.explain.folder import ExplainFolder

    folder = ExplainFolder.of_run(run.run_dir)
    found = []
    if folder.cca_curves.is_file():
        meta = _json(folder.cca_meta)
        used = (f" Tissue maps: {meta['tissue_maps']}; {meta.get('n_subjects')} training subjects per run, "
                f"{len(meta.get('pooled_runs', [1]))} run(s)." if "tissue_maps" in meta else "")
        found.append(("cca", "cca_curves.png", folder.cca_curves,
                      "Per-layer CCA similarity of the activations (after every LeakyReLU) with T1, PET and the tissue "
                      "maps (left) and with AAL2 regions (right), as the ESIT paper's Fig. 3; band: +- 1 SD across the "
                      f"runs explained together (folds), grey: the coarsest layers (explain/cca/curves.png).{used}"))
    if folder.cca_components_png.is_file():
        found.append(("cca", "cca_components.png", folder.cca_components_png,
                      "Leading canonical components of chosen layers for one training subject, beside the concept "
                      "they read out (explain/cca/components/*.nii.gz)."))
    share = _json(folder.esit_meta).get("attention_share_in_brain")
    used = ""
    if isinstance(share, list) and share:
        top = sorted(range(len(share)), key=lambda r: -float(share[r]))[:4]
        used = (" Mean attention over every subject's brain: " + ", ".join(f"channel {r} {100 * float(share[r]):.1f} %"
                                                                      for r in top) + ".")
    for path in folder.esit_montages():
        found.append(("esit", f"esit_{path.name}", path,
                      "ESIT regional attention channels (softmax over channels, driven by the MNI coordinates only) and "
                      f"tissue embeddings on one axial slice, as the paper's Fig. 5a (explain/esit/maps/*.nii.gz).{used}"))
    return [(section, name, path.read_bytes(), caption) for section, name, path, caption in found]


def render_figures(run: RunData, subjects: list[str] | None = None, notes: list[str] | None = None,
                   centre: tuple[int, int, int] | None = None) -> list[FigureItem]:
    """Every figure of the report, rendered to PNG bytes.

    Args:
        run: the run folder's contents.
        subjects: subjects for the montages (default best, median, worst by test MAE).
        notes: list that receives one line per figure left out.
        centre: montage slices as voxel indices in RAS order; default each subject's centre of mass.
    """
    notes = notes if notes is not None else []
    items: list[FigureItem] = []

    def add(section: str, name: str, fig: Figure, caption: str, group: str = "") -> None:
        items.append(FigureItem(section, name, _png(fig), caption, group))

    combos = run.per_subject[["scope", "units"]].drop_duplicates()
    combos = sorted(map(tuple, combos.to_numpy()), key=lambda c: (SCOPE_ORDER.get(c[0], 9), UNITS_ORDER.get(c[1], 9)))
    has_ref = (run.per_subject["method"] == REFERENCE_LABEL).any()
    for scope, units in combos:
        add("metrics", f"boxplot_{_safe(str(scope))}_{_safe(str(units))}.png",
            metric_boxplots(run.per_subject, str(scope), str(units)),
            f"Metrics per subject, {str(scope).replace('_', ' ')}, {units} units: box = quartiles, line = median, "
            "whiskers = 1.5 IQR" + ("; grey = each test image against the training subjects' images." if has_ref
                                    else "."), group=f"{scope}/{units}")
    for name, fig, caption in _montage_figures(run, subjects, notes, centre):
        add("montages", name, fig, caption)
    regional = run.tables.get("regional")
    if regional is not None and len(regional):
        units = _regional_units(run)
        add("regional", "regional_bars.png", regional_bars(regional, units=units),
            "Mean over subjects of the real and synthetic regional means, for the 20 regions with the largest "
            "mean absolute error (evaluation/regional.tsv).")
        add("regional", "bland_altman.png", bland_altman(regional, units=units),
            "Bland-Altman plot of regional means (one point per subject and region): bias and 95 % limits of "
            "agreement (bias +- 1.96 SD).")
    else:
        notes.append("Regional bar chart and Bland-Altman plot left out: evaluation/regional.tsv is absent.")
    for section, name, png, caption in _explain_figures(run):
        items.append(FigureItem(section, name, png, caption))
    if run.folder.age_sweep.is_file():  # a side-information model's age sweep (DUAL-GLOW Fig. 7)
        from neurotrans.report.sweep import age_sweep_figure, read_sweep

        add("regional", "age_sweep.png", age_sweep_figure(read_sweep(run.folder.age_sweep)),
            "PET generated from each test subject's MRI at several ages (side information): regional mean "
            "against age, one thin line per subject, mean and 1.96 SD band (age_sweep.tsv).")
    if run.log is not None and len(run.log) and any(curve_columns(run.log)):
        add("training", "training_curves.png", training_curves(run.log),
            "Training losses and validation metrics against the step (log.jsonl).")
    elif run.log is not None:
        notes.append("Training curves left out: log.jsonl holds no numeric values.")
    return items


def _written_before(record: Path) -> set[str]:
    """PNG names an earlier build recorded as its own (plain names only: a record naming
    ``../x`` or a folder would otherwise delete files the report never wrote)."""
    try:
        names = json.loads(record.read_text()).get("figures", [])
    except (OSError, ValueError, AttributeError):
        return set()
    return {n for n in names if isinstance(n, str) and re.fullmatch(r"[A-Za-z0-9._-]+\.png", n) and ".." not in n}


def build_report(run_dir: str | Path, subjects: list[str] | None = None,
                 centre: tuple[int, int, int] | None = None, overwrite: bool = False) -> Path:
    """Write ``RUN/report/report.html`` and ``RUN/report/figures/*.png`` for a run folder.

    An existing report is replaced only with ``overwrite``; the figures of that earlier
    build which this one does not write again (other montage subjects) are removed, as
    listed in ``report/.written.json``. Files the report did not write are never removed.

    Args:
        run_dir: run folder with ``evaluation/`` (from `neurotrans evaluate`).
        subjects: subjects (ids or ``subject_session``) shown in the montages; default the
            best, median and worst test subject by MAE.
        centre: montage slices as ``(x, y, z)`` voxel indices of the volume reordered to RAS;
            default each subject's intensity centre of mass.
        overwrite: replace an existing report.

    Returns:
        Path of the HTML page.

    Raises:
        InputError: the run folder or its evaluation is missing or malformed, or a report
            exists and ``overwrite`` is off.
    """
    out = RunFolder(Path(run_dir)).report
    page, record = out / "report.html", out / WRITTEN_RECORD
    if page.exists() and not overwrite:
        raise InputError(page, "already exists", "pass --overwrite to rebuild the report, or copy it elsewhere first")
    run = load_run(run_dir)
    check_output_folder(out, option="the run folder")
    notes = list(run.notes)
    figures = render_figures(run, subjects, notes, centre)
    fig_dir = out / "figures"
    for item in figures:
        write_atomic(fig_dir / item.name, lambda p, b=item.png: p.write_bytes(b))
    # PNGs of the earlier build (other subjects) would mislead; anything else in the folder is not ours
    written = {f.name for f in figures}
    for name in _written_before(record) - written:
        (fig_dir / name).unlink(missing_ok=True)
    write_text_atomic(record, json.dumps({"figures": sorted(written)}, indent=1) + "\n")
    return write_text_atomic(page, render_page(run, figures, notes))
