"""Early-stopping rules on the sequence of validation errors.

References: Prechelt, Early stopping - but when? (1998): the UP_s criterion, used in
the MS thesis (papers/003, ch. 2: stop when the generalisation error rose in p = 3
successive strips of q = 5 epochs).
"""

from __future__ import annotations

from collections.abc import Sequence


def up_criterion(errors: Sequence[float], strips: int, strip_length: int) -> bool:
    """Prechelt's UP_s: True when the error rose in ``strips`` successive strips.

    ``errors[t]`` is the validation error after evaluation ``t`` (0-based). Strips end at
    evaluations ``strip_length - 1, 2 * strip_length - 1, ...``. UP_1 stops at the first
    strip end ``t`` with ``E(t) > E(t - strip_length)``; UP_s stops at a strip end where
    UP_{s-1} stopped one strip earlier and ``E(t) > E(t - strip_length)``.

    Args:
        errors: validation errors, one per evaluation.
        strips: s (p in the thesis), >= 1.
        strip_length: k (q in the thesis), >= 1.
    """
    if strips < 1 or strip_length < 1:
        raise ValueError(f"strips and strip_length must be >= 1, got {strips}, {strip_length}")
    n = len(errors)
    if n == 0 or n % strip_length != 0:
        return False  # decisions are taken at strip ends only
    ends = [errors[t] for t in range(strip_length - 1, n, strip_length)]
    # E at strip end m is compared with E one strip earlier, i.e. the previous end
    if len(ends) < strips + 1:
        return False
    last = ends[-(strips + 1):]
    return all(b > a for a, b in zip(last[:-1], last[1:], strict=True))


def patience_criterion(errors: Sequence[float], patience: int) -> bool:
    """True when the last ``patience`` evaluations did not improve on the best before them."""
    if patience < 1:
        raise ValueError(f"patience must be >= 1, got {patience}")
    if len(errors) <= patience:
        return False
    best_before = min(errors[:-patience])
    return min(errors[-patience:]) >= best_before


def should_stop(rule: str, errors: Sequence[float], *, patience: int = 10, strips: int = 3,
                strip_length: int = 5) -> bool:
    """Apply the rule named in the trainer config (``none``, ``patience`` or ``up``)."""
    if rule == "none":
        return False
    if rule == "patience":
        return patience_criterion(errors, patience)
    if rule == "up":
        return up_criterion(errors, strips, strip_length)
    raise ValueError(f"unknown early_stopping rule {rule!r}; choose none, patience or up")
