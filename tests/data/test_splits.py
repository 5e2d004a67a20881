from __future__ import annotations

import itertools

import pandas as pd
import pytest

from neurotrans.data.splits import fixed_split, kfold_splits


def _table(n_subjects: int = 30, sessions: int = 2) -> pd.DataFrame:
    groups = ["CN", "MCI", "AD"]
    rows = [{"subject": f"s{i:02d}", "session": f"t{t}", "group": groups[i % 3]}
            for i in range(n_subjects) for t in range(sessions)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("k", [3, 5])
def test_kfold_is_subject_level_and_disjoint(k):
    table = _table()
    folds = kfold_splits(table, k, seed=1)
    all_subjects = set(table["subject"])
    tests = [set(f.test) for f in folds]
    for a, b in itertools.combinations(tests, 2):
        assert not a & b, "a subject is in two folds' test sets"
    assert set().union(*tests) == all_subjects
    for f in folds:
        tr, va, te = set(f.train), set(f.val), set(f.test)
        assert not tr & te and not tr & va and not va & te
        assert tr | va | te == all_subjects
        # sessions stay together: every row of a test subject is in the test rows
        rows = table[table["subject"].isin(te)]
        assert set(rows["subject"]) == te and len(rows) == 2 * len(te)
        # stratified: each group keeps its third of the test set
        counts = table.drop_duplicates("subject").set_index("subject").loc[list(te), "group"].value_counts()
        assert counts.max() - counts.min() <= 1


def test_kfold_unstratified_and_seeded():
    table = _table(10, 1).drop(columns="group")
    a = kfold_splits(table, 5, seed=3)
    b = kfold_splits(table, 5, seed=3)
    assert [f.to_dict() for f in a] == [f.to_dict() for f in b]
    assert sorted(sum((f.test for f in a), [])) == sorted(table["subject"])
    with pytest.raises(ValueError):
        kfold_splits(table, 11)


@pytest.mark.parametrize(("test", "val", "sizes"), [(0.0, 0.2, (24, 6, 0)), (0.0, 0.0, (30, 0, 0)),
                                                    (0.01, 0.01, (28, 1, 1))])
def test_fixed_split_without_test_or_validation_subjects(test, val, sizes):
    f = fixed_split(_table(30, 2), test_fraction=test, val_fraction=val, seed=0)
    assert (len(f.train), len(f.val), len(f.test)) == sizes
    assert sorted(f.train + f.val + f.test) == sorted(set(_table(30, 2)["subject"]))


def test_fixed_split_disjoint_and_stratified():
    table = _table(30, 2)
    f = fixed_split(table, test_fraction=0.3, val_fraction=0.2, seed=0)
    tr, va, te = set(f.train), set(f.val), set(f.test)
    assert len(te) == 9 and len(va) == 6 and len(tr) == 15
    assert not tr & va and not tr & te and not va & te
    groups = table.drop_duplicates("subject").set_index("subject")["group"]
    assert groups.loc[list(te)].value_counts().tolist() == [3, 3, 3]
