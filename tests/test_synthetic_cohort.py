"""The synthetic cohort: CANDOR layout, ground truth aligned with the videos, faces that a
real detector finds, determinism, and appearance independent of identity."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from facedyn.datasets.manifest import build_manifest, read_manifest
from facedyn.datasets.records import MANIFEST_COLUMNS
from facedyn.face.backends import DlibBackend
from facedyn.face.extract import landmarks_array
from facedyn.face.video import read_all_frames
from facedyn.flame import write_synthetic_flame
from facedyn.synthetic import layout
from facedyn.synthetic.appearance import Portrait, face_pool, load_portraits, pool_faces
from facedyn.synthetic.behaviour import (
    ExpressionRoles,
    resonant_texture,
    sample_signatures,
)
from facedyn.synthetic.generate import CohortConfig, plan_cohort, write_cohort

DETECTOR = DlibBackend()
TINY = {"n_speakers": 4, "sessions_per_speaker": 2, "duration_s": 4, "combined_video": True}


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_synthetic_flame(tmp_path_factory.mktemp("head"), n_shape=20, n_expr=15, seed=0)


def _generate(root: Path, head: dict[str, Path], **overrides) -> dict:
    return write_cohort(
        root,
        {**TINY, **overrides},
        head_model=str(head["model"]),
        head_embedding=str(head["landmark_embedding"]),
        head_components=str(head["components"]),
        workers=2,
        summary_path=layout.cohort_file(root),
    )


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory, head) -> Path:
    root = tmp_path_factory.mktemp("cohort") / "smoke"
    _generate(root, head)
    return root


def test_candor_layout_and_metadata(cohort):
    convs = [p for p in cohort.iterdir() if (p / "metadata.json").is_file()]
    assert len(convs) == 4  # 4 speakers x 2 sessions / 2 per conversation
    for conv in convs:
        meta = json.loads((conv / "metadata.json").read_text())
        assert meta["id"] == conv.name
        users = [s["user_id"] for s in meta["speakers"]]
        assert sorted(s["channel"] for s in meta["speakers"]) == ["L", "R"]
        for user in users:
            cap = cv2.VideoCapture(str(conv / "processed" / f"{user}.mp4"))
            assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (
                320,
                240,
            )
            assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(30)
            cap.release()
        assert (conv / "processed" / f"{conv.name}.mp4").is_file()  # combined, CANDOR-style
        channel_map = json.loads((conv / "processed" / "channel_map.json").read_text())
        assert sorted(channel_map.values()) == sorted(users)
    summary = json.loads(layout.cohort_file(cohort).read_text())
    assert summary["n_videos"] == 8 and summary["synthetic"] is True


def test_manifest_indexes_participants_only_with_string_ids(cohort, tmp_path):
    out = tmp_path / "manifest.parquet"
    build_manifest({"kind": "synthetic"}, out, synthetic_root=cohort)
    manifest = read_manifest(out)
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert len(manifest) == 8 and (manifest["status"] == "ok").all()
    assert manifest["speaker_id"].map(type).eq(str).all()
    # The generator makes one id look like a number in scientific notation.
    assert any(s.replace("e", "", 1).isdigit() for s in manifest["speaker_id"])
    # The combined <conversation>.mp4 is not a participant video.
    assert (manifest["video"].map(lambda v: Path(v).stem) == manifest["speaker_id"]).all()
    assert set(manifest["n_frames"]) == {120}
    assert (manifest.groupby("speaker_id").size() == 2).all()


def test_truth_lines_up_with_video_frame_by_frame(cohort):
    sessions = pd.read_parquet(layout.sessions_table(cohort))
    row = sessions.iloc[0]
    video = cohort / row["session_id"] / "processed" / f"{row['speaker_id']}.mp4"
    truth = pd.read_parquet(
        layout.frame_table(layout.frames_dir(cohort), row["session_id"], row["speaker_id"])
    )
    frames = read_all_frames(video)
    assert len(frames) == len(truth)
    target = landmarks_array(truth)
    detected = np.full_like(target, np.nan)
    for f, frame in enumerate(frames):
        faces = DETECTOR.detect(frame)
        if faces:
            detected[f] = faces[0].landmarks
    iod = np.linalg.norm(target[:, 36] - target[:, 45], axis=1)
    nme = np.nanmean(np.linalg.norm(detected - target, axis=2), axis=1) / iod
    assert np.nanmedian(nme) < 0.08
    # Frame alignment: detected and true head motion agree best at lag 0.
    det_x = detected[:, 30, 0] - np.nanmean(detected[:, 30, 0])
    true_x = target[:, 30, 0] - target[:, 30, 0].mean()
    ok = ~np.isnan(det_x)

    def corr(lag: int) -> float:
        a, b = det_x[ok], np.roll(true_x, lag)[ok]
        return float(np.corrcoef(a, b)[0, 1])

    assert corr(0) > 0.8
    assert corr(0) > max(corr(-3), corr(3))


def test_a_real_detector_finds_the_face(cohort):
    hits, total = 0, 0
    for video in sorted(cohort.glob("*/processed/*.mp4")):
        if video.stem == video.parent.parent.name:
            continue  # combined side-by-side video
        for frame in read_all_frames(video)[::10]:
            total += 1
            hits += bool(DETECTOR.detect(frame))
    assert total >= 90
    assert hits / total >= 0.95


def test_layout_names_every_file_the_generator_writes(cohort):
    assert (
        layout.cohort_file(cohort).is_file()
        and layout.root_of(layout.cohort_file(cohort)) == cohort
    )
    assert layout.speakers_table(cohort).is_file() and layout.sessions_table(cohort).is_file()
    sessions = pd.read_parquet(layout.sessions_table(cohort))
    expected = {
        layout.frame_table(layout.frames_dir(cohort), r.session_id, r.speaker_id)
        for r in sessions.itertuples()
    }
    assert expected == set(layout.frames_dir(cohort).rglob("*.parquet"))
    truth_files = {p for p in layout.truth_dir(cohort).rglob("*") if p.is_file()}
    named = expected | {layout.speakers_table(cohort), layout.sessions_table(cohort)}
    assert {p.name for p in truth_files - named} == {"README.txt"}


def test_same_seed_same_cohort(cohort, head, tmp_path):
    again = tmp_path / "smoke"
    _generate(again, head)
    for table in (layout.speakers_table, layout.sessions_table):
        pd.testing.assert_frame_equal(pd.read_parquet(table(cohort)), pd.read_parquet(table(again)))
    for path in sorted(layout.frames_dir(cohort).rglob("*.parquet")):
        other = again / path.relative_to(cohort)
        pd.testing.assert_frame_equal(pd.read_parquet(path), pd.read_parquet(other))
    build_manifest({"kind": "synthetic"}, tmp_path / "a.parquet", cohort)
    build_manifest({"kind": "synthetic"}, tmp_path / "b.parquet", again)
    a, b = read_manifest(tmp_path / "a.parquet"), read_manifest(tmp_path / "b.parquet")
    cols = [c for c in MANIFEST_COLUMNS if c != "video"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


def test_regeneration_with_other_settings_leaves_no_stale_conversations(head, tmp_path):
    root = tmp_path / "c"
    _generate(root, head, duration_s=1)
    _generate(root, head, duration_s=1, seed=5)
    convs = [p for p in root.iterdir() if (p / "metadata.json").is_file()]
    assert len(convs) == 4


def test_photo_is_drawn_independently_of_speaker_settings():
    base = CohortConfig(n_speakers=200, sessions_per_speaker=3)
    _, sessions = plan_cohort(base, 20)
    # A separate random stream: changing every speaker-related setting keeps the photos.
    other = CohortConfig(
        n_speakers=200,
        sessions_per_speaker=3,
        signature_strength=3.0,
        shape_sd=2.0,
        instability=(0.5, 0.6),
    )
    _, sessions2 = plan_cohort(other, 20)
    assert sessions["photo_index"].tolist() == sessions2["photo_index"].tolist()
    # portrait: speaker (the default): a person keeps one face in every session.
    assert (sessions.groupby("speaker_id")["photo_index"].nunique() == 1).all()


def test_portrait_per_session_changes_the_face_every_call():
    cfg = CohortConfig(n_speakers=200, sessions_per_speaker=3, portrait="session")
    _, sessions = plan_cohort(cfg, 20)
    pool = 10
    same = sessions.assign(p=sessions["photo_index"] % pool).groupby("speaker_id")["p"].nunique()
    assert (same == 1).mean() < 0.05
    with pytest.raises(ValueError, match="portrait"):
        CohortConfig(portrait="everyone").validate()


def test_pairing_every_speaker_in_n_sessions_never_alone():
    _, sessions = plan_cohort(CohortConfig(n_speakers=12, sessions_per_speaker=3), 20)
    assert (sessions.groupby("speaker_id").size() == 3).all()
    assert (sessions["speaker_id"] != sessions["partner_id"]).all()
    assert (sessions.groupby("session_id").size() == 2).all()


def test_odd_speaker_count_is_rejected():
    with pytest.raises(ValueError, match="even"):
        CohortConfig.from_mapping({"n_speakers": 5})


def test_signature_strength_zero_makes_everyone_alike():
    rng = np.random.default_rng(0)
    sig = sample_signatures([f"s{k}" for k in range(6)], 0.0, (0.1, 1.0), rng)
    params = sig.drop(columns="instability")
    assert (params.nunique() == 1).all()


def test_texture_identity_is_in_timing_only():
    """Order-blind statistics cannot separate texture processes of different speakers."""
    rng = np.random.default_rng(0)
    slow = resonant_texture(1200, 30.0, 0.3, 0.2, rng)
    fast = resonant_texture(1200, 30.0, 1.5, 0.2, rng)
    np.testing.assert_allclose(np.sort(slow), np.sort(fast))  # identical marginals
    lag = 10  # 1/3 s

    def autocorr(x: np.ndarray) -> float:
        return float(np.corrcoef(x[:-lag], x[lag:])[0, 1])

    assert autocorr(slow) - autocorr(fast) > 0.5


def test_expression_roles_from_head_names(head):
    info = json.loads(Path(head["components"]).read_text())
    names = [c["name"] for c in info["expression"]]
    roles = ExpressionRoles.from_names(names)
    assert names[roles.smile] == "smile" and names[roles.frown] == "brow_lower"
    assert names[roles.blink] == "blink"
    assert [names[k] for k in roles.texture] == [
        "upper_lip_raise",
        "mouth_frown",
        "inner_brow_raise",
    ]
    assert roles.texture_positive == (0,)  # the upper-lip raise only ever opens the lips
    assert names[roles.lips_part] == "lips_part" and names[roles.pucker] == "pucker"
    assert names[roles.lip_stretch] == "lip_stretch" and names[roles.eyes_wide] == "eyes_wide"
    assert not {roles.lips_part, roles.pucker, roles.lip_stretch} & set(roles.texture)


def test_head_shape_per_session_draws_a_new_face_and_keeps_the_signature():
    base = CohortConfig(n_speakers=40, sessions_per_speaker=3, portrait="session")
    swap = CohortConfig(
        n_speakers=40, sessions_per_speaker=3, portrait="session", head_shape="session"
    )
    spk_base, ses_base = plan_cohort(base, 20)
    spk_swap, ses_swap = plan_cohort(swap, 20)
    # The speakers' dynamic signatures, photos and everything but the face are the same draw.
    pd.testing.assert_frame_equal(spk_base, spk_swap)
    drift_cols = [c for c in ses_swap.columns if c.startswith("shape_drift_")]
    pd.testing.assert_frame_equal(
        ses_base.drop(columns=drift_cols), ses_swap.drop(columns=drift_cols)
    )
    shape_cols = [c for c in spk_swap.columns if c.startswith("shape_")]
    own = spk_swap.loc[ses_swap["speaker_id"], shape_cols].to_numpy()
    face = own + ses_swap[drift_cols].to_numpy()
    faces = pd.DataFrame(face).assign(speaker=ses_swap["speaker_id"].to_numpy())
    # Every session has a face of its own: a speaker's sessions are as far apart as any two.
    within = faces.groupby("speaker")[list(range(len(shape_cols)))].std().mean().mean()
    between = face.std(0).mean()
    assert within == pytest.approx(between, rel=0.2)
    base_face = own + ses_base[drift_cols].to_numpy()
    base_within = (
        pd.DataFrame(base_face)
        .assign(speaker=ses_base["speaker_id"].to_numpy())
        .groupby("speaker")[list(range(len(shape_cols)))]
        .std()
        .mean()
        .mean()
    )
    assert base_within < 0.8 * between  # own shape + drift: sessions stay closer
    # Faces stay in the head's plausible range.
    assert np.abs(face).max() <= 2.5 + 1e-9
    with pytest.raises(ValueError, match="head_shape"):
        CohortConfig(head_shape="everyone").validate()


def _portraits(*sources: str) -> list[Portrait]:
    blank = np.zeros((4, 4, 3), np.uint8)
    return [Portrait(blank, np.zeros((68, 2)), s) for s in sources]


def test_face_pool_keeps_the_first_faces_with_their_mirrors():
    pool = _portraits("a.jpg#0", "a.jpg#0:mirror", "a.jpg#1", "a.jpg#1:mirror", "b.png#0")
    assert face_pool(pool, None) == pool
    assert [p.source for p in face_pool(pool, 2)] == [
        "a.jpg#0",
        "a.jpg#0:mirror",
        "a.jpg#1",
        "a.jpg#1:mirror",
    ]
    assert [p.source for p in face_pool(pool, 1)] == ["a.jpg#0", "a.jpg#0:mirror"]
    with pytest.raises(ValueError, match=r"n_faces is 4 .* 3 usable faces"):
        face_pool(pool, 4)
    with pytest.raises(ValueError, match="n_faces"):
        CohortConfig(n_faces=0).validate()


def test_the_pool_holds_the_usable_faces_of_the_installed_photos():
    portraits = load_portraits()
    faces = pool_faces(portraits)
    # three faces of insightface's group photo pass (docs/cohort.md, "Frames"), each mirrored
    assert faces == ["insightface/t1.jpg#0", "insightface/t1.jpg#1", "insightface/t1.jpg#3"]
    assert len(portraits) == 6 and len(face_pool(portraits, 2)) == 4
