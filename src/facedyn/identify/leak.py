"""A leak statistic that needs no truth and no control: do a dynamics model's confusions
follow how alike the speakers look?

If a model identifies speakers by appearance that leaked into its features, it mistakes a
speaker mostly for speakers who look like them. From the test predictions (which speaker each
window was taken for) and each speaker's appearance descriptor (the mean over their sessions of
:mod:`facedyn.face.descriptor`), it compares, over every pair of speakers, how often the model
confuses the two (both directions, as a share of their windows) with the cosine similarity of
their descriptors: Spearman's rho over the pairs, and a one-sided p-value from permuting the
speakers of the similarity matrix (a Mantel test: pairs share speakers, so they are not
independent and Spearman's own p-value does not hold). scikit-bio has a Mantel test, but it is
not a dependency and its permutations follow another stream; this is the same statistic in a
few lines of numpy and scipy.

Read it as: rho near 0 (p not small) says the confusions do not follow appearance; rho > 0
with a small p says they do, i.e. part of what the model identifies is appearance. It measures
a tendency, not the leak's size; the audit's controls measure the size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr

#: Permutations of the Mantel test.
N_PERMUTATIONS = 2000


def confusion_rates(predictions: pd.DataFrame, speakers: list[str]) -> np.ndarray:
    """(S, S) share of speaker i's test windows predicted as speaker j (rows sum to 1 over
    the speakers listed; windows predicted as unlisted speakers count for none)."""
    index = {s: k for k, s in enumerate(speakers)}
    out = np.zeros((len(speakers), len(speakers)))
    true = predictions["speaker_id"].astype(str).map(index)
    pred = predictions["predicted_speaker_id"].astype(str).map(index)
    ok = true.notna() & pred.notna()
    np.add.at(out, (true[ok].astype(int).to_numpy(), pred[ok].astype(int).to_numpy()), 1.0)
    totals = out.sum(1, keepdims=True)
    return np.divide(out, totals, out=np.zeros_like(out), where=totals > 0)


def appearance_leak(
    predictions: pd.DataFrame,
    descriptors: Mapping[str, np.ndarray],
    n_permutations: int = N_PERMUTATIONS,
    seed: int = 0,
) -> dict[str, Any]:
    """The leak statistic of one model's predictions (see the module docstring).

    Args:
        predictions: one model's rows of ``predictions.parquet`` (``speaker_id``,
            ``predicted_speaker_id``), all folds.
        descriptors: speaker -> mean appearance descriptor; speakers without one are left out.
        n_permutations: permutations of the Mantel test.
        seed: seed of the permutations.

    Returns:
        ``spearman_rho``, ``p_value`` (one-sided, rho at least as large under permuted
        speakers), ``n_speakers``, ``n_pairs``, ``confused_share`` (share of all confusions
        that go to each speaker's most similar-looking tenth of the others) with
        ``confused_share_expected`` (that tenth's share under no leak), ``method``; with fewer
        than 3 speakers or no confusion at all, the numbers are None and ``reason`` says why.
    """
    speakers = sorted(s for s in set(predictions["speaker_id"].astype(str)) if s in descriptors)
    base: dict[str, Any] = {
        "spearman_rho": None,
        "p_value": None,
        "n_speakers": len(speakers),
        "n_pairs": len(speakers) * (len(speakers) - 1) // 2,
        "confused_share": None,
        "confused_share_expected": None,
        "method": "Spearman rho over speaker pairs of confusion rate (both directions) vs "
        f"descriptor cosine similarity; Mantel permutation p ({n_permutations}), one-sided",
    }
    if len(speakers) < 3:
        return {**base, "reason": "fewer than 3 speakers with a descriptor"}
    conf = confusion_rates(predictions, speakers)
    np.fill_diagonal(conf, 0.0)
    sym = conf + conf.T
    if not sym.any():
        return {**base, "reason": "no confusion between speakers"}
    vec = np.stack([np.asarray(descriptors[s], dtype=np.float64) for s in speakers])
    vec /= np.linalg.norm(vec, axis=1, keepdims=True).clip(1e-12)
    sim = vec @ vec.T
    iu = np.triu_indices(len(speakers), k=1)
    x = rankdata(sym[iu])
    rho = float(spearmanr(sym[iu], sim[iu]).statistic)
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(n_permutations):
        perm = rng.permutation(len(speakers))
        y = rankdata(sim[np.ix_(perm, perm)][iu])
        hits += np.corrcoef(x, y)[0, 1] >= rho - 1e-12
    # confusions that go to each speaker's most similar-looking tenth of the others
    k = max(1, round(0.1 * (len(speakers) - 1)))
    masked = sim.copy()
    np.fill_diagonal(masked, -np.inf)
    nearest = np.argsort(-masked, axis=1)[:, :k]
    near = np.take_along_axis(conf, nearest, axis=1).sum()
    return {
        **base,
        "spearman_rho": rho,
        "p_value": (hits + 1) / (n_permutations + 1),
        "confused_share": float(near / conf.sum()) if conf.sum() > 0 else None,
        "confused_share_expected": k / (len(speakers) - 1),
    }


__all__ = ["N_PERMUTATIONS", "appearance_leak", "confusion_rates"]
