"""Reading and writing images and cohort manifests."""
