"""Slice-wise and sliding-window prediction reassemble volumes exactly; target units."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurotrans.inference.predict import (
    invert_target,
    predict_slices,
    predict_sliding_window,
    predict_subject,
)
from neurotrans.methods.base import Method


class Channel(Method):
    """Predicts one input channel unchanged (a stand-in whose exact output is known)."""

    def __init__(self, channel: int = 0, scale: float = 1.0) -> None:
        super().__init__({"net": torch.nn.Identity()})
        self.channel, self.scale = channel, scale

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x[:, self.channel:self.channel + 1]


@pytest.mark.parametrize("planes, context, multiple", [
    (["axial"], 0, 1), (["coronal"], 0, 8), (["sagittal", "axial", "coronal"], 0, 16), (["axial"], 1, 4),
])
def test_slices_reassemble_to_the_input(rng, planes, context, multiple):
    vol = rng.random((2, 11, 13, 9)).astype(np.float32)
    # with 2.5D context the channels are slice-major: channel C * k + c is the centre slice of input c
    channel = 2 * context
    out = predict_slices(Channel(channel), vol, planes, context=context, multiple=multiple, batch_size=5)
    assert out.shape == vol.shape[1:] and out.dtype == np.float32
    np.testing.assert_allclose(out, vol[0], rtol=1e-6)


def test_three_planes_are_averaged(rng):
    vol = rng.random((1, 8, 6, 7)).astype(np.float32)

    class PlaneScaled(Channel):
        def predict(self, x):  # a different answer per plane, told apart by the slice shape
            return x * {(6, 7): 1.0, (8, 7): 2.0, (8, 6): 3.0}[tuple(x.shape[2:])]

    out = predict_slices(PlaneScaled(), vol, ["sagittal", "coronal", "axial"])
    np.testing.assert_allclose(out, 2.0 * vol[0], rtol=1e-6)


def test_sliding_window_reassembles_the_input(rng):
    vol = rng.random((1, 20, 18, 22)).astype(np.float32)
    out = predict_sliding_window(Channel(0, scale=2.0), vol, (8, 8, 8), overlap=0.5)
    np.testing.assert_allclose(out, 2.0 * vol[0], rtol=1e-5, atol=1e-6)


def test_invert_target_uses_mean_training_statistics():
    y = np.array([-1.0, 0.0, 2.0], dtype=np.float32)
    meta = {"target_stats": [{"kind": "zscore", "mean": 10.0, "std": 2.0}, {"kind": "zscore", "mean": 20.0, "std": 4.0}]}
    from neurotrans.data.normalize import normaliser_from_dict

    ref = normaliser_from_dict({"kind": "zscore", "mean": 15.0, "std": 3.0}).invert(y)
    np.testing.assert_allclose(invert_target(y, meta), ref)
    np.testing.assert_allclose(ref, [12.0, 15.0, 21.0])
    # SUVR targets: the model's output already is SUVR
    suvr = {"target_stats": [{"kind": "suvr", "reference": 7.0, "region": "pons"}]}
    np.testing.assert_array_equal(invert_target(y, suvr), y)


def test_background_outside_the_brain_mask_is_zero(rng):
    # a network extrapolates anything outside the brain; the written volume has 0 there
    from types import SimpleNamespace

    from neurotrans.data.grid import Grid
    from neurotrans.data.preprocess import GridReference

    grid = Grid((6, 7, 5), np.eye(4))
    mask = np.zeros(grid.shape, bool)
    mask[1:5, 2:6, 1:4] = True
    subject = SimpleNamespace(key="s", inputs=rng.random((1, *grid.shape)).astype(np.float32) + 1.0, mask=mask,
                              grid=grid, reference=GridReference(grid.shape, grid.affine, None))
    meta = {"in_channels": 1, "context": 0, "planes": ["axial"], "size_multiple": 1, "target_stats": []}
    out = predict_subject(Channel(0, scale=3.0), meta, subject)
    np.testing.assert_allclose(out[mask], 3.0 * subject.inputs[0][mask], rtol=1e-6)
    assert not out[~mask].any()
