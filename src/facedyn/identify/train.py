"""Training of identity encoders with supervised contrastive learning, and embedding.

One fold's training (:func:`train_encoder`):

- batches of ``m_per_class`` windows from each of ``classes_per_batch`` speakers
  (``pytorch_metric_learning.samplers.MPerClassSampler``; a speaker with fewer windows than
  ``m_per_class`` is sampled with replacement), so every window has positives in its batch;
- ``SupConLoss`` (Khosla et al. 2020) on the L2-normalised embeddings, at ``temperature``
  (:class:`~facedyn.identify.contrastive.ContrastiveLoss`);
- AdamW (no weight decay on biases and normalisation weights), learning rate warmed up
  linearly for ``warmup_epochs`` then decayed on a cosine to 0 at ``epochs``, stepped per batch;
- mixed precision (float16 autocast + GradScaler) on CUDA only when ``amp``;
- after every epoch, with validation windows: ``val_loss`` (the same loss on fixed validation
  batches composed like training batches, so it is comparable across epochs and to
  ``train_loss``) and ``val_top1`` (:func:`facedyn.identify.metrics.nearest_centroid_top1`,
  the test's top-1, of validation windows against centroids of up to ``centroid_windows``
  training windows per speaker). Early stopping keeps
  the weights of the best epoch by ``monitor`` (default ``val_loss``) and stops after
  ``patience`` epochs without improvement.

Data never leave the :class:`~facedyn.dynamics.features.FeatureStore`: every batch is gathered
with :func:`facedyn.dynamics.windows.batch` and normalised with the fold's training-only
:class:`~facedyn.dynamics.windows.Normalizer`. Runs are seeded: on CPU two runs with the same
seed (and thread count) give identical weights; on CUDA they are close but not bitwise equal
(non-deterministic kernels, atomics in reductions). Checkpoints:
:mod:`facedyn.identify.checkpoint`.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from facedyn.atomic import atomic_write_bytes
from facedyn.dynamics.features import FeatureStore
from facedyn.dynamics.folds import fold_windows, validation_split
from facedyn.dynamics.windows import Normalizer, Windows, batch, shift_room
from facedyn.identify.contrastive import ContrastiveLoss
from facedyn.identify.encoders import EncoderSettings, build_encoder
from facedyn.identify.metrics import nearest_centroid_top1
from facedyn.identify.settings import TrainSettings

log = logging.getLogger(__name__)

#: Per-epoch log columns; ``phase``: ``train`` (one pass), or ``select`` (early stopping on
#: the validation part) then ``refit`` (all training windows, :func:`refit_settings`).
LOG_COLUMNS = ["epoch", "train_loss", "val_loss", "val_top1", "lr", "seconds", "phase"]
#: Validation batches per epoch at most (the loss is an average; more adds little).
MAX_VAL_BATCHES = 200


@dataclass
class TrainResult:
    """A trained encoder (eval mode, on the training device) and how training went.

    ``history``: one dict per epoch with :data:`LOG_COLUMNS`; ``best_epoch`` (1-based) is the
    epoch whose weights ``model`` holds; ``seconds`` the whole run; ``windows_per_s`` training
    windows per second of the training steps (data gathering, forward, backward, update).
    """

    model: nn.Module
    history: list[dict[str, float]]
    best_epoch: int
    seconds: float
    windows_per_s: float
    batch_size: int
    batches_per_epoch: int
    n_classes: int
    stopped_early: bool
    device: str


@dataclass
class FoldData:
    """One fold's training and validation windows with integer speaker labels."""

    train: Windows
    train_labels: np.ndarray
    val: Windows
    val_labels: np.ndarray
    classes: list[str]


def speaker_labels(
    store: FeatureStore, windows: Windows, classes: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Integer label of every window's speaker: its index in ``classes`` (default: the sorted
    speaker ids of ``windows``); -1 for a speaker not in ``classes``."""
    speakers = store.speaker_id[windows.video].astype(str)
    if classes is None:
        classes = sorted(set(speakers.tolist()))
    lookup = {c: i for i, c in enumerate(classes)}
    labels = np.fromiter((lookup.get(s, -1) for s in speakers), dtype=np.int64, count=len(speakers))
    return labels, list(classes)


def training_data(
    folds: pd.DataFrame,
    fold: int,
    store: FeatureStore,
    windows: Windows,
    window_s: float,
    stride_s: float,
    val_fraction: float | None,
) -> FoldData:
    """Training and validation windows of one fold (:func:`~facedyn.dynamics.folds.
    validation_split`: the last ``val_fraction`` of every training range, no guard gap)
    with labels indexing the sorted training speakers. ``val_fraction`` None: no
    validation part; every training window trains."""
    # No guard before the validation part: windows lie wholly inside their part, so none
    # is shared, and short sessions keep most of their time for training.
    split = (
        folds[folds["fold"] == fold]
        if val_fraction is None
        else validation_split(folds, fold, window_s, stride_s, val_fraction, guard_s=0.0)
    )
    train = fold_windows(split, fold, "train", store, windows)
    val = fold_windows(split, fold, "val", store, windows)
    train_labels, classes = speaker_labels(store, train)
    val_labels, _ = speaker_labels(store, val, classes)
    keep = val_labels >= 0
    return FoldData(train, train_labels, val.subset(keep), val_labels[keep], classes)


# --- helpers ------------------------------------------------------------------------------------


def as_device(device: str | torch.device) -> torch.device:
    """A torch device from a device setting (``auto`` resolved: CUDA when available)."""
    from facedyn.runtime import resolve_device

    if isinstance(device, str):
        device = resolve_device(device)
    return torch.device(device)


@contextlib.contextmanager
def _numpy_random(rng: np.random.RandomState) -> Iterator[None]:
    """Make pytorch-metric-learning draw from ``rng`` (its samplers use the module-level
    ``c_f.NUMPY_RANDOM``, by default the global ``np.random``): seeded, and the caller's
    global numpy state is left alone."""
    from pytorch_metric_learning.utils import common_functions as c_f

    saved = c_f.NUMPY_RANDOM
    c_f.NUMPY_RANDOM = rng
    try:
        yield
    finally:
        c_f.NUMPY_RANDOM = saved


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    saved = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _prefetched(
    store: FeatureStore,
    windows: Windows,
    order: Sequence[np.ndarray],
    normalizer: Normalizer,
    device: torch.device,
) -> Iterator[torch.Tensor]:
    """Batches ``order[0], order[1], ...`` gathered (and pinned, for CUDA) one ahead in a
    worker thread, so gathering overlaps the model's step. The order is fixed beforehand, so
    this changes nothing in the results."""
    from concurrent.futures import ThreadPoolExecutor

    def fetch(b: int) -> torch.Tensor:
        t = torch.from_numpy(batch(store, windows, order[b], normalizer))
        return t.pin_memory() if device.type == "cuda" else t

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="facedyn-batches") as pool:
        pending = pool.submit(fetch, 0) if len(order) else None
        for b in range(len(order)):
            x = pending.result()
            if b + 1 < len(order):
                pending = pool.submit(fetch, b + 1)
            yield x.to(device, non_blocking=True)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weight matrices and kernels only, not on biases, norms, scales."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def mask_batch(
    x: torch.Tensor, time_mask: float, feature_masks: int, generator: torch.Generator
) -> torch.Tensor:
    """SpecAugment-style masking (Park et al. 2019) of a normalised batch ``(B, T, F)``.

    Every window loses one span of ``U(0, time_mask * T)`` frames and ``feature_masks``
    distinct feature channels (at most ``F - 1``); masked values are set to 0, the training
    mean after normalisation. Returns a new tensor; ``x`` is left as it is.
    """
    if time_mask <= 0 and feature_masks <= 0:
        return x
    # random numbers from the seeded CPU generator; the mask itself is built on x's device
    n_b, n_t, n_f = x.shape
    masked = torch.zeros(n_b, n_t, n_f, dtype=torch.bool, device=x.device)
    if time_mask > 0:
        width = (torch.rand(n_b, generator=generator) * (time_mask * n_t + 1)).long()
        start = (torch.rand(n_b, generator=generator) * (n_t - width + 1)).long()
        t = torch.arange(n_t, device=x.device)
        start, stop = start.to(x.device)[:, None], (start + width).to(x.device)[:, None]
        masked |= ((t >= start) & (t < stop))[:, :, None]
    k = min(feature_masks, n_f - 1)
    if k > 0:
        chosen = torch.rand(n_b, n_f, generator=generator).argsort(dim=1)[:, :k].to(x.device)
        masked |= torch.zeros(n_b, n_f, dtype=torch.bool, device=x.device).scatter_(
            1, chosen, True
        )[:, None, :]
    return x.masked_fill(masked, 0.0)


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based): linear
    warm-up from ``1 / warmup_steps`` to 1, then a cosine down to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _per_class_subset(labels: np.ndarray, cap: int, rng: np.random.RandomState) -> np.ndarray:
    """Indices of up to ``cap`` randomly chosen windows of every label."""
    order = np.lexsort((rng.random_sample(len(labels)), labels))
    sorted_labels = labels[order]
    first = np.searchsorted(sorted_labels, sorted_labels, side="left")
    rank = np.arange(len(labels)) - first
    return np.sort(order[rank < cap])


def _fixed_batches(
    labels: np.ndarray, m: int, classes_per_batch: int, n_batches: int, rng: np.random.RandomState
) -> list[np.ndarray]:
    """Batches like the training sampler's (``m`` windows of each of ``classes_per_batch``
    labels, with replacement where a label has fewer), drawn once so the validation loss is
    measured on the same batches every epoch."""
    by_label = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    keys = np.array(sorted(by_label))
    k = min(classes_per_batch, len(keys))
    out = []
    for _ in range(n_batches):
        chosen = rng.choice(keys, size=k, replace=False)
        out.append(
            np.concatenate(
                [rng.choice(by_label[c], size=m, replace=len(by_label[c]) < m) for c in chosen]
            )
        )
    return out


def refit_settings(ts: TrainSettings, best_epoch: int) -> TrainSettings:
    """Settings of the refit pass: ``best_epoch`` epochs with the whole schedule (warm-up,
    cosine to 0) fitted into them; nothing else changes."""
    if best_epoch < 1:
        raise ValueError(f"best_epoch must be >= 1, got {best_epoch}")
    return dataclasses.replace(
        ts, epochs=int(best_epoch), warmup_epochs=min(ts.warmup_epochs, float(best_epoch))
    )


def _write_log(path: str | os.PathLike[str], history: Sequence[Mapping[str, Any]]) -> None:
    """The whole per-epoch log, rewritten atomically (never half a line on disk)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: row[k] for k in LOG_COLUMNS})
    atomic_write_bytes(path, buf.getvalue().encode())


def _check_labels(name: str, windows: Windows, labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(windows):
        raise ValueError(
            f"{name}: expected one label per window ({len(windows)}), got shape {labels.shape}"
        )
    if len(labels) and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0):
        raise ValueError(f"{name}: labels must be non-negative integers")
    return labels.astype(np.int64)


# --- embedding ----------------------------------------------------------------------------------


@torch.no_grad()
def embed(
    model: nn.Module,
    store: FeatureStore,
    windows: Windows,
    normalizer: Normalizer,
    device: str | torch.device,
    batch_size: int = 256,
) -> np.ndarray:
    """Embeddings of ``windows`` as a float32 ``(N, D)`` array (eval mode, no gradients,
    full precision), gathered from the store ``batch_size`` windows at a time (one batch
    ahead, in a worker thread). The model's train/eval mode is restored afterwards."""
    device = as_device(device)
    was_training = model.training
    model.eval()
    out = []
    chunks = [
        np.arange(lo, min(lo + batch_size, len(windows)))
        for lo in range(0, len(windows), batch_size)
    ]
    try:
        for x in _prefetched(store, windows, chunks, normalizer, device):
            out.append(model(x).float().cpu().numpy())
    finally:
        model.train(was_training)
    if not out:
        dim = _embedding_dim(model)
        return np.zeros((0, dim), np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)


def _embedding_dim(model: nn.Module) -> int:
    head = getattr(model, "head", None)
    return int(head.proj.out_features) if head is not None else 0


# --- training -----------------------------------------------------------------------------------


def _single_session_classes(
    labels: np.ndarray, sessions: np.ndarray, classes: np.ndarray, device: torch.device
) -> torch.Tensor:
    """Per class: True where all its training windows come from one session (no
    cross-session positive exists)."""
    class_sessions = np.unique(np.stack([labels, sessions], 1), axis=0)[:, 0]
    sessions_per_class = np.bincount(class_sessions, minlength=labels.max() + 1)
    if not (sessions_per_class[classes] > 1).any():
        log.warning(
            "positives: cross_session, but no speaker has two training sessions: "
            "every pair is a same-session pair (as with positives: all)"
        )
    return torch.from_numpy(sessions_per_class <= 1).to(device)


class _EpochBatches:
    """Every epoch's batches: an ``MPerClassSampler`` order drawn from ``rng`` and, with
    ``random_crop``, windows shifted by a random offset within their training range."""

    def __init__(
        self,
        windows: Windows,
        labels: np.ndarray,
        m_per_class: int,
        batch_size: int,
        n_batches: int,
        random_crop: bool,
        rng: np.random.RandomState,
    ) -> None:
        from pytorch_metric_learning.samplers import MPerClassSampler

        self.sampler = MPerClassSampler(
            labels,
            m_per_class,
            batch_size=batch_size,
            length_before_new_iter=n_batches * batch_size,
        )
        self.windows, self.random_crop, self.rng = windows, random_crop, rng
        self.shape = (n_batches, batch_size)
        self.room = shift_room(windows)

    def next_epoch(self) -> tuple[np.ndarray, Windows]:
        """``(order, windows)``: window indices ``(n_batches, batch_size)`` and the epoch's
        (cropped) windows they index."""
        with _numpy_random(self.rng):
            order = np.fromiter(iter(self.sampler), dtype=np.int64, count=len(self.sampler))
        windows = self.windows
        if self.random_crop:
            shift = (self.rng.random_sample(len(self.room)) * (self.room + 1)).astype(np.int64)
            windows = Windows(windows.video, windows.start + shift, windows.length)
        return order.reshape(self.shape), windows


class _Optimiser:
    """AdamW with the warm-up + cosine schedule stepped per batch, and the mixed-precision
    loss scaler (a no-op unless ``use_amp``)."""

    def __init__(self, model: nn.Module, ts: TrainSettings, n_batches: int, use_amp: bool):
        self.optimizer = torch.optim.AdamW(_param_groups(model, ts.weight_decay), lr=ts.lr)
        total, warmup = ts.epochs * n_batches, round(ts.warmup_epochs * n_batches)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, total, warmup)
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        with warnings.catch_warnings():  # AMP may skip a step: harmless warning
            warnings.simplefilter("ignore", UserWarning)
            self.scheduler.step()


class _Validation:
    """The per-epoch validation measures (module docstring): ``val_loss`` on batches drawn
    once, like training batches, and ``val_top1`` against centroids of up to
    ``centroid_windows`` training windows per speaker."""

    def __init__(
        self,
        windows: Windows,
        labels: np.ndarray,
        train_windows: Windows,
        train_labels: np.ndarray,
        ts: TrainSettings,
        batch_size: int,
        loss: ContrastiveLoss,
        rng: np.random.RandomState,
    ) -> None:
        centroid_index = _per_class_subset(train_labels, ts.centroid_windows, rng)
        self.centroid_windows = train_windows.subset(centroid_index)
        self.centroid_labels = train_labels[centroid_index]
        n_val = min(MAX_VAL_BATCHES, max(1, math.ceil(len(labels) / batch_size)))
        self.batches = _fixed_batches(labels, ts.m_per_class, ts.classes_per_batch, n_val, rng)
        self.windows, self.labels, self.loss = windows, labels, loss

    def __call__(
        self, model: nn.Module, store: FeatureStore, normalizer: Normalizer, device: torch.device
    ) -> tuple[float, float]:
        """``(val_loss, val_top1)`` of ``model`` now."""
        val_emb = embed(model, store, self.windows, normalizer, device)
        ref_emb = embed(model, store, self.centroid_windows, normalizer, device)
        top1 = nearest_centroid_top1(ref_emb, self.centroid_labels, val_emb, self.labels)
        with torch.no_grad():
            ve, vl = torch.from_numpy(val_emb), torch.from_numpy(self.labels)
            sessions = self.windows.video.astype(np.int64)
            loss = np.mean([self.loss(ve[i], vl[i], sessions[i]).item() for i in self.batches])
        return float(loss), top1


@dataclass
class _EarlyStopping:
    """Keeps the weights of the best epoch by ``monitor`` and says when ``patience`` epochs
    have passed without improvement."""

    monitor: str
    patience: int
    best_value: float = math.inf
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None

    def update(self, epoch: int, val_loss: float, val_top1: float, model: nn.Module) -> bool:
        """Record ``epoch``'s validation measures; True: stop training now."""
        value = val_loss if self.monitor == "val_loss" else -val_top1
        if math.isfinite(value) and value < self.best_value:
            self.best_value, self.best_epoch = value, epoch
            self.best_state = {
                k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
            }
        elif epoch - self.best_epoch >= self.patience:
            log.info(
                "early stop after epoch %d: no better %s since epoch %d",
                epoch,
                self.monitor,
                self.best_epoch,
            )
            return True
        return False


def _train_epoch(
    model: nn.Module,
    batches: Iterator[torch.Tensor],
    order: np.ndarray,
    labels: np.ndarray,
    sessions: np.ndarray,
    loss_fn: ContrastiveLoss,
    optimiser: _Optimiser,
    ts: TrainSettings,
    mask_generator: torch.Generator,
    use_amp: bool,
    bar: Any,
    epoch: int,
) -> float:
    """One pass over the epoch's batches (masked, forward, loss, step); the mean loss."""
    model.train()
    device = next(model.parameters()).device
    running = torch.zeros((), device=device)
    for b, x in enumerate(batches):
        y = torch.from_numpy(labels[order[b]]).to(device, non_blocking=True)
        x = mask_batch(x, ts.time_mask, ts.feature_masks, mask_generator)
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            z = model(x)
        z = z.float()
        loss = loss_fn(z, y, sessions[order[b]])
        if not use_amp and not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite training loss at epoch {epoch}, batch {b + 1}; lower identify lr?"
            )
        optimiser.step(loss)
        running += loss.detach()
        bar.update(1)
        if (b + 1) % 20 == 0 or b + 1 == len(order):
            bar.set_postfix(loss=f"{running.item() / (b + 1):.4f}")
    return float(running.item()) / len(order)


def train_encoder(
    store: FeatureStore,
    train_windows: Windows,
    train_labels: np.ndarray,
    val_windows: Windows | None,
    val_labels: np.ndarray | None,
    normalizer: Normalizer,
    encoder_settings: EncoderSettings,
    train_settings: TrainSettings,
    device: str | torch.device = "auto",
    seed: int = 0,
    log_csv: str | os.PathLike[str] | None = None,
    progress: bool = True,
    phase: str = "train",
    log_before: Sequence[Mapping[str, Any]] = (),
) -> TrainResult:
    """Train an encoder on one fold (module docstring) and return it in eval mode.

    ``train_labels``/``val_labels``: integer class of every window (:func:`speaker_labels`);
    validation windows of a class without training windows are ignored. Without validation
    windows (or with fewer than two validation classes) there is no early stopping and the
    last epoch's weights are kept. ``log_csv``: per-epoch log, rewritten after every epoch,
    with ``log_before`` (an earlier pass's history) first and ``phase`` in every new row.
    """
    dev = as_device(device)
    ts = train_settings
    labels = _check_labels("train_labels", train_windows, train_labels)
    classes = np.unique(labels)
    if len(classes) < 2:
        raise ValueError(f"training needs windows of at least two speakers, got {len(classes)}")
    if store.features.shape[1] != len(normalizer.feature_names):
        raise ValueError(
            f"the store has {store.features.shape[1]} feature columns but the "
            f"normaliser {len(normalizer.feature_names)}"
        )
    has_val = val_windows is not None and val_labels is not None and len(val_windows) > 0
    if has_val:
        vlabels = _check_labels("val_labels", val_windows, val_labels)
        known = np.isin(vlabels, classes)
        val_windows, vlabels = val_windows.subset(known), vlabels[known]
        if len(np.unique(vlabels)) < 2:
            log.warning(
                "validation windows cover fewer than two training speakers: no "
                "validation loss, no early stopping"
            )
            has_val = False

    train_sessions = train_windows.video.astype(np.int64)
    single_session = None
    if ts.positives == "cross_session":
        single_session = _single_session_classes(labels, train_sessions, classes, dev)
    loss_fn = ContrastiveLoss(ts.temperature, single_session)

    k = min(ts.classes_per_batch, len(classes))
    batch_size = ts.m_per_class * k
    n_batches = ts.batches_per_epoch or max(ts.min_batches_per_epoch, len(labels) // batch_size)
    use_amp = ts.amp and dev.type == "cuda"
    rng = np.random.RandomState(seed)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        stack.enter_context(_threads(ts.num_threads))
        stack.enter_context(
            torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else [])
        )
        torch.manual_seed(seed)
        model = build_encoder(encoder_settings, store.features.shape[1]).to(dev)
        sampler = _EpochBatches(
            train_windows, labels, ts.m_per_class, batch_size, n_batches, ts.random_crop, rng
        )
        optimiser = _Optimiser(model, ts, n_batches, use_amp)
        validation = (
            _Validation(val_windows, vlabels, train_windows, labels, ts, batch_size, loss_fn, rng)
            if has_val
            else None
        )
        log.info(
            "training %s (%d parameters) on %s: %d windows of %d speakers, batch %d "
            "(%d x %d), %d batches/epoch, up to %d epochs, amp %s",
            encoder_settings.encoder,
            sum(p.numel() for p in model.parameters()),
            dev,
            len(labels),
            len(classes),
            batch_size,
            k,
            ts.m_per_class,
            n_batches,
            ts.epochs,
            use_amp,
        )

        mask_generator = torch.Generator().manual_seed(seed)
        stopping = _EarlyStopping(ts.monitor, ts.patience)
        history: list[dict[str, float]] = []
        train_seconds, stopped_early = 0.0, False
        for epoch in range(1, ts.epochs + 1):
            t0 = time.perf_counter()
            order, epoch_windows = sampler.next_epoch()
            bar = _progress(n_batches, f"epoch {epoch}/{ts.epochs}", progress)
            batches = _prefetched(store, epoch_windows, order, normalizer, dev)
            train_loss = _train_epoch(
                model,
                batches,
                order,
                labels,
                train_sessions,
                loss_fn,
                optimiser,
                ts,
                mask_generator,
                use_amp,
                bar,
                epoch,
            )
            batches.close()
            bar.close()
            train_seconds += time.perf_counter() - t0

            val_loss = val_top1 = math.nan
            if validation is not None:
                val_loss, val_top1 = validation(model, store, normalizer, dev)
            row = {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_top1": val_top1,
                "lr": optimiser.lr,
                "seconds": time.perf_counter() - t0,
                "phase": phase,
            }
            history.append(row)
            if log_csv is not None:
                _write_log(log_csv, [*log_before, *history])
            log.info(
                "epoch %d/%d: train loss %.4f, val loss %.4f, val top-1 %.3f, lr %.2e, %.1f s",
                epoch,
                ts.epochs,
                train_loss,
                val_loss,
                val_top1,
                row["lr"],
                row["seconds"],
            )
            if validation is not None and stopping.update(epoch, val_loss, val_top1, model):
                stopped_early = True
                break
        if stopping.best_state is not None:
            model.load_state_dict(stopping.best_state)
            best_epoch = stopping.best_epoch
        else:
            best_epoch = len(history)
    model.eval()
    n_seen = len(history) * n_batches * batch_size
    return TrainResult(
        model=model,
        history=history,
        best_epoch=best_epoch,
        seconds=time.perf_counter() - started,
        windows_per_s=n_seen / train_seconds if train_seconds > 0 else math.nan,
        batch_size=batch_size,
        batches_per_epoch=n_batches,
        n_classes=len(classes),
        stopped_early=stopped_early,
        device=str(dev),
    )


def _progress(total: int, desc: str, enabled: bool):
    """A tqdm bar on stderr; in a log file (not a terminal) it refreshes every 30 s."""
    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    return tqdm(
        total=total,
        desc=desc,
        file=sys.stderr,
        disable=not enabled,
        leave=interactive,
        mininterval=0.1 if interactive else 30.0,
        dynamic_ncols=interactive,
    )
