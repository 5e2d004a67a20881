"""neurotrans.networks.blocks."""
