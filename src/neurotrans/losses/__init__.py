"""neurotrans.losses."""
