"""Readable summaries of a simulated cohort, measured from the files it wrote.

fdg: per group, posterior cingulate + precuneus SUVR and hippocampal GM volume (AAL2).
ms: per patient, lesion vs NAWM PIB DVR, the demyelinated-voxel percentages and the
dynamic remyelination index, and its correlation with EDSS.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage, stats

from neurotrans.data.atlas import load_atlas, region_mask
from neurotrans.data.grid import Grid
from neurotrans.io.manifest import Manifest, read_manifest
from neurotrans.io.nifti import load_volume
from neurotrans.phantom.cohort import DISCLAIMER, CohortResult

PCC_PRECUNEUS = ("Cingulate_Post", "Precuneus")
HIPPOCAMPUS = ("Hippocampus",)
ANTERIOR_CINGULATE = ("Cingulate_Ant",)


def fdg_measures(manifest: Manifest) -> pd.DataFrame:
    """Per-row regional measures of an fdg cohort.

    Returns:
        one row per manifest row: subject, group, age, ``pcc_precuneus_suvr`` and ``acc_suvr``
        (mean FDG SUVR in the AAL2 regions inside the brain mask) and ``hippocampus_gm_ml``
        (GM probability summed over the AAL2 hippocampi, in ml).
    """
    out = []
    labels = names = None
    for i, row in manifest.rows():
        fdg = load_volume(manifest.path(i, "FDG"))
        gm = load_volume(manifest.path(i, "GM")).data
        brain = load_volume(manifest.path(i, "brainmask")).data > 0.5
        if labels is None:
            labels, names = load_atlas("AAL2", Grid(fdg.shape, fdg.affine))
        voxel_ml = float(np.prod(fdg.voxel_size)) / 1000.0
        pcc = region_mask(labels, names, *PCC_PRECUNEUS) & brain
        acc = region_mask(labels, names, *ANTERIOR_CINGULATE) & brain
        hip = region_mask(labels, names, *HIPPOCAMPUS)
        out.append({"subject": row["subject"], "group": row["group"], "age": float(row["age"]),
                    "pcc_precuneus_suvr": float(fdg.data[pcc].mean()), "acc_suvr": float(fdg.data[acc].mean()),
                    "hippocampus_gm_ml": float(gm[hip].sum()) * voxel_ml})
    return pd.DataFrame(out)


def myelin_indices(manifest: Manifest, *, bin_mm: float | None = None, max_mm: float = 30.0) -> pd.DataFrame:
    """Lesion/NAWM DVR and the thesis' demyelination indices for every patient of an ms cohort.

    A lesion voxel is demyelinated when its PIB DVR is below the mean - 1 SD of the controls'
    WM voxels at the same distance from the CSF (distance bins of ``bin_mm``, default one voxel,
    beyond ``max_mm`` pooled). The dynamic remyelination index is the fraction of lesion voxels
    demyelinated at t0 that are back above the threshold at t1; the dynamic demyelination index
    the fraction of normally myelinated lesion voxels at t0 that are demyelinated at t1.

    Returns:
        one row per patient: subject, EDSS, lesion_dvr, nawm_dvr (t0), pct_demyelinated_t0/_t1 (of
        the baseline lesion load), global_change (t1 - t0, percentage points), demyelination_index,
        remyelination_index (NaN without a t1 session).

    References:
        Bodini et al., Ann Neurol 2016; thesis ch. 4.2.5 (indices of myelin content change).
    """
    table = manifest.table
    data: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for i, row in manifest.rows():
        pib = load_volume(manifest.path(i, "PIB"))
        csf = load_volume(manifest.path(i, "CSF")).data > 0.5
        brain = load_volume(manifest.path(i, "brainmask")).data > 0.5
        step = bin_mm or float(pib.voxel_size[0])
        dist = ndimage.distance_transform_edt(~csf, sampling=pib.voxel_size)
        bins = np.minimum((dist / step).astype(np.int64), int(max_mm / step))
        maps = {"pib": pib.data, "bins": bins, "brain": brain,
                "wm": (load_volume(manifest.path(i, "WM")).data > 0.5) & brain}
        if row["group"] == "MS":
            maps["lesions"] = load_volume(manifest.path(i, "lesions")).data > 0.5
            maps["nawm"] = load_volume(manifest.path(i, "NAWM")).data > 0.5
        data[(str(row["subject"]), str(row["session"]))] = maps
    controls = [k for k in data if table.loc[(table["subject"] == k[0]) & (table["session"] == k[1]),
                                             "group"].iloc[0] == "HC"]
    n_bins = 1 + max(int(m["bins"].max()) for m in data.values())
    values = np.concatenate([data[k]["pib"][data[k]["wm"]] for k in controls])
    where = np.concatenate([data[k]["bins"][data[k]["wm"]] for k in controls])
    count = np.bincount(where, minlength=n_bins).astype(np.float64)
    mean = np.bincount(where, values, minlength=n_bins) / np.maximum(count, 1)
    var = np.bincount(where, values**2, minlength=n_bins) / np.maximum(count, 1) - mean**2
    threshold = mean - np.sqrt(np.maximum(var, 0.0))
    # bins without control WM (none at distance 0) take the nearest populated bin's threshold
    filled = np.flatnonzero(count > 0)
    threshold = threshold[filled[np.abs(np.arange(n_bins)[:, None] - filled[None]).argmin(axis=1)]]

    rows = []
    patients = table.loc[table["group"] == "MS", "subject"].astype(str)
    for subject in dict.fromkeys(patients):
        t0 = data[(subject, "t0")]
        les = t0["lesions"]
        demyel0 = t0["pib"][les] < threshold[t0["bins"][les]]
        rec = {"subject": subject,
               "EDSS": float(table.loc[table["subject"] == subject, "EDSS"].iloc[0]),
               "lesion_dvr": float(t0["pib"][les].mean()) if les.any() else float("nan"),
               "nawm_dvr": float(t0["pib"][t0["nawm"]].mean()),
               "lesion_voxels": int(les.sum()),
               "pct_demyelinated_t0": 100.0 * float(demyel0.mean()) if les.any() else float("nan")}
        t1 = data.get((subject, "t1"))
        if t1 is not None and les.any():
            demyel1 = t1["pib"][les] < threshold[t1["bins"][les]]
            rec["pct_demyelinated_t1"] = 100.0 * float(demyel1.mean())
            rec["global_change"] = rec["pct_demyelinated_t1"] - rec["pct_demyelinated_t0"]
            rec["demyelination_index"] = float((demyel1 & ~demyel0).sum() / max((~demyel0).sum(), 1))
            rec["remyelination_index"] = float((~demyel1 & demyel0).sum() / max(demyel0.sum(), 1))
        rows.append(rec)
    return pd.DataFrame(rows)


def _mean_sd(values: pd.Series, fmt: str = ".2f") -> str:
    if len(values) == 0:
        return "-"
    sd = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():{fmt}} +- {sd:{fmt}}"


def _format_fdg(manifest: Manifest) -> list[str]:
    m = fdg_measures(manifest)
    lines = [f"{'group':<6}{'n':>4}{'age':>16}{'PCC+precuneus SUVR':>22}{'hippocampal GM (ml)':>22}"]
    for group in ("CN", "MCI", "AD"):
        g = m[m["group"] == group]
        lines.append(f"{group:<6}{len(g):>4}{_mean_sd(g['age'], '.1f'):>16}"
                     f"{_mean_sd(g['pcc_precuneus_suvr'], '.3f'):>22}{_mean_sd(g['hippocampus_gm_ml']):>22}")
    cn, ad = m[m["group"] == "CN"], m[m["group"] == "AD"]
    if len(cn) and len(ad):
        lines.append(f"AD vs CN: PCC+precuneus SUVR {ad['pcc_precuneus_suvr'].mean():.3f} vs "
                     f"{cn['pcc_precuneus_suvr'].mean():.3f} "
                     f"({'AD < CN' if ad['pcc_precuneus_suvr'].mean() < cn['pcc_precuneus_suvr'].mean() else 'AD >= CN'}); "
                     f"hippocampal GM {ad['hippocampus_gm_ml'].mean():.2f} vs {cn['hippocampus_gm_ml'].mean():.2f} ml "
                     f"({'AD < CN' if ad['hippocampus_gm_ml'].mean() < cn['hippocampus_gm_ml'].mean() else 'AD >= CN'})")
    if len(m) > 2:
        r, p = stats.pearsonr(m["age"], m["acc_suvr"])
        lines.append(f"anterior cingulate SUVR vs age (all subjects): r = {r:.2f} (p = {p:.2g})")
    return lines


def _format_ms(manifest: Manifest) -> list[str]:
    idx = myelin_indices(manifest)
    lines = [f"{'patient':<9}{'EDSS':>6}{'lesion DVR':>12}{'NAWM DVR':>10}{'% demyel t0':>13}"
             f"{'% demyel t1':>13}{'remyel idx':>12}{'demyel idx':>12}"]
    for _, r in idx.iterrows():
        lines.append(f"{r['subject']:<9}{r['EDSS']:>6.1f}{r['lesion_dvr']:>12.3f}{r['nawm_dvr']:>10.3f}"
                     f"{r['pct_demyelinated_t0']:>13.1f}{r.get('pct_demyelinated_t1', np.nan):>13.1f}"
                     f"{r.get('remyelination_index', np.nan):>12.3f}{r.get('demyelination_index', np.nan):>12.3f}")
    below = bool((idx["lesion_dvr"] < idx["nawm_dvr"]).all())
    lines.append(f"lesion DVR < NAWM DVR in every patient: {'yes' if below else 'no'} "
                 f"({int((idx['lesion_dvr'] < idx['nawm_dvr']).sum())}/{len(idx)})")
    ok = idx.dropna(subset=["remyelination_index"]) if "remyelination_index" in idx else idx.iloc[:0]
    if len(ok) > 2:
        r, p = stats.pearsonr(ok["remyelination_index"], ok["EDSS"])
        lines.append(f"remyelination index vs EDSS: Pearson r = {r:.2f} (p = {p:.2g}, n = {len(ok)})")
        r, p = stats.pearsonr(ok["demyelination_index"], ok["EDSS"])
        lines.append(f"demyelination index vs EDSS: Pearson r = {r:.2f} (p = {p:.2g}, n = {len(ok)})")
    return lines


def format_summary(result: CohortResult | str | Path) -> str:
    """A readable group table of a simulated cohort, measured from its files.

    Args:
        result: what :func:`simulate_cohort` returned, or the cohort folder / its manifest.
    """
    path = result.manifest if isinstance(result, CohortResult) else Path(result)
    manifest = read_manifest(path)
    participants = pd.read_csv(manifest.root / "participants.tsv", sep="\t")
    cohort = "ms" if "PIB" in manifest.table.columns else "fdg"
    head = (f"simulated cohort '{cohort}': {len(participants)} subjects, {len(manifest)} sessions, "
            f"age {participants['age'].mean():.1f} +- {participants['age'].std(ddof=1) if len(participants) > 1 else 0:.1f}"
            f" ({manifest.root})")
    body = _format_fdg(manifest) if cohort == "fdg" else _format_ms(manifest)
    return "\n".join([head, *body, DISCLAIMER])
