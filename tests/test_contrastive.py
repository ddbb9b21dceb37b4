"""The training loss (facedyn.identify.contrastive): pytorch-metric-learning's SupConLoss
over every pair, or over the cross-session miner's pairs."""

import numpy as np
import torch
from pytorch_metric_learning.losses import SupConLoss

from facedyn.identify.contrastive import ContrastiveLoss
from facedyn.identify.mining import CrossSessionMiner


def _batch():
    gen = torch.Generator().manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(12, 8, generator=gen), dim=1)
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    sessions = np.array([1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5, 5], dtype=np.int64)
    return z, labels, sessions


def test_all_positives_is_supcon_on_every_pair():
    z, labels, sessions = _batch()
    loss = ContrastiveLoss(0.1, None)
    assert loss.miner is None
    assert loss(z, labels, sessions).item() == SupConLoss(temperature=0.1)(z, labels).item()


def test_cross_session_positives_are_supcon_on_the_miner_pairs():
    z, labels, sessions = _batch()
    single = torch.tensor([False, False, True])  # speaker 2 trains on one session only
    loss = ContrastiveLoss(0.2, single)
    pairs = CrossSessionMiner(single).for_batch(torch.from_numpy(sessions))(z, labels)
    expected = SupConLoss(temperature=0.2)(z, labels, indices_tuple=pairs)
    assert loss(z, labels, sessions).item() == expected.item()
    # leaving a speaker's same-session pairs out changes the loss
    assert (
        loss(z, labels, sessions).item() != ContrastiveLoss(0.2, None)(z, labels, sessions).item()
    )
