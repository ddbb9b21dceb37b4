"""Identity encoders (Conformer, baselines), training, embedding and evaluation, and the
identification experiments (:mod:`facedyn.identify.experiments`: ``identify`` defaults merged
with one experiment's overrides)."""
