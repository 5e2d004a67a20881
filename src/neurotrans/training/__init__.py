"""neurotrans.training."""
