"""The report's CCA and ESIT sections: shown when RUN/explain holds their files, a note otherwise."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd
import pytest

from neurotrans.errors import InputError
from neurotrans.explain.cca_run import summary_table
from neurotrans.explain.folder import ExplainFolder
from neurotrans.explain.plots import esit_montage, figure_png, similarity_curves
from neurotrans.report import build_report, load_run


def _cca_files(run) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [{"layer": f"actv{k}", "path": f"p{k}", "scale": s, "concept": c, "kind": kind, "similarity": rng.random(),
             "n_voxels": 50, "n_channels": 2, "rank": 2}
            for k, s in enumerate([1, 2, 1], start=1)
            for c, kind in (("T1", "image"), ("PET", "image"), ("GM", "tissue"), ("putamen", "region"))]
    summary = summary_table([pd.DataFrame(rows)])
    folder = ExplainFolder.of_run(run)
    folder.cca.mkdir(parents=True)
    summary.to_csv(folder.cca_summary, sep="\t", index=False)
    folder.cca_curves.write_bytes(figure_png(similarity_curves(summary)))
    return summary


def _esit_files(run) -> None:
    rng = np.random.default_rng(1)
    folder = ExplainFolder.of_run(run)
    folder.esit.mkdir(parents=True)
    pd.DataFrame([{"value": "embedding", "region": "hippocampus", "channel": 2, "r_gm": 0.61, "p_gm": 0.01, "n": 8,
                   "dominant_share": 0.875, "mean_CN": 1.2, "mean_AD": 0.9}]).to_csv(folder.esit_summary, sep="\t",
                                                                                  index=False)
    att = rng.random((3, 8, 9, 7))
    folder.esit_montage("sub-01_M000").write_bytes(figure_png(esit_montage(att / att.sum(0), att, np.eye(4))))


def test_sections_appear_with_their_files(make_run):
    run = make_run()
    summary = _cca_files(run)
    _esit_files(run)
    html = build_report(run).read_text()
    assert "What the network learned: CCA similarity" in html and "ESIT maps" in html
    assert "hippocampus" in html and "0.875" in html and "dominant_share" in html
    # the pivot: one row per layer, the image/tissue concepts as columns, best region named
    gm = summary.query("layer == 'actv2' and concept == 'GM'")["mean"].iloc[0]
    assert f"{gm:.3f}" in html and "1/2" in html and "best region" in html
    figures = run / "report" / "figures"
    for name, source in (("cca_curves.png", ExplainFolder.of_run(run).cca_curves),
                         ("esit_montage_sub-01_M000.png", ExplainFolder.of_run(run).esit_montage("sub-01_M000"))):
        assert (figures / name).read_bytes() == source.read_bytes()
        assert base64.b64encode(source.read_bytes()).decode() in html
    assert "CCA similarity left out" not in html


def test_notes_when_absent_and_errors_when_malformed(make_run):
    run = make_run()
    data = load_run(run)
    assert data.explain_cca is None and data.explain_esit is None
    assert any("neurotrans explain cca" in n for n in data.notes)
    assert not any("explain esit" in n for n in data.notes)  # a pix2pix run has no ESIT maps to miss
    html = build_report(run).read_text()
    assert "What the network learned" not in html and "<h2>ESIT maps</h2>" not in html
    folder = ExplainFolder.of_run(run)
    folder.cca.mkdir(parents=True)
    pd.DataFrame({"layer": ["actv1"], "mean": [0.5]}).to_csv(folder.cca_summary, sep="\t", index=False)
    with pytest.raises(InputError, match="lacks column"):
        load_run(run)
