"""The leak statistic: do a model's confusions follow how alike speakers look?"""

from __future__ import annotations

import numpy as np
import pandas as pd

from facedyn.identify.leak import appearance_leak, confusion_rates


def _faces(n, seed):
    return np.random.default_rng(seed).standard_normal((n, 128))


def _predictions(faces, leak, seed, windows=40):
    """Each speaker's windows predicted as themselves or as another speaker, the other
    drawn by face similarity (``leak`` > 0: a planted appearance leak) or uniformly."""
    rng = np.random.default_rng(seed)
    n = len(faces)
    unit = faces / np.linalg.norm(faces, axis=1, keepdims=True)
    sim = unit @ unit.T
    rows = []
    for i in range(n):
        logits = leak * sim[i] * 10
        logits[i] = -np.inf
        p = np.exp(logits - logits[np.isfinite(logits)].max())
        p /= p.sum()
        for _ in range(windows):
            j = i if rng.random() < 0.3 else int(rng.choice(n, p=p))
            rows.append({"speaker_id": f"s{i:02d}", "predicted_speaker_id": f"s{j:02d}"})
    return pd.DataFrame(rows), {f"s{i:02d}": faces[i] for i in range(n)}


def test_a_planted_appearance_leak_is_found():
    for seed in range(3):
        preds, desc = _predictions(_faces(16, seed), leak=1.0, seed=seed)
        out = appearance_leak(preds, desc, n_permutations=500, seed=seed)
        assert out["spearman_rho"] > 0.3 and out["p_value"] < 0.01, out
        assert out["confused_share"] > 2 * out["confused_share_expected"]
        assert out["n_speakers"] == 16 and out["n_pairs"] == 120


def test_confusions_independent_of_appearance_show_no_leak():
    ps = []
    for seed in range(5):
        preds, desc = _predictions(_faces(16, 10 + seed), leak=0.0, seed=seed)
        out = appearance_leak(preds, desc, n_permutations=500, seed=seed)
        assert abs(out["spearman_rho"]) < 0.3, out
        ps.append(out["p_value"])
    assert min(ps) > 0.01 and np.median(ps) > 0.1


def test_too_few_speakers_or_no_confusion_say_why():
    preds, desc = _predictions(_faces(2, 0), leak=1.0, seed=0)
    assert appearance_leak(preds, desc)["reason"] == "fewer than 3 speakers with a descriptor"
    perfect = pd.DataFrame({"speaker_id": ["a", "b", "c"], "predicted_speaker_id": ["a", "b", "c"]})
    out = appearance_leak(perfect, {s: _faces(1, k)[0] for k, s in enumerate("abc")})
    assert out["spearman_rho"] is None and out["reason"] == "no confusion between speakers"
    # speakers without a descriptor are left out
    preds, desc = _predictions(_faces(5, 0), leak=0.0, seed=0)
    del desc["s04"]
    assert appearance_leak(preds, desc, n_permutations=50)["n_speakers"] == 4


def test_confusion_rates_are_shares_of_each_speakers_windows():
    preds = pd.DataFrame(
        {"speaker_id": ["a", "a", "a", "b"], "predicted_speaker_id": ["a", "b", "b", "a"]}
    )
    np.testing.assert_allclose(confusion_rates(preds, ["a", "b"]), [[1 / 3, 2 / 3], [1.0, 0.0]])
