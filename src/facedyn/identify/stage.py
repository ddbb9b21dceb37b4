"""The ``train``, ``evaluate`` and ``experiment_metrics`` rules: one experiment, one fold at a time.

* ``train``: the experiment's encoder (or a baseline encoder) on the fold's training windows
  (with ``identify.train.early_stopping``, minus a validation part of every training session:
  :func:`facedyn.dynamics.folds.validation_split`); writes the checkpoint and a per-epoch CSV.
* ``evaluate``: enrols every training speaker (centroid of its training-window embeddings),
  scores every test window against every enrolled speaker (cosine), and does the same for the
  statistical baselines (scores = log-probabilities) and chance; writes the fold's
  ``predictions.parquet`` (:data:`~facedyn.identify.metrics.PREDICTION_COLUMNS`, every model), the encoder's test
  ``embeddings.parquet`` and ``fold_metrics.json`` (per model, incl. verification).
* ``experiment_metrics``: pools the folds into ``metrics.json`` and ``per_speaker.parquet``,
  with the DNR-vs-accuracy correlation and, for the main experiment on the synthetic cohort, the
  extraction efficiency (pipeline top-1 over the ground-truth ceiling's top-1).

Training data are the fold's ``train`` rows; ``data_fraction`` < 1 keeps the first part of
every training session (time, not random windows: fewer independent seconds of behaviour).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facedyn.atomic import atomic_write, atomic_write_json
from facedyn.dynamics.features import FeatureStore
from facedyn.dynamics.folds import fold_windows
from facedyn.dynamics.stage import experiment_store, qc_videos
from facedyn.dynamics.windows import Normalizer, Windows, make_windows
from facedyn.identify.checkpoint import (
    NO_DATA,
    data_fingerprint,
    load_checkpoint,
    no_data_reason,
    save_checkpoint,
    status_path,
    write_no_data,
)
from facedyn.identify.experiments import ExperimentSettings
from facedyn.identify.registry import BASELINE_SCORERS, NOT_DYNAMICS, BaselineData
from facedyn.tables import read_table, write_table

log = logging.getLogger(__name__)


@dataclass
class FoldContext:
    """Everything one fold of one experiment needs: store, windows and the fold's rows."""

    settings: ExperimentSettings
    store: FeatureStore
    windows: Windows
    folds: pd.DataFrame
    fold: int
    videos: list[dict[str, Any]]
    truth_dir: str | None


def restrict_training(folds: pd.DataFrame, fraction: float, window_s: float) -> pd.DataFrame:
    """Keep the first ``fraction`` of every training row's time range (at least one window)."""
    if fraction >= 1.0:
        return folds
    out = folds.copy()
    train = out["split"] == "train"
    span = out.loc[train, "stop_time_s"] - out.loc[train, "start_time_s"]
    keep = np.maximum(span * fraction, window_s)
    out.loc[train, "stop_time_s"] = np.minimum(
        out.loc[train, "stop_time_s"], out.loc[train, "start_time_s"] + keep
    )
    return out


def fold_context(
    settings: ExperimentSettings | Mapping[str, Any],
    qc_path: str | os.PathLike[str],
    flame_paths: Sequence[str],
    folds_path: str | os.PathLike[str],
    fold: int | str,
    truth_dir: str | os.PathLike[str] | None = None,
) -> FoldContext:
    """Read the experiment's features and folds (restricted by ``data_fraction``).
    ``settings`` may be the experiment's resolved settings as a mapping
    (:meth:`ExperimentSettings.to_dict`, what the workflow passes)."""
    if not isinstance(settings, ExperimentSettings):
        settings = ExperimentSettings(**settings)
    fold = int(fold)
    videos = qc_videos(qc_path, flame_paths, settings.cohort)
    store = experiment_store(settings, videos, truth_dir)
    windows = make_windows(store, settings.window_s, settings.stride_s)
    folds, _ = read_table(folds_path)
    if fold not in set(folds["fold"].tolist()):
        raise ValueError(f"{folds_path} has no fold {fold} (folds: {sorted(set(folds['fold']))})")
    folds = restrict_training(folds, settings.data_fraction, settings.window_s)
    return FoldContext(
        settings, store, windows, folds, fold, videos, None if truth_dir is None else str(truth_dir)
    )


def _speakers(store: FeatureStore, windows: Windows) -> np.ndarray:
    return store.speaker_id[windows.video].astype(str)


def run_train(
    ctx: FoldContext,
    out: str | os.PathLike[str],
    log_csv: str | os.PathLike[str],
    encoder: str | None = None,
    device: str = "auto",
    seed: int = 0,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train the experiment's encoder (``encoder=None``) or a baseline encoder on one fold.
    ``seed``: the run's seed, unless the experiment sets ``train_seed``; fold k trains with
    seed + k."""
    from facedyn.identify.train import refit_settings, train_encoder, training_data

    s = ctx.settings
    if s.train_seed is not None:
        seed = s.train_seed
    enc = s.encoder_settings(encoder)
    ts = s.train_settings()
    data = training_data(
        ctx.folds,
        ctx.fold,
        ctx.store,
        ctx.windows,
        s.window_s,
        s.stride_s,
        ts.val_fraction if ts.early_stopping else None,
    )
    log.info(
        "%s fold %d: %s on %d training windows (%d speakers), %d validation windows",
        s.name,
        ctx.fold,
        enc.encoder,
        len(data.train),
        len(data.classes),
        len(data.val),
    )
    if len(data.classes) < 2:
        reason = (
            f"{len(data.train)} training windows of {len(data.classes)} speakers; "
            f"identification needs two or more. Sessions may be too short for "
            f"window_s={s.window_s} (with the validation part and guard): see the "
            "reasons in folds.parquet, or shorten window_s / train.val_fraction"
        )
        log.error("experiment %r fold %d: %s", s.name, ctx.fold, reason)
        record = {
            "experiment": s.name,
            "fold": ctx.fold,
            "encoder": enc.encoder,
            "provenance": dict(provenance or {}),
        }
        write_no_data(out, reason, record)
        _write_empty_log(log_csv)
        return {**record, "status": NO_DATA, "reason": reason}
    refit = ts.refit and len(data.val) > 0
    normalizer = Normalizer.fit(ctx.store, data.train)
    result = train_encoder(
        ctx.store,
        data.train,
        data.train_labels,
        data.val,
        data.val_labels,
        normalizer,
        enc,
        ts,
        device=device,
        seed=seed + ctx.fold,
        log_csv=log_csv,
        phase="select" if refit else "train",
    )
    seconds, windows = result.seconds, data.train
    final, final_settings = result, ts
    if refit:  # the chosen number of epochs, again, on every training window
        windows = data.train.concat(data.val)
        labels = np.concatenate([data.train_labels, data.val_labels])
        normalizer = Normalizer.fit(ctx.store, windows)
        final_settings = refit_settings(ts, result.best_epoch)
        log.info(
            "%s fold %d: refit on all %d training windows for %d epochs",
            s.name,
            ctx.fold,
            len(windows),
            result.best_epoch,
        )
        final = train_encoder(
            ctx.store,
            windows,
            labels,
            None,
            None,
            normalizer,
            enc,
            final_settings,
            device=device,
            seed=seed + ctx.fold,
            log_csv=log_csv,
            phase="refit",
            log_before=result.history,
        )
        seconds += final.seconds
    summary = {
        "experiment": s.name,
        "fold": ctx.fold,
        "encoder": enc.encoder,
        "seed": seed + ctx.fold,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "refit": refit,
        "refit_epochs": len(final.history) if refit else 0,
        "seconds": seconds,
        "device": final.device,
        "train_windows": len(data.train),
        "val_windows": len(data.val),
        "provenance": dict(provenance or {}),
    }
    save_checkpoint(
        out,
        final.model,
        enc,
        final_settings,
        normalizer,
        data.classes,
        data_fingerprint(ctx.store, windows),
        extra={**summary, "experiment_settings": s.to_dict()},
    )
    summary = {**summary, "status": "ok"}
    atomic_write_json(status_path(out), summary)
    return summary


def _write_empty_log(path: str | os.PathLike[str]) -> None:
    from facedyn.identify.train import LOG_COLUMNS

    atomic_write(path, lambda p: p.write_text(",".join(LOG_COLUMNS) + "\n"))


def _enrolment(ctx: FoldContext) -> tuple[Windows, Windows, np.ndarray, np.ndarray]:
    """Training (enrolment) and test windows of the fold; test windows of speakers that
    were not enrolled are dropped (logged)."""
    train = fold_windows(ctx.folds, ctx.fold, "train", ctx.store, ctx.windows)
    test = fold_windows(ctx.folds, ctx.fold, "test", ctx.store, ctx.windows)
    train_spk, test_spk = _speakers(ctx.store, train), _speakers(ctx.store, test)
    enrolled = np.isin(test_spk, np.unique(train_spk))
    if not enrolled.all():
        log.warning(
            "fold %d: %d test windows of %d speakers without training data dropped",
            ctx.fold,
            int((~enrolled).sum()),
            len(set(test_spk[~enrolled])),
        )
    return train, test.subset(enrolled), train_spk, test_spk[enrolled]


def _model_name(ctx: FoldContext, checkpoint_name: str) -> str:
    return ctx.settings.encoder if checkpoint_name == "main" else checkpoint_name


def run_evaluate(
    ctx: FoldContext,
    checkpoints: Mapping[str, str | os.PathLike[str]],
    outputs: Mapping[str, str | os.PathLike[str]],
    device: str = "auto",
    seed: int = 0,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Score the fold's test windows with every model; write predictions, embeddings and
    per-model metrics (``outputs``: ``predictions``, ``embeddings``, ``metrics``)."""
    from facedyn.identify.baselines import cap_per_class
    from facedyn.identify.metrics import (
        centroid_scores,
        identification_metrics,
        json_ready,
        predictions_frame,
    )
    from facedyn.identify.train import embed

    s, store = ctx.settings, ctx.store
    train, test, train_spk, test_spk = _enrolment(ctx)
    n_enrolled = len(set(train_spk.tolist()))
    if not len(test) or n_enrolled < 2:
        reason = (
            f"{len(test)} test windows, {n_enrolled} enrolled speakers: nothing to "
            "identify (see folds.parquet for the reasons)"
        )
        return _write_no_scores(
            ctx, outputs, dict.fromkeys((*checkpoints, *s.baselines), reason), provenance
        )
    # An encoder that could not be trained is skipped with its reason; the others still run.
    skipped = {
        name: reason
        for name, path in checkpoints.items()
        if (reason := no_data_reason(path)) is not None
    }
    checkpoints = {k: v for k, v in checkpoints.items() if k not in skipped}
    test_session = store.session_id[test.video].astype(str)
    window_start = store.frame[test.first_rows(store)].astype(np.int64)
    frames, metrics, embedding_rows = [], {}, None

    def score(name: str, scores: np.ndarray, classes: Sequence[str]) -> None:
        frames.append(
            predictions_frame(scores, classes, test_spk, test_session, window_start, name, ctx.fold)
        )
        metrics[name] = identification_metrics(scores, classes, test_spk, test_session)
        log.info(
            "%s fold %d %-10s top-1 %.3f (chance %.3f), EER %.3f",
            s.name,
            ctx.fold,
            name,
            metrics[name]["top1"],
            metrics[name]["chance"],
            metrics[name]["eer"],
        )

    for ckpt_name, path in checkpoints.items():
        model, info = load_checkpoint(path, device)
        normalizer = info["normalizer"]
        if list(normalizer.feature_names) != list(store.feature_names):
            raise ValueError(
                f"{path} was trained on features {normalizer.feature_names}, "
                f"this experiment has {store.feature_names}: retrain it"
            )
        enrol = embed(model, store, train, normalizer, device)
        emb = embed(model, store, test, normalizer, device)
        classes, scores = centroid_scores(enrol, train_spk, emb)
        name = _model_name(ctx, ckpt_name)
        score(name, scores, classes)
        if ckpt_name == "main":
            embedding_rows = pd.DataFrame(emb, columns=[f"e{k:03d}" for k in range(emb.shape[1])])
            embedding_rows.insert(0, "window_start", window_start)
            embedding_rows.insert(0, "session_id", test_session)
            embedding_rows.insert(0, "speaker_id", test_spk)
            embedding_rows.insert(0, "fold", ctx.fold)
            embedding_rows.insert(0, "model", name)

    data = baseline_data(
        ctx, train, test, train_spk, cap_per_class(train_spk, s.max_per_speaker, seed), seed
    )
    for name, scorer in BASELINE_SCORERS.items():
        if name in s.baselines:
            score(name, *scorer(data))

    if not frames:
        return _write_no_scores(ctx, outputs, skipped, provenance)
    predictions = pd.concat(frames, ignore_index=True)
    meta = {
        "experiment": s.name,
        "fold": ctx.fold,
        "models": list(metrics),
        "settings": s.to_dict(),
        "provenance": dict(provenance or {}),
    }
    write_table(predictions, outputs["predictions"], meta)
    if embedding_rows is None:
        embedding_rows = pd.DataFrame(
            columns=["model", "fold", "speaker_id", "session_id", "window_start"]
        )
    write_table(embedding_rows, outputs["embeddings"], meta)
    atomic_write_json(
        outputs["metrics"],
        json_ready(
            {
                "experiment": s.name,
                "fold": ctx.fold,
                "models": metrics,
                "skipped": skipped,
                "provenance": dict(provenance or {}),
            }
        ),
    )
    return metrics


def baseline_data(
    ctx: FoldContext,
    train: Windows,
    test: Windows,
    train_speakers: np.ndarray,
    keep: np.ndarray,
    seed: int,
) -> BaselineData:
    """What the baseline scorers see of the fold: its enrolment (``train``) and ``test``
    windows, the enrolment windows' speakers, which of them a scorer may fit on (``keep``)
    and the run's seed, with the experiment's store, videos and (on demand) shape store."""
    s = ctx.settings
    return BaselineData(
        store=ctx.store,
        train=train,
        test=test,
        train_speakers=train_speakers,
        keep=keep,
        videos=ctx.videos,
        shape_store=lambda: experiment_store(s, ctx.videos, ctx.truth_dir, feature_set="shape"),
        stats_c=s.stats_c,
        fold=ctx.fold,
        seed=seed,
    )


def _write_no_scores(
    ctx: FoldContext,
    outputs: Mapping[str, str | os.PathLike[str]],
    skipped: Mapping[str, str],
    provenance: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Empty predictions and embeddings, and fold metrics that say why."""
    from facedyn.identify.metrics import PREDICTION_COLUMNS

    meta = {
        "experiment": ctx.settings.name,
        "fold": ctx.fold,
        "status": NO_DATA,
        "skipped": dict(skipped),
        "provenance": dict(provenance or {}),
    }
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in PREDICTION_COLUMNS})
    write_table(empty, outputs["predictions"], meta)
    write_table(
        empty[["model", "fold", "speaker_id", "session_id", "window_start"]],
        outputs["embeddings"],
        meta,
    )
    atomic_write_json(
        outputs["metrics"],
        {
            "experiment": ctx.settings.name,
            "fold": ctx.fold,
            "models": {},
            "skipped": dict(skipped),
            "status": NO_DATA,
            "provenance": dict(provenance or {}),
        },
    )
    log.error("%s fold %d: no model scored: %s", ctx.settings.name, ctx.fold, dict(skipped))
    return {}


def appearance_leaks(
    predictions: pd.DataFrame, flame_paths: Sequence[str], seed: int = 0
) -> dict[str, Any]:
    """Per dynamics model, :func:`facedyn.identify.leak.appearance_leak` of its pooled
    predictions against each speaker's mean descriptor over their sessions (FLAME table
    metadata)."""
    from facedyn.face.descriptor import descriptor_of
    from facedyn.identify.leak import appearance_leak
    from facedyn.tables import read_metadata

    per_speaker: dict[str, list[np.ndarray]] = {}
    for path in flame_paths:
        meta = read_metadata(path)
        vec = descriptor_of(meta)
        if vec is not None and meta.get("speaker_id") is not None:
            per_speaker.setdefault(str(meta["speaker_id"]), []).append(vec)
    descriptors = {s: np.mean(v, axis=0) for s, v in per_speaker.items()}
    return {
        name: appearance_leak(group, descriptors, seed=seed)
        for name, group in predictions.groupby("model", sort=False)
        if name not in NOT_DYNAMICS
    }


def run_experiment_metrics(
    settings: ExperimentSettings,
    predictions_paths: Sequence[str],
    fold_metrics_paths: Sequence[str],
    outputs: Mapping[str, str | os.PathLike[str]],
    dnr_speakers: str | os.PathLike[str] | None = None,
    ceiling_metrics: str | os.PathLike[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    provenance: Mapping[str, Any] | None = None,
    flame_paths: Sequence[str] = (),
) -> dict[str, Any]:
    """Pool the folds into ``outputs["metrics"]`` (metrics.json, docs/pipeline.md) and
    ``outputs["per_speaker"]``; with the experiment's ``flame_paths`` (their metadata hold
    each session's appearance descriptor) also every dynamics model's appearance leak
    statistic (:func:`appearance_leaks`)."""
    from facedyn.identify.metrics import (
        dnr_vs_accuracy,
        json_ready,
        merge_folds,
        paired_comparison,
        per_speaker_accuracy,
        summarize_model,
    )

    predictions = merge_folds([t for p in predictions_paths if len(t := read_table(p)[0])])
    fold_metrics = [json.loads(Path(p).read_text()) for p in fold_metrics_paths]
    skipped = {
        f"fold{m['fold']}/{name}": reason
        for m in fold_metrics
        for name, reason in (m.get("skipped") or {}).items()
    }
    if predictions.empty:
        result = {
            "experiment": settings.name,
            "protocol": settings.protocol,
            "status": NO_DATA,
            "n_speakers": 0,
            "chance": None,
            "models": {},
            "dnr_vs_accuracy": None,
            "extraction_efficiency": None,
            "skipped": skipped,
            "source": settings.source,
            "settings": settings.to_dict(),
            "provenance": dict(provenance or {}),
        }
        write_table(
            per_speaker_accuracy(predictions),
            outputs["per_speaker"],
            {"experiment": settings.name, "status": NO_DATA, "provenance": dict(provenance or {})},
        )
        atomic_write_json(outputs["metrics"], json_ready(result))
        log.error("%s: no fold produced predictions: %s", settings.name, skipped)
        return result
    main = settings.encoder
    scored = next(m["models"] for m in fold_metrics if m["models"])  # predictions exist
    first = scored.get(main) or next(iter(scored.values()))
    chance = 1.0 / float(first["n_speakers"])
    models: dict[str, Any] = {}
    for name, group in predictions.groupby("model", sort=False):
        per_fold = {int(m["fold"]): m["models"][name] for m in fold_metrics if name in m["models"]}
        models[name] = summarize_model(group, per_fold, n_boot=n_boot, seed=seed, chance=chance)
    per_speaker = per_speaker_accuracy(predictions)
    n_speakers = int(predictions["speaker_id"].nunique())
    result: dict[str, Any] = {
        "experiment": settings.name,
        "protocol": settings.protocol,
        "n_speakers": int(first["n_speakers"]),
        "n_test_speakers": n_speakers,
        "chance": chance,
        "models": models,
        "dnr_vs_accuracy": None,
        "extraction_efficiency": None,
        "source": settings.source,
        "settings": settings.to_dict(),
        "status": "ok",
        "skipped": skipped,
        # the main encoder against every other model of the experiment, on shared windows
        "comparisons": {
            other: {
                "model": main,
                **paired_comparison(predictions, main, other, n_boot=n_boot, seed=seed),
            }
            for other in models
            if main in models and other != main
        },
    }
    if dnr_speakers is not None and main in models:
        dnr, _ = read_table(dnr_speakers)
        corr = dnr_vs_accuracy(per_speaker[per_speaker["model"] == main], dnr, seed=seed)
        result["dnr_vs_accuracy"] = {"model": main, **corr}
    if ceiling_metrics is not None and main in models:
        ceiling = json.loads(Path(ceiling_metrics).read_text())
        truth_top1 = ceiling["models"].get(main, {}).get("top1")
        if truth_top1:
            result["extraction_efficiency"] = models[main]["top1"] / truth_top1
            result["ceiling"] = {
                "experiment": ceiling["experiment"],
                "model": main,
                "top1": truth_top1,
            }
    if flame_paths:
        result["appearance_leak"] = appearance_leaks(predictions, flame_paths, seed=seed)
    result["provenance"] = dict(provenance or {})
    write_table(
        per_speaker,
        outputs["per_speaker"],
        {"experiment": settings.name, "provenance": dict(provenance or {})},
    )
    atomic_write_json(outputs["metrics"], json_ready(result))
    return result
