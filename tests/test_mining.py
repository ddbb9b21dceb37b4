"""The cross-session miner: which same-speaker pairs count as positives."""

import pytest
import torch

from facedyn.identify.mining import CrossSessionMiner


def test_positives_cross_sessions_unless_the_speaker_has_one_session():
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    sessions = torch.tensor([10, 10, 11, 20, 20, 30])
    single = torch.tensor([False, True, False])  # speaker 1 trains on one session only
    miner = CrossSessionMiner(single)
    a1, p, a2, n = miner.for_batch(sessions)(torch.randn(6, 4), labels)
    positives = set(zip(a1.tolist(), p.tolist(), strict=True))
    # speaker 0: windows 0 and 1 share a session (id 10: ignored), window 2 is in id 11
    assert positives == {(0, 2), (2, 0), (1, 2), (2, 1), (3, 4), (4, 3)}
    negatives = set(zip(a2.tolist(), n.tolist(), strict=True))
    assert len(negatives) == 36 - 14 and (0, 3) in negatives and (0, 1) not in negatives
    assert miner.num_pos_pairs == 6 and miner.num_neg_pairs == 22


def test_the_miner_needs_the_batch_sessions():
    miner = CrossSessionMiner(torch.tensor([False, False]))
    with pytest.raises(ValueError, match="for_batch"):
        miner(torch.randn(3, 2), torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="for_batch"):
        miner.for_batch(torch.tensor([1, 2]))(torch.randn(3, 2), torch.tensor([0, 1, 1]))
