"""neurotrans.phantom."""
