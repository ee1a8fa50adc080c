"""Generate the synthetic world: clips, ground-truth scenes and annotations in three formats.

The same world is written as MSR-VTT (``annotations/videodatainfo.json``, every caption) and as
LSMDC 2016 (``annotations/lsmdc/``: one sentence per clip, the first caption, with the task
lists built as LSMDC's: multiple choice with distractors of another activity — the salient
object's action — fill in the blank, and the public-test retrieval list) and, with
``tour_clips`` > 0, as subtitled tours with known subtitle noise (``tours.py``; the subtitles
adapter's format); ``synthetic_dataset_options`` gives the adapter options that read each.
With ``gaze_subjects`` > 0 it also writes simulated viewers' gaze (``gaze.py``) as
``annotations/gaze/fixations.csv`` in the gaze adapter's ``table`` layout
(``synthetic_gaze_settings`` reads it); with ``salient_captions`` every caption describes only
the salient object and the background, so gaze tells what the caption is about. With
``hollywood2`` (and gaze) the clips and their gaze are written once more in Hollywood2 EM's
layout (``hollywood2.py``): clips named by split, pictures of several sizes, per-subject files.
With ``story_length`` > 0 consecutive clips form stories (clips ``k·L … k·L + L − 1``): a later
clip keeps its predecessor's background and, with probability ``CARRY_PROB``, its salient
object (``scene.sample_scene``), and its sentences say so (``scene.describe``'s ``follows``);
the storytelling list (`vlpipe.datasets.task_lists.build_stories`) finds them as consecutive
clips of one split. With ``cast`` > 0 (stories of 5) each story has that many recurring
characters, one or two in every clip, and the world is also written as CiSIN's data
(``characters.py``): LSMDC 2019 Fill-in the Characters files and M-VAD Names-style tracks and
mentions.

Clip ``i`` depends only on ``(seed, i)`` (in a story: and on the story's earlier clips), and
its scene, sentences and audio noise draw from separate random streams, so changing
``n_clips`` or ``sentences_per_clip`` leaves the other clips' pictures and sounds untouched;
the subtitle noise has a stream of its own too, and so has each clip's gaze.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vlpipe.atomic import write_json, write_text
from vlpipe.datasets import ADAPTERS
from vlpipe.datasets.base import STORY_LENGTH, normalise_split
from vlpipe.datasets.task_lists import (
    build_fill_in_blank,
    build_multiple_choice,
    build_retrieval_test,
)
from vlpipe.synthetic.characters import story_cast, write_characters
from vlpipe.synthetic.gaze import GAZE_FILE, fixations_csv, gaze_rng, sample_fixations
from vlpipe.synthetic.hollywood2 import (
    VIDEO_DIR,
    clip_names,
    hollywood2_gaze_files,
    hollywood2_gaze_settings,
    hollywood2_videos,
    write_hollywood2_clip,
    write_hollywood2_gaze,
)
from vlpipe.synthetic.render import render_audio, render_frames
from vlpipe.synthetic.scene import (
    ACTIONS,
    Character,
    Scene,
    describe_many,
    sample_cast_scene,
    sample_scene,
)
from vlpipe.synthetic.tours import (
    CUE_GAP_MS,
    GROUND_TRUTH,
    SPLITS_FILE,
    TOURS_DIR,
    Tour,
    plan_tours,
    tour_annotation_files,
    tour_cues,
    write_tour_annotations,
    write_tour_video,
)
from vlpipe.synthetic.writer import lsmdc_time, write_clip, write_tsv

SPLITS = ("train", "validate", "test")
CARRY_PROB = 0.6  # a story's later clip continues its predecessor's salient object
MAX_CAST = 5  # characters per story whose colours contrast (5 found in every one of 3,000 draws)
LSMDC_DIR = "annotations/lsmdc"
LSMDC_FILES = {  # adapter option → the release's file names
    "annotations": {"train": "LSMDC16_annos_training.csv", "val": "LSMDC16_annos_val.csv",
                    "test": "LSMDC16_annos_test.csv"},
    "multiple_choice": {"val": "LSMDC16_multiple_choice_valid.csv",
                        "test": "LSMDC16_multiple_choice_test.csv"},
    "fill_in_blank": {"train": "LSMDC16_FIB_training.csv", "val": "LSMDC16_FIB_val.csv",
                      "test": "LSMDC16_FIB_test.csv"},
    "retrieval_test": "LSMDC16_challenge_1000_publictest.csv",
}


def synthetic_dataset_options(format: str) -> dict:
    """The adapter options (``dataset.options``) that read a synthetic world in ``format``."""
    if format == "msrvtt":
        return {"annotations": ["annotations/videodatainfo.json"], "video_dir": "videos"}
    if format == "lsmdc":
        options = {key: ({split: f"{LSMDC_DIR}/{name}" for split, name in value.items()}
                         if isinstance(value, dict) else f"{LSMDC_DIR}/{value}")
                   for key, value in LSMDC_FILES.items()}
        return {**options, "video_dir": "videos", "video_pattern": "{clip_id}.mp4"}
    if format == "subtitles":  # every cue is kept: the adapter's default durations
        return {"video_dir": TOURS_DIR, "splits": SPLITS_FILE}
    if format == "hollywood2":  # its validation clips: the adapter's default val_fraction
        return {"video_dir": VIDEO_DIR}
    raise KeyError(f"the synthetic world is written as msrvtt, lsmdc, subtitles or "
                   f"hollywood2, not {format!r}")


def _salient_action(record: dict) -> str:
    return record["scene"]["objects"][0]["action"]["name"]


def salient_actions(root: str | Path) -> dict[str, str]:
    """Each clip's activity label, its salient object's action, from ``scenes.jsonl``; in a
    world with tours also each cue's clip's: the label of the clip it shows."""
    lines = (Path(root) / "annotations" / "scenes.jsonl").read_text().splitlines()
    actions = {record["video_id"]: _salient_action(record) for record in map(json.loads, lines)}
    tours = Path(root) / GROUND_TRUTH
    if tours.exists():
        cues = map(json.loads, tours.read_text().splitlines())
        actions |= {cue["clip_id"]: actions[f"video{cue['clip']}"] for cue in cues}
    return actions


@dataclass(frozen=True)
class WorldConfig:
    """Size and content of a synthetic world; the same config always gives the same files."""

    seed: int = 0
    n_clips: int = 600
    train_fraction: float = 0.7
    validate_fraction: float = 0.1
    test_fraction: float = 0.2
    duration_s: float = 2.0
    fps: int = 10
    size: int = 112  # square frames; even, as yuv420p requires
    sentences_per_clip: int = 2
    audio_rate: int = 16_000
    silent_fraction: float = 0.0  # clips written without an audio stream
    tour_clips: int = 0  # clips per subtitled tour video (tours.py); 0: no tours
    subtitle_noise: float = 0.3  # fraction of the training tours' cues that are noise
    gaze_subjects: int = 0  # simulated viewers per clip (gaze.py); 0: no gaze
    salient_captions: bool = False  # captions name only the salient object and the background
    hollywood2: bool = False  # also write Hollywood2 EM's layout (hollywood2.py); needs gaze
    story_length: int = 0  # consecutive clips per story; 0: every clip on its own
    cast: int = 0  # recurring characters per story (characters.py); 0: none

    def __post_init__(self) -> None:
        fractions = (self.train_fraction, self.validate_fraction, self.test_fraction)
        if min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
            raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
        if self.size <= 0 or self.size % 2:
            raise ValueError(f"size must be positive and even (yuv420p), got {self.size}")
        if not 0.0 <= self.silent_fraction <= 1.0:
            raise ValueError(f"silent_fraction must lie in [0, 1], got {self.silent_fraction}")
        if min(self.n_clips, self.fps, self.sentences_per_clip, self.audio_rate) < 1:
            raise ValueError("n_clips, fps, sentences_per_clip and audio_rate must be >= 1")
        if self.duration_s <= 0:
            raise ValueError(f"duration_s must be positive, got {self.duration_s}")
        if self.tour_clips < 0:
            raise ValueError(f"tour_clips must be >= 0 (0: no tours), got {self.tour_clips}")
        if not 0.0 <= self.subtitle_noise <= 1.0:
            raise ValueError(f"subtitle_noise must lie in [0, 1], got {self.subtitle_noise}")
        if self.gaze_subjects < 0:
            raise ValueError(f"gaze_subjects must be >= 0 (0: no gaze), got "
                             f"{self.gaze_subjects}")
        if self.hollywood2 and not self.gaze_subjects:
            raise ValueError("hollywood2 writes the world as a gaze data set: set gaze_subjects")
        if self.story_length < 0:
            raise ValueError(f"story_length must be >= 0 (0: no stories), got "
                             f"{self.story_length}")
        uneven = {split: size for split, size in self.split_sizes().items()
                  if self.story_length and size % self.story_length}
        if uneven:
            raise ValueError(f"story_length {self.story_length}: each split must hold whole "
                             f"stories; split sizes {uneven} are not multiples of it")
        if not 0 <= self.cast <= MAX_CAST:
            raise ValueError(f"cast {self.cast}: 0 to {MAX_CAST} characters per story (their "
                             "colours differ, in contrast to each other and the background)")
        if self.cast and self.story_length != STORY_LENGTH:
            raise ValueError(f"cast {self.cast}: characters recur within stories of "
                             f"{STORY_LENGTH} clips (LSMDC 2019's sets); set story_length: "
                             f"{STORY_LENGTH} (or cast: 0), got story_length {self.story_length}")
        if self.tour_clips:
            self._check_tour_timing()

    def _check_tour_timing(self) -> None:
        """Clips laid end to end keep their times: whole frames and samples, room for a cue."""
        for name, rate in (("fps", self.fps), ("audio_rate", self.audio_rate)):
            if abs(self.duration_s * rate - round(self.duration_s * rate)) > 1e-6:
                raise ValueError(f"tours need a whole number of frames and audio samples per "
                                 f"clip; duration_s × {name} = {self.duration_s * rate}")
        if self.duration_s * 1000 < 2 * CUE_GAP_MS:
            raise ValueError(f"tours need clips of at least {2 * CUE_GAP_MS / 1000} s (cues end "
                             f"{CUE_GAP_MS / 1000} s early), got duration_s={self.duration_s}")

    def split_sizes(self) -> dict[str, int]:
        """Clips per split; train and validate are rounded, test takes the rest."""
        train = round(self.n_clips * self.train_fraction)
        validate = round(self.n_clips * self.validate_fraction)
        return {"train": train, "validate": validate, "test": self.n_clips - train - validate}

    def splits(self) -> list[str]:
        """The split of each clip: contiguous blocks in train, validate, test order (as MSR-VTT)."""
        return [name for name, count in self.split_sizes().items() for _ in range(count)]

    def silent_clips(self) -> set[int]:
        """Indices of the clips written without audio: a seeded ``silent_fraction`` of them."""
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(1,)))
        count = round(self.n_clips * self.silent_fraction)
        return {int(i) for i in rng.permutation(self.n_clips)[:count]}

    def hollywood2_names(self) -> list[str]:
        """Each clip's name in the Hollywood2 layout (``hollywood2.clip_names``)."""
        return clip_names(self.splits())

    def tours(self) -> list[Tour]:
        """The subtitled tour videos (none when ``tour_clips`` is 0)."""
        return plan_tours(self.split_sizes(), self.tour_clips) if self.tour_clips else []

    def info(self) -> dict:
        """The settings recorded in ``videodatainfo.json``; the tour, gaze, caption and
        Hollywood2 settings only where they change the world (a world without them is byte for
        byte as before they existed)."""
        settings = asdict(self)
        if not self.tour_clips:
            del settings["tour_clips"], settings["subtitle_noise"]
        if not self.gaze_subjects:
            del settings["gaze_subjects"]
        if not self.salient_captions:
            del settings["salient_captions"]
        if not self.hollywood2:
            del settings["hollywood2"]
        if not self.story_length:
            del settings["story_length"]
        if not self.cast:
            del settings["cast"]
        return settings


def _check_written(format: str, config: WorldConfig) -> None:
    """The world ``config`` describes is written in ``format``: the tours and the Hollywood2
    layout only where their settings ask for them."""
    if format == "subtitles" and not config.tour_clips:
        raise ValueError("the synthetic world has no subtitled tours to read as format "
                         "'subtitles': set dataset.synthetic.tour_clips")
    if format == "hollywood2" and not config.hollywood2:
        raise ValueError("the synthetic world is not written in Hollywood2's layout: set "
                         "dataset.synthetic.hollywood2 (with gaze_subjects)")


def synthetic_annotation_files(format: str, config: WorldConfig) -> list[str]:
    """The annotation files (root-relative) the ``format`` adapter reads in the world ``config``
    writes, with ``synthetic_dataset_options(format)``; known before the world exists. A
    format the world is not written in is a ``ValueError`` naming the setting to change."""
    _check_written(format, config)
    if format == "subtitles":
        return tour_annotation_files(config.tours())
    options = synthetic_dataset_options(format)
    return ADAPTERS[format].files(Path(), options)


def synthetic_gaze_files(config: WorldConfig, format: str) -> list[str]:
    """The gaze files (root-relative) that the world ``config`` writes for a data set read as
    ``format`` (none without gaze); known before the world exists."""
    if not config.gaze_subjects:
        return []
    if format == "hollywood2":
        return hollywood2_gaze_files(config.hollywood2_names(), config.gaze_subjects)
    return [GAZE_FILE]


def synthetic_gaze_settings(config: WorldConfig, format: str) -> dict:
    """The gaze adapter's settings (``vlpipe.datasets.gaze``) that read the world's gaze for a
    data set read as ``format``: Hollywood2's per-subject files, else the table."""
    if format == "hollywood2":
        return hollywood2_gaze_settings()
    return {"layout": "table", "files": [GAZE_FILE], "frame_size": [config.size, config.size]}


def synthetic_videos(config: WorldConfig) -> list[str]:
    """Every video (root-relative) the world ``config`` writes: the clips, the tours, then the
    Hollywood2 layout's clips."""
    return [*(f"videos/video{i}.mp4" for i in range(config.n_clips)),
            *(f"{TOURS_DIR}/{tour.name}.mp4" for tour in config.tours()),
            *(hollywood2_videos(config.hollywood2_names()) if config.hollywood2 else [])]


def _clip_rngs(seed: int, index: int) -> list[np.random.Generator]:
    """Independent generators for clip ``index``: scene, sentences, audio noise."""
    clip = np.random.SeedSequence(seed, spawn_key=(0, index))
    return [np.random.default_rng(child) for child in clip.spawn(3)]


def clip_scene(config: WorldConfig, index: int) -> tuple[Scene, bool | None]:
    """Clip ``index``'s scene, drawn from its scene stream, and whether its salient object
    follows the previous clip's (None: the first clip of a story, or no stories); with a cast,
    whether its salient character was in the previous clip."""
    if config.cast:
        scene, members = clip_characters(config, index)
        if index % config.story_length == 0:
            return scene, None
        return scene, members[0] in clip_characters(config, index - 1)[1]
    scene_rng = _clip_rngs(config.seed, index)[0]
    if not config.story_length or index % config.story_length == 0:
        return sample_scene(scene_rng, config.duration_s), None
    previous, _ = clip_scene(config, index - 1)
    follows = bool(scene_rng.random() < CARRY_PROB)
    return sample_scene(scene_rng, config.duration_s, background=previous.background,
                        carry=previous.objects[0] if follows else None), follows


def clip_characters(config: WorldConfig, index: int) -> tuple[Scene, tuple[Character, ...]]:
    """Clip ``index``'s scene in a world with a cast, and which of its story's characters its
    objects are (`vlpipe.synthetic.scene.sample_cast_scene`)."""
    background, cast = story_cast(config.seed, index // config.story_length, config.cast)
    return sample_cast_scene(_clip_rngs(config.seed, index)[0], config.duration_s, background,
                             cast)


def _make_clip(config: WorldConfig, index: int, split: str, silent: bool,
               video_path: Path) -> tuple[dict, np.ndarray, np.ndarray | None]:
    """Render and write clip ``index``; return its scene record for ``scenes.jsonl``, its
    frames and its waveform (None when silent)."""
    _, text_rng, audio_rng = _clip_rngs(config.seed, index)
    scene, follows = clip_scene(config, index)
    captions = describe_many(scene, text_rng, config.sentences_per_clip,
                             salient_only=config.salient_captions, follows=follows)
    waveform = None if silent else render_audio(scene, config.audio_rate, audio_rng)
    frames = render_frames(scene, config.fps, config.size)
    write_clip(video_path, frames, config.fps, waveform, config.audio_rate)
    record = {"video_id": f"video{index}", "id": index, "split": split, "has_audio": not silent,
              "fps": config.fps, "size": config.size, "category": ACTIONS.index(
                  scene.objects[0].action.name), "captions": captions, "scene": scene.to_dict()}
    if config.story_length:
        record |= {"story": index // config.story_length, "follows": follows}
    if config.cast:
        record["characters"] = [member.name for member in clip_characters(config, index)[1]]
    return record, frames, waveform


def _write_videos(root: Path, config: WorldConfig, tours: list[Tour]) -> list[dict]:
    """Write every clip, and each tour as soon as its last clip is rendered (a tour's frames
    are held in memory until then); return the clips' scene records."""
    silent = config.silent_clips()
    ending = {tour.clips[-1]: tour for tour in tours}
    names = config.hollywood2_names()
    records, pending = [], []
    for i, split in enumerate(config.splits()):
        record, frames, waveform = _make_clip(config, i, split, i in silent,
                                              root / "videos" / f"video{i}.mp4")
        records.append(record)
        if config.hollywood2:
            write_hollywood2_clip(root, i, names[i], frames, config.fps, waveform,
                                  config.audio_rate)
        if tours:
            pending.append((frames, waveform))
        if i in ending:
            write_tour_video(root / TOURS_DIR / f"{ending[i].name}.mp4", pending, config.fps,
                             config.audio_rate)
            pending = []
    return records


def _write_lsmdc(root: Path, records: list[dict], config: WorldConfig) -> None:
    """The world in the LSMDC 2016 release format (``LSMDC_FILES`` under ``LSMDC_DIR``)."""
    clips = pd.DataFrame({
        "clip_id": [r["video_id"] for r in records],
        "split": [normalise_split(r["split"], r["video_id"]) for r in records],
        "sentences": [r["captions"][:1] for r in records]})
    times = [lsmdc_time(0.0), lsmdc_time(config.duration_s)] * 2
    activity = {r["video_id"]: _salient_action(r) for r in records}
    choice = build_multiple_choice(clips, "lsmdc", config.seed, activity)
    blank = build_fill_in_blank(clips, config.seed)
    retrieval = build_retrieval_test(clips, 1000, config.seed)
    rows = {  # option → (split, fields) of each row
        "annotations": [(r.split, [r.clip_id, *times, r.sentences[0]])
                        for r in clips.itertuples()],
        "multiple_choice": [(r.split, [r.clip_id, *times, *r.candidates, str(r.answer + 1)])
                            for r in choice.itertuples()],
        "fill_in_blank": [(r.split, [r.clip_id, *times, r.sentence, r.answer])
                          for r in blank.itertuples()],
    }
    out = root / LSMDC_DIR
    for option, split_rows in rows.items():
        for split, name in LSMDC_FILES[option].items():
            write_tsv(out / name, [fields for where, fields in split_rows if where == split])
    write_tsv(out / LSMDC_FILES["retrieval_test"],
               [[r.clip_id, *times, r.sentence] for r in retrieval.itertuples()])


def _write_gaze(root: Path, config: WorldConfig) -> None:
    """Every clip's simulated viewers in ``GAZE_FILE`` (each clip's scene drawn again from its
    scene stream: the same scene as its video's), and with ``hollywood2`` in that layout too."""
    clips = []
    names = config.hollywood2_names()
    for index in range(config.n_clips):
        scene, _ = clip_scene(config, index)
        fixations = sample_fixations(scene, config.gaze_subjects, gaze_rng(config.seed, index))
        clips.append((f"video{index}", fixations))
        if config.hollywood2:
            write_hollywood2_gaze(root, index, names[index], config.size, config.gaze_subjects,
                                  fixations)
    write_text(root / GAZE_FILE, fixations_csv(clips, config.size, config.size))


def generate_world(root: Path, config: WorldConfig) -> None:
    """Write ``videos/video{i}.mp4``, ``annotations/scenes.jsonl``, the LSMDC files, the tours
    (``tour_clips`` > 0: ``tours/``, ``annotations/tours.jsonl``), the gaze
    (``gaze_subjects`` > 0: ``GAZE_FILE``), the Hollywood2 layout (``hollywood2``:
    ``hollywood2/``) and ``annotations/videodatainfo.json``.

    Every file is written atomically; ``videodatainfo.json`` is written last, so its presence
    means the whole world is complete.
    """
    root = Path(root)
    tours = config.tours()
    records = _write_videos(root, config, tours)
    lines = [json.dumps(record, sort_keys=True) for record in records]
    write_text(root / "annotations" / "scenes.jsonl", "\n".join(lines) + "\n")
    _write_lsmdc(root, records, config)
    if tours:
        captions = [record["captions"] for record in records]
        write_tour_annotations(root, tours, tour_cues(tours, captions, config.duration_s,
                                                      config.subtitle_noise, config.seed))
    if config.gaze_subjects:
        _write_gaze(root, config)
    if config.cast:
        write_characters(root, records, lambda i: clip_characters(config, i),
                         seed=config.seed, duration_s=config.duration_s, fps=config.fps)
    videos = [{"category": r["category"], "url": "", "video_id": r["video_id"],
               "start time": 0.0, "end time": config.duration_s, "split": r["split"],
               "id": r["id"]} for r in records]
    sentences = [{"caption": caption, "video_id": r["video_id"]}
                 for r in records for caption in r["captions"]]
    for sen_id, sentence in enumerate(sentences):
        sentence["sen_id"] = sen_id
    info = {"description": "vlpipe synthetic video-language world", "version": "1.0",
            "config": config.info(), "categories": list(ACTIONS), "splits": config.split_sizes()}
    write_json(root / "annotations" / "videodatainfo.json",
               {"info": info, "videos": videos, "sentences": sentences})
