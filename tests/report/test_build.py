"""build_report: a self-contained page, the PNGs, notes for what is absent, clear errors."""

from __future__ import annotations

import base64
import json
import re
import shutil

import matplotlib.image as mpimg
import pandas as pd
import pytest
from fake_run import METHOD, TEST

from neurotrans.errors import InputError
from neurotrans.report import build_report, choose_subjects, load_run
from neurotrans.report.html import SIMULATED_SENTENCE, mean_std, render_page

# 4 box-plot figures (volume/mid_axial x normalised/original), 3 montages, 2 regional, 1 training
EXPECTED_PNGS = 4 + 3 + 2 + 1


def test_report_is_self_contained(built_run):
    html = (built_run / "report" / "report.html").read_text()
    srcs = re.findall(r'<img[^>]*\ssrc="([^"]*)"', html)
    assert len(srcs) == html.count("<img") == EXPECTED_PNGS
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"https?://", html)
    assert "<script" not in html.lower()
    assert not re.search(r'<link[^>]+href=|\ssrc="(?!data:)', html)
    # the page embeds the very bytes of the PNG files
    files = sorted((built_run / "report" / "figures").glob("*.png"))
    assert len(files) == EXPECTED_PNGS
    embedded = {base64.b64decode(s.split(",", 1)[1]) for s in srcs}
    assert embedded == {f.read_bytes() for f in files}
    for f in files:
        image = mpimg.imread(f)
        assert image.ndim == 3 and min(image.shape[:2]) > 100
        assert image.std() > 0.01, f"{f.name} is blank"


def test_report_contents(built_run):
    html = (built_run / "report" / "report.html").read_text()
    assert SIMULATED_SENTENCE in html
    # problems are shown, escaped, before the metrics
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    assert html.index("Problems found") < html.index("Image metrics")
    # summary table: pix2pix MAE on volume/normalised, mean +- std from the per-subject values
    per = pd.read_csv(built_run / "evaluation" / "per_subject.tsv", sep="\t")
    sel = per[(per.method == METHOD) & (per.scope == "volume") & (per.units == "normalised")]["mae"]
    assert mean_std(sel.mean(), sel.std())[0] in html
    for text in ("n test subjects", "T1w &rarr; FDG", "Paired tests", "Conventions", "gaussian", "p_wilcoxon",
                 "Regional analysis", "Training", "Downstream diagnosis", "EDSS regression", "Bland-Altman agreement",
                 "Per-region error", "<th>psnr.data_range</th>"):
        assert text in html, text
    # montages show the best, median and worst test subjects by MAE
    ranked = sel.index[sel.argsort()]
    best, worst = per.loc[ranked[0], "subject"], per.loc[ranked[-1], "subject"]
    names = sorted(f.name for f in (built_run / "report" / "figures").glob("montage_*.png"))
    assert names[0] == f"montage_1_{best}_M000.png" and names[-1] == f"montage_3_{worst}_M000.png"


@pytest.mark.parametrize(("dataset_flag", "run_flag", "expected"),
                         [(True, False, True), (False, False, False), (False, True, True)])
def test_simulated_sentence_only_when_flagged(make_run, dataset_flag, run_flag, expected):
    run = load_run(make_run(simulated=dataset_flag, run_simulated=run_flag))
    assert run.simulated is expected
    assert (SIMULATED_SENTENCE in render_page(run, [], [])) is expected


def test_without_run_json_and_optional_files(make_run):
    run = make_run(run_json=False, problems=False)
    (run / "evaluation" / "regional.tsv").unlink()
    (run / "log.jsonl").unlink()
    (run / "evaluation" / "tests.tsv").unlink()
    html = build_report(run).read_text()
    pngs = list((run / "report" / "figures").glob("*.png"))
    assert len(pngs) == 4 and all(p.name.startswith("boxplot_") for p in pngs)
    for note in ("run.json is absent", "regional.tsv is absent", "log.jsonl is absent", "tests.tsv is absent"):
        assert note in html, note
    assert "Problems found" not in html and "Paired tests" not in html
    # no run.json and no simulated flag reachable: no sentence
    assert SIMULATED_SENTENCE not in html


def test_rebuild_with_chosen_subjects_replaces_montages(make_run):
    run = make_run()
    (run / "evaluation" / "regional.tsv").unlink()  # fewer figures: this test is about the montages
    build_report(run)
    earlier = sorted(p.name for p in (run / "report" / "figures").glob("montage_*.png"))
    assert len(earlier) == 3
    mine = run / "report" / "figures" / "montage_2_sub-07_M000.png"  # a file the report did not write
    mine.write_bytes(b"the user's own figure")
    with pytest.raises(InputError, match=r"report\.html: already exists.*--overwrite"):
        build_report(run, subjects=[TEST[1]])
    build_report(run, subjects=[TEST[1]], overwrite=True)
    montages = sorted(p.name for p in (run / "report" / "figures").glob("montage_*.png"))
    # the earlier build's montages are replaced; the user's file is kept
    assert montages == sorted([f"montage_1_{TEST[1]}_M000.png", mine.name])
    assert mine.read_bytes() == b"the user's own figure"


def test_choose_subjects(make_run):
    run = load_run(make_run())
    chosen = choose_subjects(run)
    assert [c[0].split()[0] for c in chosen] == ["best", "median", "worst"]
    maes = [c[2] for c in chosen]
    assert maes == sorted(maes)
    assert [run.manifest.key(c[1]) for c in choose_subjects(run, [f"{TEST[2]}_M000"])] == [f"{TEST[2]}_M000"]
    with pytest.raises(InputError, match="sub-99"):
        choose_subjects(run, ["sub-99"])


def test_missing_evaluation_folder(make_run):
    run = make_run()
    shutil.rmtree(run / "evaluation")
    with pytest.raises(InputError, match=r"evaluation.*neurotrans evaluate"):
        build_report(run)
    assert not (run / "report" / "report.html").exists()


def test_malformed_inputs(make_run):
    run = make_run()
    run2 = run.parent / "run2"
    shutil.copytree(run, run2)
    per = pd.read_csv(run / "evaluation" / "per_subject.tsv", sep="\t").drop(columns=["ssim"])
    per.to_csv(run / "evaluation" / "per_subject.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match=r"per_subject.tsv.*ssim"):
        load_run(run)
    (run2 / "run.json").write_text("{not json")
    with pytest.raises(InputError, match="run.json"):
        load_run(run2)


def test_log_with_partial_last_line(make_run):
    run = make_run()
    with open(run / "log.jsonl", "a") as fh:
        fh.write('{"step": 99, "loss_G"')  # killed mid-write
    log = load_run(run).log
    assert len(log) == 24 and log["step"].max() == 19
    with open(run / "log.jsonl", "w") as fh:
        fh.write('{"step": 0}\nbroken\n' + json.dumps({"step": 1, "loss_G": 1.0}) + "\n")
    with pytest.raises(InputError, match="log.jsonl:2"):
        load_run(run)


def test_mean_std_rounding():
    # both rounded to the second significant digit of the std
    assert mean_std(0.08, 0.025819) == ("0.080 &plusmn; 0.026", 3)
    assert mean_std(29.2, 0.2582) == ("29.20 &plusmn; 0.26", 2)
    assert mean_std(1234.0, 56.0) == ("1234 &plusmn; 56", 0)
    # the evaluation writes a NaN std when a PSNR is infinite: the mean alone is shown
    assert mean_std(float("inf"), float("nan"))[0] == "inf"
    assert mean_std(1.0, 3e-9) == ("1 &plusmn; 3e-09", None)


def test_model_label_comes_from_the_evaluation(make_run):
    # the evaluation labels the model row (e.g. a plane-averaged prediction); the report follows it
    run = make_run()
    label = "pix2pix_3plane_fdg (planes averaged)"
    per = pd.read_csv(run / "evaluation" / "per_subject.tsv", sep="\t")
    per["method"] = per["method"].replace(METHOD, label)
    per.to_csv(run / "evaluation" / "per_subject.tsv", sep="\t", index=False)
    conv = json.loads((run / "evaluation" / "conventions.json").read_text())
    (run / "evaluation" / "conventions.json").write_text(json.dumps({**conv, "method": label}))
    data = load_run(run)
    assert data.model_method == label and data.info.method == METHOD
    assert [c[0].split()[0] for c in choose_subjects(data)] == ["best", "median", "worst"]
    assert f"{label}: T1w &rarr; FDG" in render_page(data, [], [])
