"""neurotrans.experiments."""
