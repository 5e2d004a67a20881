"""Readable summaries of a simulated cohort, measured from the files it wrote.

fdg: per group, posterior cingulate + precuneus SUVR and hippocampal GM volume (AAL2).
ms: per patient, lesion vs NAWM PIB DVR, the demyelinated-voxel percentages and the
dynamic remyelination index, and its correlation with EDSS.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

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
        (GM probability summed over the AAL2 hippocampi, in ml; the true GM map ``GM_true``
        when the manifest has it, else ``GM``).
    """
    out = []
    labels = names = None
    gm_column = "GM_true" if "GM_true" in manifest.table.columns else "GM"
    for i, row in manifest.rows():
        fdg = load_volume(manifest.path(i, "FDG"))
        gm = load_volume(manifest.path(i, gm_column)).data
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


def myelin_indices(manifest: Manifest, *, bin_mm: float | None = None) -> pd.DataFrame:
    """Lesion/NAWM DVR and the thesis' demyelination indices for every patient of an ms cohort.

    Scans are read by :func:`neurotrans.analysis.ms_scan.load_ms_scan` and the indices
    computed by :mod:`neurotrans.analysis.myelin`, as in the MS evaluation: a lesion voxel
    is demyelinated when its PIB DVR is below the controls' WM mean - 1 SD at the same
    distance from CSF (bins of ``bin_mm``, default one voxel up to 3 mm); the dynamic
    remyelination index is the fraction of lesion voxels demyelinated at t0 that are back
    above the threshold at t1, the dynamic demyelination index the fraction of normally
    myelinated lesion voxels at t0 that are demyelinated at t1 (both on the baseline
    lesion mask). t0 and t1 are a patient's first two sessions in sorted order.

    Returns:
        one row per patient: subject, EDSS, lesion_dvr, nawm_dvr (t0), lesion_voxels,
        pct_demyelinated_t0/_t1 (of the baseline lesion load), global_change (t1 - t0,
        percentage points), demyelination_index, remyelination_index (absent without t1).

    References:
        Bodini et al., Ann Neurol 2016; Wei, PhD thesis 2020, Sec. 4.2.5.
    """
    from neurotrans.analysis import myelin
    from neurotrans.analysis.ms_scan import control_reference, load_ms_scan, participants

    part = participants(manifest)
    scans = [load_ms_scan(manifest, i, str(part.loc[str(row["subject"]), "group"])) for i, row in manifest.rows()]
    reference = control_reference([s for s in scans if not s.patient], bin_mm=bin_mm)
    sessions: dict[str, list] = {}
    for s in scans:
        if s.patient:
            sessions.setdefault(s.subject, []).append(s)
    rows = []
    for subject, visits in sessions.items():
        t0, *later = sorted(visits, key=lambda s: s.session)
        les = t0.lesions
        demy0 = myelin.demyelinated_map(t0.pib, les, t0.distance, reference)
        edss = part.loc[subject, "EDSS"] if "EDSS" in part.columns else float("nan")
        rec = {"subject": subject, "EDSS": float(edss),
               "lesion_dvr": float(t0.pib[les].mean()) if les.any() else float("nan"),
               "nawm_dvr": float(t0.pib[t0.nawm].mean()),
               "lesion_voxels": int(les.sum()),
               "pct_demyelinated_t0": 100.0 * demy0.sum() / les.sum() if les.any() else float("nan")}
        if later and les.any():
            t1 = later[0]
            demy1 = myelin.demyelinated_map(t1.pib, les, t1.distance, reference)
            idx = myelin.myelin_indices(demy0, demy1, les)
            rec["pct_demyelinated_t1"] = 100.0 * idx["fraction_t1"]
            rec["global_change"] = 100.0 * idx["global"]
            rec["demyelination_index"] = idx["dynamic_demyelination"]
            rec["remyelination_index"] = idx["dynamic_remyelination"]
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
