"""neurotrans.inference."""
