"""The synthetic world: deterministic, decodable, grounded sentences, MSR-VTT-shaped annotations."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest

from vlpipe.datasets import annotation_files, read_dataset
from vlpipe.synthetic import WorldConfig, generate_world, writer
from vlpipe.synthetic.scene import COLOURS, describe_many, sample_scene, vocabulary
from vlpipe.synthetic.world import salient_actions, synthetic_dataset_options

SMALL = WorldConfig(seed=3, n_clips=10, sentences_per_clip=3)
PALETTE_NAMES = list(COLOURS)
PALETTE = np.array([COLOURS[name] for name in PALETTE_NAMES], float)
MIN_PIXELS = 15  # a named colour counts as present with this many pixels closest to it


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("world")
    generate_world(root, SMALL)
    return root


def _annotations(root: Path) -> dict:
    return json.loads((root / "annotations" / "videodatainfo.json").read_text())


def _scenes(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "annotations" / "scenes.jsonl").open()]


def _decode(path: Path) -> tuple[list[np.ndarray], np.ndarray | None]:
    """RGB frames and the mono waveform (None without an audio stream)."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return frames, None
        audio = np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])
    return frames, audio


def _colour_counts(frame: np.ndarray) -> Counter:
    """Pixels per palette colour, each pixel assigned to its nearest palette entry."""
    pixels = frame.reshape(-1, 1, 3).astype(float)
    nearest = np.argmin(np.linalg.norm(pixels - PALETTE[None], axis=2), axis=1)
    return Counter(PALETTE_NAMES[i] for i in nearest)


def _world_files(n_clips: int) -> list[str]:
    return [*annotation_files("lsmdc", "", synthetic_dataset_options("lsmdc")),
            "annotations/videodatainfo.json", "annotations/scenes.jsonl",
            *(f"videos/video{i}.mp4" for i in range(n_clips))]


def test_same_seed_gives_byte_identical_files(world: Path, tmp_path: Path) -> None:
    # Bit-exact encoding makes even the .mp4 bytes reproducible, not just the decoded frames.
    generate_world(tmp_path, SMALL)
    for name in _world_files(SMALL.n_clips):
        assert (tmp_path / name).read_bytes() == (world / name).read_bytes(), name


def test_different_seed_gives_different_content(world: Path, tmp_path: Path) -> None:
    generate_world(tmp_path, replace(SMALL, seed=SMALL.seed + 1))
    captions = [s["caption"] for s in _annotations(world)["sentences"]]
    assert [s["caption"] for s in _annotations(tmp_path)["sentences"]] != captions
    for i in range(SMALL.n_clips):
        name = f"videos/video{i}.mp4"
        assert (tmp_path / name).read_bytes() != (world / name).read_bytes()


def test_clips_decode_with_expected_frames_and_audio(world: Path) -> None:
    expected_frames = SMALL.duration_s * SMALL.fps
    for video in _annotations(world)["videos"]:
        frames, audio = _decode(world / "videos" / f"{video['video_id']}.mp4")
        assert abs(len(frames) - expected_frames) <= 1
        assert frames[0].shape == (SMALL.size, SMALL.size, 3)
        assert audio is not None and len(audio) >= SMALL.duration_s * SMALL.audio_rate
        assert np.sqrt(np.mean(audio**2)) > 0.01


def test_silent_clips_have_no_audio_stream(tmp_path: Path) -> None:
    generate_world(tmp_path, replace(SMALL, n_clips=3, silent_fraction=1.0))
    for i in range(3):
        with av.open(str(tmp_path / "videos" / f"video{i}.mp4")) as container:
            assert not container.streams.audio
            assert len(container.streams.video) == 1
    assert not any(scene["has_audio"] for scene in _scenes(tmp_path))


def test_sentences_name_the_rendered_colours(world: Path) -> None:
    scenes = {scene["video_id"]: scene for scene in _scenes(world)}
    for sentence in _annotations(world)["sentences"]:
        words = sentence["caption"].split()
        frames, _ = _decode(world / "videos" / f"{sentence['video_id']}.mp4")
        counts = [_colour_counts(frame) for frame in frames]
        background = next(words[i - 1] for i, w in enumerate(words)
                          if w in ("background", "backdrop"))
        assert counts[0].most_common(1)[0][0] == background, sentence
        named = {w for w in words if w in COLOURS}
        assert named == set(scenes[sentence["video_id"]]["scene"]["rgb"]), sentence
        for colour in named:  # objects may appear or change colour later in the clip
            assert max(c[colour] for c in counts) >= MIN_PIXELS, (colour, sentence)


def test_splits_and_sentence_ids(world: Path) -> None:
    annotations = _annotations(world)
    splits = Counter(video["split"] for video in annotations["videos"])
    assert dict(splits) == SMALL.split_sizes() == {"train": 7, "validate": 1, "test": 2}
    assert WorldConfig().split_sizes() == {"train": 420, "validate": 60, "test": 120}
    ids = {video["video_id"] for video in annotations["videos"]}
    assert ids == {f"video{i}" for i in range(SMALL.n_clips)}
    per_video = Counter(s["video_id"] for s in annotations["sentences"])
    assert set(per_video) <= ids
    assert set(per_video.values()) == {SMALL.sentences_per_clip}
    sen_ids = [s["sen_id"] for s in annotations["sentences"]]
    assert sen_ids == list(range(len(sen_ids)))


def test_lsmdc_multiple_choice_distractors_show_another_activity(tmp_path: Path) -> None:
    config = WorldConfig(seed=1, n_clips=40, size=16, fps=2, duration_s=0.5,
                         train_fraction=0.5, validate_fraction=0.25, test_fraction=0.25)
    generate_world(tmp_path, config)
    tables = read_dataset("lsmdc", tmp_path, **synthetic_dataset_options("lsmdc"))
    activity, clips = salient_actions(tmp_path), tables.clips
    sentences = dict(zip(clips.clip_id, clips.sentences, strict=True))
    assert len(tables.multiple_choice) == 20  # every val and test clip
    for item in tables.multiple_choice.itertuples():
        assert item.candidates[item.answer] in sentences[item.clip_id]
        same_split = clips[clips.split == item.split]
        for k, candidate in enumerate(item.candidates):
            owners = [c for c, s in zip(same_split.clip_id, same_split.sentences, strict=True)
                      if candidate in s]
            if k != item.answer:
                assert any(activity[c] != activity[item.clip_id] for c in owners), candidate


def test_grammar_is_small_and_names_every_object() -> None:
    rng = np.random.default_rng(0)
    counts: Counter = Counter()
    for _ in range(300):
        scene = sample_scene(rng, 2.0)
        for sentence in describe_many(scene, rng, 2):
            counts.update(sentence.split())
            assert all(f"{obj.colour} {obj.shape}" in sentence for obj in scene.objects)
    assert set(counts) <= vocabulary()
    assert 60 <= len(vocabulary()) <= 120
    assert sum(c > 3 for c in counts.values()) >= 0.95 * len(vocabulary())


def test_interrupted_generation_leaves_no_finished_looking_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write_audio, calls = writer._write_audio, []

    def write_audio_then_die(*args) -> None:  # dies with clip 2 half-encoded
        calls.append(args)
        real_write_audio(*args)
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(writer, "_write_audio", write_audio_then_die)
    with pytest.raises(KeyboardInterrupt):
        generate_world(tmp_path, SMALL)
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == ["video0.mp4", "video1.mp4"]
    assert not (tmp_path / "annotations").exists()
