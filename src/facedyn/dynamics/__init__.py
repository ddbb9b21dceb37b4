"""Drift-to-noise ratio, dynamics features, windows and cross-validation folds."""
