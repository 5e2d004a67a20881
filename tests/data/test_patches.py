from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.inferers import sliding_window_inference

from neurotrans.data.patches import assemble_patches, extract_patches, patch_starts


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.75])
@pytest.mark.parametrize("weighting", ["uniform", "gaussian"])
def test_round_trip_any_overlap(overlap, weighting, rng):
    vol = rng.normal(size=(2, 13, 10, 9)).astype(np.float32)
    patches, starts = extract_patches(vol, (6, 5, 4), overlap)
    out = assemble_patches(patches, starts, vol.shape[1:], weighting=weighting)
    np.testing.assert_allclose(out, vol, atol=1e-5)


def test_volume_smaller_than_patch_is_padded_and_cropped(rng):
    vol = rng.normal(size=(1, 3, 8, 5)).astype(np.float32)
    patches, starts = extract_patches(vol, (4, 4, 4), 0.5)
    assert patches.shape[2:] == (4, 4, 4) and all(s[0] == 0 for s in starts)
    np.testing.assert_allclose(assemble_patches(patches, starts, vol.shape), vol, atol=1e-6)


def test_patch_grid_covers_and_strides(rng):
    starts = patch_starts((20, 20, 20), (8, 8, 8), 0.5)
    xs = sorted({s[0] for s in starts})
    assert xs == [0, 4, 8, 12] and len(starts) == 64


@pytest.mark.parametrize("weighting", ["uniform", "gaussian"])
def test_blending_matches_monai_sliding_window(weighting, rng):
    vol = rng.normal(size=(1, 12, 11, 10)).astype(np.float32)

    def net(x):  # a position-dependent "prediction" so blending weights matter
        return x * 2 + x.mean()

    patches, starts = extract_patches(vol, (6, 6, 6), 0.5)
    preds = np.stack([net(torch.from_numpy(p)).numpy() for p in patches])
    ours = assemble_patches(preds, starts, vol.shape[1:], weighting=weighting)
    ref = sliding_window_inference(torch.from_numpy(vol)[None], (6, 6, 6), 1, net, overlap=0.5,
                                   mode="constant" if weighting == "uniform" else "gaussian")
    np.testing.assert_allclose(ours, ref[0].numpy(), atol=1e-5)
