"""Who is who: the Fill-in the Characters task list (LSMDC 2019) with M-VAD Names-style ground
truth of tracks and mentions (CiSIN, thesis ch. 6), read from ``dataset.characters``:

```yaml
characters:
  fill_in: {train: <file>, val: <file>, test: <file>}   # LSMDC 2019 Fill-in the Characters
  tracks: <file>                                        # optional: person tracks (csv)
  mentions: <file>                                      # optional: who each mention is (csv)
```

Paths are relative to ``dataset.root``; errors name the file and line.

**Fill-in the Characters** (the challenge's layout, tab-separated, no header, as the LSMDC 2016
files): ``clip name``, four timestamps, the sentence with each character written ``SOMEONE``,
and the local character ids of its mentions in order, comma-separated (``PERSON1,PERSON2``;
``_`` when the sentence names none). Consecutive rows of a file form the sets of
``STORY_LENGTH`` (5) clips within which the ids are local; a file's rows must be a whole number
of sets, and the ids must match the sentence's ``SOMEONE`` count.

**Tracks** (``clip_id,track,character,time,x1,y1,x2,y2``, with a header): a box per sampled
frame of each person track of a clip, as fractions of the frame (x right, y down), ``time`` in
seconds from the clip's start; ``character`` names who the track is (a name unique within the
data set, as M-VAD Names' character names are; empty: nobody known). M-VAD Names ships face
tracks per clip in MATLAB files: convert them to this table (one row per box).

**Mentions** (``clip_id,mention,character,gender``, with a header): which character the k-th
``SOMEONE`` (0-based) of a clip's sentence is, and its gender (``female``/``male``, empty when
unknown): the grounding targets (a mention's track is the clip's track of its character) and
the attribute the gender head learns.

The task list (``TASK_COLUMNS["fill_in_characters"]``) has one row per set: its clips, their
sentences, per clip the mentions' local ids (0-based set-wide, by first mention), characters
and genders, and per clip its tracks (``track``, ``character``, ``times``, ``boxes``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pandas as pd

from vlpipe.datasets.base import (
    STORY_LENGTH,
    AnnotationError,
    clip_split,
    nonempty,
    read_records,
    read_rows,
    split_files,
    task_table,
)

TIMESTAMPS = 4
FILL_IN_COLUMNS = 1 + TIMESTAMPS + 2
MENTION = re.compile(r"\bSOMEONE\b")
LOCAL_ID = re.compile(r"PERSON(\d+)")
NO_MENTION = "_"
GENDERS = ("female", "male")
TRACK_COLUMNS = ("clip_id", "track", "character", "time", "x1", "y1", "x2", "y2")
MENTION_COLUMNS = ("clip_id", "mention", "character", "gender")


def character_files(settings: dict) -> list[str]:
    """The files (relative to the root) ``dataset.characters`` names."""
    return [*settings["fill_in"].values(),
            *(settings[key] for key in ("tracks", "mentions") if settings.get(key))]


def _local_ids(text: str, sentence: str, where: str) -> list[int]:
    """``PERSON1,PERSON2`` → [1, 2]; ``_`` → []; the count must be the sentence's mentions."""
    ids = [] if text == NO_MENTION else text.split(",")
    parsed = [LOCAL_ID.fullmatch(i.strip()) for i in ids]
    if not all(parsed):
        raise AnnotationError(f"{where}: character ids {text!r}: expected PERSON<k>,... or "
                              f"{NO_MENTION!r}")
    mentions = len(MENTION.findall(sentence))
    if len(parsed) != mentions:
        raise AnnotationError(f"{where}: {len(parsed)} character id(s) {text!r} for "
                              f"{mentions} SOMEONE in {sentence!r}")
    return [int(match.group(1)) for match in parsed]


def _read_sets(root: Path, files: dict[str, str], splits: dict[str, str]) -> list[dict]:
    """The sets of every Fill-in file: clips, sentences and set-local ids (0-based)."""
    sets = []
    for split, name in split_files(files, "characters.fill_in"):
        rows = [(where, fields) for where, fields in read_rows(root / name, FILL_IN_COLUMNS)]
        if len(rows) % STORY_LENGTH:
            raise AnnotationError(f"{root / name}: {len(rows)} rows, not sets of "
                                  f"{STORY_LENGTH} clips")
        for start in range(0, len(rows), STORY_LENGTH):
            members = rows[start : start + STORY_LENGTH]
            renumber: dict[int, int] = {}
            clip_ids, sentences, ids = [], [], []
            for where, fields in members:
                clip_split(fields[0], splits, where, expected=split)
                clip_ids.append(fields[0])
                sentences.append(nonempty(fields[-2], "sentence", where))
                ids.append([renumber.setdefault(k, len(renumber))
                            for k in _local_ids(fields[-1], fields[-2], where)])
            sets.append({"set_id": f"{clip_ids[0]}+{STORY_LENGTH}", "split": split,
                         "clip_ids": clip_ids, "sentences": sentences, "ids": ids})
    return sets


def _read_tracks(path: Path, clips: set[str]) -> dict[str, list[dict]]:
    """clip → its tracks ``{track, character, times (n,), boxes (n, 4)}`` in track order."""
    boxes: dict[tuple[str, int], list] = defaultdict(list)
    names: dict[tuple[str, int], str] = {}
    for where, row in read_records(path, TRACK_COLUMNS):
        if row["clip_id"] not in clips:
            raise AnnotationError(f"{where}: unknown clip {row['clip_id']!r}")
        try:
            key = (row["clip_id"], int(row["track"]))
            values = [float(row[c]) for c in ("time", "x1", "y1", "x2", "y2")]
        except ValueError:
            raise AnnotationError(f"{where}: track, time and box must be numbers") from None
        time, *box = values
        if not (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1) or time < 0:
            raise AnnotationError(f"{where}: box {box} must satisfy 0 <= x1 < x2 <= 1 and "
                                  f"0 <= y1 < y2 <= 1, time >= 0")
        if names.setdefault(key, row["character"]) != row["character"]:
            raise AnnotationError(f"{where}: track {key[1]} of {key[0]!r} is "
                                  f"{names[key]!r} above, {row['character']!r} here")
        boxes[key].append((time, box))
    tracks: dict[str, list[dict]] = defaultdict(list)
    for (clip_id, track), rows in sorted(boxes.items()):
        rows.sort(key=lambda r: r[0])
        tracks[clip_id].append({"track": track, "character": names[(clip_id, track)],
                                "times": [t for t, _ in rows],
                                "boxes": [v for _, box in rows for v in box]})  # (n · 4,)
    return tracks


def _read_mentions(path: Path, sentences: dict[str, str]) -> dict[str, dict[int, tuple]]:
    """clip → mention index → (character, gender)."""
    mentions: dict[str, dict[int, tuple]] = defaultdict(dict)
    for where, row in read_records(path, MENTION_COLUMNS):
        clip_id = row["clip_id"]
        if clip_id not in sentences:
            raise AnnotationError(f"{where}: clip {clip_id!r} is in no Fill-in set")
        count = len(MENTION.findall(sentences[clip_id]))
        try:
            k = int(row["mention"])
        except ValueError:
            k = -1
        if not 0 <= k < count:
            raise AnnotationError(f"{where}: mention {row['mention']!r}: the sentence of "
                                  f"{clip_id!r} has {count} SOMEONE")
        if row["gender"] not in (*GENDERS, ""):
            raise AnnotationError(f"{where}: gender {row['gender']!r}: {list(GENDERS)} or empty")
        mentions[clip_id][k] = (row["character"], row["gender"])
    return mentions


def _check_identities(item: dict, known: list[list[tuple]], mentions_file: str | None) -> None:
    """Within a set, one local id is one named character and one character one id."""
    pairs = {(i, name) for ids, clip in zip(item["ids"], known, strict=True)
             for i, (name, _) in zip(ids, clip, strict=True) if name}
    for side in (0, 1):
        seen: dict = {}
        for pair in sorted(pairs):
            other = seen.setdefault(pair[side], pair[1 - side])
            if other != pair[1 - side]:
                raise AnnotationError(f"{mentions_file}: in the set {item['set_id']!r} "
                                      f"{pair[side]!r} is both {other!r} and "
                                      f"{pair[1 - side]!r} (local ids 0-based)")


def read_characters(root: str | Path, settings: dict, clips: pd.DataFrame) -> pd.DataFrame:
    """The ``fill_in_characters`` task list of ``dataset.characters`` (see the module
    docstring) for the data set's clip table."""
    root = Path(root)
    splits = dict(zip(clips["clip_id"], clips["split"], strict=True))
    sets = _read_sets(root, settings["fill_in"], splits)
    sentences = {c: s for item in sets for c, s in zip(item["clip_ids"], item["sentences"],
                                                       strict=True)}
    tracks = (_read_tracks(root / settings["tracks"], set(splits)) if settings.get("tracks")
              else {})
    mentions = (_read_mentions(root / settings["mentions"], sentences)
                if settings.get("mentions") else {})
    rows = []
    for item in sets:
        known = [[mentions.get(c, {}).get(k, ("", "")) for k in range(len(ids))]
                 for c, ids in zip(item["clip_ids"], item["ids"], strict=True)]
        _check_identities(item, known, settings.get("mentions"))
        rows.append((item["set_id"], item["split"], item["clip_ids"], item["sentences"],
                     item["ids"], [[name for name, _ in clip] for clip in known],
                     [[gender for _, gender in clip] for clip in known],
                     [tracks.get(c, []) for c in item["clip_ids"]]))
    return task_table("fill_in_characters", rows)
