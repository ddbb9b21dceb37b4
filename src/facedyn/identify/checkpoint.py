"""Everything about a fold's encoder checkpoint: the weights with everything needed to use
them (architecture, normaliser, the speaker ids of the class labels, a fingerprint of the
training data), written atomically and read back with ``weights_only=True``; and the training
record beside it (:func:`status_path`), which says the encoder was trained or, with status
:data:`NO_DATA`, why not (:func:`write_no_data`, :func:`no_data_reason`).

Importing this module does not import torch (the workflow reads :func:`status_path` while the
DAG is built); saving and loading do.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facedyn.atomic import atomic_write, atomic_write_json
from facedyn.dynamics.windows import Normalizer, covered_rows
from facedyn.identify.settings import EncoderSettings, TrainSettings

if TYPE_CHECKING:
    import torch
    from torch import nn

    from facedyn.dynamics.features import FeatureStore
    from facedyn.dynamics.windows import Windows

CHECKPOINT_FORMAT = "facedyn-encoder"
CHECKPOINT_VERSION = 1
#: ``status`` of a training record (and of the fold metrics and metrics.json downstream)
#: when there were no data to train on.
NO_DATA = "no_data"


def status_path(checkpoint: str | os.PathLike[str]) -> Path:
    """The training record beside a checkpoint: ``fold<k>/model.pt`` -> ``fold<k>/model.json``
    (``status`` ``ok`` with the training summary, or ``no_data`` with the reason)."""
    return Path(checkpoint).with_suffix(".json")


def write_no_data(
    checkpoint: str | os.PathLike[str], reason: str, record: Mapping[str, Any]
) -> None:
    """No model could be trained: the training record says why and the checkpoint is an
    empty file (the run goes on; evaluation and the summary carry the reason instead of
    numbers)."""
    atomic_write_json(status_path(checkpoint), {**record, "status": NO_DATA, "reason": reason})
    atomic_write(checkpoint, lambda tmp: Path(tmp).write_bytes(b""))


def no_data_reason(checkpoint: str | os.PathLike[str]) -> str | None:
    """Why the checkpoint's encoder could not be trained (its training record), None when
    it was."""
    record = json.loads(status_path(checkpoint).read_text())
    if record.get("status") == NO_DATA:
        return str(record.get("reason") or "no data")
    return None


def data_fingerprint(store: FeatureStore, windows: Windows, chunk_rows: int = 1 << 20) -> str:
    """sha256 of what a model was trained on: feature names, rate, window length, the window
    index arrays, the speaker/session ids of their videos and the feature bytes of every row
    the windows cover (each row once, streamed in chunks: about 2 s per GB of features)."""
    digest = hashlib.sha256()
    header = {
        "features": list(store.feature_names),
        "rate": float(store.rate),
        "length": int(windows.length),
        "n": len(windows),
    }
    digest.update(repr(sorted(header.items())).encode())
    digest.update(np.ascontiguousarray(windows.video, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(windows.start, dtype=np.int64).tobytes())
    for s, p in zip(store.session_id, store.speaker_id, strict=True):
        digest.update(f"{s}\x1f{p}\x1e".encode())
    if store.features.shape[1]:
        mask = covered_rows(store, windows)
        for lo in range(0, len(mask), chunk_rows):
            rows = store.features[lo : lo + chunk_rows][mask[lo : lo + chunk_rows]]
            digest.update(np.ascontiguousarray(rows).tobytes())
    return digest.hexdigest()


def _plain(obj: Any, where: str) -> Any:
    """``obj`` with numpy values and paths turned into plain Python ones (recursively)."""
    if obj is None or isinstance(obj, str | bool | int | float):
        return obj
    if isinstance(obj, np.generic | np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_plain(v, f"{where}[{i}]") for i, v in enumerate(obj))
    raise TypeError(f"{where}: {type(obj).__name__} cannot be stored in a checkpoint")


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    encoder_settings: EncoderSettings,
    train_settings: TrainSettings,
    normalizer: Normalizer,
    classes: Sequence[str],
    data_fingerprint: str,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write the weights with everything needed to use them (architecture, normaliser,
    speaker ids of the class labels, fingerprint of the training data) atomically.

    ``extra`` (e.g. fold, seed, history, provenance) is converted to plain Python values
    (numpy scalars and arrays, paths too): checkpoints are loaded with ``weights_only=True``,
    which refuses other objects, so anything else is an error here rather than at load.
    """
    import torch

    from facedyn import __version__

    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "facedyn_version": __version__,
        "encoder_settings": encoder_settings.to_dict(),
        "train_settings": train_settings.to_dict(),
        "n_features": len(normalizer.feature_names),
        "normalizer": normalizer.to_dict(),
        "classes": [str(c) for c in classes],
        "data_fingerprint": str(data_fingerprint),
        "extra": _plain(dict(extra or {}), "extra"),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """The encoder of a checkpoint (rebuilt from its settings, eval mode, on ``device``) and
    the checkpoint's other entries, with ``encoder_settings``/``train_settings`` as settings
    objects and ``normalizer`` as a :class:`Normalizer`."""
    import torch

    from facedyn.identify.encoders import build_encoder
    from facedyn.identify.train import as_device

    dev = as_device(device)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a facedyn encoder checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise ValueError(
            f"{path}: checkpoint version {payload.get('version')} is not "
            f"supported (this facedyn reads version {CHECKPOINT_VERSION})"
        )
    enc = EncoderSettings.from_mapping(payload["encoder_settings"])
    model = build_encoder(enc, int(payload["n_features"]))
    model.load_state_dict(payload["state_dict"])
    model.to(dev).eval()
    n = payload["normalizer"]
    info = {k: v for k, v in payload.items() if k != "state_dict"}
    info["encoder_settings"] = enc
    info["train_settings"] = TrainSettings.from_mapping(payload["train_settings"])
    info["normalizer"] = Normalizer(
        tuple(n["feature_names"]),
        tuple(n["mean"]),
        tuple(n["std"]),
        int(n["n_rows"]),
        dict(n.get("extra") or {}),
    )
    return model, info
