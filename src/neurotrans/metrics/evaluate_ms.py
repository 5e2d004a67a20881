"""MS evaluation of synthetic PIB: lesion contrast, myelin discrepancy, demyelination, indices, EDSS.

Given an ms-cohort manifest (sessions t0/t1; columns PIB, lesions, NAWM, WM, CSF; group,
EDSS, age and sex in the manifest or in ``participants.tsv`` beside it) and the paired
synthetic PIB, each producer returns one table:

- :func:`lesion_table` (``lesions``): per scan, mean DVR in WM (controls) or NAWM
  (patients) and lesions, Ratio 1 / Ratio 2, demyelinated fraction of the lesions, DICE
  of the demyelination maps;
- :func:`myelin_discrepancy_table`: roi, mean, std, n of |mean real - mean synthetic|;
- :func:`indices_table` (``indices``): per patient, the global / dynamic-demyelination /
  dynamic-remyelination indices from real and synthetic PIB and the DICE of their maps;
- :func:`edss_regression_table`: EDSS ~ index + age + sex + lesion_load (Table 4.3);
- :func:`ms_bland_altman`: rows WM_NAWM_DVR and lesion_DVR of ``bland_altman``.

Scans are read by :func:`neurotrans.analysis.ms_scan.load_ms_scan` (the phantom summary's
rules). Synthetic demyelination maps use thresholds from the controls' synthetic PIB when
every control has one (the same procedure applied to the synthetic images), else the true ones.

References:
    Wei, PhD thesis 2020, chapters 2-4 (Tables 3.2 and 4.3, Sec. 4.2.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from neurotrans.analysis import myelin
from neurotrans.analysis.lesions import contrast_ratios
from neurotrans.analysis.ms_scan import (
    CONTROL_GROUP,
    MSScan,
    control_reference,
    load_ms_scan,
    participants,
)
from neurotrans.analysis.regression import REGRESSION_COLUMNS, encode_sex, ols
from neurotrans.analysis.stats import bland_altman, dice
from neurotrans.errors import InputError
from neurotrans.io.manifest import Manifest, read_manifest
from neurotrans.io.nifti import load_volume
from neurotrans.io.run import PredictionFolder, RunFolder
from neurotrans.metrics.conventions import ms_conventions
from neurotrans.metrics.pairing import in_sample_subjects, pair_predictions
from neurotrans.metrics.regional import BLAND_ALTMAN_COLUMNS

MS_COLUMNS = ("PIB", "lesions", "NAWM", "WM", "CSF")
INDICES = ("dynamic_demyelination", "dynamic_remyelination")
DATA = ("real", "synthetic")
LESION_COLUMNS = ["subject", "session", "group", "wm_roi", "lesion_voxels",
                  *[f"{q}_{d}" for d in DATA for q in ("wm", "lesion", "ratio1", "ratio2", "demyelinated_fraction")],
                  "demyelination_dice"]
INDEX_COLUMNS = ["subject", "group", "session_t0", "session_t1", "lesion_load", "EDSS", "age", "sex",
                 *[f"{k}_{d}" for d in DATA for k in ("fraction_t0", "fraction_t1", "global", *INDICES)],
                 "dice_t0", "dice_t1", *[f"dice_{k}" for k in INDICES]]


@dataclass(frozen=True)
class MSPair:
    """One MS scan and its synthetic PIB (``None`` for a control without a prediction)."""

    scan: MSScan
    synthetic: np.ndarray | None


@dataclass(frozen=True)
class MSEvaluation:
    """The MS tables, the conventions they follow and notes on what was left out."""

    lesions: pd.DataFrame
    myelin_discrepancy: pd.DataFrame
    indices: pd.DataFrame
    edss_regression: pd.DataFrame
    bland_altman: pd.DataFrame
    conventions: dict
    notes: tuple[str, ...] = ()

    def tables(self) -> dict[str, pd.DataFrame]:
        """The MS tables by name (``bland_altman`` rows go into the evaluation's own table)."""
        return {"lesions": self.lesions, "myelin_discrepancy": self.myelin_discrepancy, "indices": self.indices,
                "edss_regression": self.edss_regression}


def load_ms_pairs(manifest: Manifest, pairs: pd.DataFrame, target: str = "PIB") -> list[MSPair]:
    """Every control (real PIB needed for the threshold) and every patient scan with a paired prediction.

    Args:
        manifest: the ms-cohort manifest.
        pairs: :func:`neurotrans.metrics.pairing.pair_predictions`'s pairs.
        target: the PIB column.
    """
    part = participants(manifest)
    predicted = {int(r): Path(p) for r, p in zip(pairs["row"], pairs["prediction"], strict=True)}
    out = []
    for i, row in manifest.rows():
        group = str(part.loc[str(row["subject"]), "group"])
        if i not in predicted and group != CONTROL_GROUP:
            continue
        scan = load_ms_scan(manifest, i, group, target)
        out.append(MSPair(scan, load_volume(predicted[i]).data if i in predicted else None))
    return out


def control_references(pairs: Sequence[MSPair], where: str | Path = "manifest"
                       ) -> tuple[dict[str, myelin.ControlReference], bool]:
    """Thresholds for real and synthetic maps, and whether the synthetic one is the controls' synthetic PIB.

    Args:
        pairs: the MS pairs.
        where: the manifest, named by the error when there is no control.
    """
    controls = [p for p in pairs if not p.scan.patient]
    if not controls:
        raise InputError(where, "no healthy controls (group HC) with PIB",
                         "the demyelination threshold is set on controls' WM: include controls")
    refs = {"real": control_reference([c.scan for c in controls])}
    from_synthetic = all(c.synthetic is not None for c in controls)
    refs["synthetic"] = (control_reference([c.scan for c in controls], [c.synthetic for c in controls])
                         if from_synthetic else refs["real"])
    return refs, from_synthetic


def demyelination(pairs: Sequence[MSPair], refs: dict[str, myelin.ControlReference]) -> dict[tuple[int, str], np.ndarray]:
    """Demyelinated lesion voxels of every patient scan with a prediction: ``(pair index, data) -> map``."""
    maps = {}
    for k, p in enumerate(pairs):
        if p.scan.patient and p.synthetic is not None:
            for data, img in (("real", p.scan.pib), ("synthetic", p.synthetic)):
                maps[(k, data)] = myelin.demyelinated_map(img, p.scan.lesions, p.scan.distance, refs[data])
    return maps


def lesion_table(pairs: Sequence[MSPair], demy: dict[tuple[int, str], np.ndarray]) -> pd.DataFrame:
    """Per scan with a prediction: WM/NAWM and lesion DVR, contrast ratios, demyelinated fraction, DICE."""
    rows = []
    for k, p in enumerate(pairs):
        s = p.scan
        if p.synthetic is None:
            continue
        n_les = int(s.lesions.sum())
        rec = {"subject": s.subject, "session": s.session, "group": s.group, "wm_roi": "NAWM" if s.patient else "WM",
               "lesion_voxels": n_les}
        for data, img in (("real", s.pib), ("synthetic", p.synthetic)):
            rec[f"wm_{data}"] = float(img[s.wm_roi].mean()) if s.wm_roi.any() else float("nan")
            cr = contrast_ratios(img, s.lesions, s.nawm) if s.patient and n_les else {}
            rec[f"lesion_{data}"] = cr.get("lesion_mean", float("nan"))
            rec[f"ratio1_{data}"] = cr.get("ratio1", float("nan"))
            rec[f"ratio2_{data}"] = cr.get("ratio2", float("nan"))
            rec[f"demyelinated_fraction_{data}"] = (float(demy[(k, data)].sum() / n_les)
                                                    if s.patient and n_les else float("nan"))
        rec["demyelination_dice"] = dice(demy[(k, "real")], demy[(k, "synthetic")]) if s.patient else float("nan")
        rows.append(rec)
    return pd.DataFrame(rows, columns=LESION_COLUMNS)


def myelin_discrepancy_table(lesions: pd.DataFrame) -> pd.DataFrame:
    """|mean real - mean synthetic| DVR in controls' WM, patients' NAWM and lesions: mean, SD, n."""
    rows = []
    for roi, sel in (("WM_HC", lesions.group == CONTROL_GROUP), ("NAWM", lesions.group != CONTROL_GROUP)):
        d = (lesions.loc[sel, "wm_real"] - lesions.loc[sel, "wm_synthetic"]).abs()
        rows.append({"roi": roi, "mean": d.mean(), "std": d.std(ddof=1), "n": int(d.notna().sum())})
    d = (lesions["lesion_real"] - lesions["lesion_synthetic"]).abs().dropna()
    rows.append({"roi": "lesions", "mean": d.mean(), "std": d.std(ddof=1), "n": len(d)})
    return pd.DataFrame(rows, columns=["roi", "mean", "std", "n"])


def ms_bland_altman(lesions: pd.DataFrame) -> pd.DataFrame:
    """Bland-Altman rows of WM/NAWM DVR and lesion DVR (real vs synthetic)."""
    return pd.DataFrame([{"quantity": "WM_NAWM_DVR", **bland_altman(lesions["wm_real"], lesions["wm_synthetic"])},
                         {"quantity": "lesion_DVR", **bland_altman(lesions["lesion_real"], lesions["lesion_synthetic"])}],
                        columns=BLAND_ALTMAN_COLUMNS)


def indices_table(pairs: Sequence[MSPair], demy: dict[tuple[int, str], np.ndarray],
                  part: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Per patient with two predicted sessions: longitudinal indices, real and synthetic, and their DICE.

    Args:
        pairs: the MS pairs.
        demy: :func:`demyelination`'s maps.
        part: :func:`neurotrans.analysis.ms_scan.participants` (EDSS, age, sex).

    Returns:
        the table and one note per patient left out.
    """
    by_subject: dict[str, list[int]] = {}
    for k, p in enumerate(pairs):
        if p.scan.patient and p.synthetic is not None:
            by_subject.setdefault(p.scan.subject, []).append(k)
    rows, notes = [], []
    for subject, items in by_subject.items():
        if len(items) < 2:
            notes.append(f"MS indices: {subject} has one session with a prediction; no longitudinal indices")
            continue
        k0, k1 = sorted(items, key=lambda k: pairs[k].scan.session)[:2]
        s0, s1 = pairs[k0].scan, pairs[k1].scan
        rec = {"subject": subject, "group": s0.group, "session_t0": s0.session, "session_t1": s1.session,
               "lesion_load": float(s0.lesions.sum() * s0.voxel_mm3)}
        for c in ("EDSS", "age", "sex"):
            rec[c] = part.loc[subject, c] if c in part.columns else np.nan
        maps = {}
        for data in DATA:
            maps[data] = myelin.myelin_indices(demy[(k0, data)], demy[(k1, data)], s0.lesions)
            for key in ("fraction_t0", "fraction_t1", "global", *INDICES):
                rec[f"{key}_{data}"] = maps[data][key]
        rec["dice_t0"] = dice(demy[(k0, "real")], demy[(k0, "synthetic")])
        rec["dice_t1"] = dice(demy[(k1, "real")] & s0.lesions, demy[(k1, "synthetic")] & s0.lesions)
        rec["dice_dynamic_demyelination"] = dice(maps["real"]["demyelinating"], maps["synthetic"]["demyelinating"])
        rec["dice_dynamic_remyelination"] = dice(maps["real"]["remyelinating"], maps["synthetic"]["remyelinating"])
        rows.append(rec)
    return pd.DataFrame(rows, columns=INDEX_COLUMNS), notes


def edss_regression_table(indices: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """OLS EDSS ~ index + age + sex + lesion_load, one model per index and data; with notes on skipped fits."""
    columns = ["data", "index", *REGRESSION_COLUMNS]
    if not len(indices) or not all(indices[c].notna().all() for c in ("EDSS", "age", "sex")):
        return pd.DataFrame(columns=columns), ["EDSS regression skipped: EDSS, age and sex are needed for every patient"]
    fits, notes = [], []
    for data in DATA:
        for index in INDICES:
            x = pd.DataFrame({index: indices[f"{index}_{data}"], "age": indices["age"].astype(float),
                              "sex": encode_sex(indices["sex"]), "lesion_load": indices["lesion_load"]})
            keep = x.notna().all(axis=1).to_numpy()
            try:
                fit = ols(indices["EDSS"].to_numpy(float)[keep], x[keep].reset_index(drop=True))
            except ValueError as err:
                notes.append(f"EDSS regression on {data} {index} skipped: {err}")
                continue
            fit.insert(0, "index", index)
            fit.insert(0, "data", data)
            fits.append(fit)
    return (pd.concat(fits, ignore_index=True) if fits else pd.DataFrame(columns=columns)), notes


def evaluate_ms(manifest: str | Path | Manifest, pred_dir: str | Path, target: str = "PIB",
                pairs: pd.DataFrame | None = None) -> MSEvaluation:
    """Lesion, myelin and clinical analyses of synthetic PIB against the real PIB, written nowhere.

    Args:
        manifest: ms-cohort manifest (path or :class:`Manifest`).
        pred_dir: the prediction folder (:class:`~neurotrans.io.run.PredictionFolder`).
        target: the PET column (PIB DVR).
        pairs: the evaluation's pairs (:func:`~neurotrans.metrics.pairing.pair_predictions`);
            default: paired here, leaving out the run's training/validation subjects.

    Raises:
        InputError: MS columns or controls missing, or a scan cannot be read.
    """
    man = manifest if isinstance(manifest, Manifest) else read_manifest(manifest)
    missing = [c for c in (target, *MS_COLUMNS[1:]) if c not in man.table.columns]
    if missing:
        raise InputError(man.source or man.root, f"manifest lacks {', '.join(missing)} for the MS analyses",
                         "use an ms-cohort manifest (neurotrans simulate ms)")
    if pairs is None:
        run = RunFolder.of_predictions(pred_dir)
        pairs = pair_predictions(PredictionFolder(Path(pred_dir)), man, target,
                                 in_sample_subjects(run.read_info() if run else None)).pairs
    ms_pairs = load_ms_pairs(man, pairs, target)
    refs, from_synthetic = control_references(ms_pairs, man.source or man.root)
    demy = demyelination(ms_pairs, refs)
    lesions = lesion_table(ms_pairs, demy)
    indices, notes = indices_table(ms_pairs, demy, participants(man))
    regression, reg_notes = edss_regression_table(indices)
    return MSEvaluation(lesions=lesions, myelin_discrepancy=myelin_discrepancy_table(lesions), indices=indices,
                        edss_regression=regression, bland_altman=ms_bland_altman(lesions),
                        conventions=ms_conventions(from_synthetic), notes=tuple(notes + reg_notes))


def format_ms(ms: MSEvaluation) -> list[str]:
    """Lines summarising the MS tables, for the command line."""
    les, idx, lines = ms.lesions, ms.indices, []
    pat = les[les.group != CONTROL_GROUP]
    if len(pat):
        lines.append(f"MS lesions ({len(pat)} patient scans): ratio1 real {pat.ratio1_real.mean():.3f} / synthetic "
                     f"{pat.ratio1_synthetic.mean():.3f}; ratio2 {pat.ratio2_real.mean():.3f} / "
                     f"{pat.ratio2_synthetic.mean():.3f}; demyelination DICE {pat.demyelination_dice.mean():.3f}")
    for _, r in ms.myelin_discrepancy.iterrows():
        lines.append(f"myelin discrepancy {r['roi']}: {r['mean']:.4f} (SD {r['std']:.4f}, n={r['n']})")
    if len(idx):
        lines.append(f"indices ({len(idx)} patients): DICE dynamic demyelination "
                     f"{idx.dice_dynamic_demyelination.mean():.3f}, remyelination {idx.dice_dynamic_remyelination.mean():.3f}")
    for _, r in ms.edss_regression.iterrows():
        if r["term"] == r["index"]:
            lines.append(f"EDSS ~ {r['index']} ({r['data']}): coef {r['coef']:.3f} (SE {r['se']:.3f}), t {r['t']:.2f}, "
                         f"p {r['p']:.3g}, beta {r['beta_std']:.3f}")
    return lines + list(ms.notes)


__all__ = ["MSEvaluation", "MSPair", "MS_COLUMNS", "control_references", "demyelination", "edss_regression_table",
           "evaluate_ms", "format_ms", "indices_table", "lesion_table", "load_ms_pairs", "ms_bland_altman",
           "myelin_discrepancy_table"]
