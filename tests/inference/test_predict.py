"""Slice-wise and sliding-window prediction reassemble volumes exactly; target units."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurotrans.errors import InputError
from neurotrans.inference.predict import (
    invert_target,
    planes_for,
    predict_slices,
    predict_sliding_window,
    predict_subject,
)
from neurotrans.io.run import RunInfo
from neurotrans.methods.base import Method


class Channel(Method):
    """Predicts one input channel unchanged (a stand-in whose exact output is known)."""

    def __init__(self, channel: int = 0, scale: float = 1.0) -> None:
        super().__init__({"net": torch.nn.Identity()})
        self.channel, self.scale = channel, scale

    def predict(self, x: torch.Tensor, covariates: torch.Tensor | None = None) -> torch.Tensor:
        return self.scale * x[:, self.channel:self.channel + 1]


@pytest.mark.parametrize("planes, context, multiple", [
    (["axial"], 0, 1), (["coronal"], 0, 8), (["sagittal", "axial", "coronal"], 0, 16), (["axial"], 1, 4),
])
def test_slices_reassemble_to_the_input(rng, planes, context, multiple):
    vol = rng.random((2, 11, 13, 9)).astype(np.float32)
    # with 2.5D context the channels are slice-major: channel C * k + c is the centre slice of input c
    channel = 2 * context
    out = predict_slices(Channel(channel).predict, vol, planes, context=context, multiple=multiple, batch_size=5)
    assert out.shape == vol.shape[1:] and out.dtype == np.float32
    np.testing.assert_allclose(out, vol[0], rtol=1e-6)


def test_three_planes_are_averaged(rng):
    vol = rng.random((1, 8, 6, 7)).astype(np.float32)

    class PlaneScaled(Channel):
        def predict(self, x, covariates=None):  # a different answer per plane, told apart by the slice shape
            return x * {(6, 7): 1.0, (8, 7): 2.0, (8, 6): 3.0}[tuple(x.shape[2:])]

    out = predict_slices(PlaneScaled().predict, vol, ["sagittal", "coronal", "axial"])
    np.testing.assert_allclose(out, 2.0 * vol[0], rtol=1e-6)


def test_sliding_window_reassembles_the_input(rng):
    vol = rng.random((1, 20, 18, 22)).astype(np.float32)
    out = predict_sliding_window(Channel(0, scale=2.0).predict, vol, (8, 8, 8), overlap=0.5)
    np.testing.assert_allclose(out, 2.0 * vol[0], rtol=1e-5, atol=1e-6)


def _info(**kw) -> RunInfo:
    values = dict(version="0", config={"name": "t", "data": {}, "model": {"method": "supervised"}},
                  method="supervised", inputs=("T1w",), input_channels=("T1w",), target="FDG", units="SUVR",
                  mask="brainmask", target_stats=(), cohort_stats={}, grid=None, spatial_dims=2,
                  sampling={"kind": "slices", "planes": ["axial"], "context": 0}, in_channels=1, size_multiple=1,
                  split={"train": [], "val": [], "test": []}, manifest="")
    return RunInfo(**{**values, **kw})


def test_invert_target_uses_mean_training_statistics():
    y = np.array([-1.0, 0.0, 2.0], dtype=np.float32)
    info = _info(target_stats=({"kind": "zscore", "mean": 10.0, "std": 2.0}, {"kind": "zscore", "mean": 20.0, "std": 4.0}))
    from neurotrans.data.normalize import normaliser_from_dict

    ref = normaliser_from_dict({"kind": "zscore", "mean": 15.0, "std": 3.0}).invert(y)
    np.testing.assert_allclose(invert_target(y, info), ref)
    np.testing.assert_allclose(ref, [12.0, 15.0, 21.0])
    # SUVR targets: the model's output already is SUVR
    suvr = _info(target_stats=({"kind": "suvr", "reference": 7.0, "region": "pons"},))
    np.testing.assert_array_equal(invert_target(y, suvr), y)


def _subject(rng, shape=(6, 7, 5)):
    from types import SimpleNamespace

    from neurotrans.data.grid import Grid
    from neurotrans.data.preprocess import GridReference

    grid = Grid(shape, np.eye(4))
    mask = np.zeros(grid.shape, bool)
    mask[1:5, 2:6, 1:4] = True
    return SimpleNamespace(key="s", inputs=rng.random((1, *grid.shape)).astype(np.float32) + 1.0, mask=mask,
                           grid=grid, reference=GridReference(grid.shape, grid.affine, None), covariates={})


def test_background_outside_the_brain_mask_is_zero(rng):
    # a network extrapolates anything outside the brain; the written volume has 0 there
    subject = _subject(rng)
    out = predict_subject(Channel(0, scale=3.0), _info(), subject)
    np.testing.assert_allclose(out[subject.mask], 3.0 * subject.inputs[0][subject.mask], rtol=1e-6)
    assert not out[~subject.mask].any()


@pytest.mark.parametrize("sampling", [
    {"kind": "patches", "patch_size": [4, 4, 4], "overlap": 0.5},
    {"kind": "volume", "roi_size": [8, 8, 8], "overlap": 0.5},
])
def test_3d_models_predict_by_sliding_window(rng, sampling):
    subject = _subject(rng, (9, 10, 7))
    info = _info(spatial_dims=3, sampling=sampling)
    out = predict_subject(Channel(0, scale=2.0), info, subject)
    np.testing.assert_allclose(out[subject.mask], 2.0 * subject.inputs[0][subject.mask], rtol=1e-5)


def test_sliding_window_equals_whole_volume_output_where_both_fit(rng):
    """A real 3D U-Net: one window as large as the volume is exactly the whole-volume forward."""
    from neurotrans.networks import build_network

    torch.manual_seed(0)
    net = build_network("unet_esit", spatial_dims=3, in_channels=1, out_channels=1, base=2, depth=1).eval()
    vol = rng.random((1, 16, 16, 16)).astype(np.float32)
    with torch.no_grad():
        whole = net(torch.from_numpy(vol)[None])[0, 0].numpy()
    one_window = predict_sliding_window(net, vol, (16, 16, 16), overlap=0.5)
    np.testing.assert_allclose(one_window, whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("planes, trained, expected", [
    ("trained", ["axial", "coronal", "sagittal"], ["axial"]),  # the paper's protocol for the 3-plane model
    ("all", ["axial", "coronal", "sagittal"], ["axial", "coronal", "sagittal"]),
    ("trained", ["coronal"], ["coronal"]),
    ("coronal", ["axial", "coronal", "sagittal"], ["coronal"]),
])
def test_planes_predicted(planes, trained, expected):
    info = _info(sampling={"kind": "slices", "planes": trained, "context": 0})
    assert planes_for(info, planes) == expected


@pytest.mark.parametrize("planes, trained", [("all", ["axial"]), ("sagittal", ["axial"])])
def test_planes_the_model_never_saw_are_refused(planes, trained):
    with pytest.raises(InputError, match="trained on"):
        planes_for(_info(sampling={"kind": "slices", "planes": trained, "context": 0}), planes)
