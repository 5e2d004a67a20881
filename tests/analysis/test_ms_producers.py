"""Each MS producer on hand-built in-memory scans: lesions, discrepancy, Bland-Altman, indices, EDSS."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neurotrans.analysis.ms_scan import MSScan
from neurotrans.analysis.myelin import distance_from_csf
from neurotrans.errors import InputError
from neurotrans.metrics.evaluate_ms import (
    INDEX_COLUMNS,
    LESION_COLUMNS,
    MSPair,
    control_references,
    demyelination,
    edss_regression_table,
    indices_table,
    lesion_table,
    ms_bland_altman,
    myelin_discrepancy_table,
)
from neurotrans.metrics.regional import BLAND_ALTMAN_COLUMNS

SHAPE = (14, 14, 14)
VOXEL = (2.0, 2.0, 2.0)
CSF = np.zeros(SHAPE, bool)
CSF[6:8, 6:8, 6:8] = True
WM = ~CSF
WM[:2], WM[-2:] = False, False
LESIONS = np.zeros(SHAPE, bool)
LESIONS[9:13, 2:6, 2:6] = True  # 64 voxels, cut into quarters along the first axis
Q = [np.zeros(SHAPE, bool) for _ in range(4)]
for q in range(4):
    Q[q][9 + q, 2:6, 2:6] = True
NORMAL, LOW = 1.5, 1.0


def _scan(subject: str, session: str, group: str, pib: np.ndarray) -> MSScan:
    patient = group != "HC"
    return MSScan(subject, session, group, pib.astype(np.float32), WM, WM & ~LESIONS if patient else WM,
                  LESIONS if patient else np.zeros(SHAPE, bool), distance_from_csf(CSF, VOXEL), VOXEL)


def _pib(demyelinated: np.ndarray, seed: int) -> np.ndarray:
    noise = 0.02 * np.random.default_rng(seed).standard_normal(SHAPE)
    return np.where(demyelinated, LOW, NORMAL + noise * ~LESIONS)


def _cohort(synthetic_of_p2: str = "same") -> list[MSPair]:
    """Two controls; patient p1 (t0: Q1+Q2 demyelinated; t1: Q1+Q3) and p2 (t0 only)."""
    pairs = [MSPair(_scan(f"c{k}", "t0", "HC", p := _pib(np.zeros(SHAPE, bool), k)), p) for k in range(2)]
    for session, demy in (("t0", Q[0] | Q[1]), ("t1", Q[0] | Q[2])):
        pib = _pib(demy, 5)
        pairs.append(MSPair(_scan("p1", session, "MS", pib), pib))
    pib = _pib(Q[0] | Q[1], 7)
    synthetic = pib if synthetic_of_p2 == "same" else np.where(LESIONS, NORMAL, pib)
    pairs.append(MSPair(_scan("p2", "t0", "MS", pib), synthetic))
    return pairs


def test_lesion_table_by_hand():
    pairs = _cohort(synthetic_of_p2="no_demyelination")
    refs, from_synthetic = control_references(pairs)
    assert from_synthetic
    demy = demyelination(pairs, refs)
    table = lesion_table(pairs, demy)
    assert list(table.columns) == LESION_COLUMNS and len(table) == 5
    rows = table.set_index(["subject", "session"])
    control = rows.loc[("c0", "t0")]
    assert control.wm_roi == "WM" and control.wm_real == pytest.approx(pairs[0].scan.pib[WM].mean())
    assert np.isnan(control.ratio1_real) and np.isnan(control.demyelination_dice)
    p1 = rows.loc[("p1", "t0")]
    pib = pairs[2].scan.pib
    assert p1.wm_roi == "NAWM" and p1.lesion_voxels == 64
    assert p1.lesion_real == pytest.approx(0.5 * LOW + 0.5 * NORMAL)
    assert p1.ratio1_real == pytest.approx(pib[LESIONS].mean() / pib[WM & ~LESIONS].mean())
    assert p1.demyelinated_fraction_real == 0.5 and p1.demyelination_dice == 1.0
    p2 = rows.loc[("p2", "t0")]
    assert p2.demyelinated_fraction_real == 0.5 and p2.demyelinated_fraction_synthetic == 0.0
    assert p2.demyelination_dice == 0.0  # half the lesion flagged vs. nothing: no overlap


def test_discrepancy_and_bland_altman_by_hand():
    lesions = pd.DataFrame({"group": ["HC", "HC", "MS", "MS"], "wm_real": [1.5, 1.6, 1.4, 1.5],
                            "wm_synthetic": [1.4, 1.6, 1.5, 1.7], "lesion_real": [np.nan, np.nan, 1.0, 1.2],
                            "lesion_synthetic": [np.nan, np.nan, 1.1, 1.5]})
    disc = myelin_discrepancy_table(lesions).set_index("roi")
    assert list(disc.index) == ["WM_HC", "NAWM", "lesions"]
    assert disc.loc["WM_HC", "mean"] == pytest.approx(0.05) and disc.loc["WM_HC", "n"] == 2
    assert disc.loc["NAWM", "mean"] == pytest.approx(0.15)
    assert disc.loc["NAWM", "std"] == pytest.approx(np.std([0.1, 0.2], ddof=1))
    assert disc.loc["lesions", "mean"] == pytest.approx(0.2) and disc.loc["lesions", "n"] == 2
    ba = ms_bland_altman(lesions).set_index("quantity")
    assert list(ba.reset_index().columns) == BLAND_ALTMAN_COLUMNS
    assert ba.loc["WM_NAWM_DVR", "bias"] == pytest.approx(np.mean([-0.1, 0.0, 0.1, 0.2]))
    assert ba.loc["lesion_DVR", "bias"] == pytest.approx(0.2) and ba.loc["lesion_DVR", "n"] == 2


def test_indices_by_hand_and_single_sessions_noted():
    pairs = _cohort()
    refs, _ = control_references(pairs)
    part = pd.DataFrame({"EDSS": [3.0, 2.0], "age": [30.0, 40.0], "sex": ["F", "M"]}, index=["p1", "p2"])
    table, notes = indices_table(pairs, demyelination(pairs, refs), part)
    assert list(table.columns) == INDEX_COLUMNS and list(table.subject) == ["p1"]
    row = table.iloc[0]
    assert (row.session_t0, row.session_t1, row.EDSS, row.sex) == ("t0", "t1", 3.0, "F")
    assert row.lesion_load == 64 * 8.0  # voxels x mm3
    for data in ("real", "synthetic"):
        assert row[f"fraction_t0_{data}"] == 0.5 and row[f"fraction_t1_{data}"] == 0.5
        assert row[f"global_{data}"] == 0.0
        assert row[f"dynamic_remyelination_{data}"] == 0.5  # Q2 of Q1+Q2
        assert row[f"dynamic_demyelination_{data}"] == 0.5  # Q3 of Q3+Q4
    assert row.dice_t0 == row.dice_dynamic_remyelination == 1.0
    assert notes == ["MS indices: p2 has one session with a prediction; no longitudinal indices"]


def test_control_references_need_controls_and_say_which_threshold():
    pairs = _cohort()
    _, from_synthetic = control_references([MSPair(pairs[0].scan, None), *pairs[1:]])
    assert not from_synthetic  # a control without a prediction: the real threshold for both
    with pytest.raises(InputError, match="no healthy controls"):
        control_references(pairs[2:])


def test_edss_regression_matches_least_squares():
    gen = np.random.default_rng(3)
    n = 10
    indices = pd.DataFrame({"age": gen.uniform(20, 50, n), "sex": ["M", "F"] * 5, "lesion_load": gen.uniform(1, 9, n),
                            **{f"{k}_{d}": gen.uniform(0, 1, n) for k in ("dynamic_demyelination",
                                                                           "dynamic_remyelination")
                               for d in ("real", "synthetic")}})
    indices["EDSS"] = 5 - 3 * indices.dynamic_remyelination_real + gen.normal(0, 0.2, n)
    table, notes = edss_regression_table(indices)
    assert notes == [] and list(table.columns) == ["data", "index", "term", "coef", "se", "t", "p", "beta_std"]
    assert len(table) == 2 * 2 * 5  # data x index x (intercept + 4 terms)
    fit = table[(table.data == "real") & (table["index"] == "dynamic_remyelination")].set_index("term")
    design = np.column_stack([np.ones(n), indices.dynamic_remyelination_real, indices.age,
                              (indices.sex == "M").astype(float), indices.lesion_load])
    coef, *_ = np.linalg.lstsq(design, indices.EDSS.to_numpy(), rcond=None)
    assert fit.coef.to_numpy() == pytest.approx(coef)
    assert fit.loc["dynamic_remyelination", "coef"] < -2
    table, notes = edss_regression_table(indices.assign(EDSS=np.nan))
    assert table.empty and "EDSS, age and sex are needed" in notes[0]
