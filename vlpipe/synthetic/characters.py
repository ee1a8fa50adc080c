"""CiSIN's data from a world with a cast (``WorldConfig.cast``): who is who in every story.

Each story of 5 clips has its own background and ``cast`` characters (`scene.sample_cast`, from
the story's own random stream); every clip shows one or two of them. The world writes, under
``CHARACTERS_DIR``:

- the LSMDC 2019 Fill-in the Characters files (``FILL_IN_FILES``, one per split), laid out as
  the challenge's: ``clip name``, four timestamps, the sentence with every character written
  ``SOMEONE``, and the characters' local ids in mention order (``PERSON1,PERSON2``; ``_`` for a
  sentence without one), numbered by first mention within the clip's set of 5;
- M-VAD Names-style ground truth (`vlpipe.datasets.characters` documents both layouts):
  ``tracks.csv``, a box per frame of every character in view (the track is the character's
  object in the clip, boxes as fractions of the frame), and ``mentions.csv``, which character
  and gender each mention is.

The pictures stay those of the world's videos: the tracks are the boxes of what is drawn
(`render.object_state`: the shape's circumscribed square while it is visible). No detector is
run; the report says ``tracks: ground truth``. Each clip's sentence draws from its own stream.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from vlpipe.atomic import write_text
from vlpipe.datasets.base import STORY_LENGTH, normalise_split
from vlpipe.synthetic.render import EXTENT, frame_times, object_state
from vlpipe.synthetic.scene import Character, Scene, describe_characters, sample_cast
from vlpipe.synthetic.writer import lsmdc_time, write_tsv

CHARACTERS_DIR = "annotations/characters"
FILL_IN_FILES = {"train": "LSMDC19_characters_training.csv",
                 "val": "LSMDC19_characters_val.csv", "test": "LSMDC19_characters_test.csv"}
TRACKS_FILE, MENTIONS_FILE = "tracks.csv", "mentions.csv"


def character_settings() -> dict:
    """The ``dataset.characters`` settings that read a synthetic world's characters."""
    return {"fill_in": {split: f"{CHARACTERS_DIR}/{name}" for split, name in
                        FILL_IN_FILES.items()},
            "tracks": f"{CHARACTERS_DIR}/{TRACKS_FILE}",
            "mentions": f"{CHARACTERS_DIR}/{MENTIONS_FILE}"}


def story_cast(seed: int, story: int, count: int) -> tuple[str, tuple[Character, ...]]:
    """Story ``story``'s background and characters, from the story's own stream."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2, story)))
    return sample_cast(rng, count, story)


def _sentence_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3, index)))


def track_rows(clip_id: str, scene: Scene, members: Sequence[Character],
               fps: int) -> list[str]:
    """``tracks.csv`` rows of a clip: each object's box at every frame it is visible."""
    rows = []
    for track, (obj, member) in enumerate(zip(scene.objects, members, strict=True)):
        for t in frame_times(scene.duration, fps):
            state = object_state(obj, float(t))
            if state.opacity <= 0:
                continue
            reach = EXTENT[obj.shape] * state.radius
            x, y = state.centre
            box = np.clip([x - reach, y - reach, x + reach, y + reach], 0.0, 1.0)
            rows.append(f"{clip_id},{track},{member.name},{t:.3f},"
                        + ",".join(f"{v:.4f}" for v in box))
    return rows


def write_characters(root: Path, records: list[dict],
                     clip_characters: Callable[[int], tuple[Scene, tuple[Character, ...]]],
                     *, seed: int, duration_s: float, fps: int) -> None:
    """Write the Fill-in the Characters files, ``tracks.csv`` and ``mentions.csv`` of the
    world's clips (``records``: their scene records, in order, each story's ``STORY_LENGTH``
    clips together) from the world's ``seed``, clip duration and frame rate."""
    times = [lsmdc_time(0.0), lsmdc_time(duration_s)] * 2
    fill_in: dict[str, list[list[str]]] = {split: [] for split in FILL_IN_FILES}
    tracks = ["clip_id,track,character,time,x1,y1,x2,y2"]
    mentions = ["clip_id,mention,character,gender"]
    local: dict[str, str] = {}  # character → PERSONk within the current set
    for index, record in enumerate(records):
        if index % STORY_LENGTH == 0:
            local = {}
        clip_id = record["video_id"]
        scene, members = clip_characters(index)
        sentence, named = describe_characters(scene, members, _sentence_rng(seed, index))
        genders = {member.name: member.gender for member in members}
        for name in named:
            local.setdefault(name, f"PERSON{len(local) + 1}")
        ids = ",".join(local[name] for name in named) or "_"
        split = normalise_split(record["split"], clip_id)
        fill_in[split].append([clip_id, *times, sentence, ids])
        tracks += track_rows(clip_id, scene, members, fps)
        mentions += [f"{clip_id},{k},{name},{genders[name]}" for k, name in enumerate(named)]
    out = root / CHARACTERS_DIR
    for split, name in FILL_IN_FILES.items():
        write_tsv(out / name, fill_in[split])
    write_text(out / TRACKS_FILE, "\n".join(tracks) + "\n")
    write_text(out / MENTIONS_FILE, "\n".join(mentions) + "\n")
