"""Generate the synthetic world: clips, MSR-VTT-style annotations and ground-truth scenes.

Clip ``i`` depends only on ``(seed, i)``, and its scene, sentences and audio noise draw from
separate random streams, so changing ``n_clips`` or ``sentences_per_clip`` leaves the other
clips' pictures and sounds untouched.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vlpipe.atomic import write_json, write_text
from vlpipe.synthetic.render import render_audio, render_frames
from vlpipe.synthetic.scene import ACTIONS, describe_many, sample_scene
from vlpipe.synthetic.writer import write_clip

SPLITS = ("train", "validate", "test")


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


def _clip_rngs(seed: int, index: int) -> list[np.random.Generator]:
    """Independent generators for clip ``index``: scene, sentences, audio noise."""
    clip = np.random.SeedSequence(seed, spawn_key=(0, index))
    return [np.random.default_rng(child) for child in clip.spawn(3)]


def _make_clip(config: WorldConfig, index: int, split: str, silent: bool,
               video_path: Path) -> dict:
    """Render and write clip ``index``; return its scene record for ``scenes.jsonl``."""
    scene_rng, text_rng, audio_rng = _clip_rngs(config.seed, index)
    scene = sample_scene(scene_rng, config.duration_s)
    captions = describe_many(scene, text_rng, config.sentences_per_clip)
    waveform = None if silent else render_audio(scene, config.audio_rate, audio_rng)
    write_clip(video_path, render_frames(scene, config.fps, config.size), config.fps, waveform,
               config.audio_rate)
    return {"video_id": f"video{index}", "id": index, "split": split, "has_audio": not silent,
            "fps": config.fps, "size": config.size, "category": ACTIONS.index(
                scene.objects[0].action.name), "captions": captions, "scene": scene.to_dict()}


def generate_world(root: Path, config: WorldConfig) -> None:
    """Write ``videos/video{i}.mp4`` and ``annotations/{videodatainfo.json,scenes.jsonl}``.

    Every file is written atomically; ``videodatainfo.json`` is written last, so its presence
    means the whole world is complete.
    """
    root = Path(root)
    silent = config.silent_clips()
    records = [_make_clip(config, i, split, i in silent, root / "videos" / f"video{i}.mp4")
               for i, split in enumerate(config.splits())]
    lines = [json.dumps(record, sort_keys=True) for record in records]
    write_text(root / "annotations" / "scenes.jsonl", "\n".join(lines) + "\n")
    videos = [{"category": r["category"], "url": "", "video_id": r["video_id"],
               "start time": 0.0, "end time": config.duration_s, "split": r["split"],
               "id": r["id"]} for r in records]
    sentences = [{"caption": caption, "video_id": r["video_id"]}
                 for r in records for caption in r["captions"]]
    for sen_id, sentence in enumerate(sentences):
        sentence["sen_id"] = sen_id
    info = {"description": "vlpipe synthetic video-language world", "version": "1.0",
            "config": asdict(config), "categories": list(ACTIONS), "splits": config.split_sizes()}
    write_json(root / "annotations" / "videodatainfo.json",
               {"info": info, "videos": videos, "sentences": sentences})
