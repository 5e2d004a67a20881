"""The myelin experiment's folds, tables and ordering checks on hand-made inputs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from neurotrans.experiments.myelin_pib import (
    FOLDS,
    VAL_SUBJECTS,
    orderings,
    quality_table,
    thesis_folds,
)
from neurotrans.io.manifest import Manifest


def test_thesis_folds_test_each_subject_once_and_validate_on_three_training_subjects(tmp_path: Path):
    groups = ["MS"] * 18 + ["HC"] * 10
    rows = [{"subject": f"sub-{i:03d}", "session": s, "group": g} for i, g in enumerate(groups)
            for s in (["t0", "t1"] if g == "MS" else ["t0"])]
    folds = thesis_folds(Manifest(pd.DataFrame(rows), tmp_path))
    assert len(folds) == FOLDS
    everyone = {f"sub-{i:03d}" for i in range(28)}
    assert sorted(s for f in folds for s in f["test"]) == sorted(everyone)
    for f in folds:
        assert len(f["val"]) == VAL_SUBJECTS
        assert not set(f["train"]) & set(f["val"]) and not (set(f["train"]) | set(f["val"])) & set(f["test"])
        assert set(f["train"]) | set(f["val"]) | set(f["test"]) == everyone
        assert any(groups[int(s[4:])] == "HC" for s in f["val"])  # a control validates too


def _tables():
    per, les = [], []
    for model, mse, err in (("3D U-Net", 0.02, 0.05), ("Sketcher", 0.01, 0.04), ("Refiner (WL1)", 0.005, 0.01),
                            ("Refiner (L1)", 0.004, 0.03)):
        for k, group in enumerate(("MS", "MS", "HC")):
            subject = f"s{k}"
            per.append({"subject": subject, "session": "t0", "group": group, "method": model, "scope": "volume",
                        "units": "original", "mse": mse * (1 + k), "psnr": 30 - 100 * mse + k, "model": model})
            les.append({"subject": subject, "session": "t0", "group": group, "model": model, "wm_real": 1.6,
                        "wm_synthetic": 1.6 + err, "lesion_real": 1.3 if group == "MS" else float("nan"),
                        "lesion_synthetic": 1.3 + 2 * err if group == "MS" else float("nan")})
    return pd.DataFrame(per), pd.DataFrame(les)


def test_quality_table_and_orderings_follow_the_pooled_means():
    q = quality_table(*_tables())
    assert list(q.model) == ["3D U-Net", "Sketcher", "Refiner (L1)", "Refiner (WL1)"]
    row = q.set_index("model").loc["Sketcher"]
    assert row["MSE"] == "0.0200 (0.0100)" and row["MS lesions"] == "0.080 (0.000)"
    assert abs(row["_hc"] - 0.04) < 1e-12 and abs(row["_les"] - 0.08) < 1e-12
    claims = dict(orderings(q))
    assert claims["3.1 MSE: Sketcher < 3D U-Net"] is True
    assert claims["3.2 lesions: WL1 < L1 for the Refiner"] is True
    assert "4.2 MSE: L1 lowest of the Refiner losses" not in claims  # no NWL1 Refiner was run
    assert not any("CF-SAGAN" in c or "2-layer" in c for c in claims)  # models not run: no claim
