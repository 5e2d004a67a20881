"""neurotrans.analysis."""
