"""Synthetic cohort generator and dataset indexers (CANDOR, user manifests)."""
