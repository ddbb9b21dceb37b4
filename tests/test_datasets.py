"""Dataset indexing: probing videos, CANDOR folders and user tables -> the manifest."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from facedyn.datasets.candor import SKIPPED_ATTR, index_candor
from facedyn.datasets.manifest import build_manifest, read_manifest, write_manifest
from facedyn.datasets.records import MANIFEST_COLUMNS, ManifestError, validate_ids
from facedyn.datasets.table import index_table
from facedyn.face.probe import probe_video
from facedyn.tables import read_metadata, write_table

N_FRAMES, FPS, W, H = 10, 30, 320, 240


def make_video(path: Path, n_frames: int = N_FRAMES, seed: int = 0) -> Path:
    """A tiny mp4v video of noise (320x240, 30 fps)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    assert writer.isOpened()
    rng = np.random.default_rng(seed)
    for _ in range(n_frames):
        writer.write(rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="module")
def template_video(tmp_path_factory) -> bytes:
    return make_video(tmp_path_factory.mktemp("v") / "t.mp4").read_bytes()


def add_conversation(
    root: Path,
    conv: str,
    speakers: list[tuple[str, str]],
    video: bytes,
    metadata: str | None = None,
    channel_map: bool = True,
    skip_videos: tuple[str, ...] = (),
) -> Path:
    """A CANDOR conversation folder; ``metadata`` overrides metadata.json's text."""
    d = root / conv
    (d / "processed").mkdir(parents=True)
    if metadata is None:
        metadata = json.dumps(
            {
                "id": conv,
                "sessionId": "s",
                "createdAt": 1600000000000,
                "speakers": [{"user_id": u, "channel": c} for u, c in speakers],
            }
        )
    (d / "metadata.json").write_text(metadata)
    if channel_map:
        (d / "processed" / "channel_map.json").write_text(json.dumps({c: u for u, c in speakers}))
    (d / "processed" / f"{conv}.mp4").write_bytes(video)  # combined video: must be ignored
    for user, _ in speakers:
        if user not in skip_videos:
            (d / "processed" / f"{user}.mp4").write_bytes(video)
    pd.DataFrame(
        {
            "user_id": [u for u, _ in speakers],
            "partner_id": [u for u, _ in reversed(speakers)],
            "convo_id": conv,
        }
    ).to_csv(d / "survey.csv", index=False)
    return d


@pytest.fixture
def candor(tmp_path, template_video) -> Path:
    """Three conversations; 00012 speaks in two of them; numeric-looking ids everywhere."""
    root = tmp_path / "candor"
    add_conversation(root, "c2", [("5e3", "L"), ("00012", "R")], template_video)
    add_conversation(root, "a1", [("1e5", "L"), ("00012", "R")], template_video)
    # metadata lists no speakers: participants come from channel_map.json; one video missing
    add_conversation(
        root,
        "b7",
        [("nan", "L"), ("123e4567", "R")],
        template_video,
        metadata=json.dumps({"id": "b7"}),
        skip_videos=("123e4567",),
    )
    (root / "b7" / "processed" / "stray.mp4").write_bytes(template_video)  # ignored
    (root / ".hidden").mkdir()
    return root


# --------------------------------------------------------------------------- probe_video


def test_probe_video_numbers(tmp_path):
    info = probe_video(make_video(tmp_path / "v.mp4"))
    assert info.status == "ok" and info.ok and info.reason == ""
    assert info.fps == pytest.approx(30.0)
    assert (info.n_frames, info.width, info.height) == (10, 320, 240)
    assert info.duration_s == pytest.approx(10 / 30)


def test_probe_video_problems(tmp_path):
    missing = probe_video(tmp_path / "nope.mp4")
    assert missing.status == "missing" and "no such file" in missing.reason
    assert math.isnan(missing.fps) and missing.n_frames == 0 and math.isnan(missing.duration_s)
    (tmp_path / "empty.mp4").write_bytes(b"")
    empty = probe_video(tmp_path / "empty.mp4")
    assert empty.status == "empty" and "0 bytes" in empty.reason
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all " * 200)
    junk = probe_video(tmp_path / "junk.mp4")
    assert junk.status == "unreadable" and junk.reason
    assert probe_video(tmp_path).status == "unreadable"  # a directory
    (tmp_path / "link.mp4").symlink_to(tmp_path / "gone.mp4")
    link = probe_video(tmp_path / "link.mp4")
    assert link.status == "missing" and "symbolic link" in link.reason


def test_probe_video_truncated(tmp_path):
    data = make_video(tmp_path / "v.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # mp4v: moov atom at the end
    assert probe_video(tmp_path / "cut.mp4").status == "unreadable"


# --------------------------------------------------------------------------- CANDOR


def test_index_candor_rows_ids_partners(candor, tmp_path, caplog):
    with caplog.at_level(logging.DEBUG, logger="facedyn.datasets.candor"):
        df = index_candor(candor, workers=2)
    assert list(df.columns) == MANIFEST_COLUMNS
    keys = list(zip(df["session_id"], df["speaker_id"], strict=True))
    assert keys == [
        ("a1", "00012"),
        ("a1", "1e5"),
        ("b7", "123e4567"),
        ("b7", "nan"),
        ("c2", "00012"),
        ("c2", "5e3"),
    ]
    by = df.set_index(["session_id", "speaker_id"])
    assert by.loc[("a1", "1e5"), "partner_id"] == "00012"
    assert by.loc[("a1", "00012"), "partner_id"] == "1e5"
    assert by.loc[("c2", "00012"), "partner_id"] == "5e3"
    assert by.loc[("b7", "nan"), "partner_id"] == "123e4567"
    assert by.loc[("a1", "1e5"), "channel"] == "L" and by.loc[("c2", "00012"), "channel"] == "R"
    assert by.loc[("b7", "123e4567"), "channel"] == "R"
    # per-participant videos only, never the combined one or the stray file
    assert all(Path(v).name == f"{s}.mp4" for (_, s), v in by["video"].items())
    assert all(Path(v).is_absolute() for v in df["video"])
    ok = by.loc[("a1", "1e5")]
    assert (ok["status"], ok["n_frames"], ok["width"], ok["height"]) == ("ok", 10, 320, 240)
    assert ok["fps"] == pytest.approx(30) and ok["duration_s"] == pytest.approx(1 / 3)
    missing = by.loc[("b7", "123e4567")]
    assert missing["status"] == "missing" and "no such file" in missing["reason"]
    assert "channel_map.json" in by.loc[("b7", "nan"), "reason"]  # where participants came from
    assert by.loc[("b7", "nan"), "status"] == "ok"
    assert "ignoring stray.mp4" in caplog.text and "ignoring b7.mp4" in caplog.text
    assert df.attrs[SKIPPED_ATTR] == {}

    path = write_manifest(df, tmp_path / "m.parquet", {"dataset_kind": "candor"})
    back = read_manifest(path)
    pd.testing.assert_frame_equal(back, df)
    assert back["speaker_id"].map(type).eq(str).all()
    assert set(back["speaker_id"]) == {"00012", "1e5", "123e4567", "nan", "5e3"}
    meta = read_metadata(path)
    assert meta["dataset_kind"] == "candor" and meta["n_rows"] == 6
    assert meta["status_counts"] == {"missing": 1, "ok": 5}
    assert meta["n_speakers"] == 5 and meta["n_sessions"] == 3 and "facedyn_version" in meta


def test_index_candor_is_deterministic(candor):
    a = index_candor(candor, workers=1)
    b = index_candor(candor, workers=4)
    pd.testing.assert_frame_equal(a, b)


def test_json_number_ids_keep_their_text(tmp_path, template_video):
    root = tmp_path / "c"
    # ids as bare JSON numbers; the second speaker's channel only in channel_map.json
    text = '{"id": "x1", "speakers": [{"user_id": 5e32, "channel": "L"}, {"user_id": 1.50}]}'
    add_conversation(root, "x1", [("5e32", "L"), ("1.50", "R")], template_video, metadata=text)
    df = index_candor(root).set_index("speaker_id")
    assert sorted(df.index) == ["1.50", "5e32"]
    assert df.loc["1.50", "channel"] == "R" and df.loc["1.50", "partner_id"] == "5e32"
    assert df["status"].eq("ok").all()


def test_empty_and_garbage_videos(tmp_path, template_video):
    root = tmp_path / "c"
    conv = add_conversation(root, "s1", [("u1", "L"), ("u2", "R")], template_video)
    (conv / "processed" / "u1.mp4").write_bytes(b"")
    (conv / "processed" / "u2.mp4").write_bytes(b"\x00garbage\xff" * 100)
    df = index_candor(root).set_index("speaker_id")
    assert df.loc["u1", "status"] == "empty" and "0 bytes" in df.loc["u1", "reason"]
    assert df.loc["u2", "status"] == "unreadable" and df.loc["u2", "reason"]
    assert df.loc["u1", "partner_id"] == "u2"  # still listed with everything known


def test_unreadable_metadata(tmp_path, template_video):
    root = tmp_path / "c"
    # metadata broken but channel_map usable: rows are fine, the reason notes it
    add_conversation(root, "s1", [("u1", "L"), ("u2", "R")], template_video, metadata="{oops")
    # metadata broken, no channel_map: videos listed as unreadable_metadata
    add_conversation(
        root, "s2", [("u3", "L"), ("u4", "R")], template_video, metadata="{oops", channel_map=False
    )
    # nothing at all: skipped, recorded in attrs
    add_conversation(root, "s3", [], template_video, metadata="[]", channel_map=False)
    (root / "s3" / "processed" / "s3.mp4").unlink()
    df = index_candor(root).set_index(["session_id", "speaker_id"])
    assert df.loc[("s1", "u1"), "status"] == "ok"
    assert "not valid JSON" in df.loc[("s1", "u1"), "reason"]
    assert df.loc[("s1", "u1"), "partner_id"] == "u2"
    s2 = df.loc["s2"]
    assert list(s2.index) == ["u3", "u4"]  # the combined s2.mp4 is not listed
    assert s2["status"].eq("unreadable_metadata").all()
    assert s2["partner_id"].isna().all() and s2["channel"].isna().all()
    assert s2["n_frames"].eq(10).all()  # the videos themselves were probed
    skipped = index_candor(root).attrs[SKIPPED_ATTR]
    assert list(skipped) == ["s3"] and "not a JSON object" in skipped["s3"]


def test_nothing_indexable_raises(tmp_path):
    root = tmp_path / "c"
    (root / "s1" / "processed").mkdir(parents=True)
    (root / "s1" / "metadata.json").write_text("{broken")
    with pytest.raises(ManifestError, match="nothing could be indexed"):
        index_candor(root)


def test_metadata_id_differs_from_folder(tmp_path, template_video, caplog):
    root = tmp_path / "c"
    meta = json.dumps(
        {
            "id": "other",
            "speakers": [{"user_id": "u1", "channel": "L"}, {"user_id": "u2", "channel": "R"}],
        }
    )
    add_conversation(root, "folder", [("u1", "L"), ("u2", "R")], template_video, metadata=meta)
    with caplog.at_level(logging.WARNING):
        df = index_candor(root)
    assert set(df["session_id"]) == {"folder"}
    assert "using the folder name" in caplog.text


def test_candor_root_errors(tmp_path, template_video):
    with pytest.raises(ManifestError, match="not a folder"):
        index_candor(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="no conversation folders"):
        index_candor(tmp_path / "empty")
    add_conversation(tmp_path / "outer" / "inner", "s1", [("u1", "L"), ("u2", "R")], template_video)
    with pytest.raises(ManifestError, match="one level down"):
        index_candor(tmp_path / "outer")
    with pytest.raises(ManifestError, match="single conversation"):
        index_candor(tmp_path / "outer" / "inner" / "s1")


def test_candor_unsafe_and_duplicate_ids(tmp_path, template_video):
    root = tmp_path / "c"
    add_conversation(
        root, "s1", [("../evil", "L"), ("u2", "R")], template_video, skip_videos=("../evil",)
    )
    with pytest.raises(ManifestError, match=r"unsafe ids.*'\.\./evil'"):
        index_candor(root)
    root = tmp_path / "d"
    meta = json.dumps(
        {"speakers": [{"user_id": "u1", "channel": "L"}, {"user_id": "u1", "channel": "R"}]}
    )
    add_conversation(root, "s1", [("u1", "L")], template_video, metadata=meta)
    with pytest.raises(ManifestError, match=r"\('s1', 'u1'\) x2"):
        index_candor(root)


# --------------------------------------------------------------------------- user tables


TRICKY = ["NA", "NaN", "1e5", "00123", "nan"]


def test_index_csv_keeps_ids_verbatim_and_resolves_paths(tmp_path, template_video):
    (tmp_path / "videos").mkdir()
    for i in range(len(TRICKY)):
        (tmp_path / "videos" / f"{i}.mp4").write_bytes(template_video)
    lines = ["speaker_id,session_id,video,partner_id,channel,notes"]
    lines += [f"{s},S{i},videos/{i}.mp4,{'' if i else 'NA'},,x" for i, s in enumerate(TRICKY)]
    lines.append("00123,S9,videos/none.mp4,,,")
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    df = index_table(tmp_path / "t.csv")
    assert list(df.columns) == MANIFEST_COLUMNS
    assert df["speaker_id"].tolist() == [*TRICKY, "00123"]  # sorted by session S0..S4, S9
    assert df["partner_id"].tolist() == ["NA", None, None, None, None, None]
    assert df["channel"].isna().all()
    assert df["video"].tolist()[:5] == [str(tmp_path / "videos" / f"{i}.mp4") for i in range(5)]
    assert df["status"].tolist() == ["ok"] * 5 + ["missing"]
    back = read_manifest(write_manifest(df, tmp_path / "m.parquet"))
    assert back["speaker_id"].tolist() == [*TRICKY, "00123"]
    pd.testing.assert_frame_equal(back, df)


def test_index_parquet_table(tmp_path, template_video):
    (tmp_path / "a.mp4").write_bytes(template_video)
    table = pd.DataFrame(
        {
            "session_id": ["s2", "s1"],
            "speaker_id": ["1e5", "00012"],
            "video": [str(tmp_path / "a.mp4"), "a.mp4"],
            "partner_id": ["00012", None],
            "channel": ["L", "R"],
        }
    )
    write_table(table, tmp_path / "sub" / "t.parquet")
    (tmp_path / "sub" / "a.mp4").write_bytes(template_video)
    df = index_table(tmp_path / "sub" / "t.parquet")
    assert df["speaker_id"].tolist() == ["00012", "1e5"]
    assert df["video"].tolist() == [str(tmp_path / "sub" / "a.mp4"), str(tmp_path / "a.mp4")]
    assert df["partner_id"].tolist() == [None, "00012"]
    assert df["status"].eq("ok").all()


def test_parquet_float_ids_refused(tmp_path):
    pd.DataFrame({"session_id": ["s"], "speaker_id": [1e5], "video": ["v.mp4"]}).to_parquet(
        tmp_path / "t.parquet"
    )
    with pytest.raises(ManifestError, match=r"speaker_id.*store it as strings"):
        index_table(tmp_path / "t.parquet")


def test_table_errors(tmp_path):
    with pytest.raises(ManifestError, match="does not exist"):
        index_table(tmp_path / "nope.csv")
    (tmp_path / "cols.csv").write_text("speaker_id,video\na,v.mp4\n")
    with pytest.raises(ManifestError, match=r"lacks required column.*session_id"):
        index_table(tmp_path / "cols.csv")
    (tmp_path / "empty.csv").write_text("speaker_id,session_id,video\n")
    with pytest.raises(ManifestError, match="no rows"):
        index_table(tmp_path / "empty.csv")
    (tmp_path / "blank.csv").write_text("")
    with pytest.raises(ManifestError, match="empty"):
        index_table(tmp_path / "blank.csv")
    (tmp_path / "dup.csv").write_text(
        "speaker_id,session_id,video\n1e5,s1,a.mp4\nb,s1,b.mp4\n1e5,s1,c.mp4\n"
    )
    with pytest.raises(ManifestError, match=r"\('s1', '1e5'\) x2 \(rows 1, 3\)"):
        index_table(tmp_path / "dup.csv")
    (tmp_path / "unsafe.csv").write_text(
        "speaker_id,session_id,video\nJane Doe,s/1,a.mp4\n,s2,b.mp4\n"
    )
    with pytest.raises(ManifestError, match=r"session_id: 's/1'.*speaker_id: ''.*'Jane Doe'"):
        index_table(tmp_path / "unsafe.csv")
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(ManifestError, match="unsupported"):
        index_table(tmp_path / "t.xlsx")


def test_validate_ids():
    ok = pd.DataFrame({"session_id": ["a1", "A.b-c_d"], "speaker_id": ["1e5", "nan"]})
    validate_ids(ok)
    for bad in ["x\n", ".hidden", "-x", "a b", "", None, "ü"]:
        df = pd.DataFrame({"session_id": ["s"], "speaker_id": [bad]}, dtype=object)
        with pytest.raises(ManifestError, match="Rename them"):
            validate_ids(df)


# --------------------------------------------------------------------------- build_manifest


def test_build_manifest_kinds(candor, tmp_path, template_video):
    out = tmp_path / "results" / "cohort" / "manifest.parquet"
    df = build_manifest({"kind": "candor", "root": str(candor)}, out)
    assert out.is_file() and len(df) == 6
    meta = read_metadata(out)
    assert meta["dataset_kind"] == "candor" and meta["root"] == str(candor)
    assert meta["skipped_conversations"] == {}

    syn = build_manifest({"kind": "synthetic"}, tmp_path / "syn.parquet", synthetic_root=candor)
    pd.testing.assert_frame_equal(syn, df)
    assert read_metadata(tmp_path / "syn.parquet")["dataset_kind"] == "synthetic"

    (tmp_path / "v.mp4").write_bytes(template_video)
    (tmp_path / "t.csv").write_text("speaker_id,session_id,video\n00012,s1,v.mp4\n")
    tab = build_manifest(
        {"kind": "manifest", "table": str(tmp_path / "t.csv")}, tmp_path / "tab.parquet"
    )
    assert read_manifest(tmp_path / "tab.parquet")["speaker_id"].tolist() == ["00012"]
    assert tab["status"].tolist() == ["ok"]
    assert read_metadata(tmp_path / "tab.parquet")["table"] == str(tmp_path / "t.csv")

    for config in ({"kind": "bogus"}, {"kind": "candor"}, {"kind": "synthetic"}, {}):
        with pytest.raises(ManifestError):
            build_manifest(config, tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()
