"""The subtitles adapter: own videos + SubRip files → one clip per cue."""

import logging
import shutil
from datetime import timedelta

import pytest
import srt

from vlpipe.datasets import AnnotationError, annotation_files, read_dataset
from vlpipe.extractors.job import extract_shard
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
    ("missing", None, r"missing\.srt or \.vtt: no subtitle file for video 'missing'"),
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


# WebVTT as written by hand: header text and metadata, NOTE and STYLE blocks, cue ids, cue
# settings, short timestamps, voice/class/style/ruby/lang tags, inline timestamps, entities.
FLAT = """WEBVTT - a flat in Lisbon
Kind: captions
Language: en

NOTE
written by hand in the style
of a YouTube download

STYLE
::cue(.yellow) { color: yellow; }

intro
00:00:00.500 --> 00:00:02.000 align:start position:0%
<v Ana>Welcome to my <b>flat</b>!</v>
<c.yellow>Tom &amp; I</c> live here.

2
00:01.000 --> 00:03.250 line:0
the&nbsp;kitchen &lt;new&gt; <i>and</i> <u>bright</u>

NOTE a comment between cues

00:00:04.000 --> 00:00:05.000
<ruby>漢<rt>kan</rt></ruby> <lang en>sofa</lang>
&lt;i&gt; stays text

00:00:06.000 --> 00:00:07.000
<00:00:06.000><c> only</c><00:00:06.500><c.colorE5E5E5> words</c>

00:00:08.000 --> 00:00:08.500
<c> </c>
"""


def add_vtt(root, name, text):
    """videos/<name>.mp4 (empty) + videos/<name>.vtt."""
    (root / "videos").mkdir(parents=True, exist_ok=True)
    (root / "videos" / f"{name}.mp4").touch()
    (root / "videos" / f"{name}.vtt").write_text(text, encoding="utf-8")
    return root


def test_webvtt_cues_beside_subrip_ones(tmp_path, caplog):
    root = add_vtt(tour_root(tmp_path), "flat", FLAT)
    with caplog.at_level(logging.INFO):
        clips = read_dataset("subtitles", root).clips.set_index("clip_id")
    assert {clip_id: (row.start, row.end, row.sentences)
            for clip_id, row in clips.iterrows() if clip_id.startswith("flat")} == {
        "flat_0001": (0.5, 2.0, ["Welcome to my flat! Tom & I live here."]),
        "flat_0002": (1.0, 3.25, ["the kitchen <new> and bright"]),
        "flat_0003": (4.0, 5.0, ["漢 sofa <i> stays text"]),
        "flat_0004": (6.0, 7.0, ["only words"]),
    }  # cue 5 is empty once cleaned
    assert "'empty': 1" in caplog.text and "rolling" not in caplog.text
    assert clips.loc["flat_0001", "video_path"] == str(root / "videos" / "flat.mp4")
    assert clips.loc["tour_0001", "sentences"] == ["This is the kitchen, with a new oven."]
    assert annotation_files("subtitles", root, {}) == [
        str(root / "videos" / name) for name in ["flat.vtt", "hall.srt", "tour.srt"]]

    # subtitles in their own folder
    (root / "subs").mkdir()
    for path in (root / "videos").glob("*.[sv][rt]t"):
        path.rename(root / "subs" / path.name)
    options = {"subtitle_dir": "subs", "splits": {"train": 1.0}}
    assert read_dataset("subtitles", root, **options).clips.equals(
        clips.reset_index().assign(split="train"))
    assert annotation_files("subtitles", root, options) == [
        str(root / "subs" / name) for name in ["flat.vtt", "hall.srt", "tour.srt"]]


def test_a_video_with_both_subrip_and_webvtt_is_ambiguous(tmp_path):
    root = add_vtt(tour_root(tmp_path), "tour", FLAT)
    message = (rf"{tmp_path}/videos/tour\.srt and {tmp_path}/videos/tour\.vtt: two subtitle "
               "files for video 'tour'; keep one")
    with pytest.raises(AnnotationError, match=message):
        read_dataset("subtitles", root)
    with pytest.raises(AnnotationError, match=message):
        annotation_files("subtitles", root, {})


@pytest.mark.parametrize("name, text, message", [
    ("garbled", "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nok\n\n00:00:03 --> 00:00:04.000\nbad\n",
     r"garbled\.vtt:6: not a WebVTT cue .*Invalid cue block \['00:00:03 --> 00:00:04\.000'"),
    ("overrun", "WEBVTT\n\nNOTE x\n\n1\n00:00:01.000 --> 00:00:02.000\nok\n\n2\n"
     "00:00:03.000 --> 00:00:61.000\nbad\n", r"overrun\.vtt:9: .*Invalid timestamp '00:00:61"),
    ("setting", "WEBVTT\n\n00:00:01.000 --> 00:00:02.000 align:middle\nok\n",
     r"setting\.vtt:3: .*Invalid cue setting 'align:middle'"),
    ("headless", "00:00:01.000 --> 00:00:02.000\nok\n",
     r"headless\.vtt:1: not a WebVTT file \(the first line must start with 'WEBVTT'\)"),
    ("reversed", "WEBVTT\n\n00:00:02.000 --> 00:00:01.000\nback\n",
     r"reversed\.vtt: cue 1 \(00:00:02\.000\): ends at 1\.000 s, not after its start"),
    ("empty", "WEBVTT\n\nNOTE nothing yet\n", r"empty\.vtt: no subtitle cues"),
])
def test_bad_webvtt_names_the_file_and_line_or_cue(tmp_path, name, text, message):
    root = add_vtt(tour_root(tmp_path), name, text)
    with pytest.raises(AnnotationError, match=message):
        read_dataset("subtitles", root)


# YouTube's automatic captions as yt-dlp writes them: each ~2.3 s cue shows the previous line
# (plain) above the new words (with inline timestamps), a 10 ms cue in between shows the new
# line alone (above a line with one space), and after a pause the lines start afresh.
ROLLING = """WEBVTT
Kind: captions
Language: en

00:00:00.160 --> 00:00:02.310 align:start position:0%
\x20
hi<00:00:00.480><c> everyone</c><00:00:00.880><c> welcome</c><00:00:01.280><c> to</c>\
<00:00:01.440><c> my</c>

00:00:02.310 --> 00:00:02.320 align:start position:0%
hi everyone welcome to my
\x20

00:00:02.320 --> 00:00:04.630 align:start position:0%
hi everyone welcome to my
apartment<00:00:02.800><c> tour</c><00:00:03.360><c> this</c><00:00:03.600><c> is</c>\
<00:00:03.760><c> the</c>

00:00:04.630 --> 00:00:04.640 align:start position:0%
apartment tour this is the
\x20

00:00:04.640 --> 00:00:06.950 align:start position:0%
apartment tour this is the
living<00:00:05.040><c> room</c><00:00:05.440><c> and</c><00:00:05.680><c> over</c>\
<00:00:05.920><c> here</c>

00:00:06.950 --> 00:00:06.960 align:start position:0%
living room and over here
\x20

00:00:09.000 --> 00:00:10.870 align:start position:0%
\x20
the<00:00:09.360><c> kitchen</c>
"""
ROLLING_CLIPS = {"room_0001": (0.16, 2.31, ["hi everyone welcome to my"]),
                 "room_0003": (2.32, 4.63, ["apartment tour this is the"]),
                 "room_0005": (4.64, 6.95, ["living room and over here"]),
                 "room_0007": (9.0, 10.87, ["the kitchen"])}


def clip_spans(clips, prefix):
    return {row.clip_id: (row.start, row.end, row.sentences)
            for row in clips.itertuples() if row.clip_id.startswith(prefix)}


def test_rolling_captions_give_each_cue_its_new_words_only(tmp_path, caplog):
    root = add_vtt(tour_root(tmp_path), "room", ROLLING)
    with caplog.at_level(logging.INFO):
        clips = read_dataset("subtitles", root).clips
    # the 10 ms cues say nothing new: left out; the others keep their spans, less the old line
    assert clip_spans(clips, "room") == ROLLING_CLIPS
    assert "room.vtt: rolling captions (5 of 7 cues" in caplog.text
    assert "'repeated': 3" in caplog.text
    assert clip_spans(clips, "tour") == clip_spans(read_dataset("subtitles", tour_root(
        tmp_path / "plain")).clips, "tour")  # subtitles that do not roll are read as written
    assert clip_spans(read_dataset("subtitles", root, rolling=True).clips, "room") == (
        ROLLING_CLIPS)

    as_written = clip_spans(read_dataset("subtitles", root, rolling=False).clips, "room")
    assert len(as_written) == 7
    assert as_written["room_0002"] == (2.31, 2.32, ["hi everyone welcome to my"])
    assert as_written["room_0003"] == (
        2.32, 4.63, ["hi everyone welcome to my apartment tour this is the"])

    # the same captions converted to SubRip (yt-dlp --convert-subs srt) roll the same way
    (root / "videos" / "room.vtt").unlink()
    (root / "videos" / "room.srt").write_text(srt.compose(
        srt.Subtitle(k, timedelta(seconds=start), timedelta(seconds=end), text)
        for k, (start, end, text) in enumerate(
            [(0.16, 2.31, " \nhi everyone welcome to my"),
             (2.31, 2.32, "hi everyone welcome to my\n "),
             (2.32, 4.63, "hi everyone welcome to my\napartment tour this is the")], 1)))
    assert clip_spans(read_dataset("subtitles", root).clips, "room") == {
        "room_0001": ROLLING_CLIPS["room_0001"], "room_0003": ROLLING_CLIPS["room_0003"]}

    with pytest.raises(AnnotationError, match="dataset option rolling 'yes'"):
        read_dataset("subtitles", root, rolling="yes")


def test_a_line_said_twice_is_not_rolling(tmp_path):
    """One repeat among hand-made cues is speech, kept, unless rolling is forced."""
    twice = ("1\n00:00:01,000 --> 00:00:02,000\nWho's there?\n\n2\n00:00:03,000 --> 00:00:04,000\n"
             "No.\n\n3\n00:00:04,500 --> 00:00:05,000\nNo.\n\n4\n00:00:06,000 --> 00:00:07,000\n"
             "Open up.\n")
    root = tour_root(tmp_path, door=twice)
    assert len(clip_spans(read_dataset("subtitles", root).clips, "door")) == 4
    forced = clip_spans(read_dataset("subtitles", root, rolling=True).clips, "door")
    assert sorted(forced) == ["door_0001", "door_0002", "door_0004"]
