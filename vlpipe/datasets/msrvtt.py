"""MSR-VTT adapter: ``videodatainfo.json``-style files (``videos`` + ``sentences``).

The released MSR-VTT clips are already cut, so each clip is its whole file
(``<root>/<video_dir>/<video_id>.<ext>``); the JSON's start/end times refer to the YouTube source.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import pandas as pd

from vlpipe.datasets.base import AnnotationError, check_clip_table, normalise_split


def _field(entry: dict, key: str, where: str):
    if not isinstance(entry, dict) or key not in entry:
        raise AnnotationError(f"{where}: missing key {key!r}")
    return entry[key]


def read_msrvtt(root: Path, annotations: list[str], video_dir: str = "videos",
                video_ext: str = ".mp4") -> pd.DataFrame:
    """Read MSR-VTT JSON annotation files (paths relative to ``root``) into the clip table."""
    rows: dict[str, dict] = {}
    sentences: dict[str, list[str]] = defaultdict(list)
    for name in annotations:
        path = root / name
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise AnnotationError(f"{path}: annotation file not found") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise AnnotationError(f"{path}: not valid UTF-8 JSON ({err})") from None
        for i, video in enumerate(_field(data, "videos", str(path))):
            where = f"{path}: videos[{i}]"
            clip_id = str(_field(video, "video_id", where))
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
