"""Gaze adapter: raw eye-tracking samples in the layouts real data comes in → one canonical table.

Canonical table (``GAZE_COLUMNS``), one row per gaze sample kept: ``clip_id`` (str),
``subject`` (str), ``time`` (float, seconds from the clip start), ``x``, ``y`` (float,
fractions of the frame width and height, (0, 0) the top-left corner, in [0, 1]); rows sorted
by clip, subject and time.

Settings (the workflow's ``gaze`` config; ``check_gaze_settings``):

- ``layout``: ``"table"`` or ``"per_subject"`` (below);
- ``files`` (``table``): one file or a list of files; ``dir`` (``per_subject``): a directory;
  both relative to the data set's root;
- ``frame_size``: ``[width, height]`` of the coordinate frame the samples' pixels are in (the
  eye tracker's display area mapped to the video, e.g. the video's own size), or ``"video"``:
  each clip's own picture size, read from its video (Hollywood2's clips differ in size);
- ``fps`` (optional): frames per second of the ``frame`` column (``table`` only).

Layouts:

``table``
    One or more UTF-8 CSV files with a header line naming the columns ``clip_id``, ``subject``,
    ``x``, ``y`` and either ``time`` (seconds from the clip start) or ``frame`` (a 0-based
    frame index, time = frame / ``fps``; ``fps`` must be set), in any order, other columns
    ignored; ``time`` is used where a file has both. ``x``, ``y`` are pixels of the
    ``frame_size`` frame. This is how VAS's EyeLink 1000 Plus samples come once exported per
    fixation (one row per subject, clip and sample), and what the synthetic world writes
    (``vlpipe.synthetic.gaze``)::

        clip_id,subject,time,x,y
        video0,0,0.0000,33.61,57.12

``per_subject``
    A directory per subject, one whitespace-separated text file per clip:
    ``<dir>/<subject>/<clip_id>.txt`` (Hollywood2 EM's SMI iView X exports are per subject and
    clip). Each line is ``time_ms x y``: milliseconds from the clip start, pixel x and y of the
    ``frame_size`` frame. Blank lines and lines starting with ``#`` are skipped; only ``*.txt``
    files in the subject directories are read, anything else under ``<dir>`` is ignored::

        # subject 07, actioncliptest00001
        0 512.3 288.0
        4 nan nan

Samples that are not fixations are dropped and counted, never silently: a missing position
(``nan``, ``.`` as EyeLink writes it, or an empty field: blinks, lost tracking) and a
position outside the frame (x outside [0, width] or y outside [0, height]: off-screen looks,
the display's margin around the video). ``read_gaze`` returns the counts (``GazeReport``)
and logs a warning when it dropped any. Malformed input is an ``AnnotationError`` naming the
file and line: a value that is not a number, a missing column, a negative time, a frame index
that is not a whole number, an unknown clip (when a clip list is given), a line without
exactly three fields (``per_subject``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from vlpipe.datasets.base import (
    AnnotationError,
    nonempty,
    read_records,
    safe_clip_id,
    utf8_error,
)

log = logging.getLogger(__name__)

GAZE_COLUMNS = ["clip_id", "subject", "time", "x", "y"]
LAYOUTS = ("table", "per_subject")
SETTINGS = {"layout", "files", "dir", "frame_size", "fps"}
TABLE_COLUMNS = ["clip_id", "subject", "x", "y"]  # and ``time`` or ``frame``
MISSING = {"", ".", "nan"}  # a position not recorded (compared lower case)
PER_SUBJECT_SUFFIX = ".txt"
VIDEO_SIZE = "video"  # frame_size: each clip's own picture size


@dataclass
class GazeReport:
    """What ``read_gaze`` read: samples (data rows), kept, and dropped as ``missing`` (no
    position) or ``outside`` (outside the frame)."""

    samples: int = 0
    kept: int = 0
    missing: int = 0
    outside: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def check_gaze_settings(settings: dict) -> dict:
    """The settings checked and completed (``files`` as a list, ``fps`` None when not given);
    a problem is a ValueError naming the ``gaze.<key>``."""
    unknown = sorted(set(settings) - SETTINGS)
    if unknown:
        raise ValueError(f"gaze settings: unknown key(s) {unknown}; known: {sorted(SETTINGS)}")
    layout = settings.get("layout")
    if layout not in LAYOUTS:
        raise ValueError(f"gaze.layout must be one of {list(LAYOUTS)}, got {layout!r}")
    out = {"layout": layout, "fps": settings.get("fps")}
    if layout == "table":
        files = settings.get("files")
        files = [files] if isinstance(files, str) else list(files or [])
        if not files or not all(isinstance(f, str) and f for f in files):
            raise ValueError(f"gaze.files: the table layout needs one file or a list of files, "
                             f"got {settings.get('files')!r}")
        out["files"] = files
    else:
        if not isinstance(settings.get("dir"), str) or not settings["dir"]:
            raise ValueError(f"gaze.dir: the per_subject layout needs a directory, got "
                             f"{settings.get('dir')!r}")
        out["dir"] = settings["dir"]
    size = settings.get("frame_size")
    if size == VIDEO_SIZE:
        out["frame_size"] = VIDEO_SIZE
    elif (not isinstance(size, list | tuple) or len(size) != 2
            or not all(isinstance(v, int | float) and v > 0 for v in size)):
        raise ValueError(f"gaze.frame_size must be [width, height] (positive) or "
                         f"{VIDEO_SIZE!r}, got {size!r}")
    else:
        out["frame_size"] = [float(size[0]), float(size[1])]
    fps = out["fps"]
    if fps is not None and (not isinstance(fps, int | float) or not fps > 0):
        raise ValueError(f"gaze.fps must be a positive number, got {fps!r}")
    return out


def _subject_files(root: Path, directory: str) -> list[tuple[str, str, Path]]:
    """``(subject, clip file name, path)`` of every ``<dir>/<subject>/<clip_id>.txt``, sorted."""
    base = root / directory
    if not base.is_dir():
        raise AnnotationError(f"{base}: gaze directory not found")
    return [(subject.name, path.name, path)
            for subject in sorted(p for p in base.iterdir() if p.is_dir())
            for path in sorted(subject.iterdir())
            if path.is_file() and path.name.endswith(PER_SUBJECT_SUFFIX)]


def gaze_files(root: str | Path, settings: dict) -> list[str]:
    """The files (relative to ``root``) that ``read_gaze`` reads with ``settings``: the
    ``table`` layout's files as given, or every per-subject clip file found (so the directory
    must exist)."""
    settings = check_gaze_settings(settings)
    if settings["layout"] == "table":
        return list(settings["files"])
    return [f"{settings['dir']}/{subject}/{name}"
            for subject, name, _ in _subject_files(Path(root), settings["dir"])]


def _number(text: str, what: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise AnnotationError(f"{where}: {what} {text!r} is not a number") from None


def _time(value: float, text: str, where: str) -> float:
    if not math.isfinite(value) or value < 0:
        raise AnnotationError(f"{where}: time {text!r} must be a finite number >= 0")
    return value


def _position(text: str, what: str, where: str) -> float:
    """A pixel coordinate; NaN where the position is missing."""
    return math.nan if text.strip().lower() in MISSING else _number(text, what, where)


class _Collector:
    """Rows kept, with the counts of those dropped."""

    def __init__(self, frame_size: Callable[[str], tuple[float, float]],
                 clip_ids: Iterable[str] | None) -> None:
        self.frame_size = frame_size  # clip id → (width, height) of its samples' frame
        self.clips = None if clip_ids is None else set(clip_ids)
        self.report = GazeReport()
        self.rows: list[tuple[str, str, float, float, float]] = []

    def clip(self, clip_id: str, where: str) -> str:
        if self.clips is not None and clip_id not in self.clips:
            raise AnnotationError(f"{where}: unknown clip {clip_id!r} (not in the clip list)")
        return clip_id

    def add(self, clip_id: str, subject: str, time: float, x: float, y: float) -> None:
        self.report.samples += 1
        width, height = self.frame_size(clip_id)
        if math.isnan(x) or math.isnan(y):
            self.report.missing += 1
        elif not (0.0 <= x <= width and 0.0 <= y <= height):
            self.report.outside += 1
        else:
            self.report.kept += 1
            self.rows.append((clip_id, subject, time, x / width, y / height))


def _read_table(path: Path, fps: float | None, out: _Collector) -> None:
    time_column = None
    for where, row in read_records(path, TABLE_COLUMNS):
        if time_column is None:
            time_column = next((c for c in ("time", "frame") if c in row), None)
            if time_column is None:
                raise AnnotationError(f"{path}:1: header lacks a 'time' (seconds) or 'frame' "
                                      f"column (found {list(row)})")
            if time_column == "frame" and fps is None:
                raise AnnotationError(f"{path}:1: a 'frame' column needs gaze.fps")
        clip_id = out.clip(safe_clip_id(row["clip_id"], "clip id", where), where)
        subject = nonempty(row["subject"], "subject", where)
        text = row[time_column]
        if time_column == "time":
            time = _time(_number(text, "time", where), text, where)
        else:
            frame = _number(text, "frame", where)
            if not frame >= 0 or frame != int(frame):
                raise AnnotationError(f"{where}: frame {text!r} must be a whole number >= 0")
            time = frame / fps
        out.add(clip_id, subject, time, _position(row["x"], "x", where),
                _position(row["y"], "y", where))


def _lines(path: Path) -> Iterator[tuple[str, list[str]]]:
    """``(<file>:<line>, fields)`` of every line that is not blank or a ``#`` comment."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AnnotationError(f"{path}: gaze file not found") from None
    except UnicodeDecodeError:
        raise utf8_error(path) from None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield f"{path}:{number}", stripped.split()


def _read_subject_file(path: Path, subject: str, clip_id: str, out: _Collector) -> None:
    for where, fields in _lines(path):
        if len(fields) != 3:
            raise AnnotationError(f"{where}: {len(fields)} fields; expected 3 (time_ms x y)")
        millis = _number(fields[0], "time_ms", where)
        out.add(clip_id, subject, _time(millis, fields[0], where) / 1000.0,
                _position(fields[1], "x", where), _position(fields[2], "y", where))


def _video_size(sizes: Mapping[str, tuple[float, float]], clip_id: str) -> tuple[float, float]:
    if clip_id not in sizes:  # only without a clip list: with one, unknown clips fail first
        raise AnnotationError(f"gaze: no picture size for clip {clip_id!r} (frame_size "
                              "'video' reads each clip's video)")
    return sizes[clip_id]


def read_gaze(root: str | Path, settings: dict, clip_ids: Iterable[str] | None = None,
              video_sizes: Mapping[str, tuple[float, float]] | None = None
              ) -> tuple[pd.DataFrame, GazeReport]:
    """Read the gaze samples ``settings`` name (see the module docstring) into the canonical
    table; with ``clip_ids``, a sample of any other clip is an error. ``video_sizes`` (clip →
    (width, height)) are the clips' picture sizes, needed for ``frame_size: "video"``. Returns
    the table and the counts of the samples read, kept and dropped."""
    root = Path(root)
    settings = check_gaze_settings(settings)
    if settings["frame_size"] != VIDEO_SIZE:
        fixed = tuple(settings["frame_size"])
        out = _Collector(lambda clip_id: fixed, clip_ids)
    elif video_sizes is None:
        raise ValueError("gaze.frame_size 'video' needs the clips' picture sizes")
    else:
        out = _Collector(lambda clip_id: _video_size(video_sizes, clip_id), clip_ids)
    if settings["layout"] == "table":
        for name in settings["files"]:
            _read_table(root / name, settings["fps"], out)
    else:
        for subject, name, path in _subject_files(root, settings["dir"]):
            clip_id = safe_clip_id(name[: -len(PER_SUBJECT_SUFFIX)], "clip id", str(path))
            _read_subject_file(path, subject, out.clip(clip_id, str(path)), out)
    table = pd.DataFrame(out.rows, columns=GAZE_COLUMNS).astype(
        {"clip_id": object, "subject": object, "time": "float64", "x": "float64",
         "y": "float64"})
    table = table.sort_values(["clip_id", "subject", "time"], kind="stable", ignore_index=True)
    report = out.report
    if report.missing or report.outside:
        frame = ("its clip's video" if settings["frame_size"] == VIDEO_SIZE
                 else settings["frame_size"])
        log.warning("gaze: of %d samples, dropped %d without a position and %d outside the "
                    "frame (%s)", report.samples, report.missing, report.outside, frame)
    return table, report
