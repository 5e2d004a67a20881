from __future__ import annotations

import numpy as np

from neurotrans.data.cache import cache_key, cached_subject, load_subject, prepare_cohort
from neurotrans.data.datasets import PairedPatchDataset, PairedSliceDataset
from neurotrans.data.preprocess import prepare_subject, restore_prediction

NORM = {"T1w": "minmax", "FDG": "zscore"}


def test_cache_round_trip_is_memory_mapped_and_equal(cohort, tmp_path):
    cache = tmp_path / "cache"
    ref = prepare_subject(cohort, 0, ["T1w", "coords"], "FDG", grid=None, normalisation=NORM)
    got = cached_subject(cohort, 0, ["T1w", "coords"], "FDG", cache_dir=cache, grid=None, normalisation=NORM)
    assert isinstance(got.inputs, np.memmap) and not got.inputs.flags.writeable
    assert got.inputs.flags.f_contiguous  # axial slices are contiguous on disk
    np.testing.assert_array_equal(got.inputs, ref.inputs)
    np.testing.assert_array_equal(got.target, ref.target)
    np.testing.assert_array_equal(got.mask, ref.mask)
    # pickling (spawned DataLoader workers) sends the folder, not the arrays
    import pickle
    blob = pickle.dumps(got)
    assert len(blob) < 2000 and np.array_equal(pickle.loads(blob).inputs, ref.inputs)
    assert got.stats == ref.stats and got.grid == ref.grid and got.input_names == ref.input_names
    assert got.reference.header["dim"].tolist() == ref.reference.header["dim"].tolist()
    np.testing.assert_allclose(restore_prediction(got.target, got), restore_prediction(ref.target, ref))
    # datasets take memory-mapped subjects unchanged
    a = PairedSliceDataset([got], plane="coronal", context=1)[3]
    b = PairedSliceDataset([ref], plane="coronal", context=1)[3]
    assert all(np.array_equal(a[k], b[k]) for k in ("input", "target", "mask"))
    assert np.array_equal(PairedPatchDataset([got], (8, 8, 8))[1]["input"], PairedPatchDataset([ref], (8, 8, 8))[1]["input"])


def test_key_changes_with_parameters_and_sources(cohort, tmp_path):
    k1 = cache_key(cohort, 0, ["T1w"], "FDG", grid=None, normalisation=NORM, mask="brainmask")
    assert k1.startswith("sub-00_1-")
    assert k1 == cache_key(cohort, 0, ["T1w"], "FDG", grid=None, normalisation=dict(reversed(NORM.items())),
                           mask="brainmask")
    assert k1 != cache_key(cohort, 0, ["T1w"], "FDG", grid=None, normalisation={"T1w": "zscore"}, mask="brainmask")
    cohort.path(0, "T1w").write_bytes(cohort.path(1, "T1w").read_bytes() + b"")
    import os
    os.utime(cohort.path(0, "T1w"), ns=(1, 1))
    assert k1 != cache_key(cohort, 0, ["T1w"], "FDG", grid=None, normalisation=NORM, mask="brainmask")


def test_prepare_cohort_fills_cache_once(cohort, tmp_path):
    cache = tmp_path / "cache"
    subjects = prepare_cohort(cohort, ["T1w"], "FDG", grid=None, normalisation=NORM, cache_dir=cache)
    entries = sorted(p.name for p in cache.iterdir())
    assert len(subjects) == 4 and len(entries) == 4 and not any(e.startswith(".") for e in entries)
    mtimes = [(cache / e / "inputs.npy").stat().st_mtime_ns for e in entries]
    prepare_cohort(cohort, ["T1w"], "FDG", grid=None, normalisation=NORM, cache_dir=cache)
    assert [(cache / e / "inputs.npy").stat().st_mtime_ns for e in entries] == mtimes
    assert load_subject(cache / entries[2]).key == "sub-02_1"


def test_processes_sharing_a_cache_start_with_their_own_part(cohort, tmp_path, monkeypatch):
    """``share=(k, n)``: process k of n prepares rows from k/n on first, then the rest; same result."""
    import neurotrans.data.cache as cache_module

    order: list[int] = []
    cached = cache_module.cached_subject

    def spy(manifest, i, *args, **kwargs):
        order.append(i)
        return cached(manifest, i, *args, **kwargs)

    monkeypatch.setattr(cache_module, "cached_subject", spy)
    cache = tmp_path / "cache"
    second = prepare_cohort(cohort, ["T1w"], "FDG", grid=None, normalisation=NORM, cache_dir=cache, share=(1, 2))
    assert order == [2, 3, 0, 1]
    first = prepare_cohort(cohort, ["T1w"], "FDG", grid=None, normalisation=NORM, cache_dir=cache)
    assert [s.key for s in second] == [s.key for s in first] == [f"sub-0{i}_1" for i in range(4)]
    assert all(np.array_equal(a.inputs, b.inputs) for a, b in zip(first, second, strict=True))
