"""neurotrans.explain."""
