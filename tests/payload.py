"""A stand-in for the code a tampered checkpoint or model file would run when loaded.

``Payload()`` put into a saved state runs ``_run_payload`` if anything unpickles it (pickle's
``__reduce__``) or rebuilds it (skops' ``__setstate__``); ``MARKER`` records that it ran.
"""

from __future__ import annotations

MARKER: list[str] = []


def _run_payload(tag: str) -> str:
    """Stands for arbitrary code a tampered file would run on load."""
    MARKER.append(tag)
    return tag


class Payload:
    """An object whose reconstruction runs code (pickle ``__reduce__``, skops ``__setstate__``)."""

    def __reduce__(self):
        return (_run_payload, ("pickle",))

    def __setstate__(self, state):
        _run_payload("skops")
