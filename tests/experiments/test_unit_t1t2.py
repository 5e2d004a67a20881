"""The UNIT T1 <-> T2 experiment's scoring and tables, with stand-in translators whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from fake_run_info import fake_run_info

from neurotrans.experiments.unit_t1t2 import (
    COPY,
    DIRECTIONS,
    VARIANTS,
    folder_name,
    score_scan,
    ssim_figure,
    tables,
)
from neurotrans.inference.predict import prepare_for_prediction
from neurotrans.io.manifest import read_manifest
from neurotrans.methods.base import Method
from neurotrans.metrics.image import ssim


class Copy(Method):
    """Translates nothing: both directions return the input (an anatomy-preserving stand-in)."""

    def __init__(self) -> None:
        super().__init__({"net": torch.nn.Identity()})

    def predict(self, x, covariates=None):
        return x.clone()

    def predict_reverse(self, x, covariates=None):
        return x.clone()


def test_scores_of_a_copying_translator(ms_cohort):
    man = read_manifest(ms_cohort / "manifest.tsv")
    info = fake_run_info(method="unit", target="T2w", inputs=("T1w",), manifest=ms_cohort / "manifest.tsv")
    rows = score_scan(Copy(), info, man, 0, anatomy=True)
    assert [r["direction"] for r in rows] == list(DIRECTIONS)
    t1, t2 = prepare_for_prediction(man, 0, info), prepare_for_prediction(man, 0, info, reverse=True)
    expected = ssim(t1.inputs[0], t2.inputs[0], mask=t1.mask, data_range=1.0)
    assert rows[0]["ssim"] == pytest.approx(expected)  # the copied T1 scored against the real T2
    for r in rows:  # the output is the input: its anatomy is the input's, whatever the contrast
        assert r["dice_mask"] == pytest.approx(1.0) and r["dice_tissue"] == pytest.approx(1.0)
        assert 0 < r["real_dice_tissue"] < 1 and r["mae"] > 0 and np.isfinite(r["psnr"])


def _results() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for v in ("CycleGAN", "baseline"):
        for epoch in (1, 2):
            for scan in ("s1", "s2", "s3"):
                for d in DIRECTIONS:
                    rows.append({"variant": v, "epoch": epoch, "steps": 10 * epoch, "scan": scan, "direction": d,
                                 "ssim": rng.random(), "psnr": 20 * rng.random(), "mae": rng.random(),
                                 "dice_mask": rng.random(), "dice_tissue": rng.random(),
                                 "real_dice_mask": 1.0, "real_dice_tissue": 0.6})
    rows += [{**r, "variant": COPY, "steps": 0} for r in rows if r["variant"] == "baseline" and r["epoch"] == 2]
    return pd.DataFrame(rows)


def test_tables_hold_the_means_in_the_papers_order(tmp_path):
    results = _results()
    text = tables(results, None, [1, 2])
    final = results[(results["epoch"] == 2) & (results["variant"] == "baseline")]
    t1t2 = final[final["direction"] == "T1w->T2w"]["ssim"]
    assert f"| baseline | {t1t2.mean():.3f} ± {t1t2.std(ddof=1):.3f} |" in text
    # VARIANTS order, not the data's, then the copied-input reference
    assert text.index("| baseline |") < text.index("| CycleGAN |") < text.index(f"| {COPY} |")
    first = results[(results["epoch"] == 1) & (results["variant"] == "CycleGAN") & (results["direction"] == DIRECTIONS[1])]
    assert "| CycleGAN | 1 | 10 | " in text and f"{first['ssim'].mean():.4f} |" in text
    assert "| real input vs real target | 1.000 ± 0.000" in text
    path = ssim_figure(results, tmp_path / "ssim.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_every_variant_has_a_distinct_folder():
    names = [folder_name(v) for v in VARIANTS]
    assert len(set(names)) == len(names) and all(n.replace("_", "").isalnum() for n in names)
