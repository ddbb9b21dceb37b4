"""Encoder and training settings of an identification experiment: plain, torch-free
dataclasses, so the workflow can validate every experiment while the DAG is built without
importing torch (``facedyn.identify.encoders`` and ``facedyn.identify.train`` re-export them).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

MONITORS = ("val_loss", "val_top1")
POSITIVES = ("all", "cross_session")
ENCODERS = ("conformer", "lstm", "tcn")


@dataclass(frozen=True)
class EncoderSettings:
    """Architecture of an encoder (the ``identify`` model keys of an experiment).

    ``d_model`` is the frame-level width of every encoder (the LSTM's two directions have
    ``d_model // 2`` units each); ``n_heads`` and ``ff_mult`` apply to the Conformer only;
    ``conv_kernel`` is the depthwise kernel of the Conformer's convolution module,
    ``tcn_kernel`` the kernel of the TCN's dilated convolutions. ``subsample`` (Conformer
    only): frames per encoder step; above 1 a strided convolution front end (kernel
    ``2 * subsample - 1``) replaces the input projection, as the Conformer's convolutional
    subsampling does, and the blocks run on ``ceil(T / subsample)`` steps.
    """

    encoder: str = "conformer"
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    ff_mult: int = 2
    conv_kernel: int = 15
    tcn_kernel: int = 5
    dropout: float = 0.0
    embedding_dim: int = 64
    subsample: int = 1

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder: unknown encoder {self.encoder!r}; choose one of {ENCODERS}")
        for key in (
            "d_model",
            "n_layers",
            "n_heads",
            "ff_mult",
            "conv_kernel",
            "tcn_kernel",
            "embedding_dim",
            "subsample",
        ):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
                raise ValueError(f"{key}: must be a positive integer, got {value!r}")
            object.__setattr__(self, key, int(value))  # numpy ints -> int (checkpoints)
        if (
            isinstance(self.dropout, bool)
            or not isinstance(self.dropout, Real)
            or not 0.0 <= self.dropout < 1.0
        ):
            raise ValueError(f"dropout: must be in [0, 1), got {self.dropout!r}")
        object.__setattr__(self, "dropout", float(self.dropout))
        for key in ("conv_kernel", "tcn_kernel"):
            if getattr(self, key) % 2 == 0:
                raise ValueError(f"{key}: must be odd ('same' padding), got {getattr(self, key)}")
        if self.encoder == "conformer" and self.d_model % self.n_heads:
            raise ValueError(
                f"n_heads: d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )
        if self.encoder == "lstm" and self.d_model % 2:
            raise ValueError(
                f"d_model: must be even for the bidirectional LSTM, got {self.d_model}"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> EncoderSettings:
        """Settings from a config mapping; an unknown key is an error naming it."""
        return cls(**checked_keys(cls, values))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def checked_keys(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"{unknown[0]}: unknown {cls.__name__} key; known keys are {sorted(known)}"
        )
    return dict(values)


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings (the ``identify`` training keys of an experiment).

    ``early_stopping`` False (the default): no validation part; the encoder trains on every
    training window for ``epochs`` (warm-up, cosine to 0). True: ``val_fraction`` of every
    training range is set aside (:func:`training_data`; :func:`train_encoder` receives the
    windows), early stopping picks the epoch by ``monitor`` with ``patience``, and ``refit``
    decides whether the encoder then trains again on all windows. Off by default because a
    validation part of the *training* sessions measures within-session recognition, which
    does not track the cross-session test.
    ``batches_per_epoch`` None: one pass over the training windows
    (``len(train_windows) // batch_size``), but at least ``min_batches_per_epoch``: a floor on
    optimisation steps, so that a small cohort, long windows or a sparse stride still train
    to convergence, and a window-length sweep compares windows rather than step budgets.
    ``num_threads`` None: leave torch's CPU thread count as it is.
    ``random_crop``: every epoch, slide each training window forward by a random number of
    rows within :func:`~facedyn.dynamics.windows.shift_room` (random crops, the standard
    augmentation of speaker embedders), never onto frames outside the training windows.
    ``time_mask`` / ``feature_masks``: SpecAugment-style masking of training batches
    (:func:`facedyn.identify.train.mask_batch`): one random span of up to ``time_mask`` of
    every window's frames, and ``feature_masks`` random feature channels, set to the
    training mean.
    ``refit``: after early stopping has chosen the number of epochs on the validation part,
    train again from the same seed on all training windows (the validation part included)
    for that many epochs (:func:`facedyn.identify.train.refit_settings`; Goodfellow et al.
    2016, Deep Learning, algorithm 7.2). A validation part needs a whole window and a stride,
    so with 8 s windows it takes a third of a 30 s session.
    ``positives``: which same-speaker pairs of a batch the contrastive loss pulls together.
    ``all``: every pair (Khosla et al. 2020). ``cross_session``: only pairs from different
    sessions (videos) of the speaker; same-session pairs are left out of the loss (neither
    positive nor negative), so matching the shared session conditions earns nothing and
    the encoder has to learn what stays the same across sessions. A speaker with a single
    training session keeps its same-session pairs (:class:`facedyn.identify.mining.CrossSessionMiner`).
    """

    epochs: int = 15
    m_per_class: int = 4
    classes_per_batch: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-2
    warmup_epochs: float = 2
    temperature: float = 0.1
    patience: int = 8
    val_fraction: float = 0.1
    batches_per_epoch: int | None = None
    min_batches_per_epoch: int = 32
    amp: bool = True
    num_threads: int | None = None
    monitor: str = "val_loss"
    centroid_windows: int = 32
    random_crop: bool = True
    time_mask: float = 0.2
    feature_masks: int = 2
    refit: bool = True
    positives: str = "all"
    early_stopping: bool = False

    def __post_init__(self) -> None:
        def integer(key: str, low: int, optional: bool = False) -> None:
            value = getattr(self, key)
            if optional and value is None:
                return
            if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
                raise ValueError(
                    f"{key}: must be an integer >= {low}"
                    f"{' or null' if optional else ''}, got {value!r}"
                )
            object.__setattr__(self, key, int(value))

        def real(key: str, low: float, high: float = math.inf, open_low: bool = False) -> None:
            value = getattr(self, key)
            ok = (
                not isinstance(value, bool)
                and isinstance(value, Real)
                and math.isfinite(value)
                and (value > low if open_low else value >= low)
                and value <= high
            )
            if not ok:
                bound = f"> {low}" if open_low else f">= {low}"
                raise ValueError(
                    f"{key}: must be a number {bound}"
                    f"{'' if high == math.inf else f' and <= {high}'}, got {value!r}"
                )
            object.__setattr__(self, key, float(value))

        integer("epochs", 1)
        integer("m_per_class", 2)  # one window per speaker: no positive pair, no loss
        integer("classes_per_batch", 2)  # one speaker per batch: no negative, no loss
        real("lr", 0.0, open_low=True)
        real("weight_decay", 0.0)
        real("warmup_epochs", 0.0)
        real("temperature", 0.0, open_low=True)
        integer("patience", 1)
        real("val_fraction", 0.0, 0.5, open_low=True)
        integer("batches_per_epoch", 1, optional=True)
        integer("min_batches_per_epoch", 1)
        if not isinstance(self.amp, bool):
            raise ValueError(f"amp: must be true or false, got {self.amp!r}")
        integer("num_threads", 1, optional=True)
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor: must be one of {MONITORS}, got {self.monitor!r}")
        integer("centroid_windows", 1)
        if not isinstance(self.random_crop, bool):
            raise ValueError(f"random_crop: must be true or false, got {self.random_crop!r}")
        if not isinstance(self.early_stopping, bool):
            raise ValueError(f"early_stopping: must be true or false, got {self.early_stopping!r}")
        if not isinstance(self.refit, bool):
            raise ValueError(f"refit: must be true or false, got {self.refit!r}")
        if self.positives not in POSITIVES:
            raise ValueError(f"positives: must be one of {POSITIVES}, got {self.positives!r}")
        real("time_mask", 0.0, 0.5)
        integer("feature_masks", 0)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TrainSettings:
        """Settings from a config mapping; an unknown key is an error naming it."""
        return cls(**checked_keys(cls, values))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
