"""Grids, resampling, normalisation, slicing, patches, splits and torch Datasets."""
