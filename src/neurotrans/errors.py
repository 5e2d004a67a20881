"""The one error type users see for bad input."""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad input: names the offending file (or item) and how to fix it.

    Args:
        where: the file, folder or item at fault.
        problem: what is wrong, in one sentence.
        fix: what the user should do about it.
    """

    def __init__(self, where: str | Path, problem: str, fix: str) -> None:
        self.where = str(where)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{self.where}: {problem}. Fix: {fix}")
