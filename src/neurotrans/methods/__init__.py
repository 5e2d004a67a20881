"""neurotrans.methods."""
