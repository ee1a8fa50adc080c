"""VIST adapter: the SIS tier ("stories of images in sequence") of Visual Storytelling.

One JSON file per split (``sis/<split>.story-in-sequence.json``), whose ``annotations`` is a
list of one-element lists ``[{"story_id", "album_id", "photo_flickr_id",
"worker_arranged_photo_order", "text", ...}]``; the 5 annotations of a ``story_id`` (orders 0–4)
are one story. Photos lie at ``<root>/<video_dir>/<split>/<photo id>.<ext>`` (``IMAGE_EXTENSIONS``).

- Clips: one per photo of a story of the split: the photo file is the clip's "video", read from
  0 to its end. PyAV decodes a photo as a one-frame clip (one frame at t = 0, whatever the
  frame rate asked), so photos go through the same extractors as video clips. Its sentences
  are every story sentence written for it in that split (file order, duplicates removed). A
  photo in two splits is an error naming both files.
- Stories (the storytelling list, shipped): the 5 photos in ``worker_arranged_photo_order``
  and their sentences. The test split keeps one story per album, the first complete one in
  file order, as VIST's album-level evaluation does (AREL, Wang et al. 2018); train and val
  keep all. The clip table still has every complete test story's photos and sentences.
- The release lacks some photos: a story with a photo file missing is left out, logged once per
  file with the count and the first stories; a split left without stories is an error.

Paths are relative to ``root``; errors name the file and the annotation or story.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from vlpipe.datasets.base import (
    CLIP_COLUMNS,
    STORY_LENGTH,
    AnnotationError,
    DatasetTables,
    check_clip_table,
    read_json,
    safe_clip_id,
    split_files,
    task_table,
)

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif")  # in order of preference
REQUIRED_KEYS = ("story_id", "album_id", "photo_flickr_id", "worker_arranged_photo_order",
                 "text")
SHOWN = 5  # stories a warning names


@dataclass(frozen=True)
class Story:
    """One story as read: its album, and its photos and sentences in the workers' order."""

    story_id: str
    album_id: str
    photos: tuple[str, ...]
    sentences: tuple[str, ...]


def vist_files(root: Path, options: dict) -> list[str]:
    """The annotation files the adapter reads with ``options``, relative to ``root`` (which
    the file names do not depend on)."""
    return list(options["annotations"].values())


def _annotations(data: object, path: Path) -> Iterator[tuple[str, dict]]:
    """``(where, annotation)`` of each entry of ``annotations`` (a one-element list each)."""
    if not isinstance(data, dict) or "annotations" not in data:
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise AnnotationError(f"{path}: missing key 'annotations' (found {found})")
    if not isinstance(data["annotations"], list):
        raise AnnotationError(f"{path}: 'annotations' is not a list")
    for i, entry in enumerate(data["annotations"]):
        where = f"{path}: annotations[{i}]"
        if isinstance(entry, list) and len(entry) == 1:
            entry = entry[0]
        if not isinstance(entry, dict):
            raise AnnotationError(f"{where}: expected [{{...}}] (one annotation object), got "
                                  f"{entry!r:.60}")
        missing = [key for key in REQUIRED_KEYS if key not in entry]
        if missing:
            raise AnnotationError(f"{where}: missing key(s) {missing} (it has {sorted(entry)})")
        yield where, entry


def _read_stories(path: Path) -> list[Story]:
    """The file's stories in file order (of each story's first annotation), checked."""
    parts: dict[str, list[tuple[int, str, str, str]]] = {}
    for where, entry in _annotations(read_json(path), path):
        story_id = str(entry["story_id"])
        order = entry["worker_arranged_photo_order"]
        if isinstance(order, bool) or not isinstance(order, int):
            raise AnnotationError(f"{where}: worker_arranged_photo_order {order!r} of story "
                                  f"{story_id!r} is not an integer")
        text = entry["text"]
        if not isinstance(text, str) or not text.strip():
            raise AnnotationError(f"{where}: empty text (story {story_id!r})")
        photo = safe_clip_id(entry["photo_flickr_id"], "photo_flickr_id", where)
        parts.setdefault(story_id, []).append((order, photo, text.strip(),
                                               str(entry["album_id"])))
    stories = []
    for story_id, entries in parts.items():
        orders = sorted(order for order, *_ in entries)
        if orders != list(range(STORY_LENGTH)):
            raise AnnotationError(f"{path}: story {story_id!r} has photo orders {orders}; "
                                  f"expected each of 0..{STORY_LENGTH - 1} once "
                                  f"({STORY_LENGTH} sentences)")
        albums = sorted({album for *_, album in entries})
        if len(albums) > 1:
            raise AnnotationError(f"{path}: story {story_id!r} spans albums {albums}")
        entries.sort()
        stories.append(Story(story_id, albums[0], tuple(e[1] for e in entries),
                             tuple(e[2] for e in entries)))
    return stories


def _photo_files(folder: Path, source: Path) -> dict[str, Path]:
    """Photo id → its file in ``folder`` (an allowed extension, any case; the preferred one
    where a photo has several)."""
    if not folder.is_dir():
        raise AnnotationError(f"{folder}: no such image directory (for the photos of {source})")
    rank = {ext: k for k, ext in enumerate(IMAGE_EXTENSIONS)}
    found = sorted((rank[p.suffix.lower()], p.stem, p) for p in folder.iterdir()
                   if p.suffix.lower() in rank)
    files: dict[str, Path] = {}
    for _, stem, path in found:
        files.setdefault(stem, path)
    return files


def _complete(stories: list[Story], files: dict[str, Path], path: Path,
              folder: Path) -> list[Story]:
    """The stories whose 5 photo files exist; the others are logged, and none left is an
    error."""
    kept, dropped = [], []
    for story in stories:
        missing = [photo for photo in story.photos if photo not in files]
        (dropped if missing else kept).append((story, missing))
    if dropped:
        shown = ", ".join(f"story {story.story_id} (photo {', '.join(missing)})"
                          for story, missing in dropped[:SHOWN])
        log.warning("%s: %d of %d stories left out, a photo file missing under %s (no %s): %s%s",
                    path, len(dropped), len(stories), folder, "/".join(IMAGE_EXTENSIONS),
                    shown, ", …" if len(dropped) > SHOWN else "")
    if not kept:
        raise AnnotationError(f"{path}: no story left with all {STORY_LENGTH} photo files under "
                              f"{folder}")
    return [story for story, _ in kept]


def _one_per_album(stories: list[Story]) -> list[Story]:
    """The first story of each album (file order)."""
    first: dict[str, Story] = {}
    for story in stories:
        first.setdefault(story.album_id, story)
    return list(first.values())


def read_vist(root: Path, annotations: dict[str, str], video_dir: str = "images"
              ) -> DatasetTables:
    """Read VIST's SIS files (``{split: path}``, relative to ``root``) into the photo clips and
    the story list; photos under ``<root>/<video_dir>/<split>/``."""
    rows: dict[str, dict] = {}
    source: dict[str, Path] = {}  # photo id → the file that has it
    story_rows = []
    for split, name in split_files(annotations, "annotations"):
        path, folder = root / name, root / video_dir / split
        files = _photo_files(folder, path)
        stories = _complete(_read_stories(path), files, path, folder)
        for story in stories:
            for photo, sentence in zip(story.photos, story.sentences, strict=True):
                if source.setdefault(photo, path) != path:
                    raise AnnotationError(f"{path}: photo {photo!r} (story {story.story_id!r}) "
                                          f"is also in {source[photo]}; a photo belongs to one "
                                          "split")
                row = rows.setdefault(photo, {
                    "clip_id": photo, "video_path": str(files[photo]), "start": 0.0,
                    "end": math.nan, "split": split, "sentences": []})
                if sentence not in row["sentences"]:
                    row["sentences"].append(sentence)
        if split == "test":
            kept = _one_per_album(stories)
            log.info("%s: %d of %d test stories kept, one per album", path, len(kept),
                     len(stories))
            stories = kept
        story_rows += [(story.story_id, split, list(story.photos), list(story.sentences))
                       for story in stories]
    clips = pd.DataFrame(list(rows.values()), columns=CLIP_COLUMNS)
    return DatasetTables(check_clip_table(clips, str(annotations)),
                         storytelling=task_table("storytelling", story_rows))
