"""Atomic file writes: a crash or a killed job never leaves a half-written output.

Everything is written to a temporary file in the destination folder, flushed, fsynced
and then renamed over the destination (``os.replace`` is atomic on POSIX file systems).
So a reader (or a restarted workflow) sees either the old file, no file, or the complete new
file, never a partial one.

Temporary files are named ``.<name>.<random>.tmp`` beside the destination. A job that is
stopped normally (an exception, or SIGTERM once :func:`facedyn.runtime.exit_on_sigterm` is
installed) removes its own; one killed outright (SIGKILL, a lost node) cannot, and the next
write of the same destination removes that leftover first: Snakemake never runs two jobs
that write the same output at once, so such a file can only belong to a dead writer.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def temporary_files(path: str | os.PathLike[str]) -> list[Path]:
    """Leftover temporary files of earlier (killed) writes of ``path``."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return sorted(path.parent.glob(f".{glob_escape(path.name)}.*.tmp"))


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters escaped (file names may contain ``[``)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in temporary_files(path):  # a killed earlier attempt's partial file
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted JSON atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    return atomic_write_bytes(path, text.encode())
