"""The subtitles adapter: own videos + SubRip files → one clip per cue."""

import logging
import shutil

import pytest

from vlpipe.datasets import AnnotationError, annotation_files, read_dataset
from vlpipe.extract import extract_shard
from vlpipe.features import FeatureStore
from vlpipe.manifest import SHARD_COLUMNS, with_file_identity

pytestmark = pytest.mark.usefixtures("single_thread")

TOUR = """1
00:00:00,500 --> 00:00:01,250
<i>This is the kitchen,</i>
with a new oven.

2
00:00:02,000 --> 00:00:02,100
Hm.

3
00:00:03,000 --> 00:00:06,000
{\\an8}♪ ♪

4
00:01:02,000 --> 00:01:05,500
And here's the balcony.
"""
HALL = """1
00:00:00,000 --> 00:00:01,000
A long hallway.
"""


def tour_root(tmp_path, **files):
    """videos/<name>.mp4 (empty files: the adapter does not open videos) + their .srt."""
    for name, text in {"tour": TOUR, "hall": HALL, **files}.items():
        (tmp_path / "videos").mkdir(parents=True, exist_ok=True)
        (tmp_path / "videos" / f"{name}.mp4").touch()
        if text is not None:
            (tmp_path / "videos" / f"{name}.srt").write_text(text, encoding="utf-8")
    return tmp_path


def test_one_clip_per_cue_with_clean_text_and_per_video_splits(tmp_path, caplog):
    root = tour_root(tmp_path)
    with caplog.at_level(logging.INFO):
        clips = read_dataset("subtitles", root, min_duration=0.5).clips.set_index("clip_id")
    # Cue 2 lasts 0.1 s (< min_duration): left out. Cue 3 keeps "♪ ♪" (only tags are markup).
    assert list(clips.index) == ["hall_0001", "tour_0001", "tour_0003", "tour_0004"]
    assert clips.loc["tour_0001", "sentences"] == ["This is the kitchen, with a new oven."]
    assert clips.loc["tour_0003", "sentences"] == ["♪ ♪"]
    assert (clips.loc["tour_0004", "start"], clips.loc["tour_0004", "end"]) == (62.0, 65.5)
    assert clips.loc["tour_0001", "video_path"] == str(root / "videos" / "tour.mp4")
    assert clips.groupby(clips.index.str.split("_").str[0])["split"].nunique().max() == 1
    assert "'too short': 1" in caplog.text  # left out, and said so

    clips = read_dataset("subtitles", root, max_duration=3.0).clips
    assert "tour_0004" not in set(clips.clip_id)  # 3.5 s
    files = annotation_files("subtitles", root, {"splits": "splits.csv"})
    assert files == [str(root / "videos" / "hall.srt"), str(root / "videos" / "tour.srt"),
                     str(root / "splits.csv")]


def test_splits_from_a_file_and_stable_fractions(tmp_path):
    root = tour_root(tmp_path)
    (root / "splits.csv").write_text("video,split\ntour,training\nhall,test\n")
    clips = read_dataset("subtitles", root, splits="splits.csv").clips
    assert dict(zip(clips.clip_id, clips.split, strict=True))["hall_0001"] == "test"
    assert set(clips.loc[clips.clip_id.str.startswith("tour"), "split"]) == {"train"}
    (root / "splits.csv").write_text("video,split\ntour,train\n")
    with pytest.raises(AnnotationError, match=r"splits\.csv: no split for 1 video"):
        read_dataset("subtitles", root, splits="splits.csv")
    (root / "splits.csv").write_text("video,split\ntour,train\nhall,dev\n")
    with pytest.raises(AnnotationError, match=r"splits\.csv:3: unknown split 'dev'"):
        read_dataset("subtitles", root, splits="splits.csv")

    # Fractions: 400 videos land near 80/10/10, and adding videos moves none of the others.
    many = tmp_path / "many"
    names = {f"v{i:03d}": HALL for i in range(400)}
    before = read_dataset("subtitles", tour_root(many, **names)).clips.set_index("clip_id")
    counts = before["split"].value_counts()
    assert 290 < counts["train"] < 350 and 20 < counts["val"] < 60 and 20 < counts["test"] < 60
    after = read_dataset("subtitles", tour_root(many, extra=HALL)).clips.set_index("clip_id")
    assert after["split"].reindex(before.index).equals(before["split"])
    with pytest.raises(AnnotationError, match="fractions of"):
        read_dataset("subtitles", root, splits={"train": 0.5, "test": 0.2})


@pytest.mark.parametrize("name, text, message", [
    ("garbled", "1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n00:00:03 -> 00:00:04\nbad\n",
     r"garbled\.srt:5: not a subtitle cue"),
    ("reversed", "1\n00:00:02,000 --> 00:00:01,000\nback\n",
     r"reversed\.srt: cue 1 \(00:00:02,000\): ends at 1\.000 s, not after its start"),
    ("empty", "", r"empty\.srt: no subtitle cues"),
    ("missing", None, r"missing\.srt: no subtitle file for video 'missing'"),
])
def test_bad_subtitles_name_the_file_and_cue(tmp_path, name, text, message):
    root = tour_root(tmp_path, **{name: text})
    with pytest.raises(AnnotationError, match=message):
        read_dataset("subtitles", root)


def test_not_utf8_and_no_videos(tmp_path):
    root = tour_root(tmp_path)
    (root / "videos" / "tour.srt").write_bytes(b"1\n00:00:00,000 --> 00:00:01,000\nCaf\xe9\n")
    with pytest.raises(AnnotationError, match=r"tour\.srt:3: not valid UTF-8"):
        read_dataset("subtitles", root)
    with pytest.raises(AnnotationError, match="no videos with extension"):
        read_dataset("subtitles", root, video_extensions=[".mkv"])


def test_cue_spans_reach_the_features(tiny_world, tmp_path):
    """Two cues of one real 2 s video: each clip gets the frames of its own second."""
    root = tmp_path / "own"
    (root / "videos").mkdir(parents=True)
    shutil.copy(tiny_world / "videos" / "video0.mp4", root / "videos" / "walk.mp4")
    (root / "videos" / "walk.srt").write_text(
        "1\n00:00:00,000 --> 00:00:01,000\nfirst\n\n2\n00:00:01,000 --> 00:00:02,000\nsecond\n")
    clips = read_dataset("subtitles", root).clips
    shard = tmp_path / "shard.parquet"
    with_file_identity(clips)[SHARD_COLUMNS].to_parquet(shard, index=False)
    # 112 px: at 32 px a random-init ResNet gives (nearly) one feature for every frame
    settings = {"fps": 5, "image_size": 112, "allow_random_init": True, "seed": 0}
    extract_shard(shard, {"resnet34": tmp_path / "f.zarr"}, {"resnet34": settings},
                  num_workers=0)
    store = FeatureStore(tmp_path / "f.zarr")
    first, second = (store[clip_id][0] for clip_id in ["walk_0001", "walk_0002"])
    assert first.shape == second.shape == (5, 512)  # 1 s at 5 fps each
    assert not (first == second).all()
    assert clips.split.nunique() == 1  # one video, one split
