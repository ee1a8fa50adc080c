"""Shared pieces of the dataset adapters: the canonical tables and row-numbered errors."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

CLIP_COLUMNS = ["clip_id", "video_path", "start", "end", "split", "sentences"]
# Task lists (tables/tasks/<name>.parquet). Splits are train / val / test as in the clip table.
TASK_COLUMNS = {
    # the fixed retrieval test pairs (LSMDC's 1,000-pair list, MSR-VTT 1k-A)
    "retrieval": ["clip_id", "sentence"],
    # 5 candidate sentences, ``answer`` = 0-based index of the right one
    "multiple_choice": ["item_id", "clip_id", "split", "candidates", "answer"],
    # ``sentence`` holds BLANK_MARKER exactly once; ``answer`` is the blanked word
    "fill_in_blank": ["item_id", "clip_id", "split", "sentence", "answer"],
    # a story: ``clip_ids`` in order (STORY_LENGTH of them), one sentence of each
    "storytelling": ["set_id", "split", "clip_ids", "sentences"],
    # Fill in the Characters (`vlpipe.datasets.characters`): per clip of the set, its mentions'
    # set-local ids, characters and genders, and its tracks
    "fill_in_characters": ["set_id", "split", "clip_ids", "sentences", "ids", "characters",
                           "genders", "tracks"],
}
BLANK_MARKER = "_____"
N_CANDIDATES = 5  # multiple choice: the answer and 4 distractors
STORY_LENGTH = 5  # storytelling: clips per set (LSMDC 2019, VIST)


@dataclass
class DatasetTables:
    """What an adapter reads: the clip table and the task lists the data set ships (None =
    not given; the manifest step then builds it from the clips, see ``task_lists``)."""

    clips: pd.DataFrame
    retrieval: pd.DataFrame | None = None
    multiple_choice: pd.DataFrame | None = None
    fill_in_blank: pd.DataFrame | None = None
    storytelling: pd.DataFrame | None = None


SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val",
                 "validate": "val", "validation": "val", "test": "test", "public_test": "test"}


class AnnotationError(ValueError):
    """A malformed annotation: the message names the file and the row."""


_UNSAFE_IN_NAMES = re.compile(r"[/\\\x00-\x1f\x7f]")  # path separators, control characters


def safe_clip_id(value: object, what: str, where: str) -> str:
    """A clip id as written, which must be usable as a file name (videos are found by it): not
    blank, ``.`` or ``..``, without a path separator or control character."""
    clip_id = str(value)
    if not clip_id.strip() or clip_id in (".", "..") or _UNSAFE_IN_NAMES.search(clip_id):
        raise AnnotationError(f"{where}: {what} {clip_id!r} is not usable as a file name (blank, "
                              "'.', '..', or with '/', '\\' or a control character)")
    return clip_id


def read_json(path: Path) -> object:
    """A JSON annotation file (a UTF-8 byte-order mark allowed); a missing file, bad UTF-8 or
    bad JSON is an AnnotationError naming the file (and the line)."""
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise AnnotationError(f"{path}: annotation file not found") from None
    except UnicodeDecodeError:
        raise utf8_error(path) from None
    except json.JSONDecodeError as err:
        raise AnnotationError(f"{path}:{err.lineno}: not valid JSON ({err.msg} at column "
                              f"{err.colno})") from None


def utf8_error(path: Path) -> AnnotationError:
    """The error for a file that is not UTF-8, naming its first bad line and column."""
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as err:
            return AnnotationError(f"{path}:{number}: not valid UTF-8 (byte "
                                   f"{line[err.start]:#04x} at column {err.start + 1})")
    return AnnotationError(f"{path}: not valid UTF-8")


def normalise_split(value: object, where: str) -> str:
    split = SPLIT_ALIASES.get(str(value).strip().lower())
    if split is None:
        raise AnnotationError(f"{where}: unknown split {value!r}; expected one of "
                              f"{sorted(set(SPLIT_ALIASES))}")
    return split


def split_files(files: dict[str, str], option: str) -> list[tuple[str, str]]:
    """``(split, file)`` pairs of a per-split option, in train / val / test order whatever the
    option's key order (the workflow passes options with sorted keys)."""
    pairs = sorted(((normalise_split(key, f"option {option}"), name)
                    for key, name in files.items()), key=lambda pair: SPLITS.index(pair[0]))
    splits = [split for split, _ in pairs]
    if len(set(splits)) < len(splits):
        raise AnnotationError(f"option {option}: a split given twice: {sorted(files)}")
    return pairs


def video_files(root: Path, video_dir: str, video_extensions: Sequence[str]) -> list[Path]:
    """The videos directly in ``root / video_dir`` with one of the extensions (any case),
    sorted; a missing directory or none found is an error naming the directory."""
    folder = root / video_dir
    if not folder.is_dir():
        raise AnnotationError(f"{folder}: no such video directory")
    extensions = {"." + ext.lower().lstrip(".") for ext in video_extensions}
    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in extensions)
    if not videos:
        raise AnnotationError(f"{folder}: no videos with extension {list(video_extensions)}")
    return videos


def stable_position(name: str) -> float:
    """A name's fixed place in [0, 1) (a hash): splits by fractions of it move no other name
    when names are added."""
    return int(hashlib.sha256(name.encode()).hexdigest()[:12], 16) / 16**12


def check_clip_table(clips: pd.DataFrame, source: str, captioned: bool = True) -> pd.DataFrame:
    """Validate the canonical table an adapter built; errors name the source and clip. A data
    set without captions (``captioned=False``, e.g. eye-tracking data alone) has no sentences."""
    duplicated = clips["clip_id"][clips["clip_id"].duplicated()]
    if len(duplicated):
        raise AnnotationError(f"{source}: duplicate clip id(s) {sorted(set(duplicated))[:5]}")
    for row in clips.itertuples():
        if not row.start >= 0 or not (math.isnan(row.end) or row.end > row.start):
            raise AnnotationError(f"{source}: clip {row.clip_id!r} has start={row.start} "
                                  f"end={row.end}; need 0 <= start < end")
        if captioned and (not row.sentences or any(not s.strip() for s in row.sentences)):
            raise AnnotationError(f"{source}: clip {row.clip_id!r} has an empty sentence")
        if not captioned and len(row.sentences):
            raise AnnotationError(f"{source}: clip {row.clip_id!r} of an uncaptioned data set "
                                  "has sentences")
    return clips[CLIP_COLUMNS].reset_index(drop=True)


def _records(path: Path, delimiter: str, quoting: int) -> Iterator[tuple[str, list[str]]]:
    """``(<file>:<line>, fields)`` of each non-blank record of a UTF-8 delimited file (a byte
    order mark is dropped)."""
    line = 0
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            reader = csv.reader(file, delimiter=delimiter, quoting=quoting)
            for fields in reader:
                line = reader.line_num
                if fields:
                    yield f"{path}:{line}", fields
    except FileNotFoundError:
        raise AnnotationError(f"{path}: annotation file not found") from None
    except UnicodeDecodeError:
        raise utf8_error(path) from None
    except csv.Error as err:
        raise AnnotationError(f"{path}:{line + 1}: {err}") from None


def read_rows(path: Path, columns: int) -> Iterator[tuple[str, list[str]]]:
    """Rows of a header-less, unquoted, tab-separated file (the LSMDC release files), each with
    its ``<file>:<line>`` for error messages; a row without exactly ``columns`` fields is an
    error. Fields are stripped; blank lines are skipped."""
    for where, fields in _records(path, "\t", csv.QUOTE_NONE):
        if len(fields) != columns:
            raise AnnotationError(f"{where}: {len(fields)} columns; expected {columns}")
        yield where, [field.strip() for field in fields]


def read_records(path: Path, required: Sequence[str], delimiter: str = ",",
                 quoting: int = csv.QUOTE_MINIMAL) -> Iterator[tuple[str, dict[str, str]]]:
    """Rows of a delimited file with a header line, as ``(<file>:<line>, {column: field})``;
    the header must name every ``required`` column."""
    rows = _records(path, delimiter, quoting)
    where, header = next(rows, (f"{path}:1", []))
    header = [name.strip() for name in header]
    missing = [name for name in required if name not in header]
    if missing:
        raise AnnotationError(f"{where}: header lacks column(s) {missing} (expected "
                              f"{list(required)}, found {header})")
    for where, fields in rows:
        if len(fields) != len(header):
            raise AnnotationError(f"{where}: {len(fields)} columns; expected {len(header)}")
        yield where, {name: field.strip() for name, field in zip(header, fields, strict=True)}


def nonempty(text: str, what: str, where: str) -> str:
    """``text`` stripped; empty is an error."""
    if not text.strip():
        raise AnnotationError(f"{where}: empty {what}")
    return text.strip()


def clip_split(clip_id: str, splits: dict[str, str], where: str, expected: str | None = None
               ) -> str:
    """The split of a clip a task list names: it must be in the clip table (and in ``expected``
    when given)."""
    if clip_id not in splits:
        raise AnnotationError(f"{where}: unknown clip {clip_id!r} (not in the clip table)")
    if expected is not None and splits[clip_id] != expected:
        raise AnnotationError(f"{where}: clip {clip_id!r} is a {splits[clip_id]} clip, "
                              f"listed as {expected}")
    return splits[clip_id]


def answer_index(text: str, first: int, where: str) -> int:
    """A multiple-choice answer written ``first``-based, as a 0-based index."""
    try:
        answer = int(text) - first
    except ValueError:
        answer = -1
    if not 0 <= answer < N_CANDIDATES:
        raise AnnotationError(f"{where}: answer {text!r} is not one of "
                              f"{list(range(first, first + N_CANDIDATES))}")
    return answer


def item_ids(clip_ids: Iterable[str]) -> list[str]:
    """Item ids ``<clip_id>#<k>``: the k-th item of a clip within its list."""
    seen: Counter[str] = Counter()
    ids = []
    for clip_id in clip_ids:
        ids.append(f"{clip_id}#{seen[clip_id]}")
        seen[clip_id] += 1
    return ids


def task_table(name: str, rows: list[tuple]) -> pd.DataFrame:
    """A task list from rows without ``item_id`` (added here, where the list has one)."""
    columns = TASK_COLUMNS[name]
    if columns[0] != "item_id":
        return pd.DataFrame(rows, columns=columns)
    table = pd.DataFrame(rows, columns=columns[1:])
    table.insert(0, "item_id", item_ids(table["clip_id"]))
    if name == "multiple_choice":
        table["answer"] = table["answer"].astype("int64")
    return table
