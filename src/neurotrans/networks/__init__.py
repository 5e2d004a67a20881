"""neurotrans.networks."""
