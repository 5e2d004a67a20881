"""The evaluation folder's contract: table names, their files and the columns readers rely on.

Written by :func:`neurotrans.metrics.evaluate.write_evaluation`, read by
:mod:`neurotrans.report.rundata`; both take the names from here, so no file name is
spelled twice::

    EVALUATION/<table>.tsv      one tab-separated table per name in TABLES (when computed)
    EVALUATION/conventions.json how every number was computed
"""

from __future__ import annotations

CONVENTIONS_FILE = "conventions.json"
IMAGE_TABLES = ("per_subject", "summary", "tests", "problems", "regional", "regional_summary", "diagnosis",
                "bland_altman")
MS_TABLES = ("lesions", "myelin_discrepancy", "indices", "edss_regression")
TABLES = IMAGE_TABLES + MS_TABLES

# columns every reader may count on; a table lacking them is an error, never guessed around
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "per_subject": ("subject", "session", "method", "scope", "units", "mae", "mse", "psnr", "ssim", "pearson"),
    "summary": ("method", "scope", "units", "metric", "mean", "std", "min", "max", "n"),
    "tests": ("method_a", "method_b", "scope", "units", "metric", "mean_diff", "t", "p_t", "n"),
    "problems": (),
    "regional": ("subject", "region", "real", "synthetic"),
    "regional_summary": ("region",),
    "diagnosis": ("data",),
    "bland_altman": ("quantity", "bias", "loa_low", "loa_high"),
    "lesions": (),
    "myelin_discrepancy": ("roi",),
    "indices": (),
    "edss_regression": ("term", "coef"),
}


def table_file(name: str) -> str:
    """File name of table ``name`` (``per_subject`` -> ``per_subject.tsv``)."""
    if name not in TABLES:
        raise ValueError(f"unknown evaluation table {name!r}; known: {', '.join(TABLES)}")
    return f"{name}.tsv"


EVALUATION_FILES = tuple(table_file(t) for t in TABLES) + (CONVENTIONS_FILE,)

__all__ = ["CONVENTIONS_FILE", "EVALUATION_FILES", "IMAGE_TABLES", "MS_TABLES", "REQUIRED_COLUMNS", "TABLES",
           "table_file"]
