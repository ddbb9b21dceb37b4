"""Generated blocks in text files: what lies between a start and an end marker is replaced,
every byte outside them is kept.

A block is delimited by two marker strings (e.g. ``<!-- results:start -->`` and
``<!-- results:end -->``), each present exactly once, the start before the end. The README's
results block (:mod:`facedyn.readme`) and the measured sections of ``docs/performance.md``
(``benchmarks/default_run.py``, ``analysis/seed_spread.py``) are written this way.

Files are read and written as UTF-8 bytes, without newline translation: a file with CRLF line
endings keeps them, and the new block's newlines are written as CRLF there too. A file whose
block already holds the new text is not rewritten (its modification time stays).
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from facedyn.atomic import atomic_write


class BlockError(ValueError):
    """A file's markers do not delimit exactly one block."""


def split_block(text: str, start: str, end: str) -> tuple[str, str, str]:
    """``(before, inside, after)`` of the one block of ``text``: ``before`` ends with the start
    marker and ``after`` begins with the end marker, so ``before + new + after`` keeps every
    character outside the block.

    Raises:
        BlockError: a marker is missing or repeated, or the end comes before the start.
    """
    n_start, n_end = text.count(start), text.count(end)
    if n_start != 1 or n_end != 1:
        raise BlockError(
            f"exactly one {start!r} and one {end!r} marker are needed (found {n_start} and {n_end})"
        )
    i, j = text.index(start) + len(start), text.index(end)
    if j < i:
        raise BlockError(f"{end!r} comes before {start!r}")
    return text[:i], text[i:j], text[j:]


def newline_of(text: str) -> str:
    """The line ending of ``text``: ``"\\r\\n"`` when it has any CRLF, else ``"\\n"``."""
    return "\r\n" if "\r\n" in text else "\n"


def read_text(path: str | os.PathLike[str]) -> str:
    """The UTF-8 text of ``path`` as stored (no newline translation)."""
    return Path(path).read_bytes().decode("utf-8")


def replace_block(path: str | os.PathLike[str], start: str, end: str, inside: str) -> bool:
    """Replace what lies between the ``start`` and ``end`` markers of the file at ``path``
    with ``inside`` (its newlines written in the file's line ending, :func:`newline_of`).

    The file is rewritten atomically with its permissions kept, and only when its bytes
    change. Returns whether they did.

    Raises:
        BlockError: the markers do not delimit exactly one block (:func:`split_block`);
            the message names the file. Nothing is written then.
    """
    path = Path(path)
    text = read_text(path)
    try:
        before, _, after = split_block(text, start, end)
    except BlockError as err:
        raise BlockError(f"{path}: {err}") from None
    nl = newline_of(text)
    new = before + inside.replace("\r\n", "\n").replace("\n", nl) + after
    if new == text:
        return False
    mode = stat.S_IMODE(path.stat().st_mode)

    def write(tmp: Path) -> None:
        tmp.write_bytes(new.encode("utf-8"))
        os.chmod(tmp, mode)

    atomic_write(path, write)
    return True


__all__ = ["BlockError", "newline_of", "read_text", "replace_block", "split_block"]


def git_commit(repo: str | os.PathLike[str]) -> str:
    """The short commit hash of ``repo``'s HEAD: the stamp of a measured block.

    Raises:
        subprocess.CalledProcessError: ``repo`` is not a git checkout.
    """
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
