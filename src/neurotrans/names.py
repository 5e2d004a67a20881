"""Names used everywhere: modalities, masks, groups, cohorts."""

from __future__ import annotations

import difflib

MRI_MODALITIES = ("T1w", "T2w", "PDw", "FLAIR", "DIR", "T1SE", "MTR", "DTI_FA", "DTI_RD", "DTI_AD")
PET_MODALITIES = ("FDG", "PIB")
MODALITIES = MRI_MODALITIES + PET_MODALITIES
# GM/WM/CSF: tissue maps as a model sees them (segmented from the T1 in the fdg phantom);
# *_true: the simulation's ground-truth tissue fractions (fdg phantom only)
TRUE_TISSUE = ("GM_true", "WM_true", "CSF_true")
MASKS = ("brainmask", "GM", "WM", "CSF", "lesions", "NAWM", *TRUE_TISSUE)
IMAGE_COLUMNS = MODALITIES + MASKS
GROUPS = {"fdg": ("CN", "MCI", "AD"), "ms": ("MS", "HC")}
COHORTS = tuple(GROUPS)


def check_name(name: str, allowed: tuple[str, ...] | list[str], what: str) -> str:
    """Return ``name`` if allowed, else raise a ``ValueError`` listing close matches."""
    if name in allowed:
        return name
    close = difflib.get_close_matches(name, list(allowed), n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown {what} {name!r}.{hint} Choose from: {', '.join(allowed)}")
