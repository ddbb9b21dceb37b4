"""Identity encoders, SupCon training, embedding and checkpoints (facedyn.identify), on CPU.

The learning test uses a tiny synthetic cohort whose speakers differ only in the *frequency*
of their expression dynamics (same amplitudes, same marginal distribution of every feature,
a random phase per session), so per-frame statistics cannot identify them and a model has to
learn temporal structure that carries across sessions.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from facedyn.dynamics.features import store_from_tables
from facedyn.dynamics.folds import build_folds, fold_windows
from facedyn.dynamics.windows import Normalizer, Windows, make_windows
from facedyn.identify import train as train_mod
from facedyn.identify.checkpoint import data_fingerprint, load_checkpoint, save_checkpoint
from facedyn.identify.encoders import (
    EncoderSettings,
    build_encoder,
    count_parameters,
    self_attention,
)
from facedyn.identify.experiments import ExperimentError
from facedyn.identify.metrics import nearest_centroid_top1
from facedyn.identify.train import (
    LOG_COLUMNS,
    TrainSettings,
    embed,
    lr_factor,
    speaker_labels,
    train_encoder,
    training_data,
)

WINDOW_S, STRIDE_S = 2.0, 0.5
SMALL = {
    "d_model": 32,
    "n_layers": 1,
    "n_heads": 2,
    "conv_kernel": 7,
    "tcn_kernel": 5,
    "embedding_dim": 16,
}
FAST = {
    "epochs": 3,
    "m_per_class": 4,
    "classes_per_batch": 6,
    "warmup_epochs": 1,
    "lr": 3e-3,
    "num_threads": 1,
    "batches_per_epoch": 6,
}


@pytest.fixture(autouse=True)
def _one_thread():
    # One thread: small models are fastest so, and a busy 2-core machine makes OpenMP's
    # thread teams wait on each other (tens of times slower).
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def _cohort(
    n_speakers: int = 6, n_sessions: int = 2, seconds: float = 40, fps: float = 15, seed: int = 0
):
    """FLAME-like tables: every feature is ``a_c sin(2 pi f_s t + phi) + noise`` with a
    speaker-specific frequency ``f_s``, fixed per-feature amplitudes ``a_c`` and a random
    phase per session."""
    rng = np.random.default_rng(seed)
    freqs = np.linspace(0.6, 2.1, n_speakers)
    names = [*(f"expr_{c:03d}" for c in range(4)), "jaw_0", "jaw_1", "jaw_2"]
    amps = np.linspace(0.5, 1.5, len(names))
    n = round(seconds * fps)
    t = np.arange(n) / fps
    videos, tables = [], []
    for s in range(n_speakers):
        for k in range(n_sessions):
            phase = rng.uniform(0, 2 * np.pi)
            d = {"frame": np.arange(n), "time_s": t, "valid": np.ones(n, bool)}
            for name, a in zip(names, amps, strict=True):
                d[name] = a * np.sin(2 * np.pi * freqs[s] * t + phase) + 0.5 * rng.normal(size=n)
            videos.append({"session_id": f"sess{k}", "speaker_id": f"p{s}"})
            tables.append(pd.DataFrame(d))
    return store_from_tables(videos, tables, "expr_jaw", n_expr=4)


@pytest.fixture(scope="module")
def cohort():
    store = _cohort()
    windows = make_windows(store, WINDOW_S, STRIDE_S)
    folds = build_folds(store, windows, "cross_session", 2, WINDOW_S, 0.8, 2)
    data = training_data(folds, 0, store, windows, WINDOW_S, STRIDE_S, 0.1)
    test = fold_windows(folds, 0, "test", store, windows)
    test_labels, _ = speaker_labels(store, test, data.classes)
    normalizer = Normalizer.fit(store, data.train)
    return {
        "store": store,
        "data": data,
        "test": test,
        "test_labels": test_labels,
        "normalizer": normalizer,
    }


def _train(cohort, enc=None, seed=0, log_csv=None, **overrides):
    d = cohort["data"]
    return train_encoder(
        cohort["store"],
        d.train,
        d.train_labels,
        d.val,
        d.val_labels,
        cohort["normalizer"],
        EncoderSettings(**{**SMALL, **(enc or {})}),
        TrainSettings(**{**FAST, **overrides}),
        "cpu",
        seed=seed,
        log_csv=log_csv,
        progress=False,
    )


def _embed(cohort, model, windows=None):
    return embed(
        model,
        cohort["store"],
        cohort["test"] if windows is None else windows,
        cohort["normalizer"],
        "cpu",
    )


# --- encoders -----------------------------------------------------------------------------------


@pytest.mark.parametrize("encoder", ["conformer", "lstm", "tcn"])
def test_encoders_give_unit_embeddings_and_gradients(encoder):
    torch.manual_seed(0)
    model = build_encoder(EncoderSettings(encoder=encoder, **SMALL), n_features=7)
    x = torch.randn(5, 40, 7)
    z = model(x)
    assert z.shape == (5, 16) and z.dtype == torch.float32
    torch.testing.assert_close(z.norm(dim=1), torch.ones(5))
    z[:, 0].sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert count_parameters(model) > 0


def test_the_conformers_attention_is_multihead_attention_to_the_bit():
    """Outputs, input gradients and parameter gradients equal nn.MultiheadAttention's own."""
    torch.manual_seed(0)
    attn = torch.nn.MultiheadAttention(32, 4, dropout=0.0, batch_first=True)
    h0, upstream = torch.randn(6, 25, 32), torch.randn(6, 25, 32)

    def run(forward):
        attn.zero_grad(set_to_none=True)
        h = h0.clone().requires_grad_(True)
        out = forward(h)
        out.backward(upstream)
        return [out.detach(), h.grad, *(p.grad for p in attn.parameters())]

    ours = run(lambda h: self_attention(attn, h))
    theirs = run(lambda h: attn(h, h, h, need_weights=False)[0])
    assert len(ours) == 2 + 4
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)


def test_the_conformers_attention_drops_weights_only_in_training():
    torch.manual_seed(0)
    attn = torch.nn.MultiheadAttention(32, 4, dropout=0.5, batch_first=True)
    h = torch.randn(6, 25, 32, requires_grad=True)
    dropped = self_attention(attn, h)
    attn.eval()
    assert torch.equal(self_attention(attn, h), attn(h, h, h, need_weights=False)[0])
    assert not torch.allclose(dropped, self_attention(attn, h))


def test_default_conformer_is_small_and_takes_any_window_length():
    model = build_encoder(EncoderSettings(), n_features=53).eval()
    assert 50_000 < count_parameters(model) < 500_000
    with torch.no_grad():
        for length in (1, 30, 120, 600):  # 600 > the cached position table
            z = model(torch.randn(2, length, 53))
            assert z.shape == (2, 64)
            torch.testing.assert_close(z.norm(dim=1), torch.ones(2))


@pytest.mark.parametrize("subsample", [2, 3])
def test_subsampled_conformer_runs_its_blocks_on_fewer_steps(subsample):
    torch.manual_seed(0)
    model = build_encoder(EncoderSettings(subsample=subsample, **SMALL), n_features=7).eval()
    steps = []
    handle = model.blocks[0].register_forward_hook(lambda m, i, o: steps.append(o.shape[1]))
    with torch.no_grad():
        for length in (1, 31, 120):
            z = model(torch.randn(2, length, 7))
            assert z.shape == (2, 16)
            torch.testing.assert_close(z.norm(dim=1), torch.ones(2))
    handle.remove()
    assert steps == [math.ceil(t / subsample) for t in (1, 31, 120)]
    # Frames further apart than the front end's kernel reach different steps: the
    # front end looks at time, it does not pool it away.
    x = torch.randn(1, 40, 7)
    shifted = x.clone()
    shifted[:, -1] += 1.0
    with torch.no_grad():
        assert not torch.allclose(model(x), model(shifted))


def test_eval_embedding_does_not_depend_on_the_batch():
    model = build_encoder(EncoderSettings(**SMALL), n_features=7).eval()
    x = torch.randn(6, 30, 7)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[:2], model(x[:2]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("encoder", "gru"),
        ("d_model", 0),
        ("n_layers", 1.5),
        ("dropout", 1.0),
        ("conv_kernel", 4),
        ("tcn_kernel", 4),
        ("n_heads", 3),
        ("embedding_dim", True),
        ("subsample", 0),
    ],
)
def test_invalid_encoder_settings_name_the_key(key, value):
    with pytest.raises(ValueError, match=f"^{key}"):
        EncoderSettings(**{key: value})


def test_lstm_needs_even_width_and_unknown_keys_are_named():
    with pytest.raises(ValueError, match=r"^d_model"):
        EncoderSettings(encoder="lstm", d_model=33, n_heads=1)
    with pytest.raises(ValueError, match=r"^d_modle"):
        EncoderSettings.from_mapping({"d_modle": 32})
    assert EncoderSettings.from_mapping({"d_model": np.int64(32)}).d_model == 32
    with pytest.raises(ValueError, match=r"^n_features"):
        build_encoder(EncoderSettings(), 0)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("epochs", 0),
        ("m_per_class", 1),
        ("classes_per_batch", 1),
        ("lr", 0.0),
        ("lr", math.nan),
        ("weight_decay", -1.0),
        ("temperature", 0),
        ("patience", 0),
        ("val_fraction", 0.0),
        ("batches_per_epoch", 0),
        ("min_batches_per_epoch", 0),
        ("amp", "yes"),
        ("num_threads", 0),
        ("monitor", "loss"),
        ("warmup_epochs", -1),
    ],
)
def test_invalid_train_settings_name_the_key(key, value):
    with pytest.raises(ValueError, match=f"^{key}"):
        TrainSettings(**{key: value})
    with pytest.raises(ValueError, match=r"^epoch "):
        TrainSettings.from_mapping({"epoch ": 3})


def test_learning_rate_warms_up_then_decays_on_a_cosine():
    f = [lr_factor(s, 100, 10) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a < b for a, b in itertools.pairwise(f[:10]))
    assert all(a >= b for a, b in itertools.pairwise(f[9:]))
    assert f[55] == pytest.approx(0.5) and f[-1] < 1e-3
    assert lr_factor(0, 10, 0) == 1.0


# --- training -----------------------------------------------------------------------------------


def test_training_identifies_speakers_across_sessions(cohort, tmp_path):
    """Trained on one session per speaker, tested on the other: well above chance (1/6) and
    above the untrained encoder. Fails if labels, sampler or loss are miswired."""
    d = cohort["data"]
    assert len(d.classes) == 6 and len(d.val) > 0
    store, norm = cohort["store"], cohort["normalizer"]
    torch.manual_seed(0)
    untrained = build_encoder(EncoderSettings(**SMALL), 7)
    ref = embed(untrained, store, d.train, norm, "cpu")
    base = nearest_centroid_top1(
        ref, d.train_labels, _embed(cohort, untrained), cohort["test_labels"]
    )
    log_csv = tmp_path / "log.csv"
    res = _train(cohort, epochs=6, batches_per_epoch=None, min_batches_per_epoch=1, log_csv=log_csv)
    assert res.batches_per_epoch == len(d.train) // 24 > 1 and res.batch_size == 24
    ref = embed(res.model, store, d.train, norm, "cpu")
    acc = nearest_centroid_top1(
        ref, d.train_labels, _embed(cohort, res.model), cohort["test_labels"]
    )
    assert acc >= 0.8 and acc > base + 0.3, (acc, base)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert res.history[res.best_epoch - 1]["val_top1"] >= 0.8
    assert not res.model.training and res.windows_per_s > 0
    with open(log_csv) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows] == [str(e) for e in range(1, 7)]
    assert list(rows[0]) == LOG_COLUMNS
    assert float(rows[-1]["lr"]) < float(rows[1]["lr"])  # cosine decay after warm-up


def test_random_crops_read_only_frames_of_the_training_windows(cohort):
    # Poison every frame no training window covers: a crop that slid onto one would make
    # the loss NaN (train_encoder raises on a non-finite loss).
    from facedyn.dynamics.windows import covered_rows

    d = cohort["data"]
    store = cohort["store"]
    saved = store.features.copy()
    try:
        store.features[~covered_rows(store, d.train)] = np.nan
        res = train_encoder(
            store,
            d.train,
            d.train_labels,
            None,
            None,
            cohort["normalizer"],
            EncoderSettings(**SMALL),
            TrainSettings(**{**FAST, "epochs": 3}),
            "cpu",
            seed=0,
            progress=False,
        )
        assert all(math.isfinite(h["train_loss"]) for h in res.history)
    finally:
        store.features[:] = saved


def test_random_crop_changes_training_and_can_be_turned_off(cohort):
    on = _train(cohort, epochs=2)
    off = _train(cohort, epochs=2, random_crop=False)
    assert on.history[-1]["train_loss"] != off.history[-1]["train_loss"]
    with pytest.raises(ValueError, match="random_crop"):
        TrainSettings(random_crop="yes")


def test_mask_batch_masks_one_span_and_whole_channels_with_the_training_mean():
    from facedyn.identify.train import mask_batch

    x = torch.randn(64, 40, 6) + 5.0  # no value is 0 before masking
    before = x.clone()
    out = mask_batch(x, 0.25, 2, torch.Generator().manual_seed(0))
    torch.testing.assert_close(x, before)  # the input is left alone
    zero = out == 0
    channel = zero.all(dim=1)  # (B, F): channels masked over the whole window
    assert (channel.sum(dim=1) == 2).all()
    rows = (zero & ~channel[:, None, :]).any(dim=2)  # (B, T): frames of the time span
    for b in range(len(x)):
        t = torch.nonzero(rows[b]).flatten()
        assert len(t) <= 0.25 * 40 + 1
        if len(t):
            assert t[-1] - t[0] + 1 == len(t)  # one contiguous span
            assert zero[b, t].all()  # every channel of a masked frame
    assert rows.any(dim=1).float().mean() > 0.5  # most windows lose a span
    same = mask_batch(x, 0.25, 2, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, same)  # seeded
    assert mask_batch(x, 0.0, 0, torch.Generator()) is x
    assert (mask_batch(x, 0.0, 99, torch.Generator()) == 0).all(dim=1).sum(dim=1).eq(5).all()


def test_masking_changes_training_and_is_validated(cohort):
    plain = _train(cohort, epochs=2)
    masked = _train(cohort, epochs=2, time_mask=0.2, feature_masks=1)
    assert plain.history[-1]["train_loss"] != masked.history[-1]["train_loss"]
    with pytest.raises(ValueError, match="time_mask"):
        TrainSettings(time_mask=0.9)
    with pytest.raises(ValueError, match="feature_masks"):
        TrainSettings(feature_masks=-1)


def test_cross_session_miner_keeps_cross_session_positives_and_every_negative():
    from facedyn.identify.mining import CrossSessionMiner

    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    sessions = torch.tensor([5, 5, 6, 7, 7, 8, 9])
    single = torch.tensor([False, True, False])  # class 1 has one training session
    miner = CrossSessionMiner(single).for_batch(sessions)
    a1, p, a2, n = miner(torch.randn(7, 4), labels)
    positives = set(zip(a1.tolist(), p.tolist(), strict=True))
    # class 0: only pairs across its two sessions (ids 5, 6); class 1: its one session's pair;
    # class 2: its two sessions' pair; no window is its own positive
    assert positives == {(0, 2), (2, 0), (1, 2), (2, 1), (3, 4), (4, 3), (5, 6), (6, 5)}
    negatives = set(zip(a2.tolist(), n.tolist(), strict=True))
    expected = {(i, j) for i in range(7) for j in range(7) if labels[i] != labels[j]}
    assert negatives == expected
    # the loss takes them: same-session pairs of class 0 are out of numerator and denominator
    from pytorch_metric_learning.losses import SupConLoss

    z = torch.nn.functional.normalize(
        torch.randn(7, 4, generator=torch.Generator().manual_seed(0)), dim=1
    )
    assert torch.isfinite(SupConLoss()(z, labels, indices_tuple=(a1, p, a2, n)))


def test_cross_session_positives_change_training_and_are_validated(cohort, caplog):
    # the module cohort trains on one session per speaker: no cross-session pair, so the
    # option changes nothing there (and says so) ...
    with caplog.at_level("WARNING", logger="facedyn.identify.train"):
        single = _train(cohort, epochs=2, positives="cross_session")
    assert "no speaker has two training sessions" in caplog.text
    assert single.history[-1]["train_loss"] == _train(cohort, epochs=2).history[-1]["train_loss"]
    # ... with three sessions, two of them train, and the pairs differ
    store = _cohort(n_speakers=4, n_sessions=3, seconds=20)
    windows = make_windows(store, WINDOW_S, STRIDE_S)
    folds = build_folds(store, windows, "cross_session", 3, WINDOW_S, 0.8, 2)
    data = training_data(folds, 0, store, windows, WINDOW_S, STRIDE_S, 0.1)
    assert len(np.unique(data.train.video)) == 8  # 4 speakers x 2 training sessions
    runs = {}
    for positives in ("all", "cross_session"):
        runs[positives] = train_encoder(
            store,
            data.train,
            data.train_labels,
            data.val,
            data.val_labels,
            Normalizer.fit(store, data.train),
            EncoderSettings(**SMALL),
            TrainSettings(**{**FAST, "epochs": 2, "classes_per_batch": 4, "positives": positives}),
            "cpu",
            progress=False,
        )
    plain, cross = runs["all"].history[-1], runs["cross_session"].history[-1]
    assert plain["train_loss"] != cross["train_loss"]
    assert math.isfinite(cross["val_loss"])
    with pytest.raises(ValueError, match="positives"):
        TrainSettings(positives="same_session")
    with pytest.raises(ValueError, match="early_stopping"):
        TrainSettings(early_stopping="no")


def test_training_is_deterministic_on_cpu_and_amp_is_a_no_op_there(cohort):
    a = _embed(cohort, _train(cohort, amp=True, seed=3).model)
    b = _embed(cohort, _train(cohort, amp=False, seed=3).model)
    np.testing.assert_array_equal(a, b)
    c = _embed(cohort, _train(cohort, seed=4).model)
    assert not np.array_equal(a, c)


def test_training_leaves_global_random_state_and_threads_alone(cohort):
    # pytorch-metric-learning's sampler draws from the global (legacy) numpy state by default
    np.random.seed(11)  # noqa: NPY002
    torch.manual_seed(11)
    expected = (np.random.random_sample(), torch.rand(1).item())  # noqa: NPY002
    np.random.seed(11)  # noqa: NPY002
    torch.manual_seed(11)
    torch.set_num_threads(2)
    _train(cohort, epochs=1, num_threads=1)
    assert torch.get_num_threads() == 2
    assert (np.random.random_sample(), torch.rand(1).item()) == expected  # noqa: NPY002


def test_early_stopping_keeps_the_best_epoch(cohort, monkeypatch):
    # validation accuracy that never improves after epoch 1: stop after `patience` more
    monkeypatch.setattr(train_mod, "nearest_centroid_top1", lambda *a: 0.5)
    res = _train(cohort, epochs=10, patience=2, monitor="val_top1", warmup_epochs=10)
    assert res.stopped_early and res.best_epoch == 1 and len(res.history) == 3
    # the returned weights are epoch 1's: the same as a 1-epoch run (warm-up lr does not
    # depend on the total number of epochs, and the same seed draws the same batches)
    one = _train(cohort, epochs=1, patience=2, monitor="val_top1", warmup_epochs=10)
    np.testing.assert_array_equal(_embed(cohort, res.model), _embed(cohort, one.model))


def test_without_validation_all_epochs_run_and_the_last_is_kept(cohort):
    d = cohort["data"]
    res = train_encoder(
        cohort["store"],
        d.train,
        d.train_labels,
        None,
        None,
        cohort["normalizer"],
        EncoderSettings(**SMALL),
        TrainSettings(**{**FAST, "epochs": 2}),
        "cpu",
        progress=False,
    )
    assert res.best_epoch == 2 and not res.stopped_early
    assert all(math.isnan(h["val_loss"]) for h in res.history)


@pytest.mark.parametrize("encoder", ["lstm", "tcn"])
def test_small_data_with_fewer_windows_than_m_per_class(encoder):
    """4 speakers x 6 windows, m_per_class 8 and 16 classes per batch asked for: the batch is
    clipped to 4 speakers and windows are drawn with replacement."""
    store = _cohort(n_speakers=4, n_sessions=1, seconds=(30 + 5 * 8) / 15)  # 6 windows each
    windows = make_windows(store, WINDOW_S, STRIDE_S)
    labels, _ = speaker_labels(store, windows)
    assert len(windows) == 24 and np.bincount(labels).tolist() == [6] * 4
    res = train_encoder(
        store,
        windows,
        labels,
        windows,
        labels,
        Normalizer.fit(store, windows),
        EncoderSettings(**{**SMALL, "encoder": encoder}),
        TrainSettings(epochs=2, m_per_class=8, classes_per_batch=16, num_threads=1),
        "cpu",
        progress=False,
    )
    # one pass would be a single batch: the floor on optimisation steps applies
    assert res.batch_size == 32 and res.batches_per_epoch == 32 and res.n_classes == 4
    assert len(res.history) == 2 and math.isfinite(res.history[-1]["val_loss"])


def test_training_needs_two_speakers_and_matching_labels(cohort):
    d = cohort["data"]
    one = d.train.subset(d.train_labels == 0)
    with pytest.raises(ValueError, match="at least two speakers"):
        train_encoder(
            cohort["store"],
            one,
            np.zeros(len(one), int),
            None,
            None,
            cohort["normalizer"],
            EncoderSettings(**SMALL),
            TrainSettings(**FAST),
            "cpu",
            progress=False,
        )
    with pytest.raises(ValueError, match="train_labels"):
        train_encoder(
            cohort["store"],
            d.train,
            d.train_labels[:-1],
            None,
            None,
            cohort["normalizer"],
            EncoderSettings(**SMALL),
            TrainSettings(**FAST),
            "cpu",
            progress=False,
        )


# --- embedding, checkpoints, fingerprints ----------------------------------------------------


def test_checkpoint_round_trip(cohort, tmp_path):
    d = cohort["data"]
    res = _train(cohort, enc={"encoder": "conformer"}, epochs=1)
    fp = data_fingerprint(cohort["store"], d.train)
    path = tmp_path / "fold0" / "model.pt"
    save_checkpoint(
        path,
        res.model,
        EncoderSettings(**SMALL),
        TrainSettings(**FAST),
        cohort["normalizer"],
        d.classes,
        fp,
        {
            "fold": np.int64(0),
            "seed": 0,
            "history": res.history,
            "settings": {"baselines": ("lstm",), "out": tmp_path},
        },
    )
    model, info = load_checkpoint(path, "cpu")
    assert not model.training
    assert info["classes"] == d.classes and info["data_fingerprint"] == fp
    assert info["encoder_settings"] == EncoderSettings(**SMALL)
    assert info["train_settings"] == TrainSettings(**FAST)
    assert info["normalizer"] == cohort["normalizer"]
    assert info["extra"]["history"][0]["epoch"] == 1 and info["extra"]["fold"] == 0
    assert info["extra"]["settings"] == {"baselines": ("lstm",), "out": str(tmp_path)}
    np.testing.assert_array_equal(_embed(cohort, res.model), _embed(cohort, model))
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temporary left


def test_checkpoint_extra_must_be_plain_values(cohort, tmp_path):
    model = build_encoder(EncoderSettings(**SMALL), 7)
    with pytest.raises(TypeError, match=r"extra\.bad: object"):
        save_checkpoint(
            tmp_path / "m.pt",
            model,
            EncoderSettings(**SMALL),
            TrainSettings(),
            cohort["normalizer"],
            cohort["data"].classes,
            "fp",
            {"bad": object()},
        )
    assert not list(tmp_path.iterdir())


def test_load_checkpoint_refuses_other_files(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="not a facedyn encoder checkpoint"):
        load_checkpoint(path)


def test_the_workflow_reads_checkpoint_facts_and_baselines_without_torch():
    # common.smk imports these while the DAG is built; torch comes only with saving/loading
    code = (
        "import sys; import facedyn.identify.checkpoint, facedyn.identify.registry; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_embed_is_float32_in_eval_mode_and_handles_no_windows(cohort):
    model = build_encoder(EncoderSettings(**SMALL), 7)
    model.train()
    e = embed(model, cohort["store"], cohort["test"], cohort["normalizer"], "cpu", batch_size=7)
    assert e.shape == (len(cohort["test"]), 16) and e.dtype == np.float32
    np.testing.assert_allclose(e, _embed(cohort, model), atol=1e-5)  # nor does batch size
    assert model.training  # the caller's mode is restored
    empty = Windows(np.zeros(0, np.int32), np.zeros(0, np.int64), cohort["test"].length)
    assert embed(model, cohort["store"], empty, cohort["normalizer"], "cpu").shape == (0, 16)


def test_data_fingerprint_tracks_windows_and_feature_values(cohort):
    store, train = cohort["store"], cohort["data"].train
    fp = data_fingerprint(store, train)
    assert fp == data_fingerprint(store, train, chunk_rows=17)  # chunking does not matter
    assert fp != data_fingerprint(store, train.subset(np.arange(len(train) - 1)))
    row = int(train.first_rows(store)[0])
    saved = store.features[row, 0]
    try:
        store.features[row, 0] += 1.0
        assert fp != data_fingerprint(store, train)
    finally:
        store.features[row, 0] = saved
    assert fp == data_fingerprint(store, train)


def test_refit_settings_fit_the_schedule_into_the_chosen_epochs():
    from facedyn.identify.train import refit_settings

    ts = TrainSettings(epochs=30, warmup_epochs=2, lr=5e-4)
    assert refit_settings(ts, 12) == TrainSettings(epochs=12, warmup_epochs=2, lr=5e-4)
    assert refit_settings(ts, 1).warmup_epochs == 1
    with pytest.raises(ValueError, match="best_epoch"):
        refit_settings(ts, 0)
    with pytest.raises(ValueError, match="refit"):
        TrainSettings(refit="yes")


@pytest.mark.parametrize("mode", ["refit", "select", "fixed"])
def test_run_train_refits_on_every_training_window_for_the_chosen_epochs(tmp_path, mode):
    from facedyn.identify.experiments import ExperimentSettings
    from facedyn.identify.stage import FoldContext, run_train

    store = _cohort(n_speakers=4, seconds=30)
    windows = make_windows(store, WINDOW_S, STRIDE_S)
    folds = build_folds(store, windows, "cross_session", 2, WINDOW_S, 0.8, 2)
    settings = ExperimentSettings(
        name="t",
        window_s=WINDOW_S,
        stride_s=STRIDE_S,
        n_folds=2,
        n_expr=4,
        model=SMALL,
        train={
            **FAST,
            "epochs": 4,
            "patience": 1,
            "refit": mode == "refit",
            "early_stopping": mode != "fixed",
        },
    )
    ctx = FoldContext(settings, store, windows, folds, 0, [], None)
    out, log_csv = tmp_path / "model.pt", tmp_path / "log.csv"
    summary = run_train(ctx, out, log_csv, device="cpu")
    log = pd.read_csv(log_csv)
    data = training_data(folds, 0, store, windows, WINDOW_S, STRIDE_S, 0.1)
    assert len(data.val) > 0 and summary["refit"] is (mode == "refit")
    _, info = load_checkpoint(out)
    if mode == "refit":
        selected = log[log["phase"] == "select"]
        refitted = log[log["phase"] == "refit"]
        assert list(log["phase"]) == ["select"] * len(selected) + ["refit"] * len(refitted)
        assert len(refitted) == summary["best_epoch"] == summary["refit_epochs"] >= 1
        assert refitted["val_loss"].isna().all() and selected["val_loss"].notna().all()
        used = data.train.concat(data.val)
        assert info["train_settings"].epochs == summary["best_epoch"]
    elif mode == "select":
        assert set(log["phase"]) == {"train"} and summary["refit_epochs"] == 0
        assert log["val_loss"].notna().all() and summary["val_windows"] == len(data.val)
        used = data.train
    else:  # no validation part: every training window, every epoch
        everything = training_data(folds, 0, store, windows, WINDOW_S, STRIDE_S, None)
        assert len(everything.val) == 0 and len(everything.train) > len(data.train)
        assert summary["val_windows"] == 0 and summary["refit_epochs"] == 0
        assert set(log["phase"]) == {"train"} and len(log) == 4 == summary["best_epoch"]
        assert log["val_loss"].isna().all()
        used = everything.train
    assert info["data_fingerprint"] == data_fingerprint(store, used)
    assert info["normalizer"].n_rows == Normalizer.fit(store, used).n_rows


def test_train_seed_replaces_the_runs_seed_and_nothing_else(tmp_path):
    from facedyn.identify.experiments import ExperimentSettings
    from facedyn.identify.stage import FoldContext, run_train

    store = _cohort(n_speakers=4, seconds=30)
    windows = make_windows(store, WINDOW_S, STRIDE_S)
    folds = build_folds(store, windows, "cross_session", 2, WINDOW_S, 0.8, 2)

    def trained(seed: int, train_seed: int | None, name: str) -> tuple[dict, dict]:
        settings = ExperimentSettings(
            name="t",
            window_s=WINDOW_S,
            stride_s=STRIDE_S,
            n_folds=2,
            n_expr=4,
            model=SMALL,
            train={**FAST, "epochs": 2},
            train_seed=train_seed,
        )
        ctx = FoldContext(settings, store, windows, folds, 1, [], None)
        summary = run_train(
            ctx, tmp_path / f"{name}.pt", tmp_path / f"{name}.csv", device="cpu", seed=seed
        )
        model, _ = load_checkpoint(tmp_path / f"{name}.pt")
        return summary, {k: v.clone() for k, v in model.state_dict().items()}

    run_seed, run_weights = trained(3, None, "run")
    own_seed, own_weights = trained(0, 3, "own")
    other_seed, other_weights = trained(3, 4, "other")
    assert run_seed["seed"] == own_seed["seed"] == 3 + 1 and other_seed["seed"] == 4 + 1
    assert all(torch.equal(run_weights[k], own_weights[k]) for k in run_weights)
    assert not all(torch.equal(run_weights[k], other_weights[k]) for k in run_weights)
    with pytest.raises(ExperimentError, match="train_seed"):
        ExperimentSettings(name="t", train_seed=-1)


def test_training_record_beside_the_checkpoint_says_trained_or_why_not(tmp_path):
    from facedyn.identify.checkpoint import no_data_reason, status_path
    from facedyn.identify.experiments import ExperimentSettings
    from facedyn.identify.stage import FoldContext, run_train

    store = _cohort(n_speakers=4, seconds=30)
    windows = make_windows(store, WINDOW_S, STRIDE_S)
    folds = build_folds(store, windows, "cross_session", 2, WINDOW_S, 0.8, 2)
    settings = ExperimentSettings(
        name="t",
        window_s=WINDOW_S,
        stride_s=STRIDE_S,
        n_folds=2,
        n_expr=4,
        model=SMALL,
        train={**FAST, "epochs": 1},
    )
    trained = tmp_path / "fold0" / "model.pt"
    trained.parent.mkdir()
    summary = run_train(
        FoldContext(settings, store, windows, folds, 0, [], None),
        trained,
        tmp_path / "fold0" / "log.csv",
        device="cpu",
    )
    record = json.loads(status_path(trained).read_text())
    assert status_path(trained) == tmp_path / "fold0" / "model.json"
    assert record["status"] == summary["status"] == "ok" and no_data_reason(trained) is None
    assert record["train_windows"] == summary["train_windows"] > 0
    load_checkpoint(trained)

    one_speaker = folds.copy()  # training rows of a single speaker: nothing to contrast
    first = one_speaker["speaker_id"].iloc[0]
    drop = (one_speaker["split"] == "train") & (one_speaker["speaker_id"] != first)
    one_speaker = one_speaker[~drop]
    empty = tmp_path / "fold1" / "lstm.pt"
    empty.parent.mkdir()
    summary = run_train(
        FoldContext(settings, store, windows, one_speaker, 0, [], None),
        empty,
        tmp_path / "fold1" / "log.csv",
        encoder="lstm",
        device="cpu",
    )
    record = json.loads((tmp_path / "fold1" / "lstm.json").read_text())
    assert record["status"] == summary["status"] == "no_data" and record["encoder"] == "lstm"
    assert "two or more" in no_data_reason(empty) == record["reason"]
    assert empty.stat().st_size == 0
