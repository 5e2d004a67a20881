"""Simulated cohorts on real anatomy (PHANTOM.md): ``fdg`` (CN/MCI/AD) and ``ms`` (MS/HC).

``simulate_cohort`` writes a BIDS-like folder with ``participants.tsv`` and ``manifest.tsv``;
``format_summary`` prints group measures computed from the written files.
"""

from __future__ import annotations

from neurotrans.phantom.cohort import CohortResult, simulate_cohort
from neurotrans.phantom.summary import fdg_measures, format_summary, myelin_indices

__all__ = ["CohortResult", "fdg_measures", "format_summary", "myelin_indices", "simulate_cohort"]
