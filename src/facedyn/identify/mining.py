"""Which pairs of a batch the contrastive loss uses: a pytorch-metric-learning miner.

:class:`CrossSessionMiner` (``identify.train.positives: cross_session``) keeps as positives
only same-speaker pairs from different sessions (videos), so that matching what one session's
windows share (lighting, camera, the day's mood) earns nothing; a speaker with a single
training session keeps its same-session pairs. Negatives are every different-speaker pair.
Same-session pairs of a multi-session speaker are in neither set: the loss ignores them.

pytorch-metric-learning's miners see only embeddings and labels; this one also needs each
window's session, which :meth:`CrossSessionMiner.for_batch` sets before the call::

    miner = CrossSessionMiner(single_session)
    loss = loss_fn(z, y, indices_tuple=miner.for_batch(sessions)(z, y))

Its ``num_pos_pairs`` / ``num_neg_pairs`` record the last batch's counts, like the library's
own miners.
"""

from __future__ import annotations

import torch
from pytorch_metric_learning.miners import BaseMiner


class CrossSessionMiner(BaseMiner):
    """Cross-session positives, all negatives (module docstring).

    Args:
        single_session: (n_classes,) bool, True where a class has one training session.
    """

    def __init__(self, single_session: torch.Tensor, **kwargs) -> None:
        super().__init__(**kwargs)
        self.single_session = single_session.bool()
        self.sessions: torch.Tensor | None = None

    def for_batch(self, sessions: torch.Tensor) -> CrossSessionMiner:
        """Set the session (video) of every window of the next batch; returns the miner."""
        self.sessions = sessions
        return self

    def mine(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor,
        ref_labels: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        if self.sessions is None or len(self.sessions) != len(labels):
            raise ValueError(
                "CrossSessionMiner: call for_batch(sessions) with one session "
                "per window of the batch first"
            )
        sessions = self.sessions.to(labels.device)
        single = self.single_session.to(labels.device)
        same = labels[:, None] == ref_labels[None, :]
        other_window = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        cross = sessions[:, None] != sessions[None, :]
        pos = same & other_window & (cross | single[labels][:, None])
        a1, p = pos.nonzero(as_tuple=True)
        a2, n = (~same).nonzero(as_tuple=True)
        return a1, p, a2, n
