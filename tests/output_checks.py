"""Checks over a run's output files: embedded images (privacy), provenance records,
readability (no half-written outputs) and leftover temporary files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from facedyn.tables import read_metadata

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: A JPEG start-of-image marker followed by a JFIF or Exif application segment.
JPEG_PATTERN = re.compile(rb"\xff\xd8\xff[\xe0\xe1]..(?:JFIF|Exif)", re.DOTALL)
#: The same headers base64-encoded (data URIs in HTML or JSON).
BASE64_IMAGE_PREFIXES = (b"iVBORw0KGgo", b"/9j/4AAQSkZJRg", b"/9j/4QA")
#: Figures are plots; they may be PNG/PDF/SVG. The one figure that shows video frames.
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
FRAME_FIGURE = "landmark_frame"
#: Raw pixels or video of any kind.
MEDIA_SUFFIXES = (
    ".npy",
    ".npz",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".mp4",
    ".avi",
    ".mov",
    ".mkv",
    ".webm",
)


def image_findings(root: Path) -> list[str]:
    """Every place under ``root`` that holds (or may hold) image data of the videos.

    Figures (``results/figures/*.png|pdf|svg``) must be plots: the frame figure must not be
    there, and their PDFs must not embed a raster image (a plot drawn by matplotlib is
    vector; a video frame would be an image XObject). Every other file must not contain a
    PNG or JPEG (raw or base64), must not be a media file, and Parquet tables may only have
    flat numeric, boolean or text columns (no binary blobs or nested arrays of pixels).
    """
    findings = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        data = path.read_bytes()
        if path.suffix in FIGURE_SUFFIXES and path.parent.name == "figures":
            if path.stem.startswith(FRAME_FIGURE):
                findings.append(f"{rel}: the video-frame figure")
            if path.suffix == ".pdf" and b"/Subtype /Image" in data:
                findings.append(f"{rel}: the PDF embeds a raster image")
            continue
        if path.suffix.lower() in (*MEDIA_SUFFIXES, *FIGURE_SUFFIXES):
            findings.append(f"{rel}: image or video file")
        if PNG_SIGNATURE in data:
            findings.append(f"{rel}: contains a PNG image")
        if JPEG_PATTERN.search(data):
            findings.append(f"{rel}: contains a JPEG image")
        if any(prefix in data for prefix in BASE64_IMAGE_PREFIXES):
            findings.append(f"{rel}: contains a base64-encoded image")
        if path.suffix == ".parquet":
            for field in pq.read_schema(path):
                t = field.type
                flat = (
                    pa.types.is_integer(t)
                    or pa.types.is_floating(t)
                    or pa.types.is_boolean(t)
                    or pa.types.is_string(t)
                    or pa.types.is_large_string(t)
                    or pa.types.is_null(t)
                )
                if not flat:
                    findings.append(f"{rel}: column {field.name!r} has type {t}")
    return findings


def provenance_of(path: Path) -> Any:
    """The ``provenance`` record of a results table (metadata) or JSON file."""
    if path.suffix == ".parquet":
        return read_metadata(path).get("provenance")
    doc = json.loads(path.read_text())
    return doc.get("provenance") if isinstance(doc, dict) else None


def provenance_problems(path: Path, version: str) -> list[str]:
    """What is missing or malformed in ``path``'s provenance (empty: version, config hash,
    input fingerprint and library versions all there)."""
    prov = provenance_of(path)
    if not isinstance(prov, dict):
        return [f"{path}: no provenance record"]
    problems = []
    if prov.get("facedyn_version") != version:
        problems.append(f"{path}: facedyn_version {prov.get('facedyn_version')!r}")
    for key in ("config_hash", "input_fingerprint"):
        if not re.fullmatch(r"[0-9a-f]{16}", str(prov.get(key))):
            problems.append(f"{path}: {key} {prov.get(key)!r}")
    libraries = prov.get("libraries")
    if not isinstance(libraries, dict) or not re.match(r"\d", str(libraries.get("torch"))):
        problems.append(f"{path}: libraries {libraries!r}")
    return problems


def unreadable_outputs(root: Path) -> list[str]:
    """Parquet and JSON files under ``root`` that cannot be read whole (half-written)."""
    bad = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        try:
            if path.suffix == ".parquet":
                pq.read_table(path)
            elif path.suffix == ".json":
                json.loads(path.read_text())
        except Exception as exc:  # any failure to read is what this looks for
            bad.append(f"{path}: {type(exc).__name__}: {exc}")
    return bad


def temporary_files(root: Path) -> list[Path]:
    """Leftover temporary files of atomic writes (``.<name>.<random>.tmp``)."""
    return sorted(p for p in root.rglob(".*.tmp") if p.is_file())
