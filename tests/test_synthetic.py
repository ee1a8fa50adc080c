"""The synthetic world: deterministic, decodable, grounded sentences, MSR-VTT-shaped annotations."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
import srt

from vlpipe.datasets import annotation_files, read_dataset
from vlpipe.synthetic import WorldConfig, generate_world, tours, writer
from vlpipe.synthetic.render import render_frames
from vlpipe.synthetic.scene import ACTIONS, COLOURS, describe_many, sample_scene, vocabulary
from vlpipe.synthetic.world import (
    _clip_rngs,
    salient_actions,
    synthetic_annotation_files,
    synthetic_dataset_options,
    synthetic_videos,
)

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
        story_sentence = describe_many(scene, rng, 1, follows=bool(rng.random() < 0.5))[0]
        counts.update(story_sentence.split())  # a story's later clip
        assert all(f"{obj.colour} {obj.shape}" in story_sentence for obj in scene.objects)
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


# --- Tours: the clips as long subtitled videos with known subtitle noise (Watch and Learn) ---

TOURS = WorldConfig(seed=1, n_clips=20, size=32, duration_s=1.0, fps=5, train_fraction=0.6,
                    validate_fraction=0.2, test_fraction=0.2, silent_fraction=0.3,
                    tour_clips=5, subtitle_noise=0.5)
GRAMMAR_FUNCTION_WORDS = {"a", "an", "and", "in", "is", "of", "on", "that", "there", "to",
                          "while", "the", "then", "next", "after"}  # (the last four: stories)


@pytest.fixture(scope="module")
def tours_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tours")
    generate_world(root, TOURS)
    return root


def _cues(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / tours.GROUND_TRUTH).open()]


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_no_tours_by_default_and_the_world_is_as_before(world: Path) -> None:
    assert _files(world) == set(_world_files(SMALL.n_clips))
    assert "tour_clips" not in _annotations(world)["info"]["config"]
    assert SMALL.tours() == []
    assert synthetic_videos(SMALL) == [f"videos/video{i}.mp4" for i in range(SMALL.n_clips)]
    for bad, message in [({"subtitle_noise": 1.5}, "subtitle_noise"),
                         ({"tour_clips": -1}, "tour_clips"),
                         ({"tour_clips": 2, "fps": 3, "duration_s": 0.5}, "whole number"),
                         ({"tour_clips": 2, "duration_s": 0.1}, "at least 0.2 s")]:
        with pytest.raises(ValueError, match=message):
            replace(SMALL, **bad)


def test_tours_add_files_and_change_none(tours_world: Path, tmp_path: Path) -> None:
    generate_world(tmp_path, replace(TOURS, tour_clips=0))
    common = _files(tmp_path) - {"annotations/videodatainfo.json"}
    assert _files(tours_world) - _files(tmp_path) == {
        tours.GROUND_TRUTH, tours.SPLITS_FILE,
        *(f"tours/tour{k}.{ext}" for k in range(5) for ext in ("mp4", "srt"))}
    for name in common:
        assert (tmp_path / name).read_bytes() == (tours_world / name).read_bytes(), name
    assert _annotations(tours_world)["info"]["config"]["tour_clips"] == TOURS.tour_clips


def test_a_tour_video_is_its_clips_end_to_end(tours_world: Path) -> None:
    per_clip = round(TOURS.duration_s * TOURS.fps)
    samples = round(TOURS.duration_s * TOURS.audio_rate)
    silent = TOURS.silent_clips()
    for tour in TOURS.tours():
        frames, audio = _decode(tours_world / "tours" / f"{tour.name}.mp4")
        assert len(frames) == per_clip * len(tour.clips)
        for j, clip in enumerate(tour.clips):
            scene = sample_scene(_clip_rngs(TOURS.seed, clip)[0], TOURS.duration_s)
            rendered = render_frames(scene, TOURS.fps, TOURS.size).astype(float)
            own, _ = _decode(tours_world / "videos" / f"video{clip}.mp4")
            block = np.stack(frames[j * per_clip:(j + 1) * per_clip])
            error = np.abs(block - rendered).mean()  # lossy H.264: as close as the clip's own
            assert error < min(np.abs(np.stack(own) - rendered).mean() + 1, 6), (tour.name, clip)
            if audio is not None:  # silent clips are silence in the tour
                middle = audio[j * samples:(j + 1) * samples][samples // 10:-samples // 10]
                loud = np.sqrt(np.mean(middle**2))
                assert (loud < 0.005) if clip in silent else (loud > 0.01), (tour.name, clip)
        assert (audio is None) == (set(tour.clips) <= silent)


def test_tour_subtitles_span_their_clips(tours_world: Path) -> None:
    plan, cues = TOURS.tours(), _cues(tours_world)
    assert [(t.name, t.split, t.clips) for t in plan] == [
        ("tour0", "train", (0, 1, 2, 3, 4)), ("tour1", "train", (5, 6, 7, 8, 9)),
        ("tour2", "train", (10, 11)), ("tour3", "val", (12, 13, 14, 15)),
        ("tour4", "test", (16, 17, 18, 19))]
    assert (tours_world / tours.SPLITS_FILE).read_text() == (
        "video,split\ntour0,train\ntour1,train\ntour2,train\ntour3,val\ntour4,test\n")
    captions = [scene["captions"] for scene in _scenes(tours_world)]
    for tour in plan:
        subtitles = list(srt.parse((tours_world / "tours" / f"{tour.name}.srt").read_text()))
        truth = [cue for cue in cues if cue["tour"] == tour.name]
        assert [cue["clip"] for cue in truth] == list(tour.clips)
        for j, (subtitle, cue) in enumerate(zip(subtitles, truth, strict=True)):
            assert (subtitle.index, cue["cue"], cue["clip_id"]) == (
                j + 1, j + 1, f"{tour.name}_{j + 1:04d}")
            assert subtitle.start.total_seconds() == cue["start"] == j * TOURS.duration_s
            assert subtitle.end.total_seconds() == cue["end"] == (j + 1) * TOURS.duration_s - 0.1
            assert subtitle.content == cue["text"]
            assert cue["split"] == tour.split
            if cue["noise"] is None:
                assert cue["text"] == captions[cue["clip"]][0]


def test_noise_only_in_training_tours_with_the_requested_fraction_and_kinds(
        tours_world: Path) -> None:
    cues, plan = _cues(tours_world), {tour.name: tour for tour in TOURS.tours()}
    captions = [scene["captions"] for scene in _scenes(tours_world)]
    train = [cue for cue in cues if cue["split"] == "train"]
    assert all(cue["noise"] is None for cue in cues if cue["split"] != "train")
    kinds = Counter(cue["noise"] for cue in train)
    assert kinds == {None: 6, "chatter": 3, "other_clip": 3}  # 12 cues × 0.5, half each
    for cue in train:
        assert cue["text"] not in captions[cue["clip"]] or cue["noise"] is None
        if cue["noise"] == "other_clip":
            owners = [c for c in plan[cue["tour"]].clips if captions[c][0] == cue["text"]]
            assert owners and cue["clip"] not in owners, cue
        if cue["noise"] == "chatter":
            assert cue["text"] in tours.CHATTER
    content_words = vocabulary() - GRAMMAR_FUNCTION_WORDS
    for line in tours.CHATTER:
        assert not set(line.split()) & content_words, line
        assert not set(line.split()) & set(ACTIONS), line
    clean = tours.tour_cues(TOURS.tours(), captions, TOURS.duration_s, 0.0, TOURS.seed)
    assert [cue["text"] for cue in clean] == [captions[cue["clip"]][0] for cue in clean]


def test_the_subtitles_adapter_reads_one_clip_per_cue(tours_world: Path) -> None:
    options = synthetic_dataset_options("subtitles")
    clips = read_dataset("subtitles", tours_world, **options).clips.set_index("clip_id")
    cues = {cue["clip_id"]: cue for cue in _cues(tours_world)}
    assert sorted(clips.index) == sorted(cues) and len(cues) == TOURS.n_clips
    for clip_id, cue in cues.items():
        row = clips.loc[clip_id]
        assert (row.start, row.end, row.split, row.sentences) == (
            cue["start"], cue["end"], cue["split"], [cue["text"]])
        assert row.video_path == str(tours_world / "tours" / f"{cue['tour']}.mp4")
    assert annotation_files("subtitles", tours_world, options) == [
        str(tours_world / name) for name in synthetic_annotation_files("subtitles", TOURS)]
    assert set(synthetic_videos(TOURS)) == {f for f in _files(tours_world) if f.endswith(".mp4")}
    for format in ("msrvtt", "lsmdc"):
        assert synthetic_annotation_files(format, TOURS) == annotation_files(
            format, "", synthetic_dataset_options(format))
    activity = salient_actions(tours_world)
    assert all(activity[clip_id] == activity[f"video{cue['clip']}"]
               for clip_id, cue in cues.items())


STORIES = WorldConfig(seed=3, n_clips=15, train_fraction=1.0, validate_fraction=0.0,
                      test_fraction=0.0, sentences_per_clip=2, story_length=5)


def test_a_storys_later_clips_keep_the_background_and_may_carry_the_salient_object() -> None:
    """Clips 5k+1 … 5k+4 keep clip 5k's background; where one follows its predecessor, its
    salient object has the predecessor's last colour, shape and size, and every sentence says
    "<opening> … the <colour> <shape> …"; a new one gets a full noun phrase. A story's first
    clip is the clip the world without stories has."""
    from vlpipe.synthetic.scene import STORY_OPENINGS
    from vlpipe.synthetic.world import clip_scene

    follows_seen = set()
    for index in range(STORIES.n_clips):
        scene, follows = clip_scene(STORIES, index)
        if index % 5 == 0:
            assert follows is None
            assert scene == clip_scene(replace(STORIES, story_length=0), index)[0]
            continue
        previous, _ = clip_scene(STORIES, index - 1)
        assert scene.background == previous.background
        salient, before = scene.objects[0], previous.objects[0]
        carried = (salient.colour, salient.shape, salient.size) == (
            before.action.colour or before.colour, before.shape, before.size)
        assert carried or not follows
        follows_seen.add(follows)
        rng = np.random.default_rng(index)
        for sentence in describe_many(scene, rng, 2, follows=follows):
            assert any(sentence.startswith(o + " ") for o in STORY_OPENINGS), sentence
            assert (f"the {salient.colour} {salient.shape}" in sentence) == follows, sentence
            assert f"{salient.colour} {salient.shape}" in sentence
            assert set(sentence.split()) <= vocabulary()
    assert follows_seen == {True, False}


def test_story_worlds_are_read_as_story_sets(tmp_path: Path) -> None:
    from vlpipe.datasets.task_lists import build_stories

    generate_world(tmp_path, replace(STORIES, size=32))
    records = [json.loads(line) for line in
               (tmp_path / "annotations" / "scenes.jsonl").read_text().splitlines()]
    assert [r["story"] for r in records] == [i // 5 for i in range(15)]
    assert _annotations(tmp_path)["info"]["config"]["story_length"] == 5
    tables = read_dataset("msrvtt", tmp_path, **synthetic_dataset_options("msrvtt"))
    stories = build_stories(tables.clips)
    assert stories["clip_ids"].map(list).tolist() == [
        [f"video{i}" for i in range(k, k + 5)] for k in (0, 5, 10)]
    assert all(s.split()[0] in ("then", "next", "after")
               for story in stories["sentences"] for s in list(story)[1:])
    with pytest.raises(ValueError, match="multiples of it"):
        replace(STORIES, n_clips=12)
