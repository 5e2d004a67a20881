"""The report shows the age sweep when the run folder holds age_sweep.tsv."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neurotrans.errors import InputError
from neurotrans.io.run import RunFolder
from neurotrans.report import build_report
from neurotrans.report.sweep import age_sweep_figure, read_sweep


def _sweep(n_subjects: int = 3) -> pd.DataFrame:
    return pd.DataFrame([{"subject": f"{s:03d}", "session": "1", "age": a, "region": r,
                          "suvr": 1.3 - 0.003 * (a - 60) * (1 + k) + 0.01 * s}
                         for s in range(n_subjects) for a in (60.0, 75.0, 90.0)
                         for k, r in enumerate(("posterior cingulate/precuneus", "anterior cingulate"))])


def test_figure_has_one_panel_per_region_with_the_mean_curve():
    table = _sweep()
    fig = age_sweep_figure(table)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["posterior cingulate/precuneus", "anterior cingulate"]
    mean_line = axes[1].get_lines()[-1]
    expected = table[table["region"] == "anterior cingulate"].groupby("age")["suvr"].mean().to_numpy()
    np.testing.assert_allclose(mean_line.get_ydata(), expected)
    assert len(axes[0].get_lines()) == 3 + 1  # one line per subject and the mean


def test_report_includes_the_sweep_only_when_present(make_run, tmp_path):
    run = make_run()
    page = build_report(run)
    assert "age_sweep.png" not in page.read_text()
    _sweep().to_csv(RunFolder(run).age_sweep, sep="\t", index=False)
    page = build_report(run, overwrite=True)
    assert "report/figures/age_sweep.png" in page.read_text()
    assert (RunFolder(run).report / "figures" / "age_sweep.png").is_file()


def test_a_malformed_sweep_table_is_one_clear_error(tmp_path):
    path = tmp_path / "age_sweep.tsv"
    pd.DataFrame({"subject": ["1"], "age": [60]}).to_csv(path, sep="\t", index=False)
    with pytest.raises(InputError, match="lacks column"):
        read_sweep(path)
