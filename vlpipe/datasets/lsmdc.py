"""LSMDC adapter: the LSMDC 2016/2017 release files (tab-separated, no header, UTF-8, unquoted).

Every file starts with ``clip_name`` and four timestamps (start/end aligned, start/end
extracted), then:

- annotations (one file per split): the clip's sentence (one per clip);
- ``multiple_choice`` (per split): 5 candidate sentences and the 1-based answer index;
- ``fill_in_blank`` (per split): the sentence with the blank written ``_____``, the answer word;
- ``retrieval_test``: the 1,000-pair public-test list, laid out as the annotation files.

A clip name is ``<movie>_<start>-<end>`` (e.g. ``0001_American_Beauty_00.00.51.926-00.00.54.129``);
the clips are already cut, so each clip is its whole video file, found with ``video_pattern``
under ``<root>/<video_dir>``. Paths are relative to ``root``; errors name the file and line.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from vlpipe.datasets.base import (
    BLANK_MARKER,
    CLIP_COLUMNS,
    N_CANDIDATES,
    AnnotationError,
    DatasetTables,
    answer_index,
    check_clip_table,
    clip_split,
    nonempty,
    read_rows,
    safe_clip_id,
    split_files,
    task_table,
)
from vlpipe.datasets.task_lists import build_stories

TIMESTAMPS = 4  # columns between the clip name and the payload
ANNOTATION_COLUMNS = 1 + TIMESTAMPS + 1
MULTIPLE_CHOICE_COLUMNS = 1 + TIMESTAMPS + N_CANDIDATES + 1
FILL_IN_BLANK_COLUMNS = 1 + TIMESTAMPS + 2


def lsmdc_files(root: Path, options: dict) -> list[str]:
    """The annotation files the adapter reads with ``options``, relative to ``root`` (which
    the file names do not depend on)."""
    per_split = [options["annotations"], options.get("multiple_choice") or {},
                 options.get("fill_in_blank") or {}]
    names = [name for files in per_split for name in files.values()]
    return names + ([options["retrieval_test"]] if options.get("retrieval_test") else [])


def movie_of(clip_name: str) -> str:
    """The movie of a clip: its name without the trailing ``_<start>-<end>``."""
    return clip_name.rsplit("_", 1)[0]


def _read_clips(root: Path, annotations: dict[str, str], video_dir: str,
                video_pattern: str) -> pd.DataFrame:
    rows: dict[str, dict] = {}
    first_seen: dict[str, str] = {}
    for split, name in split_files(annotations, "annotations"):
        for where, fields in read_rows(root / name, ANNOTATION_COLUMNS):
            clip_id = safe_clip_id(fields[0], "clip name", where)
            if clip_id in rows:
                raise AnnotationError(f"{where}: clip {clip_id!r} again (first at "
                                      f"{first_seen[clip_id]}); LSMDC has one sentence per clip")
            first_seen[clip_id] = where
            video = video_pattern.format(movie=movie_of(clip_id), clip_id=clip_id)
            rows[clip_id] = {"clip_id": clip_id, "video_path": str(root / video_dir / video),
                             "start": 0.0, "end": math.nan, "split": split,
                             "sentences": [nonempty(fields[-1], "sentence", where)]}
    clips = pd.DataFrame(list(rows.values()), columns=CLIP_COLUMNS)
    return check_clip_table(clips, str(annotations))


def _read_retrieval(path: Path, splits: dict[str, str]) -> pd.DataFrame:
    rows = []
    for where, fields in read_rows(path, ANNOTATION_COLUMNS):
        clip_split(fields[0], splits, where, expected="test")
        rows.append((fields[0], nonempty(fields[-1], "sentence", where)))
    return task_table("retrieval", rows)


def _read_multiple_choice(root: Path, files: dict[str, str],
                          splits: dict[str, str]) -> pd.DataFrame:
    rows = []
    for split, name in split_files(files, "multiple_choice"):
        for where, fields in read_rows(root / name, MULTIPLE_CHOICE_COLUMNS):
            clip_split(fields[0], splits, where, expected=split)
            candidates = [nonempty(text, "candidate sentence", where)
                          for text in fields[1 + TIMESTAMPS:-1]]
            rows.append((fields[0], split, candidates, answer_index(fields[-1], 1, where)))
    return task_table("multiple_choice", rows)


def _read_fill_in_blank(root: Path, files: dict[str, str],
                        splits: dict[str, str]) -> pd.DataFrame:
    rows = []
    for split, name in split_files(files, "fill_in_blank"):
        for where, fields in read_rows(root / name, FILL_IN_BLANK_COLUMNS):
            clip_split(fields[0], splits, where, expected=split)
            sentence, answer = fields[-2], fields[-1]
            if sentence.count(BLANK_MARKER) != 1:
                raise AnnotationError(f"{where}: the sentence must hold the blank "
                                      f"{BLANK_MARKER!r} exactly once: {sentence!r}")
            if not answer or len(answer.split()) != 1:
                raise AnnotationError(f"{where}: the answer must be one word, got {answer!r}")
            rows.append((fields[0], split, sentence, answer.lower()))
    return task_table("fill_in_blank", rows)


def read_lsmdc(root: Path, annotations: dict[str, str], video_dir: str = "videos",
               video_pattern: str = "{movie}/{clip_id}.avi",
               multiple_choice: dict[str, str] | None = None,
               fill_in_blank: dict[str, str] | None = None,
               retrieval_test: str | None = None) -> DatasetTables:
    """Read the LSMDC annotation files (``{split: path}``) and the task lists given; the
    multi-sentence sets (LSMDC 2019) are 5 consecutive clips of one movie."""
    clips = _read_clips(root, annotations, video_dir, video_pattern)
    splits = dict(zip(clips["clip_id"], clips["split"], strict=True))
    return DatasetTables(
        clips,
        retrieval=_read_retrieval(root / retrieval_test, splits) if retrieval_test else None,
        multiple_choice=(_read_multiple_choice(root, multiple_choice, splits)
                         if multiple_choice else None),
        fill_in_blank=(_read_fill_in_blank(root, fill_in_blank, splits)
                       if fill_in_blank else None),
        storytelling=build_stories(clips, group=movie_of),
    )
