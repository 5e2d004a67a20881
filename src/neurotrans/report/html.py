"""The self-contained HTML page: tables, figures as base64 PNG data URIs, inline CSS.

No JavaScript, no external file, no network: the page can be mailed or archived alone.
Every text taken from a file is HTML-escaped.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from html import escape

import pandas as pd

from neurotrans import __version__
from neurotrans.report.figures import METRICS, method_order
from neurotrans.report.rundata import RunData

SIMULATED_SENTENCE = ("These results were computed on simulated data built on real anatomical templates, "
                      "not on patients; they do not validate the method for clinical use.")

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif; color: #1d1d1f;
       background: #fafafa; margin: 0; line-height: 1.45; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
h1 { font-size: 1.7em; margin: 0.2em 0 0.3em; }
h2 { font-size: 1.25em; border-bottom: 2px solid #e3e3e8; padding-bottom: 4px; margin-top: 2em; }
h3 { font-size: 1.05em; margin-top: 1.4em; }
.subtitle { color: #555; margin-top: 0; }
.banner { padding: 12px 16px; border-radius: 6px; margin: 14px 0; font-size: 1.02em; }
.simulated { background: #fff4d6; border-left: 6px solid #e0a100; }
.problems { background: #fde8e8; border-left: 6px solid #c62828; }
.problems h2 { border: none; margin-top: 0; color: #a31515; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 0.88em; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e3e3e8; text-align: left; vertical-align: top; }
th { background: #f0f0f5; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #fafafd; }
figure { margin: 16px 0 24px; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e3e8; }
figcaption { color: #444; font-size: 0.9em; margin-top: 4px; max-width: 900px; }
.note { color: #666; font-size: 0.9em; margin: 4px 0; }
details { margin: 8px 0 16px; }
summary { cursor: pointer; color: #0b5cad; }
table.kv td { max-width: 820px; }
.range { color: #777; font-size: 0.85em; }
code { background: #f0f0f5; padding: 1px 4px; border-radius: 3px; font-size: 0.92em; }
footer { color: #888; font-size: 0.82em; margin-top: 3em; }
"""


@dataclass(frozen=True)
class FigureItem:
    """One rendered figure.

    Args:
        section: section key it belongs to (``metrics``, ``montages``, ``regional``, ``training``).
        name: PNG file name under report/figures/.
        png: the PNG bytes (the same bytes as the file).
        caption: plain-text caption (escaped when written).
        group: ``scope/units`` of a metrics figure, placed after the matching summary table.
    """

    section: str
    name: str
    png: bytes
    caption: str
    group: str = ""


def fmt(value: object) -> str:
    """A table cell: 4 significant digits for floats, empty for missing values, escaped text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e9:
            return str(int(value))
        return f"{value:.4g}"
    return escape(str(value))


def _is_num(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def table_html(df: pd.DataFrame, columns: list[str] | None = None) -> str:
    """An HTML table of ``df`` (all cells escaped, numbers right-aligned)."""
    columns = [c for c in (columns or list(df.columns)) if c in df.columns]
    head = "".join(f"<th>{escape(str(c))}</th>" for c in columns)
    body = []
    for row in df[columns].itertuples(index=False):
        cells = []
        for v in row:
            v = v.item() if hasattr(v, "item") else v
            cells.append(f'<td class="num">{fmt(v)}</td>' if _is_num(v) else f"<td>{fmt(v)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def flatten(items: dict, prefix: str = "") -> dict[str, object]:
    """Nested dicts as one level with dotted keys (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``)."""
    out: dict[str, object] = {}
    for k, v in items.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out |= flatten(v, key + ".")
        else:
            out[key] = v
    return out


def _kv_table(items: dict) -> str:
    rows = []
    for k, v in flatten(items).items():
        text = json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v
        rows.append(f"<tr><th>{escape(str(k))}</th><td>{fmt(text)}</td></tr>")
    return f"<table class=\"kv\"><tbody>{''.join(rows)}</tbody></table>"


def mean_std(mean: float, std: float) -> tuple[str, int | None]:
    """``"mean +- std"`` with both rounded to the second significant digit of the std.

    Returns:
        The text and the number of decimals used (``None``: 4 significant digits, for a
        zero, negligible or missing std), so that min and max can be written alike.
    """
    if not math.isfinite(std) or not math.isfinite(mean):
        # the evaluation writes NaN std when a value is infinite (identical images): show the mean only
        return fmt(float(mean)), None
    if std <= 1e-6 * max(abs(mean), 1.0):
        # no spread worth writing (e.g. Pearson r of 1 up to rounding): do not print 8 zeros
        return f"{fmt(float(mean))} &plusmn; {std:.1g}", None
    decimals = max(0, 1 - math.floor(math.log10(std)))
    return f"{mean:.{decimals}f} &plusmn; {std:.{decimals}f}", decimals


def _fixed(value: float, decimals: int | None) -> str:
    return fmt(float(value)) if decimals is None or not math.isfinite(value) else f"{value:.{decimals}f}"


def summary_tables(summary: pd.DataFrame) -> dict[str, str]:
    """One table per scope and units: a row per method, per metric mean +- std and [min, max].

    Laid out as the pix2pix paper's Table 1 (methods against metrics).

    Returns:
        ``"scope/units"`` -> HTML table, in the order of the file.
    """
    parts = {}
    for (scope, units), group in summary.groupby(["scope", "units"], sort=False):
        methods = method_order(group["method"].to_numpy())
        present = list(dict.fromkeys(group["metric"].astype(str)))
        metrics = [m for m in METRICS if m in present] + [m for m in present if m not in METRICS]
        head = "".join(f"<th>{escape(m)}</th>" for m in metrics)
        rows = []
        for method in methods:
            cells, n = [], ""
            for metric in metrics:
                hit = group[(group["method"] == method) & (group["metric"] == metric)]
                if hit.empty:
                    cells.append("<td></td>")
                    continue
                r = hit.iloc[0]
                text, dec = mean_std(float(r["mean"]), float(r["std"]))
                cells.append(f'<td class="num">{text}<br><span class="range">[{_fixed(r["min"], dec)}, '
                             f'{_fixed(r["max"], dec)}]</span></td>')
                n = fmt(r["n"].item() if hasattr(r["n"], "item") else r["n"])
            rows.append(f"<tr><th>{escape(method)}</th>{''.join(cells)}<td class=\"num\">{n}</td></tr>")
        parts[f"{scope}/{units}"] = (f"<table><thead><tr><th>method</th>{head}<th>n</th></tr></thead>"
                                     f"<tbody>{''.join(rows)}</tbody></table>")
    return parts


def figure_html(item: FigureItem) -> str:
    """A <figure> with the PNG embedded as a data URI."""
    data = base64.b64encode(item.png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(item.caption)}">'
            f"<figcaption>{escape(item.caption)} <span class=\"note\">(report/figures/{escape(item.name)})"
            "</span></figcaption></figure>")


def _figures(items: list[FigureItem], section: str) -> str:
    return "".join(figure_html(f) for f in items if f.section == section)


def _group_rank(group: str) -> tuple[int, int, str]:
    # whole volume before the middle slice, normalised before original units, unknown ones last
    scope, _, units = group.partition("/")
    return ({"volume": 0, "mid_axial": 1}.get(scope, 2), {"normalised": 0, "original": 1}.get(units, 2), group)


def _run_details(run: RunData) -> str:
    info = run.info
    details: dict = {"run folder": str(run.run_dir)}
    if info is not None:
        details |= {"method": info.method, "inputs": ", ".join(info.inputs), "target": info.target,
                    "units": info.units, "manifest": info.manifest}
        for split in ("train", "val", "test"):
            if split in info.split:
                details[f"n {split} subjects"] = len(info.split[split])
    methods = method_order(run.per_subject["method"].to_numpy())
    details["methods evaluated"] = ", ".join(methods)
    details["subjects evaluated"] = run.per_subject["subject"].nunique()
    details["simulated data"] = "yes" if run.simulated else "no"
    return _kv_table(details)


def similarity_pivot(summary: pd.DataFrame) -> pd.DataFrame:
    """Per layer: scale and the mean (+- SD) similarity with each image / tissue concept and the regions' mean."""
    rows = []
    several = int(pd.to_numeric(summary["n"]).max()) > 1 if len(summary) else False
    for layer, g in summary.groupby("layer", sort=False):
        row: dict[str, object] = {"layer": layer, "scale": f"1/{int(g['scale'].iloc[0])}"}
        for _, r in g[g["kind"] != "region"].iterrows():
            row[str(r["concept"])] = f"{r['mean']:.3f}" + (f" ± {r['sd']:.3f}" if several else "")
        regions = g[g["kind"] == "region"].dropna(subset=["mean"])
        if len(regions):
            best = regions.loc[regions["mean"].idxmax()]
            row["regions (mean)"] = f"{regions['mean'].mean():.3f}"
            row["best region"] = f"{best['concept']} {best['mean']:.3f}"
        rows.append(row)
    return pd.DataFrame(rows)


def explain_html(run: RunData, figures: list[FigureItem]) -> str:
    """The CCA and ESIT sections, when `neurotrans explain` left their files in RUN/explain."""
    out = []
    if run.explain_cca is not None or any(f.section == "cca" for f in figures):
        out.append("<h2>What the network learned: CCA similarity</h2><p>First canonical correlation between each "
                   "layer's activations and a concept map, over the voxels of brain tissue or CSF of sampled training "
                   "subjects (ESIT paper, Sec. 3-4); <code>1/k</code>: the layer's resolution relative to the input "
                   "(explain/cca/cca.json says which tissue maps and subjects were used).</p>")
        out.append(_figures(figures, "cca"))
        if run.explain_cca is not None and len(run.explain_cca):
            out.append("<details><summary>Similarity per layer (explain/cca/summary.tsv)</summary>"
                       f"{table_html(similarity_pivot(run.explain_cca))}</details>")
    if run.explain_esit is not None or any(f.section == "esit" for f in figures):
        out.append("<h2>ESIT maps</h2>")
        out.append(_figures(figures, "esit"))
        if run.explain_esit is not None and len(run.explain_esit):
            out.append("<h3>Hippocampus and amygdala: embedding strength against GM volume and diagnosis</h3>"
                       "<p>Per region, the channel the regional attention picks there most often "
                       "(<code>dominant_share</code>: share of subjects); <code>r_gm</code>: Pearson r across subjects "
                       "of its mean embedding (or its contribution to the output) in the region with the region's GM "
                       "volume; <code>mean_*</code>: mean per group (explain/esit/summary.tsv; every channel in "
                       "associations.tsv).</p>")
            out.append(table_html(run.explain_esit))
    return "".join(out)


def render_page(run: RunData, figures: list[FigureItem], notes: list[str]) -> str:
    """The whole report page as one HTML string.

    Args:
        run: the run folder's contents.
        figures: rendered figures, placed in their sections.
        notes: one line per section left out, and why.
    """
    info = run.info
    title = "neurotrans report"
    if info is not None:
        inputs = escape(", ".join(info.inputs))
        subtitle = f"{escape(run.model_method)}: {inputs} &rarr; {escape(info.target)}"
    else:
        subtitle = f"method {escape(run.model_method)} (run.json absent)"
    out = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}: "
           f"{escape(run.run_dir.name)}</title><style>{CSS}</style></head><body><main>",
           f"<h1>{title}</h1><p class=\"subtitle\">{subtitle}</p>"]
    if run.simulated:
        out.append(f'<div class="banner simulated">{SIMULATED_SENTENCE}</div>')
    problems = run.tables.get("problems")
    if problems is not None and len(problems):
        out.append(f'<div class="banner problems"><h2>Problems found by the evaluation ({len(problems)})</h2>'
                   "<p>Rows of evaluation/problems.tsv (missing, in-sample or mismatched predictions, left out of the numbers "
                   "below): check them before trusting the results.</p>"
                   f"{table_html(problems)}</div>")

    out.append(f"<h2>Run</h2>{_run_details(run)}")
    if run.demo_summary:
        out.append(f"<h3>Demo summary (summary.json)</h3>{_kv_table(run.demo_summary)}")

    out.append("<h2>Image metrics</h2>")
    if "summary" in run.tables:
        out.append("<p>Mean &plusmn; standard deviation over test subjects, [minimum, maximum] below. "
                   "<code>other_subjects</code> compares each test target with the training subjects' "
                   "targets: what any other subject's image would score.</p>")
    tables = summary_tables(run.tables["summary"]) if "summary" in run.tables else {}
    groups = list(dict.fromkeys([*tables, *(f.group for f in figures if f.section == "metrics")]))
    for group in sorted(groups, key=_group_rank):
        scope, _, units = group.partition("/")
        if group:
            out.append(f"<h3>{escape(scope.replace('_', ' '))}, {escape(units)} units</h3>{tables.get(group, '')}")
        out.append("".join(figure_html(f) for f in figures if f.section == "metrics" and f.group == group))
    out.append("<details><summary>Per-subject metrics (evaluation/per_subject.tsv)</summary>"
               f"{table_html(run.per_subject)}</details>")
    if "tests" in run.tables:
        out.append("<h3>Paired tests between methods</h3><p>Two-sided paired t-test and Wilcoxon signed-rank "
                   "test across subjects; <code>mean_diff</code> is method_a minus method_b.</p>")
        out.append(table_html(run.tables["tests"]))

    if any(f.section == "montages" for f in figures):
        out.append("<h2>Example predictions</h2>")
        out.append(_figures(figures, "montages"))

    regional = [n for n in ("regional_summary", "bland_altman") if n in run.tables]
    if regional or any(f.section == "regional" for f in figures):
        out.append("<h2>Regional analysis</h2>")
        out.append(_figures(figures, "regional"))
        if "regional_summary" in run.tables:
            rs = run.tables["regional_summary"]
            if "mae" in rs:
                rs = rs.sort_values("mae", ascending=False, kind="stable")
            out.append("<details><summary>Per-region error (evaluation/regional_summary.tsv)</summary>"
                       f"{table_html(rs)}</details>")
        if "bland_altman" in run.tables:
            out.append(f"<h3>Bland-Altman agreement</h3>{table_html(run.tables['bland_altman'])}")

    clinical = {"diagnosis": "Downstream diagnosis (SVM on regional means, real vs synthetic)",
                "lesions": "Lesions", "myelin_discrepancy": "Myelin-content discrepancy",
                "indices": "Myelin indices",
                "edss_regression": "EDSS regression (least squares)"}
    present = [k for k in clinical if k in run.tables]
    if present:
        out.append("<h2>Clinical analyses</h2>")
        for k in present:
            out.append(f"<h3>{clinical[k]}</h3>{table_html(run.tables[k])}")

    out.append(explain_html(run, figures))

    if any(f.section == "training" for f in figures):
        out.append("<h2>Training</h2>")
        out.append(_figures(figures, "training"))

    if run.conventions:
        out.append("<h2>Conventions</h2><p>How the numbers above were computed "
                   "(evaluation/conventions.json), so that they can be reproduced.</p>")
        out.append(_kv_table(run.conventions))
    if notes:
        items = "".join(f"<li>{escape(n)}</li>" for n in notes)
        out.append(f"<h2>Sections left out</h2><ul class=\"note\">{items}</ul>")
    out.append(f"<footer>Written by neurotrans {escape(__version__)} (<code>neurotrans report</code>). "
               "Figures are also saved as PNG in report/figures/.</footer></main></body></html>\n")
    return "\n".join(out)
