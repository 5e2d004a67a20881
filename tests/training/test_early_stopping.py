"""Prechelt's UP_s rule against its recursive definition; the patience rule."""

from __future__ import annotations

import numpy as np
import pytest

from neurotrans.training.early_stopping import patience_criterion, should_stop, up_criterion


def _first_stop_recursive(errors, s, k):
    """First evaluation (0-based) where UP_s stops, from Prechelt's recursive definition."""
    def stops(p, t):  # does UP_p stop after evaluation t (t a strip end)?
        if t - k < 0:
            return False
        if errors[t] <= errors[t - k]:
            return False
        return True if p == 1 else stops(p - 1, t - k)
    for t in range(k - 1, len(errors), k):
        if stops(s, t):
            return t
    return None


def _first_stop(errors, s, k):
    for n in range(1, len(errors) + 1):
        if up_criterion(errors[:n], s, k):
            return n - 1
    return None


@pytest.mark.parametrize("s, k", [(1, 1), (1, 3), (3, 5), (2, 2), (4, 1)])
def test_up_matches_recursive_definition(s, k):
    rng = np.random.default_rng(s * 10 + k)
    for _ in range(50):
        # noisy U-shaped validation curve
        t = np.arange(60)
        errors = list((t - rng.integers(5, 50)) ** 2 / 400 + rng.normal(0, 0.3, t.size))
        assert _first_stop(errors, s, k) == _first_stop_recursive(errors, s, k)


def test_up_thesis_rule_on_a_clear_curve():
    # improves for 20 evaluations, then rises: with q=5, p=3 it stops at the third rising strip end
    errors = [10 - 0.1 * t for t in range(20)] + [8 + 0.1 * t for t in range(1, 40)]
    stop = _first_stop(errors, 3, 5)
    assert stop is not None and errors[stop] > errors[stop - 5] > errors[stop - 10] > errors[stop - 15]
    assert not up_criterion([1.0, 2.0, 3.0], 1, 2)  # 3 evaluations: not a strip end


def test_patience():
    assert not patience_criterion([3, 2, 1, 1.5], 2)
    assert patience_criterion([3, 2, 1, 1.5, 1.2], 2)
    assert not should_stop("none", [1, 2, 3, 4])
    with pytest.raises(ValueError, match="rule"):
        should_stop("sometimes", [1.0])
