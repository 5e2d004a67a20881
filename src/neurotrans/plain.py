"""Plain values: what YAML, JSON and ``torch.load(weights_only=True)`` can hold."""

from __future__ import annotations

from typing import Any


def to_plain(value: Any) -> Any:
    """``value`` with tuples as lists and dict keys as strings, recursively."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value
