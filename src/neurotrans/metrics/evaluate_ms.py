"""MS evaluation of synthetic PIB: lesion contrast, myelin discrepancy, demyelination, indices, EDSS.

Given an ms-cohort manifest (sessions t0/t1; columns PIB, lesions, NAWM, WM, CSF; group,
EDSS, age and sex in the manifest or in ``participants.tsv`` beside it) and a folder of
synthetic PIB ``<subject>_<session>_PIB.nii.gz``, writes into the evaluation folder:

- ``lesions.tsv``: per scan, mean DVR in WM (controls) or NAWM (patients) and lesions,
  Ratio 1 / Ratio 2, demyelinated fraction of the lesions, DICE of the demyelination maps;
- ``myelin_discrepancy.tsv``: roi, mean, std, n of |mean real - mean synthetic|;
- ``indices.tsv``: per patient, the global / dynamic-demyelination / dynamic-remyelination
  indices from real and synthetic PIB and the DICE of their voxel maps;
- ``edss_regression.tsv``: data (real|synthetic), index, term, coef, se, t, p, beta_std for
  EDSS ~ index + age + sex + lesion_load (one model per index, as Table 4.3);
- ``bland_altman.tsv``: rows WM_NAWM_DVR and lesion_DVR added to (or replacing) its rows.

Synthetic demyelination maps use thresholds from the controls' synthetic PIB when every
control has one (the same procedure applied to the synthetic images), else the true ones.

References:
    Wei, PhD thesis 2020, chapters 2-4 (Tables 3.2 and 4.3, Sec. 4.2.5).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from neurotrans.analysis import myelin
from neurotrans.analysis.lesions import contrast_ratios
from neurotrans.analysis.regression import REGRESSION_COLUMNS, encode_sex, ols
from neurotrans.analysis.stats import bland_altman, dice
from neurotrans.errors import InputError
from neurotrans.io.atomic import write_text_atomic
from neurotrans.io.manifest import Manifest, read_manifest
from neurotrans.io.nifti import load_volume

MS_COLUMNS = ("PIB", "lesions", "NAWM", "WM", "CSF")
MS_FILES = ("lesions.tsv", "indices.tsv", "edss_regression.tsv", "myelin_discrepancy.tsv")
CONTROL_GROUP = "HC"
COVARIATES = ("age", "sex", "lesion_load")
INDICES = ("dynamic_demyelination", "dynamic_remyelination")


def _participants(man: Manifest) -> pd.DataFrame:
    """One row per subject with group, EDSS, age, sex from the manifest, else participants.tsv."""
    wanted = ("group", "EDSS", "age", "sex")
    table = man.table.copy()
    table["subject"] = table["subject"].astype(str)
    out = table.groupby("subject", sort=False).first()[[c for c in wanted if c in table.columns]]
    missing = [c for c in wanted if c not in out.columns]
    ppath = man.root / "participants.tsv"
    if missing and ppath.is_file():
        part = pd.read_csv(ppath, sep="\t", dtype=str)
        idcol = "subject" if "subject" in part.columns else "participant_id"
        if idcol not in part.columns:
            raise InputError(ppath, "has neither a subject nor a participant_id column", "add one")
        part = part.set_index(part[idcol].astype(str))
        for c in missing:
            if c in part.columns:
                out[c] = part[c].reindex(out.index)
    if "group" not in out.columns:
        raise InputError(man.source or man.root, "no group column (HC/MS) in the manifest or participants.tsv",
                         "add a group column: HC for controls, MS for patients")
    for c in ("EDSS", "age"):
        if c in out.columns:
            out[c] = pd.to_numeric(out[c], errors="coerce")
    return out


def _load(man: Manifest, i: int, column: str) -> np.ndarray:
    path = man.path(i, column)
    if path is None:
        raise InputError(man.source or man.root, f"row {man.key(i)} has no {column} image",
                         f"fill the {column} column of the manifest")
    return load_volume(path).data


def evaluate_ms(manifest: str | Path | Manifest, pred_dir: str | Path, out: str | Path | None = None,
                target: str = "PIB") -> dict[str, pd.DataFrame]:
    """Lesion, myelin and clinical analyses of synthetic PIB against the real PIB.

    Args:
        manifest: ms-cohort manifest (path or :class:`Manifest`).
        pred_dir: folder of synthetic ``<subject>_<session>_PIB.nii.gz``.
        out: evaluation folder to write into (``None``: compute only).
        target: the PET column (PIB DVR).

    Returns:
        the tables ``lesions``, ``myelin_discrepancy``, ``indices``, ``edss_regression``,
        ``bland_altman`` (the MS rows).
    """
    man = manifest if isinstance(manifest, Manifest) else read_manifest(manifest)
    pred_dir = Path(pred_dir)
    missing = [c for c in (target, "lesions", "NAWM", "WM", "CSF") if c not in man.table.columns]
    if missing:
        raise InputError(man.source or man.root, f"manifest lacks {', '.join(missing)} for the MS analyses",
                         "use an ms-cohort manifest (neurotrans simulate ms)")
    part = _participants(man)
    scans: dict[int, dict] = {}
    for i, row in man.rows():
        subj = str(row["subject"])
        pred = pred_dir / f"{man.key(i)}_{target}.nii.gz"
        group = str(part.loc[subj, "group"])
        if not pred.exists() and group != CONTROL_GROUP:
            continue
        vol = load_volume(man.path(i, target))
        csf = _load(man, i, "CSF") > 0.5
        scans[i] = {"subject": subj, "session": str(row["session"]), "group": group, "real": vol.data,
                    "synthetic": load_volume(pred).data if pred.exists() else None,
                    "wm": _load(man, i, "WM") > 0.5, "nawm": _load(man, i, "NAWM") > 0.5,
                    "lesions": _load(man, i, "lesions") > 0.5,
                    "distance": myelin.distance_from_csf(csf, vol.voxel_size), "voxel_mm3": float(np.prod(vol.voxel_size))}
        if scans[i]["synthetic"] is not None and scans[i]["synthetic"].shape != vol.shape:
            raise InputError(pred, f"grid {scans[i]['synthetic'].shape} differs from the target's {vol.shape}",
                             "predict on the target's grid")
    controls = [s for s in scans.values() if s["group"] == CONTROL_GROUP]
    if not controls:
        raise InputError(man.source or man.root, "no healthy controls (group HC) with PIB",
                         "the demyelination threshold is set on controls' WM: include controls")
    bin_mm = float(min(np.cbrt(controls[0]["voxel_mm3"]), 3.0))
    ref = {"real": myelin.control_reference([c["real"] for c in controls], [c["wm"] for c in controls],
                                            [c["distance"] for c in controls], bin_mm)}
    synth_controls = all(c["synthetic"] is not None for c in controls)
    ref["synthetic"] = (myelin.control_reference([c["synthetic"] for c in controls], [c["wm"] for c in controls],
                                                 [c["distance"] for c in controls], bin_mm)
                        if synth_controls else ref["real"])

    rows, demy = [], {}
    for i, s in scans.items():
        if s["synthetic"] is None:
            continue
        patient = s["group"] != CONTROL_GROUP
        wm_roi = s["nawm"] if patient else s["wm"]
        rec = {"subject": s["subject"], "session": s["session"], "group": s["group"],
               "wm_roi": "NAWM" if patient else "WM", "lesion_voxels": int(s["lesions"].sum())}
        for data in ("real", "synthetic"):
            img = s[data]
            rec[f"wm_{data}"] = float(img[wm_roi].mean()) if wm_roi.any() else float("nan")
            cr = contrast_ratios(img, s["lesions"], s["nawm"]) if patient and s["lesions"].any() else {}
            rec[f"lesion_{data}"] = cr.get("lesion_mean", float("nan"))
            rec[f"ratio1_{data}"] = cr.get("ratio1", float("nan"))
            rec[f"ratio2_{data}"] = cr.get("ratio2", float("nan"))
            if patient:
                demy[(i, data)] = myelin.demyelinated_map(img, s["lesions"], s["distance"], ref[data])
            n_les = int(s["lesions"].sum())
            rec[f"demyelinated_fraction_{data}"] = (float(demy[(i, data)].sum() / n_les)
                                                    if patient and n_les else float("nan"))
        rec["demyelination_dice"] = dice(demy[(i, "real")], demy[(i, "synthetic")]) if patient else float("nan")
        rows.append(rec)
    lesions = pd.DataFrame(rows)

    disc = []
    for roi, sel in (("WM_HC", lesions.group == CONTROL_GROUP), ("NAWM", lesions.group != CONTROL_GROUP)):
        d = (lesions.loc[sel, "wm_real"] - lesions.loc[sel, "wm_synthetic"]).abs()
        disc.append({"roi": roi, "mean": d.mean(), "std": d.std(ddof=1), "n": int(d.notna().sum())})
    d = (lesions["lesion_real"] - lesions["lesion_synthetic"]).abs().dropna()
    disc.append({"roi": "lesions", "mean": d.mean(), "std": d.std(ddof=1), "n": len(d)})
    discrepancy = pd.DataFrame(disc, columns=["roi", "mean", "std", "n"])

    ba = pd.DataFrame([{"quantity": "WM_NAWM_DVR", **bland_altman(lesions["wm_real"], lesions["wm_synthetic"])},
                       {"quantity": "lesion_DVR", **bland_altman(lesions["lesion_real"], lesions["lesion_synthetic"])}],
                      columns=["quantity", "bias", "loa_low", "loa_high", "n"])

    idx_rows = []
    by_subject: dict[str, list[int]] = {}
    for i, s in scans.items():
        if s["group"] != CONTROL_GROUP and s["synthetic"] is not None:
            by_subject.setdefault(s["subject"], []).append(i)
    for subj, items in by_subject.items():
        if len(items) < 2:
            print(f"  MS indices: {subj} has one session with a prediction; no longitudinal indices")
            continue
        i0, i1 = sorted(items, key=lambda k: scans[k]["session"])[:2]
        les0 = scans[i0]["lesions"]
        rec = {"subject": subj, "group": scans[i0]["group"], "session_t0": scans[i0]["session"],
               "session_t1": scans[i1]["session"], "lesion_load": float(les0.sum() * scans[i0]["voxel_mm3"])}
        for c in ("EDSS", "age", "sex"):
            rec[c] = part.loc[subj, c] if c in part.columns else np.nan
        maps = {}
        for data in ("real", "synthetic"):
            res = myelin.myelin_indices(demy[(i0, data)], demy[(i1, data)], les0)
            maps[data] = res
            for k in ("fraction_t0", "fraction_t1", "global", *INDICES):
                rec[f"{k}_{data}"] = res[k]
        rec["dice_t0"] = dice(demy[(i0, "real")], demy[(i0, "synthetic")])
        rec["dice_t1"] = dice(demy[(i1, "real")] & les0, demy[(i1, "synthetic")] & les0)
        rec["dice_dynamic_demyelination"] = dice(maps["real"]["demyelinating"], maps["synthetic"]["demyelinating"])
        rec["dice_dynamic_remyelination"] = dice(maps["real"]["remyelinating"], maps["synthetic"]["remyelinating"])
        idx_rows.append(rec)
    indices = pd.DataFrame(idx_rows)

    reg_rows = []
    if len(indices) and all(c in indices.columns and indices[c].notna().all() for c in ("EDSS", "age", "sex")):
        for data in ("real", "synthetic"):
            for index in INDICES:
                x = pd.DataFrame({index: indices[f"{index}_{data}"], "age": indices["age"].astype(float),
                                  "sex": encode_sex(indices["sex"]), "lesion_load": indices["lesion_load"]})
                keep = x.notna().all(axis=1).to_numpy()
                try:
                    fit = ols(indices["EDSS"].to_numpy(float)[keep], x[keep].reset_index(drop=True))
                except ValueError as err:
                    print(f"  EDSS regression on {data} {index} skipped: {err}")
                    continue
                fit.insert(0, "index", index)
                fit.insert(0, "data", data)
                reg_rows.append(fit)
    else:
        print("  EDSS regression skipped: EDSS, age and sex are needed for every patient")
    regression = (pd.concat(reg_rows, ignore_index=True) if reg_rows
                  else pd.DataFrame(columns=["data", "index", *REGRESSION_COLUMNS]))

    tables = {"lesions": lesions, "myelin_discrepancy": discrepancy, "indices": indices,
              "edss_regression": regression, "bland_altman": ba}
    if out is not None:
        _write(Path(out), tables, synth_controls)
    _print(tables)
    return tables


def _write(out: Path, tables: dict[str, pd.DataFrame], synth_controls: bool) -> None:
    def tsv(df: pd.DataFrame) -> str:
        return df.to_csv(sep="\t", index=False, lineterminator="\n", float_format="%.6g")

    for name in ("lesions", "myelin_discrepancy", "indices", "edss_regression"):
        write_text_atomic(out / f"{name}.tsv", tsv(tables[name]))
    ba = tables["bland_altman"]
    path = out / "bland_altman.tsv"
    if path.is_file():  # keep the image-level rows written by `evaluate`, replace ours
        old = pd.read_csv(path, sep="\t")
        ba = pd.concat([old[~old["quantity"].isin(ba["quantity"])], ba], ignore_index=True)
    write_text_atomic(path, tsv(ba))
    conv_path = out / "conventions.json"
    conv = json.loads(conv_path.read_text()) if conv_path.is_file() else {}
    conv["ms"] = {
        "masks": "lesions, NAWM, WM, CSF images > 0.5",
        "ratio1": "mean(lesions) / mean(NAWM)", "ratio2": "mean(lesions) / mean(NAWM within 5 dilations of lesions)",
        "demyelinated": "lesion voxel with DVR < mean - 1 SD of controls' WM DVR in its distance-from-CSF bin",
        "distance": "scipy.ndimage.distance_transform_edt in mm; bins of one voxel size (<= 3 mm)",
        "synthetic_threshold_from": "controls' synthetic PIB" if synth_controls else "controls' real PIB",
        "indices": "fractions of the baseline (first session) lesion mask; global = fraction_t1 - fraction_t0",
        "dice_of_empty_maps": 1.0,
        "edss_regression": "OLS EDSS ~ index + age + sex (1 = male) + lesion_load (mm3), one model per index",
    }
    write_text_atomic(conv_path, json.dumps(conv, indent=2) + "\n")


def _print(tables: dict[str, pd.DataFrame]) -> None:
    les, idx = tables["lesions"], tables["indices"]
    pat = les[les.group != CONTROL_GROUP]
    if len(pat):
        print(f"  MS lesions ({len(pat)} patient scans): ratio1 real {pat.ratio1_real.mean():.3f} / synthetic "
              f"{pat.ratio1_synthetic.mean():.3f}; ratio2 {pat.ratio2_real.mean():.3f} / "
              f"{pat.ratio2_synthetic.mean():.3f}; demyelination DICE {pat.demyelination_dice.mean():.3f}")
    for _, r in tables["myelin_discrepancy"].iterrows():
        print(f"  myelin discrepancy {r['roi']}: {r['mean']:.4f} (SD {r['std']:.4f}, n={r['n']})")
    if len(idx):
        print(f"  indices ({len(idx)} patients): DICE dynamic demyelination {idx.dice_dynamic_demyelination.mean():.3f},"
              f" remyelination {idx.dice_dynamic_remyelination.mean():.3f}")
    for _, r in tables["edss_regression"].iterrows():
        if r["term"] == r["index"]:
            print(f"  EDSS ~ {r['index']} ({r['data']}): coef {r['coef']:.3f} (SE {r['se']:.3f}), t {r['t']:.2f}, "
                  f"p {r['p']:.3g}, beta {r['beta_std']:.3f}")
