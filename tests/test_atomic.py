"""Atomic writes: a reader never sees a partial file, SIGTERM during a write leaves neither
output nor temporary file, and a killed write's leftover temporary file is removed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from facedyn.atomic import atomic_write, atomic_write_bytes


def test_leftover_temporary_file_of_a_killed_write_is_removed(tmp_path):
    target = tmp_path / "t.parquet"
    stale = tmp_path / ".t.parquet.abc123.tmp"
    stale.write_bytes(b"half a table")
    other = tmp_path / ".u.parquet.abc123.tmp"  # another output's: not touched
    other.write_bytes(b"x")
    atomic_write_bytes(target, b"whole")
    assert target.read_bytes() == b"whole" and not stale.exists() and other.exists()


def test_sigterm_during_a_write_leaves_neither_output_nor_temporary_file(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from facedyn.atomic import atomic_write
        from facedyn.runtime import exit_on_sigterm
        exit_on_sigterm()
        def slow(tmp):
            tmp.write_bytes(b"partial")
            print("writing", flush=True)
            time.sleep(30)
        atomic_write(Path({str(tmp_path / "out.json")!r}), slow)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    assert list(tmp_path.glob(".out.json.*.tmp"))  # the write is under way
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_never_shows_a_partial_file(tmp_path):
    target = tmp_path / "m.json"
    atomic_write_bytes(target, b'{"old": true}')
    seen = []

    def write(tmp: Path) -> None:
        tmp.write_bytes(b'{"new": ')
        seen.append(target.read_bytes())  # a reader during the write sees the old file
        time.sleep(0.01)
        tmp.write_bytes(b'{"new": true}')

    atomic_write(target, write)
    assert seen == [b'{"old": true}'] and json.loads(target.read_text()) == {"new": True}
