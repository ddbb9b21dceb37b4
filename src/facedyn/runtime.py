"""Run-time helpers shared by workflow scripts: logging into the rule's log file,
provenance records (version, config hash, input fingerprints) and device choice."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from facedyn import __version__

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_path: str | os.PathLike[str] | None, level: int = logging.INFO) -> None:
    """Send logging (and uncaught exceptions) of a workflow script to the rule's log file.

    Snakemake shows the log path when a job fails, so the traceback and every warning
    must end up there rather than on a cluster node's stderr.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        Path(log_path).write_text("")  # start fresh, then append: progress bars share the file
        handlers.append(logging.FileHandler(log_path, mode="a"))
    logging.basicConfig(level=level, format=LOG_FORMAT, handlers=handlers, force=True)
    logging.captureWarnings(True)

    def _hook(exc_type, exc, tb):
        logging.getLogger("facedyn").critical("uncaught error", exc_info=(exc_type, exc, tb))

    sys.excepthook = _hook


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace variance: the basis of config hashes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(config: Mapping[str, Any]) -> str:
    """Short sha256 of a (sub-)configuration."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:16]


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def provenance(config: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """What produced an output: facedyn version, Python, platform, config hash."""
    record: dict[str, Any] = {
        "facedyn_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if config is not None:
        record["config_hash"] = config_hash(config)
    record.update(extra)
    return record


def resolve_device(requested: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; explicit values are checked."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"device '{requested}' requested but no CUDA GPU is visible; set `fit.device: auto` "
            "or `cpu`, or run on a GPU node"
        )
    return requested
