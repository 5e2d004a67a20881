"""neurotrans.metrics."""
