"""Provenance: the input fingerprint follows the inputs' identities and contents (large
files by size and time), and every provenance record carries it."""

from __future__ import annotations

import hashlib
import os
import re

from facedyn.runtime import input_fingerprint, provenance


def test_input_fingerprint_follows_the_inputs(tmp_path, monkeypatch):
    a, b = tmp_path / "a.parquet", tmp_path / "b.mp4"
    a.write_bytes(b"table")
    b.write_bytes(b"video" * 100)
    first = input_fingerprint([a, b])
    assert first == input_fingerprint([str(b), a, a])  # order and repeats do not matter
    # 16 hex digits: the head of sha256 over the sorted identities (path and content hash of
    # a small file), one a line, recomputed here from the files' bytes
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    identities = sorted(f"{p}\0sha256:{hashlib.sha256(p.read_bytes()).hexdigest()}" for p in (a, b))
    assert first == hashlib.sha256("".join(f"{i}\n" for i in identities).encode()).hexdigest()[:16]
    a.write_bytes(b"tablE")  # same size, other content
    assert input_fingerprint([a, b]) != first
    assert input_fingerprint([a]) != input_fingerprint([a, b])
    assert input_fingerprint([a, tmp_path / "gone"]) != input_fingerprint([a])
    # large files: size and mtime, not content (a video is never read for this)
    import facedyn.runtime as runtime

    monkeypatch.setattr(runtime, "CONTENT_HASH_MAX_BYTES", 10)
    big = input_fingerprint([b])
    b.write_bytes(b"VIDEO" * 100)
    os.utime(b, ns=(b.stat().st_atime_ns, b.stat().st_mtime_ns + 10**9))
    assert input_fingerprint([b]) != big
    prov = provenance({"seed": 0}, inputs=[a, b])
    assert {"facedyn_version", "config_hash", "input_fingerprint"} <= set(prov)
    assert prov["n_inputs"] == 2
