from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from neurotrans.data.datasets import (
    PairedPatchDataset,
    PairedSliceDataset,
    UnpairedDataset,
    split_domains,
)
from neurotrans.data.preprocess import prepare_subject
from neurotrans.data.slicing import assemble_slices
from neurotrans.errors import InputError

NORM = {"T1w": "minmax", "FDG": "minmax"}


@pytest.fixture
def subjects(cohort):
    return [prepare_subject(cohort, i, ["T1w"], "FDG", grid=None, normalisation=NORM) for i in range(len(cohort))]


@pytest.mark.parametrize("plane,hw", [("axial", (20, 24)), ("coronal", (20, 20)), ("sagittal", (24, 20))])
def test_slice_items_and_reassembly(subjects, plane, hw):
    ds = PairedSliceDataset(subjects[:1], plane=plane, context=1, skip_empty=False)
    item = ds[0]
    assert set(item) == {"input", "target", "mask", "key", "plane", "index"}
    assert item["input"].shape == (3, *hw) and item["target"].shape == (1, *hw) and item["mask"].shape == (1, *hw)
    assert item["input"].dtype == torch.float32 and item["mask"].dtype == torch.float32
    # the centre channel of every item, reassembled, is the subject's input volume
    centre = np.stack([ds[i]["input"][1:2].numpy() for i in range(len(ds))])
    np.testing.assert_array_equal(assemble_slices(centre, plane, subjects[0].shape), subjects[0].inputs)


def test_skip_empty_and_all_planes_batch_together(subjects):
    full = PairedSliceDataset(subjects, plane="axial", skip_empty=False)
    kept = PairedSliceDataset(subjects, plane="axial")
    assert len(kept) < len(full) == 4 * 20
    assert all(ds_item["mask"].sum() > 0 for ds_item in (kept[i] for i in range(len(kept))))
    ds = PairedSliceDataset(subjects, plane="all")
    assert {p for _, p, _ in ds.index} == {"axial", "coronal", "sagittal"}
    batch = next(iter(DataLoader(ds, batch_size=len(ds))))
    assert batch["input"].shape[1:] == (1, 24, 24) and batch["target"].shape[1:] == (1, 24, 24)
    assert PairedSliceDataset(subjects, plane="all", pad_to=(32, 32))[0]["input"].shape == (1, 32, 32)
    with pytest.raises(ValueError, match="smaller than slices"):
        PairedSliceDataset(subjects, plane="all", pad_to=(20, 20))


def test_patch_dataset_grid_random_and_whole(subjects):
    ds = PairedPatchDataset(subjects[:1], patch_size=(8, 8, 8), overlap=0.5)
    item = ds[0]
    assert item["input"].shape == (1, 8, 8, 8) and item["target"].shape == (1, 8, 8, 8)
    x, y, z = item["start"].tolist()
    np.testing.assert_array_equal(item["input"].numpy(), subjects[0].inputs[:, x:x + 8, y:y + 8, z:z + 8])
    rnd = PairedPatchDataset(subjects, patch_size=(8, 8, 8), samples_per_volume=3, seed=1)
    assert len(rnd) == 12
    assert torch.equal(rnd[5]["input"], rnd[5]["input"])  # seeded draws are reproducible
    rnd.set_epoch(1)
    assert all(rnd[i]["mask"].sum() > 0 for i in range(len(rnd)))
    whole = PairedPatchDataset(subjects, patch_size=None)
    assert len(whole) == 4 and whole[2]["input"].shape == (1, 20, 24, 20)


def test_unpaired_domains_must_be_disjoint(subjects):
    a_ids, b_ids = split_domains([s.subject for s in subjects], seed=0)
    assert not set(a_ids) & set(b_ids) and len(a_ids) + len(b_ids) == 4
    a = [s for s in subjects if s.subject in a_ids]
    b = [s for s in subjects if s.subject in b_ids]
    ds = UnpairedDataset(a, b, plane="coronal")
    item = ds[0]
    assert item["a"].shape == item["b"].shape == (1, 20, 20)
    assert item["key_a"].split("_")[0] in a_ids and item["key_b"].split("_")[0] in b_ids
    with pytest.raises(InputError, match="sub-0.*both domains"):
        UnpairedDataset(subjects[:2], subjects[1:3])


def test_paired_needs_a_target(cohort):
    s = prepare_subject(cohort, 0, ["T1w"], None, grid=None, normalisation=NORM)
    with pytest.raises(InputError, match="no target"):
        PairedSliceDataset([s])
