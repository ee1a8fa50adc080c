"""Own videos with SubRip subtitles: one clip per subtitle cue, the cue's text its sentence.

This is the setting of Watch and Learn (ApartmenTour: long videos cut at subtitle timestamps
into short clips with noisy sentences). Layout under the data set's root:

    <video_dir>/<name>.<ext>          the videos (``video_extensions``)
    <subtitle_dir>/<name>.srt         their subtitles (``subtitle_dir`` defaults to video_dir)

A clip ``<name>_<k>`` is the k-th cue of ``<name>.srt`` (1-based, in file order): its span is
the cue's start and end, its sentence the cue's text with line breaks joined and markup tags
(``<i>``, ``{\\an8}``) removed. Cues whose text is empty once cleaned, or whose duration lies
outside [``min_duration``, ``max_duration``] seconds, are left out and counted in the log.

Splits are per video, so that no video's clips are on both sides of a split: ``splits`` is a
CSV file (columns ``video``, ``split``) or fractions ``{train: .8, val: .1, test: .1}``
applied to a stable hash of the video's name (adding a video moves no other). Errors name the
file, and the line or cue.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import srt

from vlpipe.datasets.base import (
    SPLITS,
    AnnotationError,
    DatasetTables,
    check_clip_table,
    normalise_split,
    read_records,
    safe_clip_id,
    utf8_error,
)

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")
DEFAULT_SPLITS = {"train": 0.8, "val": 0.1, "test": 0.1}
_MARKUP = re.compile(r"<[^>]*>|\{\\[^}]*\}")  # HTML-style tags, ASS override blocks


def _videos(root: Path, video_dir: str, video_extensions: Sequence[str]) -> list[Path]:
    folder = root / video_dir
    if not folder.is_dir():
        raise AnnotationError(f"{folder}: no such video directory")
    extensions = {"." + ext.lower().lstrip(".") for ext in video_extensions}
    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in extensions)
    if not videos:
        raise AnnotationError(f"{folder}: no videos with extension {list(video_extensions)}")
    return videos


def subtitle_files(root: Path, options: dict) -> list[str]:
    """The annotation files the adapter reads: each video's subtitles (+ the splits file)."""
    video_dir = options.get("video_dir", "videos")
    subtitle_dir = options.get("subtitle_dir", video_dir)
    videos = _videos(root, video_dir, options.get("video_extensions", VIDEO_EXTENSIONS))
    splits = options.get("splits")
    return ([f"{subtitle_dir}/{video.stem}.srt" for video in videos]
            + ([splits] if isinstance(splits, str) else []))


def _video_splits(root: Path, names: list[str],
                  splits: str | Mapping[str, float]) -> dict[str, str]:
    """Each video's split: from the splits CSV, or by fractions of a stable hash."""
    if isinstance(splits, str):
        path = root / splits
        table = {row["video"]: normalise_split(row["split"], where)
                 for where, row in read_records(path, ["video", "split"])}
        missing = [name for name in names if name not in table]
        if missing:
            raise AnnotationError(f"{path}: no split for {len(missing)} video(s), e.g. "
                                  f"{missing[:5]}")
        return {name: table[name] for name in names}
    unknown = set(splits) - set(SPLITS)
    total = sum(splits.values())
    if unknown or any(v < 0 for v in splits.values()) or abs(total - 1) > 1e-6:
        raise AnnotationError(f"dataset option splits {splits}: fractions of {list(SPLITS)} "
                              "that sum to 1")
    bounds, cumulative = [], 0.0
    for split in SPLITS:
        cumulative += splits.get(split, 0.0)
        bounds.append((cumulative, split))

    def split_of(name: str) -> str:
        position = int(hashlib.sha256(name.encode()).hexdigest()[:12], 16) / 16**12  # [0, 1)
        return next((split for bound, split in bounds if position < bound), bounds[-1][1])

    return {name: split_of(name) for name in names}


def _cues(path: Path) -> list[srt.Subtitle]:
    """The cues of one SubRip file; malformed content is an error naming its line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AnnotationError(f"{path}: no subtitle file for video {path.stem!r}") from None
    except UnicodeDecodeError:
        raise utf8_error(path) from None
    try:
        cues = list(srt.parse(text))
    except srt.SRTParseError as error:
        line = text.count("\n", 0, error.expected_start) + 1
        raise AnnotationError(f"{path}:{line}: not a subtitle cue (index, 'HH:MM:SS,mmm --> "
                              f"HH:MM:SS,mmm', text): {error.unmatched_content[:60]!r}") from None
    if not cues:
        raise AnnotationError(f"{path}: no subtitle cues")
    return cues


def _left_out(sentence: str, duration: float, min_duration: float,
              max_duration: float | None) -> str | None:
    """Why a cue is left out, or None to keep it."""
    if not sentence:
        return "empty"
    if duration < min_duration:
        return "too short"
    if max_duration is not None and duration > max_duration:
        return "too long"
    return None


def read_subtitles(root: Path, video_dir: str = "videos", subtitle_dir: str | None = None,
                   video_extensions: Sequence[str] = VIDEO_EXTENSIONS,
                   splits: str | Mapping[str, float] = DEFAULT_SPLITS, min_duration: float = 0.0,
                   max_duration: float | None = None) -> DatasetTables:
    """The clip table of a folder of videos and their SubRip subtitles (see the module doc)."""
    videos = _videos(root, video_dir, video_extensions)
    video_split = _video_splits(root, [video.stem for video in videos], splits)
    rows, left_out = [], {"empty": 0, "too short": 0, "too long": 0}
    for video in videos:
        path = root / (subtitle_dir or video_dir) / f"{video.stem}.srt"
        for position, cue in enumerate(_cues(path), start=1):
            where = f"{path}: cue {position} ({srt.timedelta_to_srt_timestamp(cue.start)})"
            start, end = cue.start.total_seconds(), cue.end.total_seconds()
            if end <= start:
                raise AnnotationError(f"{where}: ends at {end:.3f} s, not after its start")
            sentence = " ".join(_MARKUP.sub("", cue.content).split())
            reason = _left_out(sentence, end - start, min_duration, max_duration)
            if reason:
                left_out[reason] += 1
                continue
            clip_id = safe_clip_id(f"{video.stem}_{position:04d}", "clip id", where)
            rows.append({"clip_id": clip_id, "video_path": str(video), "start": start,
                         "end": end, "split": video_split[video.stem], "sentences": [sentence]})
    if any(left_out.values()):
        log.info("%s: cues left out: %s (min_duration %s s, max_duration %s s)", root,
                 left_out, min_duration, max_duration)
    if not rows:
        raise AnnotationError(f"{root}: no usable subtitle cue (left out: {left_out})")
    return DatasetTables(check_clip_table(pd.DataFrame(rows), str(root)))
