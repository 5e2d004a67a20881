"""neurotrans: translate brain images between modalities (MRI -> PET, MRI -> MRI)."""

from __future__ import annotations

__version__ = "0.1.0"
