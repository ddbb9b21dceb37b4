"""Dataset indexers: CANDOR folders or a user's table -> the cohort manifest.

The manifest (``results/cohort/manifest.parquet``) has one row per speaker-session video
and the columns :data:`MANIFEST_COLUMNS`. Every video the dataset names is *listed*: a video
that is missing, empty or unreadable gets a row with its ``status`` and a human ``reason``
instead of silently disappearing, so that the QC table can say why it was excluded.

Two kinds of problems are distinguished:

* per-video problems (a missing or corrupt file) become a row's ``status``/``reason``;
* whole-dataset problems stop the run with :class:`ManifestError`: the root or table does not
  exist, nothing at all can be indexed, a table lacks required columns, the same
  (session_id, speaker_id) pair occurs twice, or ids are unsafe as file-path components.

Ids (``session_id``, ``speaker_id``, ``partner_id``) are strings everywhere, verbatim:
CANDOR user ids such as ``"5e32..."`` or a user's ``"00123"``/``"NA"`` never pass through a
number. Text columns of the returned frames are ``object`` columns holding ``str`` or
``None`` (unknown), the same with every pandas version and after :func:`read_manifest`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import facedyn
from facedyn.face.probe import VIDEO_STATUSES, VideoInfo, probe_video
from facedyn.names import SAFE_ID, is_safe_id
from facedyn.runtime import available_cpus, provenance
from facedyn.tables import read_table, write_table

log = logging.getLogger(__name__)

#: The manifest's columns, in order: the contract in docs/pipeline.md, with ``partner_id``/``channel``
#: (None where unknown) and ``status``/``reason`` (why a listed video cannot be used).
MANIFEST_COLUMNS = [
    "session_id",
    "speaker_id",
    "video",
    "fps",
    "n_frames",
    "width",
    "height",
    "duration_s",
    "partner_id",
    "channel",
    "status",
    "reason",
    "cohort",
]
#: The ``cohort`` of the run's own dataset; the audit's control cohorts carry their names.
MAIN_COHORT = "main"
#: Every value the manifest's ``status`` column can take. ``unreadable_metadata``: a CANDOR
#: conversation whose participants are unknown (see :func:`index_candor`).
MANIFEST_STATUSES = (*VIDEO_STATUSES, "unreadable_metadata")
#: Columns a user's table must have (``dataset.kind: manifest``) and may have.
REQUIRED_TABLE_COLUMNS = ("speaker_id", "session_id", "video")
OPTIONAL_TABLE_COLUMNS = ("partner_id", "channel")
#: Ids become path components (``results/landmarks/{session}/{speaker}.parquet``) and
#: Snakemake wildcard values, so they are restricted to this pattern.
SAFE_ID_PATTERN = f"^{SAFE_ID}$"
#: Key of ``DataFrame.attrs`` where :func:`index_candor` lists conversations that gave no rows.
SKIPPED_ATTR = "facedyn_skipped"

_TEXT_COLUMNS = (
    "session_id",
    "speaker_id",
    "video",
    "partner_id",
    "channel",
    "status",
    "reason",
    "cohort",
)
_INT_COLUMNS = ("n_frames", "width", "height")
_FLOAT_COLUMNS = ("fps", "duration_s")
_KEY = ["session_id", "speaker_id"]
_MAX_LISTED = 20


class ManifestError(ValueError):
    """A whole-dataset problem that must stop the run (the message says what to fix)."""


# --------------------------------------------------------------------------- helpers


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def _text(value: Any) -> str | None:
    """A cell as ``str`` or None (missing); never converts through a number."""
    return None if _is_missing(value) else str(value)


def _listing(items: Sequence[str], limit: int = _MAX_LISTED) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... and {len(items) - limit} more" if len(items) > limit else "")


def _default_workers(workers: int | None) -> int:
    """``workers`` or, when None, up to 8 of the CPUs this process may run on."""
    if workers is None:
        return max(1, min(8, available_cpus()))
    return max(1, int(workers))


def _probe_many(paths: Sequence[Path | None], workers: int | None) -> list[VideoInfo]:
    """Probe videos (None: no path given) in order; threads overlap file-system latency."""
    real = [p for p in paths if p is not None]
    n = _default_workers(workers)
    log.info("probing %d videos with %d thread(s)", len(real), n)
    if n > 1 and len(real) > 1:
        with ThreadPoolExecutor(max_workers=n) as pool:
            infos = iter(list(pool.map(probe_video, real)))
    else:
        infos = iter([probe_video(p) for p in real])
    no_path = VideoInfo(
        status="missing", reason="no video path given for this row: fill it in or remove the row"
    )
    return [no_path if p is None else next(infos) for p in paths]


def _normalize(df: pd.DataFrame) -> pd.DataFrame:
    """Manifest columns in order, with fixed dtypes: text as object (str/None), ints, floats."""
    out = pd.DataFrame(index=df.index)
    for col in MANIFEST_COLUMNS:
        if col in _TEXT_COLUMNS:
            values = df[col] if col in df.columns else [None] * len(df)
            out[col] = pd.Series([_text(v) for v in values], index=df.index, dtype=object)
        elif col in _INT_COLUMNS:
            out[col] = pd.to_numeric(df[col]).astype("int64")
        else:
            out[col] = pd.to_numeric(df[col]).astype("float64")
    out["cohort"] = out["cohort"].where(out["cohort"].notna(), MAIN_COHORT)
    return out


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(_KEY, kind="mergesort", ignore_index=True)


def _check_duplicates(df: pd.DataFrame, where: Callable[[list[Any]], str] | None = None) -> None:
    """ManifestError naming every (session_id, speaker_id) pair that occurs more than once."""
    dup = df.duplicated(_KEY, keep=False)
    if not dup.any():
        return
    parts = []
    for (session, speaker), group in df[dup].groupby(_KEY, sort=True):
        extra = f" ({where(list(group.index))})" if where else ""
        parts.append(f"({session!r}, {speaker!r}) x{len(group)}{extra}")
    raise ManifestError(
        f"{len(parts)} duplicated (session_id, speaker_id) pair(s): {_listing(parts)}. "
        "Each speaker may have one video per session: remove the extra rows or give the "
        "sessions distinct ids."
    )


def validate_ids(df: pd.DataFrame, columns: Iterable[str] = ("session_id", "speaker_id")) -> None:
    """Raise :class:`ManifestError` unless every id in ``columns`` is safe as a path component.

    Ids must match :data:`SAFE_ID_PATTERN` (letters, digits, ``_ . -``; first character a
    letter or digit; no whitespace, no ``/``, not empty or missing) because they become
    ``results/landmarks/{session}/{speaker}.parquet`` and Snakemake wildcard values. Ids that
    differ only in letter case are accepted with a warning (they collide on case-insensitive
    file systems such as macOS's default).
    """
    problems = []
    for col in columns:
        if col not in df.columns:
            raise ManifestError(f"the manifest has no {col!r} column")
        bad = sorted(
            {
                "<missing>" if _is_missing(v) else repr(v)
                for v in df[col]
                if _is_missing(v) or not is_safe_id(v)
            }
        )
        if bad:
            problems.append(f"{col}: {_listing(bad)}")
        folded = Counter(v.casefold() for v in set(df[col]) if isinstance(v, str))
        clashes = sorted(k for k, n in folded.items() if n > 1)
        if clashes:
            log.warning(
                "%s values differ only in letter case (they collide on case-insensitive "
                "file systems): %s",
                col,
                _listing(clashes),
            )
    if problems:
        raise ManifestError(
            "unsafe ids (they become file-path components and Snakemake wildcards, so they must "
            f"match {SAFE_ID_PATTERN}): " + "; ".join(problems) + ". Rename them, or list the "
            "videos in a manifest table (dataset.kind: manifest) that maps them to safe ids."
        )


# --------------------------------------------------------------------------- CANDOR


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


def _finish(
    rows: list[dict[str, Any]], workers: int | None, where: Callable[[list[Any]], str] | None = None
) -> pd.DataFrame:
    """Validate ids and pairs (before the slow part), probe the videos, build the frame."""
    keys = pd.DataFrame([{k: r[k] for k in _KEY} for r in rows], columns=_KEY)
    validate_ids(keys)
    _check_duplicates(keys, where)
    infos = _probe_many([r["video"] for r in rows], workers)
    records = []
    for row, info in zip(rows, infos, strict=True):
        status, reason = info.status, info.reason
        note = row.get("note") or ""
        if row.get("status"):  # a problem of the dataset's description takes precedence
            status = row["status"]
            reason = note + (
                f"; the video itself is {info.status}: {info.reason}" if not info.ok else ""
            )
        elif note:
            reason = f"{reason}; {note}" if reason else note
        records.append(
            {
                **info.as_dict(),
                "session_id": row["session_id"],
                "speaker_id": row["speaker_id"],
                "video": None if row["video"] is None else str(row["video"]),
                "partner_id": row.get("partner_id"),
                "channel": row.get("channel"),
                "status": status,
                "reason": reason,
            }
        )
    frame = pd.DataFrame.from_records(records, columns=MANIFEST_COLUMNS)
    return _sorted(_normalize(frame))


def _status_counts(df: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(Counter(df["status"]).items())}


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
                    f"{_listing([str(d) for d in deeper], 3)}: point dataset.root there."
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
        raise ManifestError(f"nothing could be indexed under {root_path}: {_listing(listed, 5)}")
    df = _finish(rows, workers)
    df.attrs[SKIPPED_ATTR] = skipped
    log.info(
        "CANDOR %s: %d videos of %d conversations (%d skipped), %d speakers; status %s",
        root_path,
        len(df),
        len(convs),
        len(skipped),
        df["speaker_id"].nunique(),
        _status_counts(df),
    )
    return df


# --------------------------------------------------------------------------- user tables


def _read_parquet_table(path: Path) -> pd.DataFrame:
    table = pq.read_table(path)
    for name in (*REQUIRED_TABLE_COLUMNS, *OPTIONAL_TABLE_COLUMNS):
        if name not in table.column_names:
            continue
        typ = table.schema.field(name).type
        if pa.types.is_dictionary(typ):
            typ = typ.value_type
        if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_null(typ):
            continue
        if pa.types.is_integer(typ) and name != "video":
            log.info("%s: column %s is stored as %s; converting to strings", path, name, typ)
            continue
        raise ManifestError(
            f"column {name!r} of {path} is stored as {typ}, which may have lost "
            "the ids' original text (leading zeros, '1e5', ...): store it as "
            "strings"
        )
    columns = {}
    for name in table.column_names:
        values = table.column(name).to_pylist()  # python values: no float detour for strings
        columns[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns) if columns else pd.DataFrame(index=range(table.num_rows))


def _read_user_table(path: Path) -> pd.DataFrame:
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        try:
            return _read_parquet_table(path)
        except (pa.ArrowException, OSError) as exc:
            raise ManifestError(f"cannot read the Parquet table {path}: {exc}") from exc
    stem = name.removesuffix(".gz").removesuffix(".bz2").removesuffix(".xz").removesuffix(".zip")
    if not stem.endswith((".csv", ".tsv", ".txt")):
        raise ManifestError(f"{path}: unsupported table format; use .csv, .tsv or .parquet")
    try:
        return pd.read_csv(
            path,
            sep="\t" if stem.endswith(".tsv") else ",",
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            encoding="utf-8-sig",
        )
    except pd.errors.EmptyDataError as exc:
        raise ManifestError(
            f"the table {path} is empty: it needs a header with "
            f"{', '.join(REQUIRED_TABLE_COLUMNS)} and one row per video"
        ) from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise ManifestError(f"cannot read the table {path}: {exc}") from exc


def _table_rows(table: str | os.PathLike[str]) -> tuple[Path, list[dict[str, Any]]]:
    """The table's path and its rows (ids verbatim, video paths resolved, not probed)."""
    path = Path(os.path.abspath(Path(table).expanduser()))
    if not path.is_file():
        raise ManifestError(
            f"manifest table {path} does not exist: set dataset.table to a "
            "CSV or Parquet file with columns "
            f"{', '.join(REQUIRED_TABLE_COLUMNS)}"
        )
    df = _read_user_table(path)
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in REQUIRED_TABLE_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(
            f"the table {path} lacks required column(s) {', '.join(missing)} "
            f"(it has: {', '.join(df.columns) or 'none'}); required: "
            f"{', '.join(REQUIRED_TABLE_COLUMNS)}"
        )
    if df.empty:
        raise ManifestError(f"the table {path} has no rows: list one video per row")
    ignored = [c for c in df.columns if c not in (*REQUIRED_TABLE_COLUMNS, *OPTIONAL_TABLE_COLUMNS)]
    if ignored:
        log.info("%s: ignoring column(s) %s", path, ", ".join(ignored))
    df = df.reset_index(drop=True)
    rows = []
    for i in range(len(df)):
        video = _text(df.at[i, "video"])
        video_path = None
        if video is not None and video.strip():
            video_path = Path(video).expanduser()
            if not video_path.is_absolute():
                video_path = path.parent / video_path
            video_path = Path(os.path.abspath(video_path))
        row = {
            "session_id": _text(df.at[i, "session_id"]),
            "speaker_id": _text(df.at[i, "speaker_id"]),
            "video": video_path,
        }
        for col in OPTIONAL_TABLE_COLUMNS:
            value = _text(df.at[i, col]) if col in df.columns else None
            row[col] = value if value else None  # an empty cell means unknown
        rows.append(row)
    return path, rows


def _row_numbers(idx: list[Any]) -> str:
    return "rows " + ", ".join(str(i + 1) for i in idx)


def check_table(table: str | os.PathLike[str]) -> int:
    """Check a user's table without probing any video; return its number of rows.

    The whole-dataset checks of :func:`index_table` (the table exists and can be read, has
    the required columns and rows, safe ids, no repeated (session_id, speaker_id) pair), cheap
    enough to run while the workflow's DAG is built, so such a table stops the run before
    any job starts. Raises :class:`ManifestError` naming the problem and the fix.
    """
    _, rows = _table_rows(table)
    keys = pd.DataFrame([{k: r[k] for k in _KEY} for r in rows], columns=_KEY)
    validate_ids(keys)
    _check_duplicates(keys, _row_numbers)
    return len(rows)


def index_table(table: str | os.PathLike[str], *, workers: int | None = None) -> pd.DataFrame:
    """Index a user's CSV/TSV or Parquet table with one row per speaker-session video.

    Required columns: ``speaker_id, session_id, video``; optional ``partner_id, channel``;
    other columns are ignored. Every cell is read as text (CSV: no NA parsing), so ids like
    ``"NA"``, ``"nan"``, ``"1e5"`` or ``"00123"`` survive verbatim; in a Parquet table id
    columns must be strings (integers are converted; floats are refused because their
    original text may be lost). Empty ``partner_id``/``channel`` cells mean unknown (None).
    Relative video paths are resolved against the table's folder (``~`` is expanded); a
    row without a video path is listed with status ``"missing"``.

    Raises :class:`ManifestError` when the table does not exist or cannot be read, lacks a
    required column, has no rows, contains unsafe ids, or repeats a (session_id, speaker_id)
    pair (the message names the pairs and their 1-based data rows). Rows are sorted by
    (session_id, speaker_id).
    """
    path, rows = _table_rows(table)
    out = _finish(rows, workers, where=_row_numbers)
    log.info(
        "table %s: %d videos, %d sessions, %d speakers; status %s",
        path,
        len(out),
        out["session_id"].nunique(),
        out["speaker_id"].nunique(),
        _status_counts(out),
    )
    return out


# --------------------------------------------------------------------------- manifest file


def write_manifest(
    df: pd.DataFrame, path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write the manifest atomically with :func:`facedyn.tables.write_table`.

    ``df`` is checked (columns, safe and unique ids) and written with exactly
    :data:`MANIFEST_COLUMNS`, rows sorted by (session_id, speaker_id). The file metadata is
    ``metadata`` (e.g. ``dataset_kind``, ``root`` or ``table``) plus ``n_rows``,
    ``n_sessions``, ``n_speakers``, ``status_counts`` and ``facedyn_version``.
    """
    if "cohort" not in df.columns:
        df = df.assign(cohort=MAIN_COHORT)  # an indexed dataset: all of it is the run's own
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"cannot write a manifest without column(s) {', '.join(missing)}")
    df = _sorted(_normalize(df))
    validate_ids(df)
    _check_duplicates(df)
    meta = dict(metadata or {})
    meta.update(
        {
            "n_rows": len(df),
            "n_sessions": int(df["session_id"].nunique()),
            "n_speakers": int(df["speaker_id"].nunique()),
            "status_counts": _status_counts(df),
            "facedyn_version": facedyn.__version__,
        }
    )
    return write_table(df, path, meta)


def read_manifest(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a manifest written by :func:`write_manifest` (same columns and dtypes)."""
    df, _ = read_table(path)
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"{path} is not a manifest: it lacks {', '.join(missing)}")
    return _normalize(df)


def build_manifest(
    dataset_config: Mapping[str, Any],
    out_path: str | os.PathLike[str],
    synthetic_root: str | os.PathLike[str] | None = None,
    *,
    workers: int | None = None,
    config: Mapping[str, Any] | None = None,
    cohorts: Mapping[str, str | os.PathLike[str]] | None = None,
) -> pd.DataFrame:
    """Index the configured dataset, write the manifest to ``out_path`` and return it.

    ``dataset_config`` is the config's ``dataset`` mapping: ``kind: candor`` indexes
    ``root`` with :func:`index_candor`, ``kind: manifest`` indexes ``table`` with
    :func:`index_table`, ``kind: synthetic`` indexes ``synthetic_root`` (the generated cohort,
    written in CANDOR's layout) with :func:`index_candor`. ``workers`` threads probe videos.
    The metadata's ``provenance`` has the hash of the run's ``config`` and the fingerprint of
    what was indexed: the table (or the synthetic cohort's ``cohort.json``) and every video.
    Its rows have ``cohort`` :data:`MAIN_COHORT`; ``cohorts`` (name -> folder) adds the
    audit's generated control cohorts, indexed like a synthetic dataset, under their names.
    """
    kind = dataset_config.get("kind")

    def need(key: str) -> Any:
        value = dataset_config.get(key)
        if value in (None, ""):
            raise ManifestError(f"dataset.kind is {kind!r} but dataset.{key} is not set")
        return value

    if kind == "candor":
        root = need("root")
        df = index_candor(root, workers=workers)
        source = {"root": os.path.abspath(Path(root).expanduser())}
    elif kind == "manifest":
        table = need("table")
        df = index_table(table, workers=workers)
        source = {"table": os.path.abspath(Path(table).expanduser())}
    elif kind == "synthetic":
        if synthetic_root is None:
            raise ManifestError(
                "dataset.kind is 'synthetic' but no synthetic cohort folder was given"
            )
        df = index_candor(synthetic_root, workers=workers)
        source = {"root": os.path.abspath(synthetic_root)}
    else:
        raise ManifestError(f"unknown dataset.kind {kind!r}: use synthetic, candor or manifest")
    df = df.assign(cohort=MAIN_COHORT)
    extra = []
    for name, folder in (cohorts or {}).items():
        extra.append(index_candor(folder, workers=workers).assign(cohort=name))
        source.setdefault("cohorts", {})[name] = os.path.abspath(folder)
    if extra:
        df = pd.concat([df, *extra], ignore_index=True)
    indexed = [v for v in df["video"] if v is not None]
    if kind == "manifest":
        indexed.append(source["table"])
    elif kind == "synthetic" and (Path(source["root"]) / "cohort.json").is_file():
        indexed.append(str(Path(source["root"]) / "cohort.json"))
    meta = {
        "dataset_kind": kind,
        **source,
        "skipped_conversations": dict(df.attrs.get(SKIPPED_ATTR, {})),
        "provenance": provenance(config, inputs=indexed),
    }
    write_manifest(df, out_path, meta)
    counts = _status_counts(df)
    log.info(
        "manifest %s: %d videos (%s), %d sessions, %d speakers",
        out_path,
        len(df),
        ", ".join(f"{k} {v}" for k, v in counts.items()),
        df["session_id"].nunique(),
        df["speaker_id"].nunique(),
    )
    if counts.get("ok", 0) < len(df):
        log.warning(
            "%d of %d videos are not usable; see the manifest's status and reason columns",
            len(df) - counts.get("ok", 0),
            len(df),
        )
    return df
