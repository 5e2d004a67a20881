"""What neurotrans offers: methods, networks and packaged configs, each with a line and its paper.

``neurotrans list`` prints :func:`format_catalogue`; the lines come from the registries
themselves (a method's ``summary``, a network's docstring and ``References:`` line, a
packaged config's leading comment), so the list cannot drift from the code.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    """One catalogue line.

    Args:
        name: the registry key or packaged config name.
        what: one line of what it is.
        reference: the paper it comes from ("" when none is named).
    """

    name: str
    what: str
    reference: str = ""


def _sentence(text: str, limit: int = 110) -> str:
    """The first sentence of ``text``, without reST markup, at most ``limit`` characters."""
    text = " ".join(text.replace("``", "").split())
    # a sentence ends at ". " before a capital, not after "et al." or "ch."
    end = re.search(r"(?<!\bal)(?<!\bch)(?<!e\.g)\.\s+(?=[A-Z])", text)
    text = (text[: end.start()] if end else text).rstrip(".")
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _doc_lines(obj: object) -> tuple[str, str]:
    doc = inspect.getdoc(obj) or ""
    paragraphs = doc.split("\n\n")
    first = _sentence(paragraphs[0]) if paragraphs else ""
    reference = ""
    for para in paragraphs:
        if para.lstrip().startswith("References:"):
            reference = _sentence(para.strip().removeprefix("References:"), 70)
            break
    return first, reference


def _config_line(path: object) -> str:
    from pathlib import Path

    comments = []
    for line in Path(str(path)).read_text().splitlines():
        if not line.startswith("#"):
            break
        comments.append(line.lstrip("# ").strip())
    return _sentence(" ".join(c for c in comments if not c.startswith("Run:")), 120)


def catalogue() -> dict[str, list[Entry]]:
    """Methods, networks and packaged configs with one line each."""
    from neurotrans.config import CONFIG_DIR, packaged_configs
    from neurotrans.methods import METHODS
    from neurotrans.networks import NETWORKS

    methods = []
    for name, cls in METHODS.items():
        first, ref = _doc_lines(cls)
        methods.append(Entry(name, cls.summary or first, ref))
    networks = [Entry(name, *_doc_lines(factory)) for name, factory in NETWORKS.items()]
    configs = [Entry(name, _config_line(CONFIG_DIR / f"{name}.yaml")) for name in packaged_configs()]
    return {"methods": methods, "networks": networks, "configs": configs}


def format_catalogue() -> str:
    """The catalogue as plain text, one section per registry."""
    out = []
    for section, entries in catalogue().items():
        out.append(f"{section}:")
        width = max(len(e.name) for e in entries)
        for e in entries:
            ref = f"  [{e.reference}]" if e.reference else ""
            out.append(f"  {e.name.ljust(width)}  {e.what}{ref}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
