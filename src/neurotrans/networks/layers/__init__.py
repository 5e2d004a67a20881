"""neurotrans.networks.layers."""
