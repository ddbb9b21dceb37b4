"""Identity encoders (Conformer, baselines), training, embedding and evaluation."""
