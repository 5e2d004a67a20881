"""data.sessions: a model trains and validates on the named sessions, prediction covers all."""

from __future__ import annotations

from neurotrans.config import DataConfig
from neurotrans.data.pipeline import cohort_columns, fit_cohort_stats, prepare, select_sessions
from neurotrans.io.manifest import read_manifest

INPUTS = ("MTR", "DTI_RD")


def test_sessions_restrict_the_prepared_scans_and_cohort_stats_use_only_read_columns(ms_cohort):
    man = read_manifest(ms_cohort / "manifest.tsv")
    patients = sorted(set(man.table.loc[man.table.session == "t1", "subject"]))[:2]
    assert len(select_sessions(man, ()).table) == len(man.table)
    assert set(select_sessions(man, ["t1"]).table.session) == {"t1"}
    data = DataConfig(manifest=str(ms_cohort / "manifest.tsv"), inputs=INPUTS, target="PIB", sessions=("t0",),
                      normalisation={c: "zscore:cohort" for c in ("MTR", "DTI_FA", "DTI_RD", "DTI_AD")})
    assert cohort_columns(data) == ["MTR", "DTI_RD"]  # FA and AD are named but not read
    scans = prepare(man, patients, data, fit_cohort_stats(man, patients, data))
    assert [(s.subject, s.session) for s in scans] == [(p, "t0") for p in patients]
    both = prepare(man, patients, DataConfig(manifest=data.manifest, inputs=INPUTS, target="PIB"), {})
    assert sorted(s.session for s in both) == ["t0", "t0", "t1", "t1"]
