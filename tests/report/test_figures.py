"""Figure functions: RAS orientation of montages, Bland-Altman numbers, regional ranking, curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from neurotrans.report.figures import (
    METRICS,
    bland_altman,
    bland_altman_stats,
    curve_columns,
    metric_boxplots,
    regional_bars,
    regional_errors,
    training_curves,
)
from neurotrans.report.montage import centre_of_mass, montage, plane_slice, to_ras

SHAPE = (10, 12, 8)
RAS_AFFINE = np.array([[2.0, 0, 0, -10], [0, 2.5, 0, -15], [0, 0, 3.0, -12], [0, 0, 0, 1]])


def _flip(data: np.ndarray, affine: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """The same image stored with ``axis`` reversed (voxel i' = n - 1 - i)."""
    flip = np.eye(4)
    flip[axis, axis] = -1
    flip[axis, 3] = data.shape[axis] - 1
    return np.flip(data, axis), affine @ flip


def _swap(data: np.ndarray, affine: np.ndarray, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """The same image stored with voxel axes ``a`` and ``b`` exchanged."""
    perm = np.eye(4)
    perm[[a, b]] = perm[[b, a]]
    return np.swapaxes(data, a, b), affine @ perm


@pytest.fixture
def marked(rng) -> np.ndarray:
    """RAS-ordered volume with a bright block at the right, anterior, superior corner."""
    data = rng.random(SHAPE).astype(np.float32)
    data[7:, 9:, 6:] = 5.0
    return data


@pytest.mark.parametrize("storage", ["RAS", "LAS", "LPI", "SAR"])
def test_to_ras_undoes_any_storage_order(marked, storage):
    data, affine = marked, RAS_AFFINE
    if storage in ("LAS", "LPI"):
        data, affine = _flip(data, affine, 0)
    if storage == "LPI":
        data, affine = _flip(data, affine, 1)
        data, affine = _flip(data, affine, 2)
    if storage == "SAR":
        data, affine = _swap(data, affine, 0, 2)
    # the world coordinates of every voxel are unchanged by the re-storage
    ijk = np.array([3, 4, 5, 1.0])
    expected_shape = (SHAPE[2], SHAPE[1], SHAPE[0]) if storage == "SAR" else SHAPE
    assert data.shape == expected_shape
    out, out_affine = to_ras(data, affine)
    np.testing.assert_array_equal(out, marked)
    np.testing.assert_allclose(out_affine, RAS_AFFINE)
    np.testing.assert_allclose(out_affine @ ijk, RAS_AFFINE @ ijk)


def test_planes_show_anterior_and_superior_up(marked):
    centre = (8, 10, 7)  # inside the bright block
    axial, coronal, sagittal = (plane_slice(marked, p, centre) for p in ("axial", "coronal", "sagittal"))
    # imshow(origin="lower"): the last row is drawn at the top, the last column at the right
    assert axial.shape == (SHAPE[1], SHAPE[0]) and axial[-1, -1] == 5.0 and axial[0, 0] != 5.0
    assert coronal.shape == (SHAPE[2], SHAPE[0]) and coronal[-1, -1] == 5.0 and coronal[0, 0] != 5.0
    assert sagittal.shape == (SHAPE[2], SHAPE[1]) and sagittal[-1, -1] == 5.0 and sagittal[0, 0] != 5.0


def test_montage_identical_for_any_storage_order(marked, rng):
    synth = marked + 0.1 * rng.standard_normal(SHAPE).astype(np.float32)
    t1 = rng.random(SHAPE).astype(np.float32)
    fig_ras = montage({"T1w": t1}, marked, synth, RAS_AFFINE, target="FDG")
    stored = [_flip(v, RAS_AFFINE, 0) for v in (t1, marked, synth)]
    fig_las = montage({"T1w": stored[0][0]}, stored[1][0], stored[2][0], stored[0][1], target="FDG")
    assert isinstance(fig_ras, Figure)
    images_ras = [ax.images[0] for ax in fig_ras.axes if ax.images]
    images_las = [ax.images[0] for ax in fig_las.axes if ax.images]
    assert len(images_ras) == 3 * 4  # 3 planes x (T1w, real, synthetic, error)
    for a, b in zip(images_ras, images_las, strict=True):
        np.testing.assert_array_equal(a.get_array(), b.get_array())
        assert a.get_clim() == pytest.approx(b.get_clim())
    # the error column shows |synthetic - real| through the centre of mass
    centre = centre_of_mass(marked)
    np.testing.assert_allclose(images_ras[3].get_array(), plane_slice(np.abs(synth - marked), "axial", centre),
                               rtol=1e-6)
    # real and synthetic share one grey scale
    assert images_ras[1].get_clim() == images_ras[2].get_clim()


def test_montage_rejects_mismatched_grids_and_bad_centre(marked):
    with pytest.raises(ValueError, match="shape"):
        montage({}, marked, marked[:-1], RAS_AFFINE)
    with pytest.raises(ValueError, match="outside"):
        montage({}, marked, marked, RAS_AFFINE, centre=(0, 0, SHAPE[2]))


def test_montage_at_a_chosen_slice(marked):
    fig = montage({}, marked, marked, RAS_AFFINE, centre=(1, 2, 3))
    axial = fig.axes[0].images[0].get_array()
    np.testing.assert_array_equal(axial, marked[:, :, 3].T)


def test_centre_of_mass_matches_weighted_mean(rng):
    data = rng.random(SHAPE)
    data[:2] = -1.0  # negative values carry no weight
    w = np.clip(data, 0, None)
    grids = np.indices(SHAPE)
    expected = [int(round((g * w).sum() / w.sum())) for g in grids]
    assert centre_of_mass(data) == tuple(expected)
    mask = np.zeros(SHAPE)
    mask[5:, 6:, 4:] = 1
    assert all(c >= lo for c, lo in zip(centre_of_mass(data, mask), (5, 6, 4), strict=True))
    assert centre_of_mass(np.zeros(SHAPE)) == (5, 6, 4)


def test_bland_altman_stats(rng):
    real = rng.normal(1.0, 0.2, 200)
    synth = real + rng.normal(0.05, 0.1, 200)
    bias, low, high = bland_altman_stats(real, synth)
    d = synth - real
    assert bias == pytest.approx(np.mean(d))
    assert high - bias == pytest.approx(1.96 * np.std(d, ddof=1)) and bias - low == pytest.approx(high - bias)
    table = pd.DataFrame({"subject": np.repeat(["a", "b"], 100), "region": np.tile([f"r{i}" for i in range(100)], 2),
                          "group": np.repeat(["CN", "AD"], 100), "real": real, "synthetic": synth})
    fig = bland_altman(table, units="SUVR")
    ax = fig.axes[0]
    assert sorted(line.get_ydata()[0] for line in ax.lines) == pytest.approx(sorted([low, bias, high]))
    assert sum(len(c.get_offsets()) for c in ax.collections) == 200


def test_regional_errors_rank_by_mean_absolute_error(rng):
    regions = [f"R{i}" for i in range(30)]
    rows = [{"subject": s, "region": r, "real": 1.0, "synthetic": 1.0 + (-1) ** k * 0.01 * j}
            for k, s in enumerate("abc") for j, r in enumerate(regions)]
    table = pd.DataFrame(rows)
    ranked = regional_errors(table)
    assert list(ranked.index[:3]) == ["R29", "R28", "R27"]
    assert ranked.loc["R29", "mae"] == pytest.approx(0.29)
    assert ranked.loc["R29", "synthetic"] == pytest.approx(np.mean([1.29, 0.71, 1.29]))
    fig = regional_bars(table, n_regions=20)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == 20 and labels[-1] == "R29" and "R9" not in labels


def test_boxplots_one_panel_per_metric_one_box_per_method(rng):
    rows = [{"subject": f"s{i}", "method": m, "scope": "volume", "units": "normalised",
             **{k: rng.random() for k in METRICS}} for i in range(6) for m in ("other_subjects", "unet", "pix2pix")]
    fig = metric_boxplots(pd.DataFrame(rows))
    assert len(fig.axes) == len(METRICS)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels[:2] == ["unet", "pix2pix"] and labels[2].startswith("other subjects")
    # medians drawn equal the per-method medians
    medians = [line.get_ydata()[0] for line in fig.axes[0].lines if line.get_gid() == "median"]
    expected = [np.median([r["mae"] for r in rows if r["method"] == m]) for m in ("unet", "pix2pix", "other_subjects")]
    assert medians == pytest.approx(expected)


def test_boxplots_report_infinite_values():
    rows = [{"subject": f"s{i}", "method": "copy", "scope": "volume", "units": "normalised", "mae": 0.0,
             "psnr": np.inf if i < 2 else 40.0 + i} for i in range(5)]
    fig = metric_boxplots(pd.DataFrame(rows), metrics=("mae", "psnr"))
    psnr_ax = fig.axes[1]
    assert any("2 infinite" in t.get_text() for t in psnr_ax.texts)
    assert np.isfinite(psnr_ax.get_ylim()).all()


def test_text_from_files_is_not_mathtext(rng):
    rows = [{"subject": f"s{i}", "method": m, "scope": "volume", "units": "normalised", "mae": rng.random()}
            for i in range(4) for m in ("net$1", "a$b$c")]
    fig = metric_boxplots(pd.DataFrame(rows), metrics=("mae",))
    fig.canvas.draw()  # mathtext would fail on "$1" or render "b" in italics
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [r"net\$1", r"a\$b\$c"]


def test_training_curves_split_losses_and_validation():
    # the trainer's records: train rows with group/term losses and lr, val rows, an end row
    log = pd.DataFrame([{"step": k, "epoch": 0, "kind": "train", "generator/loss": 100.0 / (1 + k),
                         "generator/g_rec": 0.5, "discriminator/loss": 0.7, "lr": 2e-4} for k in range(10)]
                       + [{"step": 9, "kind": "val", "val/mae": 0.1, "val/psnr": 21.0, "best": True},
                          {"step": 9, "kind": "end", "elapsed_s": 3.0, "best_step": 9, "best_score": 0.1}])
    assert curve_columns(log) == (["generator/loss", "generator/g_rec", "discriminator/loss"], ["val/mae", "val/psnr"])
    fig = training_curves(log)
    loss_ax, mae_ax, psnr_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["generator/loss", "generator/g_rec", "discriminator/loss"]
    assert loss_ax.get_yscale() == "log"
    assert mae_ax.get_title() == "val/mae" and list(psnr_ax.lines[0].get_ydata()) == [21.0]
