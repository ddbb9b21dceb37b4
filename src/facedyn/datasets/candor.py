"""The CANDOR indexer: a corpus of conversation folders -> manifest rows.

Every participant a conversation names is *listed*: a video that is missing, empty or
unreadable gets a row with its ``status`` and a human ``reason``, and a conversation whose
participants are unknown is listed as ``unreadable_metadata``
(:func:`index_candor` says how each is read).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from facedyn.datasets.records import ManifestError, listing, probe_rows, status_counts

log = logging.getLogger(__name__)

#: Key of ``DataFrame.attrs`` where :func:`index_candor` lists conversations that gave no rows.
SKIPPED_ATTR = "facedyn_skipped"


def _load_json(path: Path) -> tuple[Any, str]:
    """(parsed object, "") or (None, why not). Numbers stay text: ids never become floats."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return None, f"{path.name} is missing"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{path.name} cannot be read ({type(exc).__name__}: {exc})"
    try:
        return json.loads(text, parse_float=str, parse_int=str, parse_constant=str), ""
    except (ValueError, RecursionError) as exc:
        return None, f"{path.name} is not valid JSON ({exc})"


def _json_id(value: Any) -> str | None:
    """An id from JSON parsed by :func:`_load_json` (numbers arrive as their text)."""
    return value if isinstance(value, str) and value != "" else None


def _speakers_from_metadata(meta: Mapping[str, Any], session: str) -> list[tuple[str, str | None]]:
    entries = meta.get("speakers")
    if not isinstance(entries, list):
        return []
    speakers = []
    for entry in entries:
        uid = _json_id(entry.get("user_id")) if isinstance(entry, dict) else None
        if uid is None:
            log.warning(
                "%s: ignoring a speakers entry of metadata.json without a usable user_id: %r",
                session,
                entry,
            )
            continue
        speakers.append((uid, _json_id(entry.get("channel"))))
    return speakers


def _channel_map(conv: Path) -> tuple[list[tuple[str, str]], str]:
    """[(user_id, channel), ...] from processed/channel_map.json, or ([], why not)."""
    cmap, err = _load_json(conv / "processed" / "channel_map.json")
    if cmap is None:
        return [], err
    if not isinstance(cmap, dict):
        return [], "channel_map.json is not a JSON object"
    pairs = [(uid, str(ch)) for ch, uid in sorted(cmap.items()) if _json_id(uid) is not None]
    return pairs, "" if pairs else "channel_map.json names no user ids"


def _index_conversation(conv: Path) -> tuple[list[dict[str, Any]], str]:
    """Rows (without video info) of one conversation folder, or ([], why nothing is known).

    Row keys: session_id, speaker_id, video (Path), partner_id, channel, note, status.
    ``status`` is None (take the video's) or "unreadable_metadata".
    """
    session = conv.name
    processed = conv / "processed"
    meta, meta_err = _load_json(conv / "metadata.json")
    if meta is not None and not isinstance(meta, dict):
        meta, meta_err = None, "metadata.json is not a JSON object"
    combined = {session}
    speakers: list[tuple[str, str | None]] = []
    if meta is not None:
        meta_id = _json_id(meta.get("id"))
        if meta_id is not None and meta_id != session:
            log.warning(
                "%s: metadata.json says id %r; using the folder name %r as session_id",
                session,
                meta_id,
                session,
            )
            combined.add(meta_id)
        speakers = _speakers_from_metadata(meta, session)
        if not speakers:
            meta_err = "metadata.json lists no speakers"
    cmap, cmap_err = _channel_map(conv)
    note = ""
    if speakers:
        by_user = {uid: ch for uid, ch in cmap}
        filled = []
        for uid, ch in speakers:
            mapped = by_user.get(uid)
            if ch is not None and mapped is not None and ch != mapped:
                log.warning(
                    "%s: metadata.json puts %s on channel %s, channel_map.json on %s; "
                    "using metadata.json",
                    session,
                    uid,
                    ch,
                    mapped,
                )
            filled.append((uid, ch if ch is not None else mapped))
        speakers = filled
        unlisted = sorted(set(by_user) - {uid for uid, _ in speakers})
        if unlisted:
            log.warning(
                "%s: channel_map.json names %s, which metadata.json does not list; ignored",
                session,
                unlisted,
            )
    elif cmap:
        speakers = list(cmap)
        note = f"{meta_err}; participants taken from processed/channel_map.json"
        log.warning("%s: %s", session, note)
    else:
        videos = sorted(p for p in processed.glob("*.mp4") if p.stem not in combined)
        why = f"{meta_err} and processed/channel_map.json is unusable ({cmap_err})"
        if not videos:
            log.warning("%s: %s; no per-speaker videos either: nothing to list", session, why)
            return [], f"{why}; no per-speaker videos in processed/"
        note = (
            f"{why}: participants unknown, speaker id taken from the file name; "
            "re-download metadata.json or list the video in a manifest table"
        )
        log.warning("%s: %s", session, note)
        return [
            {
                "session_id": session,
                "speaker_id": p.stem,
                "video": p,
                "partner_id": None,
                "channel": None,
                "note": note,
                "status": "unreadable_metadata",
            }
            for p in videos
        ], ""

    ids = [uid for uid, _ in speakers]
    if len(set(ids)) != 2:
        log.warning(
            "%s: %d distinct participants listed (expected 2); partner_id left empty",
            session,
            len(set(ids)),
        )
    rows = []
    for uid, ch in speakers:
        others = sorted(set(ids) - {uid})
        rows.append(
            {
                "session_id": session,
                "speaker_id": uid,
                "video": processed / f"{uid}.mp4",
                "partner_id": others[0] if len(set(ids)) == 2 else None,
                "channel": ch,
                "note": note,
                "status": None,
            }
        )
    if processed.is_dir():
        for p in sorted(processed.glob("*.mp4")):
            if p.stem not in set(ids):
                log.debug(
                    "%s: ignoring %s (%s)",
                    session,
                    p.name,
                    "both participants side by side"
                    if p.stem in combined
                    else "not a listed participant",
                )
    return rows, ""


def index_candor(root: str | os.PathLike[str], *, workers: int | None = None) -> pd.DataFrame:
    """Index a CANDOR corpus: one manifest row per participant of every conversation.

    Conversation folders are the *direct* children of ``root`` (not hidden) that contain a
    ``metadata.json`` or a ``processed/`` folder; ``root`` is not searched deeper (the error
    for an empty root says where conversations were found one level down). Per conversation:

    * ``session_id`` is the folder name (if ``metadata.json``'s ``id`` differs, the folder
      name wins and a warning is logged);
    * participants come from ``metadata.json`` ``speakers: [{user_id, channel}]``; when
      ``metadata.json`` is unreadable or lists no speakers, from
      ``processed/channel_map.json`` (``{"L": id, "R": id}``) and the row's ``reason`` notes it;
      channels missing from ``metadata.json`` are filled in from the channel map;
    * each participant's video is ``processed/<user_id>.mp4``; the combined side-by-side
      ``processed/<conversation_id>.mp4`` and any other mp4 are ignored (debug log);
    * ``partner_id`` is the other participant (None unless exactly two are listed),
      ``channel`` is ``"L"``/``"R"`` (None where unknown);
    * a listed participant whose video is missing, empty or unreadable still gets a row, with
      the status and reason from :func:`~facedyn.face.probe.probe_video`.

    When neither ``metadata.json`` nor ``channel_map.json`` names the participants, every mp4
    in ``processed/`` except the combined one is listed with status ``"unreadable_metadata"``
    (speaker id from the file name, partner and channel unknown, video numbers still probed)
    so the problem is visible in the manifest and QC; a conversation without even such a
    video gives no row and is recorded in ``df.attrs[SKIPPED_ATTR]`` (``{session: reason}``)
    with a warning. :class:`ManifestError` is raised only when ``root`` is not a folder, holds
    no conversation folder, or nothing at all could be indexed, and for unsafe or duplicated
    ids. JSON numbers used as ids keep their original text. Rows are sorted by
    (session_id, speaker_id).
    """
    root_path = Path(os.path.abspath(Path(root).expanduser()))
    if not root_path.is_dir():
        raise ManifestError(
            f"CANDOR root {root_path} is not a folder: set dataset.root to the "
            "folder that holds the conversation folders"
        )
    convs = sorted(
        p
        for p in root_path.iterdir()
        if p.is_dir()
        and not p.name.startswith(".")
        and ((p / "metadata.json").is_file() or (p / "processed").is_dir())
    )
    if not convs:
        hint = ""
        if (root_path / "metadata.json").is_file():
            hint = (
                " It looks like a single conversation folder: point dataset.root at the "
                "folder that contains it."
            )
        else:
            deeper = sorted({p.parent.parent for p in root_path.glob("*/*/metadata.json")})
            if deeper:
                hint = (
                    " Conversation folders were found one level down, in "
                    f"{listing([str(d) for d in deeper], 3)}: point dataset.root there."
                )
        raise ManifestError(
            f"no conversation folders (<conversation_id>/metadata.json) directly "
            f"under {root_path}.{hint}"
        )
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for conv in convs:
        conv_rows, why = _index_conversation(conv)
        rows.extend(conv_rows)
        if not conv_rows:
            skipped[conv.name] = why
    if not rows:
        listed = [f"{k}: {v}" for k, v in skipped.items()]
        raise ManifestError(f"nothing could be indexed under {root_path}: {listing(listed, 5)}")
    df = probe_rows(rows, workers)
    df.attrs[SKIPPED_ATTR] = skipped
    log.info(
        "CANDOR %s: %d videos of %d conversations (%d skipped), %d speakers; status %s",
        root_path,
        len(df),
        len(convs),
        len(skipped),
        df["speaker_id"].nunique(),
        status_counts(df),
    )
    return df
