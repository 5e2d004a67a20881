"""What one simulated subject yields: participant scores, subject-level maps and sessions."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SimulatedSession:
    """Images of one session and the covariates that go in its manifest row.

    Args:
        session: session label (``baseline``, ``t0``, ``t1``).
        covariates: manifest covariates of this row after ``age``, ``sex``, ``group`` (e.g. ``months``).
        images: manifest column -> volume ``(X, Y, Z)`` (modalities and latent maps).
        age: age at this session (years).
    """

    session: str
    age: float
    covariates: dict[str, float | int | str] = field(default_factory=dict)
    images: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class SimulatedSubject:
    """Everything simulated for one subject.

    Args:
        participant: the ``participants.tsv`` row (without the subject id).
        masks: subject-level maps shared by all sessions (``brainmask GM WM CSF lesions NAWM``).
        sessions: the sessions in time order.
    """

    participant: dict[str, float | int | str]
    masks: dict[str, np.ndarray]
    sessions: list[SimulatedSession]
