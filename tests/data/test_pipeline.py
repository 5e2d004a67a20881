"""The data pipeline of every dimensionality: slices, 3D patches, whole volumes, aux masks,
covariates, replayable augmentation and the cohort-level z-score."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from neurotrans.config import DataConfig
from neurotrans.data.datasets import Augmented
from neurotrans.data.normalize import ZScore, default_normalisation, fit_cohort_zscore, units_of
from neurotrans.data.pipeline import build_datasets, fit_cohort_stats, prepare, sampling_of
from neurotrans.errors import InputError


@pytest.fixture
def cohort_with_masks(tmp_path, rng, small_grid, cohort_writer):
    return cohort_writer(tmp_path / "c", rng, small_grid, n=4, columns=("T1w", "T2w", "FDG", "lesions"))


def _data(manifest, **kw) -> DataConfig:
    values = {"manifest": str(manifest.source), "inputs": ("T1w", "T2w"), "target": "FDG", "voxel_size": None,
              "normalisation": {"FDG": "zscore"}, "batch_size": 2}
    return DataConfig(**{**values, **kw})


@pytest.mark.parametrize("kw, kind, item_shape", [
    ({}, "slices", (2, 24, 24)),  # axial slices (X, Y) = (20, 24) padded to a multiple of 8
    ({"plane": "coronal", "context": 1}, "slices", (6, 24, 24)),
    ({"spatial_dims": 3, "patch_size": (8, 8, 8)}, "patches", (2, 8, 8, 8)),
    ({"spatial_dims": 3, "patch_size": (8, 8, 16), "samples_per_volume": 3}, "patches", (2, 8, 8, 16)),
    ({"spatial_dims": 3}, "volume", (2, 24, 24, 24)),  # 20x24x20 padded to multiples of 8
])
def test_every_sampling_batches_with_the_default_collate(cohort_with_masks, kw, kind, item_shape):
    data = _data(cohort_with_masks, aux=("lesions",), covariates=("age",), **kw)
    subjects = prepare(cohort_with_masks, cohort_with_masks.subjects, data, {})
    sampling = sampling_of(data, [s.shape for s in subjects], 8)
    assert sampling["kind"] == kind
    sets = build_datasets(subjects, data, sampling, 8, seed=0, train=True)
    batch = default_collate([sets[0][i] for i in range(2)])
    assert batch["input"].shape == (2, *item_shape)
    assert batch["target"].shape == batch["mask"].shape == batch["aux"].shape == (2, 1, *item_shape[1:])
    assert batch["covariates"].shape == (2, 1) and set(batch["covariates"][:, 0].tolist()) <= {60.0, 61, 62, 63}
    # lesion masks are cut exactly like the images
    assert set(torch.unique(batch["aux"]).tolist()) <= {0.0, 1.0}


def test_patch_size_must_fit_the_network(cohort_with_masks):
    data = _data(cohort_with_masks, spatial_dims=3, patch_size=(12, 12, 12))
    with pytest.raises(InputError, match="multiple of 8"):
        sampling_of(data, [(20, 24, 20)], 8)


def test_random_patches_are_redrawn_each_epoch_and_reproducible(cohort_with_masks):
    data = _data(cohort_with_masks, spatial_dims=3, patch_size=(8, 8, 8), samples_per_volume=2)
    subjects = prepare(cohort_with_masks, cohort_with_masks.subjects, data, {})
    sampling = sampling_of(data, [s.shape for s in subjects], 8)
    (a,) = build_datasets(subjects, data, sampling, 8, seed=0, train=True)
    (b,) = build_datasets(subjects, data, sampling, 8, seed=0, train=True)
    starts = [a[i]["start"].tolist() for i in range(len(a))]
    assert starts == [b[i]["start"].tolist() for i in range(len(b))]
    a.set_epoch(1)
    assert starts != [a[i]["start"].tolist() for i in range(len(a))]


def test_augmentation_is_a_function_of_seed_epoch_and_index(cohort_with_masks):
    data = _data(cohort_with_masks, augment=("flip", "rot90", "scale"), augment_p=0.9)
    subjects = prepare(cohort_with_masks, cohort_with_masks.subjects, data, {})
    sampling = sampling_of(data, [s.shape for s in subjects], 8)
    (aug,) = build_datasets(subjects, data, sampling, 8, seed=0, train=True)
    (plain,) = build_datasets(subjects, data, sampling, 8, seed=0, train=False)
    assert isinstance(aug, Augmented)
    i = len(plain) // 2
    first = aug[i]["input"]
    torch.manual_seed(123)  # the global RNG (a worker's) plays no part
    assert torch.equal(aug[i]["input"], first)
    changed = [not torch.equal(aug[j]["input"], plain[j]["input"]) for j in range(len(plain))]
    assert sum(changed) > len(plain) // 2
    aug.set_epoch(1)
    assert not all(torch.equal(aug[j]["input"], first) for j in (i,))
    # geometry is shared: the mask still marks where the (transformed) target is non-zero
    item = aug[i]
    assert item["input"].shape == plain[i]["input"].shape


def test_intensity_augmentation_composes_with_the_spatial_one_and_spares_the_target(cohort_with_masks):
    from neurotrans.data.augment import Compose, RandomFlipRotateScale, RandomIntensity
    from neurotrans.data.pipeline import augmentation

    data = _data(cohort_with_masks, augment=("flip", "gamma", "bias"), augment_p=1.0)
    t = augmentation(data)
    assert isinstance(t, Compose) and [type(x) for x in t.transforms] == [RandomFlipRotateScale, RandomIntensity]
    assert isinstance(augmentation(_data(cohort_with_masks, augment=("gamma",))), RandomIntensity)
    subjects = prepare(cohort_with_masks, cohort_with_masks.subjects, data, {})
    sampling = sampling_of(data, [s.shape for s in subjects], 8)
    (aug,) = build_datasets(subjects, data, sampling, 8, seed=0, train=True)
    (plain,) = build_datasets(subjects, data, sampling, 8, seed=0, train=False)
    a, b = aug[0], plain[0]
    flipped = {k: torch.flip(b[k], [1]) for k in ("input", "target")}  # p = 1: always the left-right flip
    assert torch.equal(a["target"], flipped["target"])  # the target's intensities are untouched
    assert not torch.allclose(a["input"], flipped["input"])


def test_cohort_zscore_pools_every_training_voxel(cohort_with_masks):
    data = _data(cohort_with_masks, normalisation={"T1w": "zscore:cohort", "FDG": "zscore"})
    train = cohort_with_masks.subjects[:3]
    stats = fit_cohort_stats(cohort_with_masks, train, data)
    raw = prepare(cohort_with_masks, train, _data(cohort_with_masks, normalisation={"T1w": "none", "FDG": "zscore"}), {})
    voxels = np.concatenate([s.inputs[0][s.mask] for s in raw])
    assert stats["T1w"]["mean"] == pytest.approx(voxels.mean(), rel=1e-6)
    assert stats["T1w"]["std"] == pytest.approx(voxels.std(), rel=1e-5)
    # every subject, training or new, gets the same transform
    subjects = prepare(cohort_with_masks, cohort_with_masks.subjects, data, stats)
    z = ZScore.from_dict(stats["T1w"])
    for s, r in zip(subjects, prepare(cohort_with_masks, cohort_with_masks.subjects,
                                      _data(cohort_with_masks, normalisation={"T1w": "none", "FDG": "zscore"}), {}),
                    strict=True):
        np.testing.assert_allclose(s.inputs[0], z.apply(r.inputs[0]), rtol=1e-5, atol=1e-5)
        assert s.stats["T1w"] == stats["T1w"]
    with pytest.raises(InputError, match="cohort"):
        prepare(cohort_with_masks, train, data, {})  # cohort statistics must be fitted first


def test_fit_cohort_zscore_against_numpy(rng):
    vols = [rng.normal(3.0, 2.0, (4, 5, 6)) for _ in range(3)]
    masks = [rng.random((4, 5, 6)) > 0.3 for _ in range(3)]
    z = fit_cohort_zscore(vols, masks)
    pooled = np.concatenate([v[m] for v, m in zip(vols, masks, strict=True)])
    assert z.mean == pytest.approx(pooled.mean()) and z.std == pytest.approx(pooled.std())


@pytest.mark.parametrize("modality, spec, units", [
    ("FDG", "suvr:pons", "SUVR"), ("PIB", "none", "DVR"), ("T2w", "minmax", "intensity"),
    ("FLAIR", "zscore:cohort", "intensity"),
])
def test_default_normalisation_keeps_pet_units(modality, spec, units):
    if modality in ("FDG", "PIB"):
        assert default_normalisation(modality) == spec
    assert units_of(modality, spec) == units


@pytest.mark.parametrize("kw, match", [
    ({"inputs": ("T1w", "FDG")}, "leak"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": -4}, "batch_size"),
    ({"spatial_dims": 4}, "spatial_dims"),
    ({"patch_size": (8, 8, 8)}, "3D"),
    ({"spatial_dims": 3, "context": 1}, "context"),
    ({"spatial_dims": 3, "patch_size": (8, 8)}, "patch_size"),
    ({"patch_overlap": 1.0}, "patch_overlap"),
    ({"augment": ("flip", "rotate")}, "rot90"),
    ({"normalisation": {"T1w": "zscor"}}, "zscore"),
    ({"plane": "axail"}, "axial"),
    ({"num_workers": -1}, "num_workers"),
    ({"inputs": ()}, "at least one"),
])
def test_bad_data_settings_are_refused_at_construction(kw, match):
    with pytest.raises(ValueError, match=match):
        DataConfig(**kw)


def _z_coded(subject, mask=True):
    """``subject`` whose target is its voxels' index along the last axis (where a patch came from)."""
    import dataclasses

    z = np.broadcast_to(np.arange(subject.shape[2], dtype=np.float32), subject.shape)[None].copy()
    return dataclasses.replace(subject, target=z, mask=subject.mask if mask else None)


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5])
@pytest.mark.parametrize("with_mask", [True, False])
def test_held_out_slabs_split_each_subject_into_training_pieces_and_a_central_slab(cohort_with_masks, fraction,
                                                                                  with_mask):
    from neurotrans.data.pipeline import hold_out_slabs

    data = _data(cohort_with_masks, spatial_dims=3, patch_size=(8, 8, 8), samples_per_volume=40)
    subjects = [_z_coded(s, with_mask) for s in prepare(cohort_with_masks, cohort_with_masks.subjects, data, {})]
    train, val = hold_out_slabs(subjects, fraction)
    assert len(val) == len(subjects)
    for s, slab in zip(subjects, val, strict=True):
        idx = np.flatnonzero(s.mask.any(axis=(0, 1))) if with_mask else np.arange(s.shape[2])
        first, last = idx[0], idx[-1] + 1
        zs = np.unique(slab.target)
        lo, hi = int(zs[0]), int(zs[-1]) + 1
        assert hi - lo == max(1, round(fraction * (last - first)))  # its share of the brain's extent
        assert abs((lo + hi) - (first + last)) <= 1  # at the brain's middle
        pieces = [p for p in train if p.key == s.key]
        # pieces and slab tile the subject: every voxel once, values unchanged, same world coordinates
        assert sorted(int(p.target[0, 0, 0, 0]) for p in [*pieces, slab]) == sorted(
            {0, lo, hi} - ({s.shape[2]} if hi == s.shape[2] else set()))
        assert sum(p.shape[2] for p in [*pieces, slab]) == s.shape[2]
        for p in [*pieces, slab]:
            z0 = int(p.target[0, 0, 0, 0])
            np.testing.assert_array_equal(p.inputs, s.inputs[..., z0: z0 + p.shape[2]])
            np.testing.assert_allclose(p.grid.affine @ [0, 0, 0, 1], s.grid.affine @ [0, 0, z0, 1])
            assert p.stats == s.stats
    # no training patch holds a target voxel of a held-out slab
    sampling = sampling_of(data, [s.shape for s in subjects], 8)
    (patches,) = build_datasets(train, data, sampling, 8, seed=0, train=True)
    slab_z = {k: set(np.unique(v.target).astype(int)) for k, v in zip([s.key for s in subjects], val, strict=True)}
    for i in range(len(patches)):
        item = patches[i]
        seen = set(np.unique(item["target"][item["mask"] > 0].numpy()).astype(int)) if with_mask else set(
            np.unique(item["target"].numpy()).astype(int)) - {0}
        assert not seen & slab_z[item["key"]], item["key"]


def test_held_out_slabs_drop_a_piece_without_brain(cohort_with_masks):
    """A brain in one slice is all slab: the pieces either side hold no brain and are dropped."""
    import dataclasses

    from neurotrans.data.pipeline import hold_out_slabs

    data = _data(cohort_with_masks, spatial_dims=3)
    (s,) = prepare(cohort_with_masks, cohort_with_masks.subjects[:1], data, {})
    mask = np.zeros(s.shape, bool)
    mask[5:10, 5:10, 12] = True
    train, (slab,) = hold_out_slabs([dataclasses.replace(s, mask=mask)], 0.2)
    assert train == [] and slab.shape[2] == 1 and slab.mask.all(axis=2).sum() == 25
    train, val = hold_out_slabs([s], 0.2)
    assert len(train) == 2 and len(val) == 1
    with pytest.raises(ValueError, match="fraction"):
        hold_out_slabs([s], 0.0)
