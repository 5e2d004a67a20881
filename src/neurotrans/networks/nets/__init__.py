"""neurotrans.networks.nets."""
