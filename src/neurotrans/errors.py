"""The one error type users see for bad input."""

from __future__ import annotations

import re
from pathlib import Path


class InputError(ValueError):
    """Bad input: names the offending file (or item) and how to fix it.

    The message is always one line: line breaks in the parts (e.g. a library's multi-line
    error quoted in ``problem``) are folded into spaces, so the CLI prints one line.

    Args:
        where: the file, folder or item at fault.
        problem: what is wrong, in one sentence.
        fix: what the user should do about it.
    """

    def __init__(self, where: str | Path, problem: str, fix: str) -> None:
        self.where = one_line(str(where))
        self.problem = one_line(problem)
        self.fix = one_line(fix)
        super().__init__(f"{self.where}: {self.problem}. Fix: {self.fix}")


def one_line(text: str) -> str:
    """``text`` with every line break (and the blanks around it) folded into one space."""
    return re.sub(r"\s*[\r\n]+\s*", " ", str(text)).strip()
