"""The output scanner the privacy tests rely on (tests/output_checks.py) finds every kind of
embedded image data."""

from __future__ import annotations

import json

import pandas as pd
from output_checks import image_findings

from facedyn.tables import write_table


def test_image_scan_finds_embedded_images(tmp_path):
    """The scanner the privacy test relies on must be able to fail."""
    import base64

    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 50
    results = tmp_path / "results"
    (results / "figures").mkdir(parents=True)
    (results / "figures/accuracy.png").write_bytes(png)  # a plot: allowed
    (results / "figures/accuracy.pdf").write_bytes(b"%PDF-1.4 /Subtype /Form")
    assert image_findings(results) == []
    write_table(pd.DataFrame({"x": [1.0]}), results / "clean.parquet", {"a": 1})
    write_table(pd.DataFrame({"frame": [png]}), results / "blob.parquet")
    (results / "meta.json").write_text(
        json.dumps({"thumb": "data:image/png;base64," + base64.b64encode(png).decode()})
    )
    (results / "x.bin").write_bytes(b"\x00\xff\xd8\xff\xe0\x00\x10JFIF\x00")
    (results / "figures/landmark_frame.png").write_bytes(png)
    (results / "figures/cmc.pdf").write_bytes(b"%PDF-1.4 /Subtype /Image")
    (results / "frames.npy").write_bytes(b"\x93NUMPY")
    found = "\n".join(image_findings(results))
    for expected in (
        "blob.parquet: contains a PNG",
        "blob.parquet: column 'frame'",
        "meta.json: contains a base64",
        "x.bin: contains a JPEG",
        "landmark_frame.png: the video-frame figure",
        "cmc.pdf: the PDF embeds a raster image",
        "frames.npy: image or video",
    ):
        assert expected in found
    assert "clean.parquet" not in found
