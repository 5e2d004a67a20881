"""Cohort ms: the testable properties of PHANTOM.md on a simulated 3 mm cohort."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from neurotrans.io.manifest import read_manifest
from neurotrans.io.nifti import load_volume
from neurotrans.phantom import format_summary, myelin_indices


def test_design(ms_cohort):
    m = read_manifest(ms_cohort)
    t = m.table
    assert t.drop_duplicates("subject")["group"].value_counts().to_dict() == {"MS": 8, "HC": 4}
    assert sorted(t.loc[t["group"] == "MS", "session"].value_counts().to_dict().items()) == [("t0", 8), ("t1", 8)]
    assert set(t.loc[t["group"] == "HC", "session"]) == {"t0"}
    months = t.loc[t["session"] == "t1", "months"]
    assert months.between(1, 4).all()
    assert set(m.image_columns) == {"T1w", "T2w", "PDw", "FLAIR", "DIR", "T1SE", "MTR", "DTI_FA", "DTI_RD",
                                    "DTI_AD", "PIB", "brainmask", "GM", "WM", "CSF", "lesions", "NAWM"}
    p = pd.read_csv(ms_cohort / "participants.tsv", sep="\t")
    assert {"EDSS", "remyelination_rate", "demyelination_rate", "lesion_load_ml", "interval_months"} <= set(p.columns)
    assert t["age"].between(20, 46).all()


def test_lesion_dvr_below_nawm_in_every_patient(ms_cohort):
    idx = myelin_indices(read_manifest(ms_cohort))
    assert len(idx) == 8
    assert (idx["lesion_voxels"] > 0).all()
    assert (idx["lesion_dvr"] < idx["nawm_dvr"]).all()


def test_nawm_of_patients_like_wm_of_controls(ms_cohort):
    m = read_manifest(ms_cohort)
    nawm, wm = [], []
    for i, row in m.rows():
        if row["session"] != "t0":
            continue
        pib = load_volume(m.path(i, "PIB")).data
        if row["group"] == "MS":
            nawm.append(pib[load_volume(m.path(i, "NAWM")).data > 0.5].mean())
        else:
            brain = load_volume(m.path(i, "brainmask")).data > 0.5
            wm.append(pib[(load_volume(m.path(i, "WM")).data > 0.5) & brain].mean())
    assert abs(np.mean(nawm) - np.mean(wm)) < 0.05 * np.mean(wm)
    # PHANTOM.md: NAWM / WM PIB DVR about 1.5-1.8
    assert 1.5 < np.mean(wm) < 1.8
    assert 1.5 < min(nawm) and max(nawm) < 1.8


def test_percentage_demyelinated_varies_across_patients(ms_cohort):
    idx = myelin_indices(read_manifest(ms_cohort))
    pct = idx["pct_demyelinated_t0"]
    # blur and the distance-matched threshold compress the simulated shares (55-100 %) somewhat
    assert pct.max() - pct.min() > 12.0
    assert pct.std() > 4.0
    assert pct.between(5.0, 100.0).all()


def test_global_index_of_myelin_change_spans_the_thesis_range(ms_cohort):
    """Thesis Sec. 4.3.5: the global index (t1 - t0 demyelinated fraction) ranged -0.13 to
    +0.14 across patients; small changes of either sign, none near the -0.5 of a pure repair."""
    g = myelin_indices(read_manifest(ms_cohort))["global_change"] / 100.0
    assert g.between(-0.2, 0.2).all()
    assert g.max() - g.min() > 0.05


def test_remyelination_index_correlates_negatively_with_edss(ms_cohort):
    idx = myelin_indices(read_manifest(ms_cohort))
    r, p = stats.pearsonr(idx["remyelination_index"], idx["EDSS"])
    assert r < -0.5 and p < 0.1
    # and the index follows the simulated remyelination rate it is meant to measure
    part = pd.read_csv(ms_cohort / "participants.tsv", sep="\t").set_index("subject")
    rho = part.loc[idx["subject"], "remyelination_rate"].astype(float).to_numpy()
    assert stats.spearmanr(rho, idx["remyelination_index"]).statistic > 0.5


def test_lesion_contrasts(ms_cohort):
    m = read_manifest(ms_cohort)
    i = next(i for i, row in m.rows() if row["group"] == "MS" and row["session"] == "t0")
    lesions = load_volume(m.path(i, "lesions")).data > 0.5
    nawm = load_volume(m.path(i, "NAWM")).data > 0.5
    brain = load_volume(m.path(i, "brainmask")).data > 0.5
    csf = (load_volume(m.path(i, "CSF")).data > 0.9) & brain
    gm = (load_volume(m.path(i, "GM")).data > 0.8) & brain
    wm = (load_volume(m.path(i, "WM")).data > 0.9) & nawm

    def mean(col: str, mask: np.ndarray) -> float:
        return float(load_volume(m.path(i, col)).data[mask].mean())

    for hyper in ("T2w", "FLAIR", "DTI_RD", "DIR"):
        assert mean(hyper, lesions) > mean(hyper, wm), hyper
    for hypo in ("T1w", "MTR", "DTI_FA", "PIB"):
        assert mean(hypo, lesions) < mean(hypo, wm), hypo
    assert mean("FLAIR", csf) < 0.3 * mean("FLAIR", gm)  # FLAIR suppresses CSF
    assert mean("T2w", csf) > mean("T2w", gm)
    assert mean("DIR", csf) < 0.3 * mean("DIR", gm) and mean("DIR", wm) < 0.3 * mean("DIR", gm)  # DIR: GM only
    assert 1e-4 < mean("DTI_RD", wm) < 1e-3  # mm^2/s


def test_summary_lists_patients_and_correlation(ms_cohort):
    text = format_summary(ms_cohort)
    assert "lesion DVR < NAWM DVR in every patient: yes" in text
    assert "remyelination index vs EDSS: Pearson r = -" in text
    assert text.count("sub-") >= 8
