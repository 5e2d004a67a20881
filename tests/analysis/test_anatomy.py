"""Anatomy check: brain masks and tissue classes of an image vs its translation."""

from __future__ import annotations

import numpy as np
import pytest

from neurotrans.analysis.anatomy import anatomy_dice, brain_mask, match_classes, tissue_classes
from neurotrans.analysis.stats import dice


def _phantom(shape=(40, 48), noise=0.02, seed=0):
    """Ellipsoidal 'brain' on a zero background: CSF ventricles, WM core, GM shell (T1-like).

    Returns the image and the true labels (0 background, 1 CSF, 2 GM, 3 WM).
    """
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    r = np.sqrt(sum((g / s) ** 2 for g, s in zip(grids, (0.8, 0.9, 0.85), strict=False)))
    labels = np.zeros(shape, dtype=np.int64)
    labels[r < 1.0] = 2
    labels[r < 0.7] = 3
    labels[r < 0.25] = 1
    levels = np.array([0.0, 0.3, 0.6, 1.0])
    image = levels[labels] + noise * np.random.default_rng(seed).normal(size=shape) * (labels > 0)
    return image, labels


def _t2_like(image, labels):
    """Inverted contrast inside the brain (CSF brightest), zero background."""
    out = np.where(labels > 0, 1.3 - image, 0.0)
    return out


@pytest.mark.parametrize("shape", [(40, 48), (20, 24, 22)])
@pytest.mark.parametrize("method", ["kmeans", "gmm"])
def test_tissue_classes_recover_the_levels_in_intensity_order(shape, method):
    image, labels = _phantom(shape)
    found = tissue_classes(image, labels > 0, method=method)
    assert np.array_equal(found, labels)
    # inverted contrast: the darkest class is now the true WM
    found = tissue_classes(_t2_like(image, labels), labels > 0, method=method)
    assert np.array_equal(found, np.where(labels > 0, 4 - labels, 0))


@pytest.mark.parametrize("shape", [(40, 48), (20, 24, 22)])
def test_identical_images_give_dice_one(shape):
    image, _ = _phantom(shape)
    result = anatomy_dice(image, image.copy())
    assert set(result) == {"dice_mask", "dice_tissue_1", "dice_tissue_2", "dice_tissue_3", "dice_tissue"}
    assert all(v == 1.0 for v in result.values())


@pytest.mark.parametrize("shift", [2, 4])
def test_a_shifted_image_lowers_dice(shift):
    image, _ = _phantom()
    moved = np.roll(image, shift, axis=0)
    result = anatomy_dice(image, moved)
    assert result["dice_mask"] < 1.0 and result["dice_tissue"] < 0.95
    assert result["dice_mask"] == pytest.approx(dice(image > 0.1, moved > 0.1), abs=0.02)
    bigger = anatomy_dice(image, np.roll(image, 2 * shift, axis=0))
    assert bigger["dice_tissue"] < result["dice_tissue"]


def test_contrast_inversion_is_not_an_anatomy_change_with_overlap_matching():
    image, labels = _phantom()
    t2 = _t2_like(image, labels)
    assert anatomy_dice(image, t2)["dice_tissue"] == 1.0
    assert anatomy_dice(image, t2, matching="reversed")["dice_tissue"] == 1.0
    assert anatomy_dice(image, t2, matching="intensity")["dice_tissue"] < 0.5


def test_dice_is_invariant_to_the_output_units():
    """A translation in [-1, 1] network units with a -1 background: the default mask adapts."""
    image, _ = _phantom()
    rescaled = 2.0 * image / image.max() - 1.0
    assert all(v == 1.0 for v in anatomy_dice(image, rescaled).values())


def test_brain_mask_threshold_and_hole_filling():
    image, labels = _phantom(noise=0.0)
    image[labels == 1] = 0.0  # dark ventricles enclosed by tissue
    assert np.array_equal(brain_mask(image, threshold=0.0), labels > 0)
    assert np.array_equal(brain_mask(image, threshold=0.0, fill_holes=False), labels > 1)
    with pytest.raises(ValueError):
        brain_mask(np.full((4, 4), np.nan))
    with pytest.raises(ValueError):
        brain_mask(image, relative=1.0)


def test_match_classes_by_overlap_finds_the_permutation():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 4, size=(30, 30))
    perm = np.array([0, 3, 1, 2])  # label k of ref is called perm[k] in the other map
    other = perm[ref]
    back = match_classes(ref, other, 3, "overlap")
    assert np.array_equal(back, ref)
    assert np.array_equal(match_classes(ref, other, 3, "intensity"), other)
    assert np.array_equal(match_classes(ref, ref, 3, "reversed"), np.where(ref > 0, 4 - ref, 0))


def test_bad_inputs_raise():
    image, labels = _phantom()
    with pytest.raises(ValueError, match="shape"):
        anatomy_dice(image, image[:-1])
    with pytest.raises(ValueError, match="distinct"):
        tissue_classes(np.ones((8, 8)), np.ones((8, 8), dtype=bool))
    with pytest.raises(ValueError, match="method"):
        tissue_classes(image, labels > 0, method="otsu")
    with pytest.raises(ValueError, match="matching"):
        anatomy_dice(image, image, matching="best")
