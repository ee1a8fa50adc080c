"""Own videos with SubRip or WebVTT subtitles: one clip per cue, the cue's text its sentence.

This is the setting of Watch and Learn (ApartmenTour: long videos cut at subtitle timestamps
into short clips with noisy sentences). Layout under the data set's root:

    <video_dir>/<name>.<ext>          the videos (``video_extensions``)
    <subtitle_dir>/<name>.srt         their subtitles, SubRip ...
    <subtitle_dir>/<name>.vtt         ... or WebVTT, as YouTube's (``subtitle_dir`` defaults
                                      to video_dir; a video with both files is an error)

A clip ``<name>_<k>`` is the k-th cue of the video's subtitles (1-based, in file order): its
span is the cue's start and end, its sentence the cue's text with line breaks joined, markup
removed (tags such as ``<i>``, ``<c.colorE5E5E5>``, ``<v Speaker>``, WebVTT's inline timestamps
``<00:00:01.520>``, ASS blocks such as ``{\\an8}``; ruby text ``<rt>…</rt>`` with its tags)
and HTML entities (``&amp;``, ``&nbsp;``) decoded, the same in both formats. Cues whose text is
empty once cleaned, or whose duration lies outside [``min_duration``, ``max_duration``] seconds,
are left out and counted in the log.

Rolling captions (YouTube's automatic captions, as yt-dlp downloads them): each cue shows the
previous cue's last line again above its new words, and a ~10 ms cue between two of them shows
the finished line alone. Read as written, every sentence would be in two clips and every 10 ms
cue a clip of its own. So a cue's leading lines that repeat the previous cue's trailing lines
(the longest such run) are dropped: the sentence is the new text only, the span stays the cue's,
and a cue with nothing new is left out (counted as "repeated"). ``rolling: auto`` (the default)
does this in a file where most cues (more than half of those after the first) repeat lines of
their predecessor, as rolling captions do throughout and hand-made subtitles hardly ever, and
logs each file it takes for rolling; ``rolling: true`` / ``false`` does it in every file / none.

Splits are per video, so that no video's clips are on both sides of a split: ``splits`` is a
CSV file (columns ``video``, ``split``) or fractions ``{train: .8, val: .1, test: .1}``
applied to a stable hash of the video's name (adding a video moves no other). Subtitles are
parsed strictly (``srt``; ``webvtt-py``): errors name the file, and the line or cue.
"""

from __future__ import annotations

import bisect
import html
import itertools
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import srt
import webvtt
from webvtt.errors import MalformedCaptionError, MalformedFileError

from vlpipe.datasets.base import (
    SPLITS,
    AnnotationError,
    DatasetTables,
    check_clip_table,
    normalise_split,
    read_records,
    safe_clip_id,
    stable_position,
    utf8_error,
    video_files,
)

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")
SUBTITLE_EXTENSIONS = (".srt", ".vtt")
DEFAULT_SPLITS = {"train": 0.8, "val": 0.1, "test": 0.1}
# ruby text (an annotation of the text before it), HTML-style and WebVTT tags (inline
# timestamps <00:00:01.520> too), ASS override blocks
_MARKUP = re.compile(r"<rt>[^<]*</rt>|<[^>]*>|\{\\[^}]*\}")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # WebVTT's line terminators (webvtt-py splits on these)


@dataclass(frozen=True)
class _Cue:
    start: float  # seconds
    end: float
    stamp: str  # the start, for messages
    lines: tuple[str, ...]  # the text's lines, cleaned; blank ones dropped


def _clean_lines(text: str) -> tuple[str, ...]:
    """A cue text's lines without markup, entities decoded, spaces collapsed (both formats)."""
    text = html.unescape(_MARKUP.sub("", text))  # tags first: "&lt;i&gt;" is text, kept
    return tuple(" ".join(line.split()) for line in text.splitlines() if line.strip())


def _subtitles(root: Path, subtitle_dir: str, video: Path) -> str:
    """The video's subtitle file (root-relative): the one of ``<name>.srt``, ``<name>.vtt``."""
    found = [f"{subtitle_dir}/{video.stem}{ext}" for ext in SUBTITLE_EXTENSIONS
             if (root / subtitle_dir / f"{video.stem}{ext}").is_file()]
    if not found:
        raise AnnotationError(f"{root / subtitle_dir / video.stem}"
                              f"{' or '.join(SUBTITLE_EXTENSIONS)}: no subtitle file for video "
                              f"{video.stem!r}")
    if len(found) > 1:
        raise AnnotationError(f"{' and '.join(str(root / name) for name in found)}: two "
                              f"subtitle files for video {video.stem!r}; keep one")
    return found[0]


def subtitle_files(root: Path, options: dict) -> list[str]:
    """The annotation files the adapter reads: each video's subtitles (+ the splits file)."""
    video_dir = options.get("video_dir", "videos")
    subtitle_dir = options.get("subtitle_dir") or video_dir
    videos = video_files(root, video_dir, options.get("video_extensions", VIDEO_EXTENSIONS))
    splits = options.get("splits")
    return ([_subtitles(root, subtitle_dir, video) for video in videos]
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
        position = stable_position(name)
        return next((split for bound, split in bounds if position < bound), bounds[-1][1])

    return {name: split_of(name) for name in names}


def _srt_cues(path: Path, text: str) -> list[_Cue]:
    try:
        return [_Cue(cue.start.total_seconds(), cue.end.total_seconds(),
                     srt.timedelta_to_srt_timestamp(cue.start), _clean_lines(cue.content))
                for cue in srt.parse(text)]
    except srt.SRTParseError as error:
        line = text.count("\n", 0, error.expected_start) + 1
        raise AnnotationError(f"{path}:{line}: not a subtitle cue (index, 'HH:MM:SS,mmm --> "
                              f"HH:MM:SS,mmm', text): {error.unmatched_content[:60]!r}") from None


def _vtt_cues(path: Path, text: str) -> list[_Cue]:
    try:
        captions = webvtt.from_string(text, strict=True).captions
    except MalformedFileError:
        raise AnnotationError(f"{path}:1: not a WebVTT file (the first line must start with "
                              "'WEBVTT')") from None
    except MalformedCaptionError as error:
        raise AnnotationError(f"{path}:{_vtt_error_line(text)}: not a WebVTT cue (timings "
                              "'[HH:]MM:SS.mmm --> [HH:]MM:SS.mmm' [settings], text): "
                              f"{str(error)[:120]}") from None
    return [_Cue(caption.start_time.in_milliseconds() / 1000,
                 caption.end_time.in_milliseconds() / 1000, caption.start,
                 _clean_lines(caption.raw_text)) for caption in captions]


def _vtt_error_line(text: str) -> int:
    """The first line of the block the strict WebVTT parser fails on: the parser reads blocks
    (separated by empty lines) in order, so the first prefix of blocks that fails ends with it."""
    lines = _LINE_BREAK.split(text)
    starts = [i for i, line in enumerate(lines) if line and (i == 0 or not lines[i - 1])]
    ends = [*starts[1:], len(lines)]

    def fails(block: int) -> bool:
        try:
            webvtt.from_string("\n".join(lines[:ends[block]]), strict=True)
        except MalformedCaptionError:
            return True
        return False

    block = bisect.bisect_left(range(len(starts)), True, key=fails)
    return starts[min(block, len(starts) - 1)] + 1


def _cues(path: Path) -> list[_Cue]:
    """The cues of one subtitle file; malformed content is an error naming its line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise utf8_error(path) from None
    cues = (_vtt_cues if path.suffix == ".vtt" else _srt_cues)(path, text)
    if not cues:
        raise AnnotationError(f"{path}: no subtitle cues")
    return cues


def _repeated(previous: Sequence[str], lines: Sequence[str]) -> int:
    """How many of a cue's leading lines repeat the previous cue's trailing lines (most)."""
    return max((n for n in range(1, min(len(previous), len(lines)) + 1)
                if tuple(lines[:n]) == tuple(previous[-n:])), default=0)


def _new_lines(path: Path, cues: list[_Cue], rolling: bool | str) -> list[tuple[str, ...]]:
    """Each cue's lines, less those that repeat the previous cue's if the file is rolling."""
    repeats = [0, *(_repeated(a.lines, b.lines) for a, b in itertools.pairwise(cues))]
    if rolling == "auto":
        repeating = sum(n > 0 for n in repeats)
        rolling = repeating > (len(cues) - 1) / 2  # most cues after the first
        if rolling:
            log.info("%s: rolling captions (%d of %d cues repeat the previous one's lines): "
                     "sentences are the new lines only", path, repeating, len(cues))
    return [cue.lines[n if rolling else 0:] for cue, n in zip(cues, repeats, strict=True)]


def _left_out(lines: tuple[str, ...], new: tuple[str, ...], duration: float,
              min_duration: float, max_duration: float | None) -> str | None:
    """Why a cue is left out, or None to keep it."""
    if not lines:
        return "empty"
    if not new:
        return "repeated"
    if duration < min_duration:
        return "too short"
    if max_duration is not None and duration > max_duration:
        return "too long"
    return None


def read_subtitles(root: Path, video_dir: str = "videos", subtitle_dir: str | None = None,
                   video_extensions: Sequence[str] = VIDEO_EXTENSIONS,
                   splits: str | Mapping[str, float] = DEFAULT_SPLITS, min_duration: float = 0.0,
                   max_duration: float | None = None,
                   rolling: bool | str = "auto") -> DatasetTables:
    """The clip table of a folder of videos and their subtitles (see the module doc)."""
    if not (isinstance(rolling, bool) or rolling == "auto"):
        raise AnnotationError(f"dataset option rolling {rolling!r}: 'auto', true or false")
    videos = video_files(root, video_dir, video_extensions)
    video_split = _video_splits(root, [video.stem for video in videos], splits)
    rows = []
    left_out = {"empty": 0, "repeated": 0, "too short": 0, "too long": 0}
    for video in videos:
        path = root / _subtitles(root, subtitle_dir or video_dir, video)
        cues = _cues(path)
        for position, (cue, new) in enumerate(zip(cues, _new_lines(path, cues, rolling),
                                                  strict=True), start=1):
            where = f"{path}: cue {position} ({cue.stamp})"
            if cue.end <= cue.start:
                raise AnnotationError(f"{where}: ends at {cue.end:.3f} s, not after its start")
            reason = _left_out(cue.lines, new, cue.end - cue.start, min_duration, max_duration)
            if reason:
                left_out[reason] += 1
                continue
            clip_id = safe_clip_id(f"{video.stem}_{position:04d}", "clip id", where)
            rows.append({"clip_id": clip_id, "video_path": str(video), "start": cue.start,
                         "end": cue.end, "split": video_split[video.stem],
                         "sentences": [" ".join(new)]})
    if any(left_out.values()):
        log.info("%s: cues left out: %s (min_duration %s s, max_duration %s s)", root,
                 left_out, min_duration, max_duration)
    if not rows:
        raise AnnotationError(f"{root}: no usable subtitle cue (left out: {left_out})")
    return DatasetTables(check_clip_table(pd.DataFrame(rows), str(root)))
