"""The training loss of identity encoders: supervised contrastive learning (SupCon, Khosla
et al. 2020) with pytorch-metric-learning.

The loss is the library's ``SupConLoss`` on the L2-normalised embeddings of a batch, at a
temperature. Which pairs it sees is a miner's job (:mod:`facedyn.identify.mining`): with
``positives: all`` every pair its labels form (no miner), with ``positives: cross_session``
the pairs of a :class:`~facedyn.identify.mining.CrossSessionMiner`. pytorch-metric-learning's
losses take ``(embeddings, labels, indices_tuple)``, the last the miner's output; that miner
also needs each window's session, so :class:`ContrastiveLoss` takes the sessions in its
place and passes the miner's pairs on::

    loss_fn = ContrastiveLoss(temperature=0.1, single_session=None)
    loss = loss_fn(embeddings, labels, sessions)
"""

from __future__ import annotations

import numpy as np
import torch

from facedyn.identify.mining import CrossSessionMiner


def supcon_loss(temperature: float):
    """pytorch-metric-learning's ``SupConLoss`` at ``temperature``."""
    from pytorch_metric_learning.losses import SupConLoss

    return SupConLoss(temperature=temperature)


class ContrastiveLoss:
    """``SupConLoss`` on a batch's embeddings: over the pairs of a
    :class:`~facedyn.identify.mining.CrossSessionMiner` when only cross-session positives
    count (``single_session`` given: per class, whether it has one session only), else over
    every pair its labels form.

    Args:
        temperature: the loss's temperature.
        single_session: ``(n_classes,)`` bool, True where a class has one training session;
            None: every pair counts (no miner).
    """

    def __init__(self, temperature: float, single_session: torch.Tensor | None) -> None:
        self.loss = supcon_loss(temperature)
        self.miner = None if single_session is None else CrossSessionMiner(single_session)

    def __call__(
        self, embeddings: torch.Tensor, labels: torch.Tensor, sessions: np.ndarray
    ) -> torch.Tensor:
        """The loss of one batch: ``embeddings`` ``(B, D)``, integer ``labels`` ``(B,)``
        and the session (video index) of every window, ``(B,)``."""
        if self.miner is None:
            return self.loss(embeddings, labels)
        session_tensor = torch.from_numpy(sessions).to(labels.device)
        pairs = self.miner.for_batch(session_tensor)(embeddings, labels)
        return self.loss(embeddings, labels, indices_tuple=pairs)
