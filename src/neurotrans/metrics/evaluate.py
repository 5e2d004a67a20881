"""`neurotrans evaluate`: compare predicted volumes with the real targets of a manifest.

For every manifest row with a prediction ``<pred_dir>/<subject>_<session>_<TARGET>.nii.gz``
the image metrics are computed on the whole volume and on the middle axial slice, in
normalised units (min-max of the target inside the mask; the same transform applied to
the prediction; PSNR with the fixed range 1) and, for PET, in original units (SUVR/DVR;
PSNR with the target's maximum). The pix2pix paper's "other subjects" reference (every
test target compared with every training subject's target) is reported beside the model,
with paired tests between the two. PET targets add AAL2 regional means, per-region
agreement, Bland-Altman and, with CN and AD groups, an SVM diagnosis on real vs.
synthetic PET. Problems (missing, extra or mismatched predictions) are listed in
``problems.tsv`` and printed, never skipped silently.

References:
    Lan et al./pix2pix MRI->PET (Table 1, "other subjects" baseline); Sun et al.,
    DUAL-GLOW, ICCV 2019 (Table 2); Wei, PhD thesis 2020 (PSNR with MAX, Eq. 3.9).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from neurotrans.analysis.diagnosis import classify
from neurotrans.analysis.regional import regional_means, regional_summary
from neurotrans.analysis.stats import bland_altman, paired_tests
from neurotrans.errors import InputError
from neurotrans.io.atomic import write_text_atomic
from neurotrans.io.manifest import Manifest, read_manifest
from neurotrans.io.nifti import Volume, load_volume
from neurotrans.metrics import image as im
from neurotrans.names import MASKS, MODALITIES, PET_MODALITIES, check_name

METRIC_NAMES = ("mae", "mse", "psnr", "ssim", "pearson")
PER_SUBJECT_COLUMNS = ["subject", "session", "group", "method", "scope", "units", *METRIC_NAMES]
SUMMARY_COLUMNS = ["method", "scope", "units", "metric", "mean", "std", "min", "max", "n"]
TESTS_COLUMNS = ["method_a", "method_b", "scope", "units", "metric", "mean_diff", "t", "p_t",
                 "wilcoxon_w", "p_wilcoxon", "n"]
PROBLEM_COLUMNS = ["subject", "session", "file", "problem"]
RESULT_FILES = ("per_subject.tsv", "summary.tsv", "conventions.json", "tests.tsv", "problems.tsv",
                "regional.tsv", "regional_summary.tsv", "diagnosis.tsv", "bland_altman.tsv")
OTHER_SUBJECTS = "other_subjects"
MIN_PER_GROUP = 3  # subjects per group below which a cross-validated SVM means nothing


@dataclass(frozen=True)
class EvaluationResult:
    """All tables of one evaluation (``None`` where not applicable, e.g. regional for MRI)."""

    per_subject: pd.DataFrame
    summary: pd.DataFrame
    tests: pd.DataFrame
    problems: pd.DataFrame
    conventions: dict
    regional: pd.DataFrame | None = None
    regional_summary: pd.DataFrame | None = None
    diagnosis: pd.DataFrame | None = None
    bland_altman: pd.DataFrame | None = None
    ms: dict[str, pd.DataFrame] = field(default_factory=dict)


def _same_grid(a: Volume, b: Volume) -> bool:
    return a.shape == b.shape and np.allclose(a.affine, b.affine, atol=1e-3)


def _normalise(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Min-max of the target (inside the mask), the same affine map applied to the prediction."""
    vals = target[mask] if mask is not None else target
    lo, hi = float(vals.min()), float(vals.max())
    scale = hi - lo if hi > lo else 1.0
    return (pred - lo) / scale, (target - lo) / scale


def image_metrics(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None, units: str) -> dict[str, float]:
    """The five metrics of one image pair under the evaluation's conventions.

    Args:
        pred: prediction, shape ``(X, Y[, Z])``, already in the units named by ``units``.
        target: real image, same shape.
        mask: boolean mask or ``None``.
        units: ``"normalised"`` (PSNR and SSIM with range 1) or ``"original"`` (PSNR with the
            target's maximum inside the mask, SSIM with the target's max - min inside it).
    """
    if units == "normalised":
        psnr = im.psnr(pred, target, mask, data_range=1.0, convention="fixed")
        ssim = im.ssim(pred, target, mask, data_range=1.0)
    else:
        psnr = im.psnr(pred, target, mask, convention="max")
        ssim = im.ssim(pred, target, mask)
    return {"mae": im.mae(pred, target, mask), "mse": im.mse(pred, target, mask), "psnr": psnr,
            "ssim": ssim, "pearson": im.pearson(pred, target, mask)}


def _all_metrics(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None, pet: bool) -> list[dict]:
    """Metrics for every scope (volume, middle axial slice) and units of one pair."""
    rows = []
    z = target.shape[2] // 2
    pn, tn = _normalise(pred, target, mask)
    variants = [("normalised", pn, tn)] + ([("original", pred, target)] if pet else [])
    for units, p, t in variants:
        rows.append({"scope": "volume", "units": units, **image_metrics(p, t, mask, units)})
        ms = None if mask is None else mask[:, :, z]
        if ms is not None and not ms.any():  # visible as NaN, not dropped
            rows.append({"scope": "mid_axial", "units": units, **dict.fromkeys(METRIC_NAMES, float("nan"))})
            continue
        rows.append({"scope": "mid_axial", "units": units,
                     **image_metrics(p[:, :, z], t[:, :, z], ms, units)})
    return rows


def _read_train_subjects(pred_dir: Path, train_subjects: str | Path | None) -> tuple[set[str] | None, str]:
    if train_subjects is not None:
        path = Path(train_subjects)
        if not path.is_file():
            raise InputError(path, "training-subject list not found", "pass a text file with one subject id per line")
        ids = {s.strip() for s in path.read_text().splitlines() if s.strip() and not s.startswith("#")}
        return ids, str(path)
    info = _run_info(pred_dir)
    if info.get("train_subjects"):
        return {str(s) for s in info["train_subjects"]}, str(pred_dir.parent / "run.json")
    return None, "all other manifest subjects"


def _run_info(pred_dir: Path) -> dict:
    """The training run's run.json beside the prediction folder, or ``{}``."""
    run = pred_dir.parent / "run.json"
    if not run.is_file():
        return {}
    try:
        return json.loads(run.read_text())
    except json.JSONDecodeError:
        raise InputError(run, "is not valid JSON", "repair or delete run.json") from None


def _method_name(pred_dir: Path) -> str:
    return str(_run_info(pred_dir).get("method") or "model")


def _expected_subjects(pred_dir: Path) -> set[str] | None:
    """Subjects the run predicted (its test set); ``None`` when unknown (then every row is expected)."""
    test = _run_info(pred_dir).get("test_subjects")
    return {str(s) for s in test} if test else None


def summarise(per_subject: pd.DataFrame) -> pd.DataFrame:
    """Mean, SD (ddof 1), min, max and n of every metric per method, scope and units.

    An ``inf`` PSNR (identical images) makes the mean ``inf``: it is reported, not hidden.
    """
    rows = []
    for (method, scope, units), g in per_subject.groupby(["method", "scope", "units"], sort=False):
        for metric in METRIC_NAMES:
            v = g[metric].to_numpy(float)
            with np.errstate(invalid="ignore"):
                std = float(np.std(v, ddof=1)) if len(v) > 1 and np.isfinite(v).all() else float("nan")
            rows.append({"method": method, "scope": scope, "units": units, "metric": metric,
                         "mean": float(np.mean(v)), "std": std, "min": float(np.min(v)),
                         "max": float(np.max(v)), "n": len(v)})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def method_tests(per_subject: pd.DataFrame) -> pd.DataFrame:
    """Paired t and Wilcoxon tests between every two methods on the subjects both have."""
    rows = []
    methods = list(dict.fromkeys(per_subject["method"]))
    for a, b in combinations(methods, 2):
        keys = ["subject", "session", "scope", "units"]
        merged = per_subject[per_subject.method == a].merge(per_subject[per_subject.method == b],
                                                            on=keys, suffixes=("_a", "_b"))
        for (scope, units), g in merged.groupby(["scope", "units"], sort=False):
            for metric in METRIC_NAMES:
                res = paired_tests(g[f"{metric}_a"].to_numpy(), g[f"{metric}_b"].to_numpy())
                rows.append({"method_a": a, "method_b": b, "scope": scope, "units": units, "metric": metric, **res})
    return pd.DataFrame(rows, columns=TESTS_COLUMNS)


def _diagnosis(regional: pd.DataFrame) -> pd.DataFrame | None:
    sub = regional[regional["group"].isin(["CN", "AD"])]
    counts = sub.drop_duplicates("subject").groupby("group")["subject"].nunique()
    if len(counts) < 2 or counts.min() < MIN_PER_GROUP:
        return None
    rows = []
    for data in ("real", "synthetic"):
        wide = sub.pivot_table(index=["subject", "session", "group"], columns="region", values=data, sort=False)
        wide = wide.dropna(axis=1)
        res = classify(wide.to_numpy(), wide.index.get_level_values("group").to_numpy(),
                       wide.index.get_level_values("subject").to_numpy(), positive="AD")
        rows.append({"data": data, "accuracy": res.accuracy, "fnr": res.fnr, "fpr": res.fpr,
                     "n_subjects": res.n_subjects, "folds": res.folds})
    return pd.DataFrame(rows, columns=["data", "accuracy", "fnr", "fpr", "n_subjects", "folds"])


def evaluate(pred_dir: str | Path, manifest: str | Path | Manifest, target: str, mask: str | None = None,
             train_subjects: str | Path | None = None, other_subjects: bool = True) -> EvaluationResult:
    """Compute every table of an evaluation without writing anything.

    Args:
        pred_dir: folder of predictions named ``<subject>_<session>_<TARGET>.nii.gz``.
        manifest: the cohort manifest (path or :class:`Manifest`) holding the real targets.
        target: the predicted modality (e.g. ``"FDG"``).
        mask: mask column to evaluate inside (e.g. ``"brainmask"``), or ``None``.
        train_subjects: text file of training subject ids for the other-subjects reference.
        other_subjects: compute that reference (cost: tests x training subjects comparisons).
    """
    pred_dir = Path(pred_dir)
    man = manifest if isinstance(manifest, Manifest) else read_manifest(manifest)
    where = man.source or man.root
    try:
        check_name(target, MODALITIES, "target modality")
        if mask is not None:
            check_name(mask, MASKS, "mask")
    except ValueError as err:
        raise InputError(where, str(err), "pass one of the names listed") from None
    for col in [target] + ([mask] if mask else []):
        if col not in man.table.columns:
            raise InputError(where, f"manifest has no {col!r} column", f"choose one of {', '.join(man.image_columns)}")
    if not pred_dir.is_dir():
        raise InputError(pred_dir, "prediction folder not found", "pass the folder written by `neurotrans predict`")
    pet = target in PET_MODALITIES
    method = _method_name(pred_dir)
    suffix = f"_{target}.nii.gz"
    expected = {man.key(i) + suffix: i for i in range(len(man))}
    problems: list[dict] = []
    for f in sorted(pred_dir.glob(f"*{suffix}")):
        if f.name not in expected:
            problems.append({"subject": "", "session": "", "file": str(f), "problem": "prediction without a manifest row"})

    has_group = "group" in man.table.columns
    cache: dict[int, tuple[Volume, np.ndarray | None]] = {}

    def real(i: int) -> tuple[Volume, np.ndarray | None] | None:
        if i not in cache:
            tpath = man.path(i, target)
            if tpath is None:
                return None
            vol = load_volume(tpath)
            mvol = None
            if mask is not None:
                mpath = man.path(i, mask)
                if mpath is None:
                    raise InputError(where, f"row {man.key(i)} has no {mask} image", "fill the mask column or drop --mask")
                mv = load_volume(mpath)
                if not _same_grid(mv, vol):
                    raise InputError(mpath, f"mask grid differs from the {target} image's", "resample the mask onto it")
                mvol = mv.data > 0.5
                if not mvol.any():
                    raise InputError(mpath, "mask is empty", "check the mask image")
            cache[i] = (vol, mvol)
        return cache[i]

    rows, tested, preds = [], [], {}
    # rows of the run's training/validation subjects are not expected to have predictions
    expected_subjects = _expected_subjects(pred_dir)
    for i, row in man.rows():
        subj, ses = str(row["subject"]), str(row["session"])
        fpath = pred_dir / (man.key(i) + suffix)
        if not fpath.exists() and expected_subjects is not None and subj not in expected_subjects:
            continue
        if not fpath.exists():
            problems.append({"subject": subj, "session": ses, "file": str(fpath), "problem": "no prediction for this row"})
            continue
        ref = real(i)
        if ref is None:
            problems.append({"subject": subj, "session": ses, "file": str(fpath),
                             "problem": f"manifest row has no {target} image to compare with"})
            continue
        pvol = load_volume(fpath)
        if not _same_grid(pvol, ref[0]):
            problems.append({"subject": subj, "session": ses, "file": str(fpath),
                             "problem": f"grid {pvol.shape} differs from the target's {ref[0].shape} "
                                        "(not resampled: predict on the target's grid)"})
            continue
        preds[i] = pvol.data
        tested.append(i)
        info = {"subject": subj, "session": ses, "group": str(row["group"]) if has_group else "", "method": method}
        rows += [{**info, **r} for r in _all_metrics(pvol.data.astype(np.float64), ref[0].data.astype(np.float64),
                                                      ref[1], pet)]

    train_ids, train_source = _read_train_subjects(pred_dir, train_subjects)
    if other_subjects:
        for i in tested:
            vol, m = real(i)
            subj = str(man.table.iloc[i]["subject"])
            acc: list[list[dict]] = []
            for j in range(len(man)):
                sj = str(man.table.iloc[j]["subject"])
                if sj == subj or (train_ids is not None and sj not in train_ids) or man.path(j, target) is None:
                    continue
                other = real(j)[0]
                if _same_grid(other, vol):
                    acc.append(_all_metrics(other.data.astype(np.float64), vol.data.astype(np.float64), m, pet))
            if not acc:
                problems.append({"subject": subj, "session": str(man.table.iloc[i]["session"]), "file": "",
                                 "problem": "no training subject on the same grid for the other-subjects reference"})
                continue
            base = {"subject": subj, "session": str(man.table.iloc[i]["session"]),
                    "group": str(man.table.iloc[i]["group"]) if has_group else "", "method": OTHER_SUBJECTS}
            for k, first in enumerate(acc[0]):
                vals = {mn: float(np.mean([a[k][mn] for a in acc])) for mn in METRIC_NAMES}
                rows.append({**base, "scope": first["scope"], "units": first["units"], **vals})

    per_subject = pd.DataFrame(rows, columns=PER_SUBJECT_COLUMNS)
    if not has_group:
        per_subject = per_subject.drop(columns="group")
    result = {"per_subject": per_subject, "summary": summarise(per_subject), "tests": method_tests(per_subject),
              "problems": pd.DataFrame(problems, columns=PROBLEM_COLUMNS)}

    if pet and tested:
        from neurotrans.data.atlas import load_atlas
        from neurotrans.data.grid import Grid

        reg_rows, ba_rows, glob_r, glob_s = [], [], [], []
        for i in tested:
            vol, m = real(i)
            labels, names = load_atlas("AAL2", Grid(vol.shape, vol.affine))
            r_means = regional_means(vol.data, labels, names)
            s_means = regional_means(preds[i], labels, names)
            row = man.table.iloc[i]
            for region, val in r_means.items():
                reg_rows.append({"subject": str(row["subject"]), "session": str(row["session"]),
                                 "group": str(row["group"]) if has_group else "", "region": region,
                                 "real": val, "synthetic": s_means[region]})
            sel = m if m is not None else np.ones(vol.shape, bool)
            glob_r.append(float(vol.data[sel].mean()))
            glob_s.append(float(preds[i][sel].mean()))
        regional = pd.DataFrame(reg_rows, columns=["subject", "session", "group", "region", "real", "synthetic"])
        ba_rows.append({"quantity": "regional_mean", **bland_altman(regional["real"], regional["synthetic"])})
        ba_rows.append({"quantity": "mean_in_mask" if mask else "mean_in_volume", **bland_altman(glob_r, glob_s)})
        result.update(regional=regional, regional_summary=regional_summary(regional),
                      bland_altman=pd.DataFrame(ba_rows, columns=["quantity", "bias", "loa_low", "loa_high", "n"]),
                      diagnosis=_diagnosis(regional) if has_group else None)

    result["conventions"] = {
        "target": target, "method": method, "mask": mask,
        "mask_rule": "voxels where the mask image > 0.5; SSIM map averaged inside it without border crop"
                     if mask else "no mask: whole image; SSIM map averaged after cropping a 5-voxel border (as skimage)",
        "normalisation": "normalised = (x - min) / (max - min), min and max of the TARGET inside the mask, "
                         "the same transform applied to the prediction (not clipped)",
        "units": {"normalised": {"psnr": {"convention": "fixed", "data_range": 1.0}, "ssim_data_range": 1.0},
                  **({"original": {"psnr": {"convention": "max", "data_range": "max of the target inside the mask"},
                                   "ssim_data_range": "max - min of the target inside the mask",
                                   "quantity": "SUVR" if target == "FDG" else "DVR"}} if pet else {})},
        "psnr_formula": "10 log10(peak^2 / MSE); inf when MSE is 0 (identical images)",
        "ssim": {"window": "Gaussian", "sigma": im.SSIM_SIGMA, "truncate": im.SSIM_TRUNCATE,
                 "radius_voxels": im.SSIM_RADIUS, "K1": im.SSIM_K1, "K2": im.SSIM_K2,
                 "covariance": "population (use_sample_covariance=False)", "padding": "reflect",
                 "dimensionality": "3D window for 'volume', 2D for 'mid_axial'"},
        "scopes": {"volume": "whole 3D volume", "mid_axial": "axial slice z = Z // 2 (third voxel axis)"},
        "summary_std": "sample SD (ddof 1); NaN when any value is inf",
        "other_subjects": {"enabled": other_subjects, "train_subjects": train_source,
                           "rule": "each test target vs. every training subject's target (other than itself), "
                                   "the other subject's image treated as the prediction, metrics averaged"},
        "tests": "paired two-sided t-test (scipy.stats.ttest_rel) and Wilcoxon signed-rank; non-finite pairs dropped",
        "regional": "AAL2 (clinica) resampled to the data grid, nearest neighbour; means in original units",
        "bland_altman": "bias = mean(synthetic - real); limits bias -/+ 1.96 SD (ddof 1)",
        "diagnosis": "RBF SVM (C=1, gamma='scale', class_weight='balanced': groups are unequal) on standardised AAL2 means, CN vs AD, "
                     "StratifiedGroupKFold by subject (<= 5 folds, seed 0); AD is positive",
    }
    return EvaluationResult(**result)


def _tsv(df: pd.DataFrame) -> str:
    return df.to_csv(sep="\t", index=False, lineterminator="\n", float_format="%.6g")


def write_evaluation(result: EvaluationResult, out: str | Path) -> list[Path]:
    """Write every table of ``result`` into ``out`` atomically; returns the files written."""
    out = Path(out)
    files = {"per_subject.tsv": result.per_subject, "summary.tsv": result.summary, "tests.tsv": result.tests,
             "problems.tsv": result.problems, "regional.tsv": result.regional,
             "regional_summary.tsv": result.regional_summary, "diagnosis.tsv": result.diagnosis,
             "bland_altman.tsv": result.bland_altman}
    written = []
    for name, df in files.items():
        if df is not None:
            written.append(write_text_atomic(out / name, _tsv(df)))
    written.append(write_text_atomic(out / "conventions.json", json.dumps(result.conventions, indent=2) + "\n"))
    return written


def print_summary(result: EvaluationResult) -> None:
    """A short human-readable summary on stdout."""
    s = result.summary
    print(f"evaluation of {result.conventions['target']} ({result.conventions['method']}), "
          f"mask: {result.conventions['mask'] or 'none'}")
    for (method, scope, units), g in s.groupby(["method", "scope", "units"], sort=False):
        vals = dict(zip(g["metric"], g["mean"], strict=True))
        n = int(g["n"].iloc[0])
        print(f"  {method:>15} {scope:>9} {units:>10}  n={n:<3} MAE {vals['mae']:.4g}  MSE {vals['mse']:.4g}  "
              f"PSNR {vals['psnr']:.2f} dB  SSIM {vals['ssim']:.4f}  r {vals['pearson']:.3f}")
    if result.diagnosis is not None:
        for _, r in result.diagnosis.iterrows():
            print(f"  SVM CN/AD on {r['data']:>9} PET: accuracy {r['accuracy']:.2f}  FNR {r['fnr']:.2f}  "
                  f"FPR {r['fpr']:.2f}  ({r['n_subjects']} subjects, {r['folds']} folds)")
    for _, p in result.problems.iterrows():
        print(f"  problem: {p['subject']} {p['session']} {p['file']}: {p['problem']}")


def evaluate_command(pred_dir: str | Path, manifest: str | Path, target: str, mask: str | None = None,
                     out: str | Path | None = None, train_subjects: str | Path | None = None,
                     overwrite: bool = False) -> EvaluationResult:
    """Evaluate, write the result files into ``out`` and print a summary (`neurotrans evaluate`).

    Args:
        pred_dir: folder of predictions ``<subject>_<session>_<TARGET>.nii.gz``.
        manifest: manifest TSV of the cohort with the real targets.
        target: predicted modality, e.g. ``"FDG"`` or ``"PIB"``.
        mask: mask column to evaluate inside.
        out: output folder (default ``pred_dir/../evaluation``).
        train_subjects: text file of training subject ids (other-subjects reference).
        overwrite: replace existing result files.
    """
    pred_dir = Path(pred_dir)
    out = Path(out) if out is not None else pred_dir.parent / "evaluation"
    from neurotrans.metrics.evaluate_ms import MS_COLUMNS, MS_FILES, evaluate_ms

    existing = [f for f in RESULT_FILES + MS_FILES if (out / f).exists()]
    if existing and not overwrite:
        raise InputError(out, f"already holds evaluation results ({', '.join(existing[:3])})",
                         "choose another --out or pass --overwrite")
    man = read_manifest(manifest)
    result = evaluate(pred_dir, man, target, mask=mask, train_subjects=train_subjects)
    write_evaluation(result, out)
    if target == "PIB" and all(c in man.table.columns for c in MS_COLUMNS):
        try:
            result = replace(result, ms=evaluate_ms(man, pred_dir, out))
        except InputError as err:  # the image metrics stand; say why the MS tables are absent
            print(f"  MS analyses not computed: {err}")
    print_summary(result)
    print(f"results: {out}")
    return result
