"""neurotrans.report."""
