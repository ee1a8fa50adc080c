"""MSR-VTT adapter: ``videodatainfo.json``-style files (``videos`` + ``sentences``), and the task
lists JSFusion released for it when given.

The released MSR-VTT clips are already cut, so each clip is its whole file
(``<root>/<video_dir>/<video_id>.<ext>``); the JSON's start/end times refer to the YouTube source.
Task lists: ``retrieval_test`` = the 1k-A test pairs (``MSRVTT_JSFUSION_test.csv``: a CSV whose
header names ``video_id`` and ``sentence``); ``multiple_choice`` = MSR-VTT-MC
(``MSR_MC_test.csv``: tab-separated, header with ``video_id``, ``a1``..``a5`` and ``answer``,
0-based). Paths are relative to ``root``; errors name the file and line.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

import pandas as pd

from vlpipe.datasets.base import (
    N_CANDIDATES,
    AnnotationError,
    DatasetTables,
    answer_index,
    check_clip_table,
    clip_split,
    nonempty,
    normalise_split,
    read_json,
    read_records,
    safe_clip_id,
    task_table,
)

CANDIDATE_COLUMNS = [f"a{k}" for k in range(1, N_CANDIDATES + 1)]


def msrvtt_files(root: Path, options: dict) -> list[str]:
    """The annotation files the adapter reads with ``options``, relative to ``root`` (which
    the file names do not depend on)."""
    lists = [options.get(key) for key in ("retrieval_test", "multiple_choice")]
    return [*options["annotations"], *(name for name in lists if name)]


def _field(entry: object, key: str, where: str):
    if not isinstance(entry, dict):
        raise AnnotationError(f"{where}: expected an object with key {key!r}, got {entry!r:.60}")
    if key not in entry:
        raise AnnotationError(f"{where}: missing key {key!r} (it has {sorted(entry)})")
    return entry[key]


def _read_clips(root: Path, annotations: list[str], video_dir: str,
                video_ext: str) -> pd.DataFrame:
    rows: dict[str, dict] = {}
    sentences: dict[str, list[str]] = defaultdict(list)
    for name in annotations:
        path = root / name
        data = read_json(path)
        for i, video in enumerate(_field(data, "videos", str(path))):
            where = f"{path}: videos[{i}]"
            clip_id = safe_clip_id(_field(video, "video_id", where), "video_id", where)
            if clip_id in rows:
                raise AnnotationError(f"{where}: duplicate video_id {clip_id!r}")
            rows[clip_id] = {
                "clip_id": clip_id,
                "video_path": str(root / video_dir / f"{clip_id}{video_ext}"),
                "start": 0.0,
                "end": math.nan,
                "split": normalise_split(_field(video, "split", where), where),
            }
        for i, sentence in enumerate(data.get("sentences", [])):
            where = f"{path}: sentences[{i}]"
            caption = _field(sentence, "caption", where)
            if not isinstance(caption, str) or not caption.strip():
                raise AnnotationError(f"{where}: empty caption")
            sentences[str(_field(sentence, "video_id", where))].append(caption.strip())
    unknown = sorted(set(sentences) - set(rows))
    if unknown:
        raise AnnotationError(f"{annotations}: sentences for unknown video_id(s) {unknown[:5]}")
    missing = sorted(set(rows) - set(sentences))
    if missing:
        raise AnnotationError(f"{annotations}: no sentence for video_id(s) {missing[:5]}")
    clips = pd.DataFrame(list(rows.values()))
    clips["sentences"] = [sentences[c] for c in clips["clip_id"]]
    return check_clip_table(clips, str(annotations))


def _read_retrieval(path: Path, splits: dict[str, str]) -> pd.DataFrame:
    rows = []
    for where, row in read_records(path, ["video_id", "sentence"]):
        clip_split(row["video_id"], splits, where, expected="test")
        rows.append((row["video_id"], nonempty(row["sentence"], "sentence", where)))
    return task_table("retrieval", rows)


def _read_multiple_choice(path: Path, splits: dict[str, str]) -> pd.DataFrame:
    rows = []
    required = ["video_id", *CANDIDATE_COLUMNS, "answer"]
    for where, row in read_records(path, required, delimiter="\t", quoting=csv.QUOTE_NONE):
        split = clip_split(row["video_id"], splits, where)
        candidates = [nonempty(row[name], f"candidate {name}", where)
                      for name in CANDIDATE_COLUMNS]
        rows.append((row["video_id"], split, candidates, answer_index(row["answer"], 0, where)))
    return task_table("multiple_choice", rows)


def read_msrvtt(root: Path, annotations: list[str], video_dir: str = "videos",
                video_ext: str = ".mp4", retrieval_test: str | None = None,
                multiple_choice: str | None = None) -> DatasetTables:
    """Read MSR-VTT JSON annotation files and the released task lists (paths relative to
    ``root``)."""
    clips = _read_clips(root, annotations, video_dir, video_ext)
    splits = dict(zip(clips["clip_id"], clips["split"], strict=True))
    return DatasetTables(
        clips,
        retrieval=_read_retrieval(root / retrieval_test, splits) if retrieval_test else None,
        multiple_choice=(_read_multiple_choice(root / multiple_choice, splits)
                         if multiple_choice else None),
    )
